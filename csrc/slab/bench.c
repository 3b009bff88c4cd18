/* bench.c - alloc+free pair loops timed in C, for perf/bench_slab.py (slab arenas and any malloc). */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_slab.h"

#include <errno.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Both loops have one shape: allocate, store one byte into the block (so the
   memory is really handed out), free. */
int64_t me_slab_bench_pairs(void *arena, uint32_t cls, uint64_t iters, int cached)
{
    char *base = arena;
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        int64_t off = cached ? me_slab_alloc_cached(arena, cls, 0) : me_slab_alloc_class(arena, cls, 0);
        if (off < 0)
            return off;
        *(volatile char *)(base + off) = (char)i;
        int rc = cached ? me_slab_free_cached(arena, (uint64_t)off) : me_slab_free(arena, (uint64_t)off);
        if (rc < 0)
            return rc;
    }
    return now_ns() - t0;
}

int64_t me_slab_bench_malloc(void *(*alloc)(size_t), void (*release)(void *), size_t n, uint64_t iters)
{
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        char *p = alloc(n);
        if (!p)
            return -ENOMEM;
        *(volatile char *)p = (char)i;
        release(p);
    }
    return now_ns() - t0;
}
