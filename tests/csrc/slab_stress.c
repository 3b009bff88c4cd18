/* slab_stress.c - threads hammer one slab arena (cached and shared paths, cross-thread frees, racing double frees, waits). */
/* SPDX-License-Identifier: Apache-2.0 */
// sources: csrc/slab/slab.c
// libs: -lpthread
/*
 * Run under -fsanitize=thread and -fsanitize=address,undefined (make
 * test-sanitize). Every block handed out is claimed in an ownership table
 * with an atomic exchange, so a block given to two threads at once fails an
 * assertion at once; every block carries its holder's stamp, checked before
 * it is freed. At the end nothing may be lost: every block of every class can
 * be allocated again and the counters say zero in use.
 * Exit status 0 on success; an assertion aborts otherwise.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/slab/me_slab.h"

#define THREADS 4
#define OPS 200000
#define SLOTS 64 /* hand-off slots for cross-thread frees */
#define HELD 24  /* blocks a thread holds at most */

static void *arena;
static struct me_slab_config cfg = {
    .nclasses = 4,
    .size = {64, 256, 4096, 65536},
    .count = {256, 128, 64, 8},
};
static _Atomic uint8_t *owned[ME_SLAB_MAX_CLASSES]; /* 1 while a thread holds the block */
static _Atomic int64_t slots[SLOTS];                /* offsets handed to any thread to free, -1 empty */

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void claim(int64_t off, uint64_t stamp)
{
    uint32_t cls, idx;
    assert(me_slab_locate(arena, (uint64_t)off, &cls, &idx) == 0);
    assert(atomic_exchange(&owned[cls][idx], 1) == 0); /* nobody else holds it */
    memcpy((char *)arena + off, &stamp, sizeof stamp);
    memset((char *)arena + off + 8, (int)(stamp & 0xff), 56);
}

static void unclaim(int64_t off, uint64_t stamp)
{
    uint32_t cls, idx;
    uint64_t seen;
    assert(me_slab_locate(arena, (uint64_t)off, &cls, &idx) == 0);
    memcpy(&seen, (char *)arena + off, sizeof seen);
    assert(seen == stamp);
    assert(atomic_exchange(&owned[cls][idx], 0) == 1);
}

struct held {
    int64_t off;
    uint64_t stamp;
};

static void *worker(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg, s = 0x9E3779B97F4A7C15u * (id + 1);
    struct held h[HELD];
    int n = 0;
    for (int op = 0; op < OPS; op++) {
        uint64_t r = rng(&s);
        int cached = (int)(r >> 8 & 1);
        if (n < HELD && (r & 3) != 0) {
            uint32_t cls = (uint32_t)(r >> 16) % cfg.nclasses;
            int64_t off = cached ? me_slab_alloc_cached(arena, cls, (uint32_t)id)
                                 : me_slab_alloc(arena, cfg.size[cls] - (uint32_t)(r >> 24) % 64, (uint32_t)id);
            if (off == -ENOMEM)
                continue;
            assert(off > 0);
            uint64_t stamp = id << 56 | (uint64_t)op;
            claim(off, stamp);
            h[n++] = (struct held){off, stamp};
        } else if (n > 0) {
            int i = (int)((r >> 32) % (uint64_t)n);
            struct held b = h[i];
            h[i] = h[--n];
            if ((r >> 40 & 3) == 0) {
                /* Hand it to whichever thread looks at the slot next. */
                int64_t was = atomic_exchange(&slots[(r >> 44) % SLOTS], b.off);
                if (was < 0)
                    continue;
                uint64_t stamp;
                memcpy(&stamp, (char *)arena + was, sizeof stamp);
                b = (struct held){was, stamp};
            }
            unclaim(b.off, b.stamp);
            assert((cached ? me_slab_free_cached(arena, (uint64_t)b.off) : me_slab_free(arena, (uint64_t)b.off)) == 0);
        }
    }
    while (n > 0) {
        n--;
        unclaim(h[n].off, h[n].stamp);
        assert(me_slab_free_cached(arena, (uint64_t)h[n].off) == 0);
    }
    me_slab_cache_flush(arena);
    return NULL;
}

/* Two threads free the same blocks at once: each block is freed exactly once. */
static int64_t race_offs[64];
static _Atomic int race_ok, race_already;

static void *racer(void *arg)
{
    int reverse = (int)(uintptr_t)arg;
    for (int i = 0; i < 64; i++) {
        int j = reverse ? 63 - i : i;
        int rc = (j & 1) ? me_slab_free_cached(arena, (uint64_t)race_offs[j]) : me_slab_free(arena, (uint64_t)race_offs[j]);
        assert(rc == 0 || rc == -EALREADY);
        atomic_fetch_add(rc == 0 ? &race_ok : &race_already, 1);
    }
    me_slab_cache_flush(arena);
    return NULL;
}

/* One thread holds the whole last class; the waiter sleeps until a release. */
static _Atomic int waiter_ready;

static void *waiter(void *arg)
{
    (void)arg;
    uint32_t cls = cfg.nclasses - 1;
    atomic_store(&waiter_ready, 1);
    for (;;) {
        int64_t off = me_slab_alloc_class(arena, cls, 99);
        if (off >= 0) {
            assert(me_slab_free(arena, (uint64_t)off) == 0);
            return NULL;
        }
        assert(off == -ENOMEM);
        int rc = me_slab_wait(arena, cls, 5 * 1000000000LL);
        assert(rc == 0 || rc == -EINTR);
    }
}

static void check_nothing_lost(void)
{
    for (uint32_t c = 0; c < cfg.nclasses; c++) {
        struct me_slab_class_stats st;
        me_slab_stats(arena, c, &st);
        assert(st.in_use == 0);
        assert(st.high_water <= st.count);
        int64_t *all = calloc(cfg.count[c], sizeof *all);
        assert(all);
        for (uint32_t i = 0; i < cfg.count[c]; i++) {
            all[i] = me_slab_alloc_class(arena, c, 0);
            assert(all[i] >= 0);
        }
        assert(me_slab_alloc_class(arena, c, 0) == -ENOMEM);
        for (uint32_t i = 0; i < cfg.count[c]; i++)
            assert(me_slab_free(arena, (uint64_t)all[i]) == 0);
        free(all);
    }
}

int main(void)
{
    size_t bytes = me_slab_arena_bytes(&cfg);
    assert(bytes > 0);
    arena = aligned_alloc(4096, bytes);
    assert(arena);
    assert(me_slab_arena_init(arena, bytes, &cfg) == 0);
    assert(me_slab_arena_check(arena, bytes) == 0);
    for (uint32_t c = 0; c < cfg.nclasses; c++) {
        owned[c] = calloc(cfg.count[c], 1);
        assert(owned[c]);
    }
    for (int i = 0; i < SLOTS; i++)
        atomic_init(&slots[i], -1);

    /* 1: mixed traffic. */
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < THREADS; i++)
        assert(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < SLOTS; i++) {
        int64_t off = atomic_exchange(&slots[i], -1);
        if (off < 0)
            continue;
        uint64_t stamp;
        memcpy(&stamp, (char *)arena + off, sizeof stamp);
        unclaim(off, stamp);
        assert(me_slab_free(arena, (uint64_t)off) == 0);
    }
    me_slab_arena_detach(arena);
    check_nothing_lost();

    /* 2: racing double frees. */
    for (int i = 0; i < 64; i++)
        assert((race_offs[i] = me_slab_alloc_class(arena, 0, 0)) >= 0);
    assert(pthread_create(&t[0], NULL, racer, (void *)0) == 0);
    assert(pthread_create(&t[1], NULL, racer, (void *)1) == 0);
    assert(pthread_join(t[0], NULL) == 0 && pthread_join(t[1], NULL) == 0);
    assert(race_ok == 64 && race_already == 64);
    me_slab_arena_detach(arena);
    check_nothing_lost();

    /* 3: exhaustion, a waiter woken by a release from another thread. */
    uint32_t last = cfg.nclasses - 1;
    int64_t held[64];
    for (uint32_t i = 0; i < cfg.count[last]; i++)
        assert((held[i] = me_slab_alloc_class(arena, last, 1)) >= 0);
    assert(me_slab_alloc_class(arena, last, 1) == -ENOMEM);
    assert(me_slab_wait(arena, last, 1000000) == -ETIMEDOUT);
    assert(pthread_create(&t[0], NULL, waiter, NULL) == 0);
    while (!atomic_load(&waiter_ready))
        ;
    assert(me_slab_free(arena, (uint64_t)held[0]) == 0);
    assert(pthread_join(t[0], NULL) == 0);
    /* 4: a dead owner's blocks come back. */
    assert(me_slab_reclaim_owner(arena, 1) == cfg.count[last] - 1);
    assert(me_slab_free(arena, (uint64_t)held[1]) == -EALREADY);
    assert(me_slab_free(arena, 12345) == -EINVAL);
    check_nothing_lost();

    struct me_slab_class_stats st;
    me_slab_stats(arena, last, &st);
    assert(st.failures >= 1);
    for (uint32_t c = 0; c < cfg.nclasses; c++)
        free(owned[c]);
    free(arena);
    printf("slab_stress: ok\n");
    return 0;
}
