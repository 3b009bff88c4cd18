/* metrics.c - see me_metrics.h. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "me_metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int me_meter_init(me_meter *m, uint32_t series, const uint64_t *bounds, uint32_t nbounds)
{
    memset(m, 0, sizeof(*m));
    if (series == 0 || series > ME_METER_MAX_SERIES || nbounds == 0 || nbounds > ME_METER_MAX_BOUNDS || !bounds)
        return -EINVAL;
    for (uint32_t i = 1; i < nbounds; i++)
        if (bounds[i] <= bounds[i - 1])
            return -EINVAL;
    uint32_t stride = ME_METER_FIXED + nbounds + 1;
    m->bounds = malloc(sizeof(uint64_t) * nbounds);
    m->cells = calloc((size_t)series * stride, sizeof(uint64_t));
    if (!m->bounds || !m->cells) {
        me_meter_free(m);
        return -ENOMEM;
    }
    memcpy(m->bounds, bounds, sizeof(uint64_t) * nbounds);
    m->series = series;
    m->nbounds = nbounds;
    m->stride = stride;
    return 0;
}

void me_meter_free(me_meter *m)
{
    free(m->bounds);
    free(m->cells);
    memset(m, 0, sizeof(*m));
}

static inline void add(uint64_t *cell, uint64_t v)
{
    __atomic_fetch_add(cell, v, __ATOMIC_RELAXED);
}

int me_meter_record(me_meter *m, uint32_t slot, uint64_t ns, int error)
{
    if (slot >= m->series)
        return -EINVAL;
    uint64_t *row = m->cells + (size_t)slot * m->stride;
    /* Binary search for the first bound >= ns; past the last one: the +Inf bucket. */
    uint32_t lo = 0, hi = m->nbounds;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (m->bounds[mid] < ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    add(&row[ME_METER_CALLS], 1);
    if (error)
        add(&row[ME_METER_ERRORS], 1);
    add(&row[ME_METER_SUM_NS], ns);
    add(&row[ME_METER_FIXED + lo], 1);
    return 0;
}

int me_meter_refuse(me_meter *m, uint32_t slot)
{
    if (slot >= m->series)
        return -EINVAL;
    add(&m->cells[(size_t)slot * m->stride + ME_METER_REFUSED], 1);
    return 0;
}

int me_meter_read(const me_meter *m, uint32_t slot, uint64_t *out)
{
    if (slot >= m->series)
        return -EINVAL;
    const uint64_t *row = m->cells + (size_t)slot * m->stride;
    for (uint32_t i = 0; i < m->stride; i++)
        out[i] = __atomic_load_n(&row[i], __ATOMIC_RELAXED);
    return 0;
}

int me_meter_clear(me_meter *m, uint32_t slot)
{
    if (slot >= m->series)
        return -EINVAL;
    uint64_t *row = m->cells + (size_t)slot * m->stride;
    for (uint32_t i = 0; i < m->stride; i++)
        __atomic_store_n(&row[i], 0, __ATOMIC_RELAXED);
    return 0;
}
