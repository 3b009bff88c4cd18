/* me_metrics.h - the runtime's request meter: per series (one plugin's tool, resource or prompt) a count of calls,
 * errors and refusals, the sum of their durations and a latency histogram, each cell a 64-bit counter added to
 * with a relaxed atomic, so recording costs a few nanoseconds and never takes a lock. A scrape reads the cells
 * (me_meter_read) while calls go on: each cell is exact, a row may mix two moments by a call or two. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_METRICS_H
#define MCP_EDGE_ME_METRICS_H

#include <stdint.h>

/* The counters before a series' histogram cells, in me_meter_read's order. */
enum {
    ME_METER_CALLS = 0,   /* calls that ran (answered, failed or timed out) */
    ME_METER_ERRORS = 1,  /* of those, the ones that failed or answered an error result */
    ME_METER_REFUSED = 2, /* calls refused before they ran (breaker open, bulkhead full, shed) */
    ME_METER_SUM_NS = 3,  /* the sum of the durations of the calls that ran, in nanoseconds */
    ME_METER_FIXED = 4,
};

#define ME_METER_MAX_SERIES (1u << 20)
#define ME_METER_MAX_BOUNDS 64u

typedef struct me_meter {
    uint32_t series;   /* rows */
    uint32_t nbounds;  /* histogram upper bounds; a row has nbounds + 1 buckets (the last one: +Inf) */
    uint32_t stride;   /* cells a row: ME_METER_FIXED + nbounds + 1 */
    uint64_t *bounds;  /* ascending upper bounds in nanoseconds (a duration <= bound falls in its bucket) */
    uint64_t *cells;   /* series * stride counters */
} me_meter;

/* A meter of `series` rows (1 .. ME_METER_MAX_SERIES) and the `nbounds` (1 .. ME_METER_MAX_BOUNDS) strictly
 * ascending bucket bounds `bounds`, all counters zero. 0 or -EINVAL (bad sizes or bounds), -ENOMEM. */
int me_meter_init(me_meter *m, uint32_t series, const uint64_t *bounds, uint32_t nbounds);

/* Free what me_meter_init took (safe on a zeroed or already freed meter). */
void me_meter_free(me_meter *m);

/* Count a call of row `slot` that ran for `ns` nanoseconds; `error` non-zero if it failed. 0 or -EINVAL. */
int me_meter_record(me_meter *m, uint32_t slot, uint64_t ns, int error);

/* Count a call of row `slot` refused before it ran. 0 or -EINVAL. */
int me_meter_refuse(me_meter *m, uint32_t slot);

/* Copy row `slot` into `out` (m->stride counters: the ME_METER_* ones, then each bucket's own count, not
 * cumulative). 0 or -EINVAL. */
int me_meter_read(const me_meter *m, uint32_t slot, uint64_t *out);

/* Zero row `slot` (a series given to another key). 0 or -EINVAL. */
int me_meter_clear(me_meter *m, uint32_t slot);

#endif
