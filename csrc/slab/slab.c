/* slab.c - slab arenas: lock-free tagged free lists, per-block state words, thread magazines, futex waits. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_slab.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NIL UINT32_MAX
#define PAGE 4096u
#define LINE 64u

/* One class's shared state: the free-list head and the futex on one line (a
   free reads the waiter count right after its CAS on the head), the layout on
   a read-mostly line, the counters on their own line. */
struct klass {
    _Atomic uint64_t head;     /* index (bits 0-31, NIL = empty) | tag (bits 32-63) */
    _Atomic uint32_t waiters;  /* threads in me_slab_wait on this class */
    _Atomic uint32_t seq;      /* the futex word: bumped by a free that saw waiters */
    uint8_t pad0[LINE - 16];
    uint32_t size;
    uint32_t count;
    uint64_t meta_off;
    uint64_t data_off;
    uint8_t pad1[LINE - 24];
    _Atomic uint64_t in_use;
    _Atomic uint64_t high_water;
    _Atomic uint64_t failures;
    uint8_t pad2[LINE - 24];
};

struct header {
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t nclasses;
    uint64_t total; /* bytes of the whole arena */
    uint8_t pad[LINE - 24];
    struct klass k[ME_SLAB_MAX_CLASSES];
};

_Static_assert(sizeof(struct klass) == 3 * LINE, "class state spans three cache lines");
_Static_assert(sizeof(struct header) <= ME_SLAB_HEADER_BYTES, "header fits its page");

/* Per-block metadata, apart from the block bytes. */
struct meta {
    _Atomic uint32_t next;  /* next free index while on the shared list */
    uint32_t reserved;
    _Atomic uint64_t state; /* state (bits 32-63) | owner tag or pid (bits 0-31) */
};

static inline uint64_t word(uint32_t state, uint32_t tag)
{
    return (uint64_t)state << 32 | tag;
}

static inline uint32_t state_of(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

static inline struct header *hdr(void *arena)
{
    return (struct header *)arena;
}

static inline struct meta *metas(void *arena, const struct klass *k)
{
    return (struct meta *)((char *)arena + k->meta_off);
}

static size_t align_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* ------------------------------------------------------------------ layout */

static int config_ok(const struct me_slab_config *cfg)
{
    if (!cfg || cfg->nclasses == 0 || cfg->nclasses > ME_SLAB_MAX_CLASSES)
        return 0;
    for (uint32_t i = 0; i < cfg->nclasses; i++) {
        uint32_t s = cfg->size[i], c = cfg->count[i];
        if (s < ME_SLAB_MIN_SIZE || s > ME_SLAB_MAX_SIZE || s % ME_SLAB_MIN_SIZE || c == 0 || c > ME_SLAB_MAX_COUNT)
            return 0;
        if (i && s <= cfg->size[i - 1])
            return 0;
    }
    return 1;
}

/* Offsets of each class's metadata and data for cfg; the total, or 0 on overflow. */
static size_t layout(const struct me_slab_config *cfg, uint64_t *meta_off, uint64_t *data_off)
{
    size_t at = ME_SLAB_HEADER_BYTES;
    for (uint32_t i = 0; i < cfg->nclasses; i++) {
        meta_off[i] = at;
        at += (size_t)cfg->count[i] * sizeof(struct meta);
    }
    for (uint32_t i = 0; i < cfg->nclasses; i++) {
        at = align_up(at, PAGE);
        size_t bytes = (size_t)cfg->size[i] * cfg->count[i];
        if (bytes / cfg->size[i] != cfg->count[i] || at + bytes < at)
            return 0;
        data_off[i] = at;
        at += bytes;
    }
    return align_up(at, PAGE);
}

size_t me_slab_arena_bytes(const struct me_slab_config *cfg)
{
    uint64_t m[ME_SLAB_MAX_CLASSES], d[ME_SLAB_MAX_CLASSES];
    if (!config_ok(cfg))
        return 0;
    return layout(cfg, m, d);
}

int me_slab_arena_init(void *base, size_t len, const struct me_slab_config *cfg)
{
    uint64_t m[ME_SLAB_MAX_CLASSES], d[ME_SLAB_MAX_CLASSES];
    if (!base || (uintptr_t)base % ME_SLAB_ALIGN || !config_ok(cfg))
        return -EINVAL;
    size_t total = layout(cfg, m, d);
    if (total == 0)
        return -EINVAL;
    if (len < total)
        return -ENOSPC;
    /* Header and metadata are written in full; the blocks get one store per
       page: the whole arena is faulted in now, not on the data path. */
    memset(base, 0, m[0]);
    struct header *h = hdr(base);
    for (uint32_t i = 0; i < cfg->nclasses; i++) {
        struct klass *k = &h->k[i];
        k->size = cfg->size[i];
        k->count = cfg->count[i];
        k->meta_off = m[i];
        k->data_off = d[i];
        struct meta *mt = metas(base, k);
        for (uint32_t j = 0; j < k->count; j++) {
            atomic_init(&mt[j].next, j + 1 < k->count ? j + 1 : NIL);
            mt[j].reserved = 0;
            atomic_init(&mt[j].state, word(ME_SLAB_FREE, 0));
        }
        atomic_init(&k->head, 0);
        atomic_init(&k->waiters, 0);
        atomic_init(&k->seq, 0);
        atomic_init(&k->in_use, 0);
        atomic_init(&k->high_water, 0);
        atomic_init(&k->failures, 0);
    }
    size_t meta_end = (size_t)(m[cfg->nclasses - 1] + (uint64_t)cfg->count[cfg->nclasses - 1] * sizeof(struct meta));
    for (size_t at = align_up(meta_end, PAGE); at < total; at += PAGE)
        *(volatile char *)((char *)base + at) = 0;
    h->version = ME_SLAB_VERSION;
    h->nclasses = cfg->nclasses;
    h->total = total;
    /* The magic last, released: a peer that checks it sees a complete layout. */
    atomic_store_explicit(&h->magic, ME_SLAB_MAGIC, memory_order_release);
    return 0;
}

int me_slab_arena_check(const void *base, size_t len)
{
    if (!base || (uintptr_t)base % ME_SLAB_ALIGN || len < ME_SLAB_HEADER_BYTES)
        return -EINVAL;
    const struct header *h = (const struct header *)base;
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != ME_SLAB_MAGIC)
        return -EINVAL;
    if (h->version != ME_SLAB_VERSION)
        return -EPROTONOSUPPORT;
    if (h->total > len)
        return -ENOSPC;
    struct me_slab_config cfg = {.nclasses = h->nclasses};
    if (cfg.nclasses == 0 || cfg.nclasses > ME_SLAB_MAX_CLASSES)
        return -EINVAL;
    for (uint32_t i = 0; i < cfg.nclasses; i++) {
        cfg.size[i] = h->k[i].size;
        cfg.count[i] = h->k[i].count;
    }
    uint64_t m[ME_SLAB_MAX_CLASSES], d[ME_SLAB_MAX_CLASSES];
    if (!config_ok(&cfg))
        return -EINVAL;
    size_t total = layout(&cfg, m, d);
    /* The offsets must be the ones this version lays out: nothing else is trusted. */
    if (total == 0 || total != h->total)
        return -EINVAL;
    for (uint32_t i = 0; i < cfg.nclasses; i++)
        if (h->k[i].meta_off != m[i] || h->k[i].data_off != d[i])
            return -EINVAL;
    return 0;
}

void me_slab_arena_config(const void *arena, struct me_slab_config *cfg)
{
    const struct header *h = (const struct header *)arena;
    memset(cfg, 0, sizeof *cfg);
    cfg->nclasses = h->nclasses;
    for (uint32_t i = 0; i < h->nclasses; i++) {
        cfg->size[i] = h->k[i].size;
        cfg->count[i] = h->k[i].count;
    }
}

size_t me_slab_arena_size(const void *arena)
{
    return (size_t)((const struct header *)arena)->total;
}

int me_slab_class_of(const void *arena, uint32_t n)
{
    const struct header *h = (const struct header *)arena;
    for (uint32_t i = 0; i < h->nclasses; i++)
        if (n <= h->k[i].size)
            return (int)i;
    return -EMSGSIZE;
}

uint32_t me_slab_class_size(const void *arena, uint32_t cls)
{
    const struct header *h = (const struct header *)arena;
    return cls < h->nclasses ? h->k[cls].size : 0;
}

static inline int locate(const void *arena, uint64_t off, uint32_t *cls, uint32_t *index)
{
    const struct header *h = (const struct header *)arena;
    for (uint32_t i = 0; i < h->nclasses; i++) {
        const struct klass *k = &h->k[i];
        uint64_t size = k->size, rel = off - k->data_off;
        if (off < k->data_off || rel >= size * k->count)
            continue;
        /* A 64-bit division costs tens of cycles on the free path: the usual
           power-of-two sizes take a shift and a mask instead. */
        uint64_t idx;
        if ((size & (size - 1)) == 0) {
            if (rel & (size - 1))
                return -EINVAL;
            idx = rel >> __builtin_ctzll(size);
        } else {
            if (rel % size)
                return -EINVAL;
            idx = rel / size;
        }
        *cls = i;
        *index = (uint32_t)idx;
        return 0;
    }
    return -EINVAL;
}

int me_slab_locate(const void *arena, uint64_t off, uint32_t *cls, uint32_t *index)
{
    return locate(arena, off, cls, index);
}

/* -------------------------------------------------------- shared free list */

/* Pop up to want indices into out (a chain taken with one CAS); how many, or -EUCLEAN. */
static int list_pop(void *arena, struct klass *k, uint32_t *out, uint32_t want)
{
    struct meta *mt = metas(arena, k);
    uint64_t h = atomic_load_explicit(&k->head, memory_order_acquire);
    for (;;) {
        uint32_t idx = (uint32_t)h, n = 0;
        while (idx != NIL && n < want) {
            if (idx >= k->count)
                break; /* a torn read while the list changed, or a corrupt list: decided below */
            out[n++] = idx;
            idx = atomic_load_explicit(&mt[idx].next, memory_order_relaxed);
        }
        if (idx != NIL && idx >= k->count && n < want) {
            uint64_t again = atomic_load_explicit(&k->head, memory_order_acquire);
            if (again == h)
                return -EUCLEAN; /* the list itself holds an index out of range */
            h = again;
            continue;
        }
        if (n == 0)
            return 0;
        uint64_t nh = (uint64_t)idx | (((h >> 32) + 1) << 32);
        if (atomic_compare_exchange_weak_explicit(&k->head, &h, nh, memory_order_acquire, memory_order_acquire))
            return (int)n;
    }
}

/* Push the n indices of in (already in state FREE) with one CAS. */
static void list_push(void *arena, struct klass *k, const uint32_t *in, uint32_t n)
{
    struct meta *mt = metas(arena, k);
    for (uint32_t i = 0; i + 1 < n; i++)
        atomic_store_explicit(&mt[in[i]].next, in[i + 1], memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&k->head, memory_order_relaxed);
    for (;;) {
        atomic_store_explicit(&mt[in[n - 1]].next, (uint32_t)h, memory_order_relaxed);
        uint64_t nh = (uint64_t)in[0] | (((h >> 32) + 1) << 32);
        /* seq_cst: ordered before the waiter-count load in wake_waiters (see me_slab_wait). */
        if (atomic_compare_exchange_weak_explicit(&k->head, &h, nh, memory_order_seq_cst, memory_order_relaxed))
            return;
    }
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    /* Not FUTEX_PRIVATE_FLAG: the word lives in memory other processes map. */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

static void wake_waiters(struct klass *k)
{
    if (atomic_load_explicit(&k->waiters, memory_order_seq_cst) == 0)
        return; /* nobody sleeps: no system call on the data path */
    atomic_fetch_add_explicit(&k->seq, 1, memory_order_seq_cst);
    futex(&k->seq, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---------------------------------------------------------- allocation */

static void raise_high_water(struct klass *k, int64_t now)
{
    uint64_t hw = atomic_load_explicit(&k->high_water, memory_order_relaxed);
    while (now > (int64_t)hw && !atomic_compare_exchange_weak_explicit(&k->high_water, &hw, (uint64_t)now,
                                                                       memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Add delta to the class's shared in-use count (a signed quantity kept in a
   u64: magazines settle their share late); peak: the most the caller's own
   share reached above the old count meanwhile, for the high-water mark. */
static void settle(struct klass *k, int64_t delta, int64_t peak)
{
    int64_t before = (int64_t)atomic_fetch_add_explicit(&k->in_use, (uint64_t)delta, memory_order_relaxed);
    raise_high_water(k, before + (peak > delta ? peak : delta));
}

/* The block at idx handed out: state ALLOCATED|owner, its offset. */
static inline int64_t take(void *arena, struct klass *k, uint32_t idx, uint32_t owner)
{
    atomic_store_explicit(&metas(arena, k)[idx].state, word(ME_SLAB_ALLOCATED, owner), memory_order_relaxed);
    return (int64_t)(k->data_off + (uint64_t)idx * k->size);
}

int64_t me_slab_alloc_class(void *arena, uint32_t cls, uint32_t owner)
{
    struct header *h = hdr(arena);
    if (cls >= h->nclasses)
        return -EINVAL;
    struct klass *k = &h->k[cls];
    uint32_t idx;
    int n = list_pop(arena, k, &idx, 1);
    if (n < 0)
        return n;
    if (n == 0) {
        atomic_fetch_add_explicit(&k->failures, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    settle(k, 1, 1);
    return take(arena, k, idx, owner);
}

int64_t me_slab_alloc(void *arena, uint32_t n, uint32_t owner)
{
    int cls = me_slab_class_of(arena, n);
    if (cls < 0)
        return cls;
    return me_slab_alloc_class(arena, (uint32_t)cls, owner);
}

/* Move block idx of class k from ALLOCATED to `to` (FREE, or CACHED|pid): 0
   or -EALREADY. One CAS, so of two racing frees exactly one wins. */
static int release_word(void *arena, struct klass *k, uint32_t idx, uint64_t to)
{
    _Atomic uint64_t *st = &metas(arena, k)[idx].state;
    uint64_t w = atomic_load_explicit(st, memory_order_relaxed);
    do {
        if (state_of(w) != ME_SLAB_ALLOCATED)
            return -EALREADY;
    } while (!atomic_compare_exchange_weak_explicit(st, &w, to, memory_order_acq_rel, memory_order_relaxed));
    return 0;
}

static int free_located(void *arena, struct klass *k, uint32_t idx)
{
    int rc = release_word(arena, k, idx, word(ME_SLAB_FREE, 0));
    if (rc < 0)
        return rc;
    atomic_fetch_sub_explicit(&k->in_use, 1, memory_order_relaxed);
    list_push(arena, k, &idx, 1);
    wake_waiters(k);
    return 0;
}

int me_slab_free(void *arena, uint64_t off)
{
    uint32_t cls, idx;
    if (me_slab_locate(arena, off, &cls, &idx) < 0)
        return -EINVAL;
    return free_located(arena, &hdr(arena)->k[cls], idx);
}

int me_slab_set_owner(void *arena, uint64_t off, uint32_t owner)
{
    uint32_t cls, idx;
    if (me_slab_locate(arena, off, &cls, &idx) < 0)
        return -EINVAL;
    struct klass *k = &hdr(arena)->k[cls];
    _Atomic uint64_t *st = &metas(arena, k)[idx].state;
    uint64_t w = atomic_load_explicit(st, memory_order_relaxed);
    do {
        if (state_of(w) != ME_SLAB_ALLOCATED)
            return -EALREADY;
    } while (!atomic_compare_exchange_weak_explicit(st, &w, word(ME_SLAB_ALLOCATED, owner), memory_order_acq_rel,
                                                    memory_order_relaxed));
    return 0;
}

int64_t me_slab_block_state(const void *arena, uint64_t off)
{
    uint32_t cls, idx;
    if (me_slab_locate(arena, off, &cls, &idx) < 0)
        return -EINVAL;
    const struct klass *k = &((const struct header *)arena)->k[cls];
    const struct meta *mt = (const struct meta *)((const char *)arena + k->meta_off);
    return (int64_t)atomic_load_explicit(&mt[idx].state, memory_order_acquire);
}

/* Every block of the arena in state `from` (exact word match) back to the list; how many. */
static uint32_t reclaim(void *arena, uint64_t from)
{
    struct header *h = hdr(arena);
    uint32_t total = 0;
    for (uint32_t c = 0; c < h->nclasses; c++) {
        struct klass *k = &h->k[c];
        struct meta *mt = metas(arena, k);
        uint32_t freed = 0;
        for (uint32_t i = 0; i < k->count; i++) {
            uint64_t w = from;
            if (atomic_load_explicit(&mt[i].state, memory_order_relaxed) != from)
                continue;
            if (!atomic_compare_exchange_strong_explicit(&mt[i].state, &w, word(ME_SLAB_FREE, 0),
                                                         memory_order_acq_rel, memory_order_relaxed))
                continue;
            if (state_of(from) == ME_SLAB_ALLOCATED)
                atomic_fetch_sub_explicit(&k->in_use, 1, memory_order_relaxed);
            list_push(arena, k, &i, 1);
            freed++;
        }
        if (freed)
            wake_waiters(k);
        total += freed;
    }
    return total;
}

static void unsettled(const void *arena, uint32_t cls, int64_t *delta, int64_t *peak);

/* Recompute each class's shared in-use count from the block states, less what
   this process's magazines have not settled: a dead process's unsettled share
   is lost with it. Exact when nothing allocates or frees meanwhile. */
static void recount(void *arena)
{
    struct header *h = hdr(arena);
    for (uint32_t c = 0; c < h->nclasses; c++) {
        struct klass *k = &h->k[c];
        struct meta *mt = metas(arena, k);
        int64_t allocated = 0, delta = 0, peak = 0;
        for (uint32_t i = 0; i < k->count; i++)
            allocated += state_of(atomic_load_explicit(&mt[i].state, memory_order_relaxed)) == ME_SLAB_ALLOCATED;
        unsettled(arena, c, &delta, &peak);
        atomic_store_explicit(&k->in_use, (uint64_t)(allocated - delta), memory_order_relaxed);
    }
}

uint32_t me_slab_reclaim_owner(void *arena, uint32_t owner)
{
    uint32_t n = reclaim(arena, word(ME_SLAB_ALLOCATED, owner));
    recount(arena);
    return n;
}

uint32_t me_slab_reclaim_pid(void *arena, uint32_t pid)
{
    uint32_t n = reclaim(arena, word(ME_SLAB_CACHED, pid));
    recount(arena);
    return n;
}

int me_slab_wait(void *arena, uint32_t cls, int64_t timeout_ns)
{
    struct header *h = hdr(arena);
    if (cls >= h->nclasses)
        return -EINVAL;
    struct klass *k = &h->k[cls];
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    /* Announce, then look: a free either sees the waiter count (and bumps seq
       and wakes), or pushed before our look (and we see the block). Reading
       seq before the look makes a bump in between fail FUTEX_WAIT at once. */
    atomic_fetch_add_explicit(&k->waiters, 1, memory_order_seq_cst);
    uint32_t seq = atomic_load_explicit(&k->seq, memory_order_seq_cst);
    int rc = 0;
    if ((uint32_t)atomic_load_explicit(&k->head, memory_order_seq_cst) == NIL) {
        if (futex(&k->seq, FUTEX_WAIT, seq, tsp) < 0 && errno != EAGAIN)
            rc = -errno;
    }
    atomic_fetch_sub_explicit(&k->waiters, 1, memory_order_seq_cst);
    return rc;
}

void me_slab_stats(const void *arena, uint32_t cls, struct me_slab_class_stats *out)
{
    const struct header *h = (const struct header *)arena;
    memset(out, 0, sizeof *out);
    if (cls >= h->nclasses)
        return;
    const struct klass *k = &h->k[cls];
    /* The shared count, plus what this process's magazines have not settled. */
    int64_t delta = 0, peak = 0;
    unsettled(arena, cls, &delta, &peak);
    int64_t shared = (int64_t)atomic_load_explicit(&k->in_use, memory_order_relaxed);
    int64_t in_use = shared + delta;
    in_use = in_use < 0 ? 0 : in_use > (int64_t)k->count ? (int64_t)k->count : in_use;
    uint64_t hw = atomic_load_explicit(&k->high_water, memory_order_relaxed);
    int64_t hw_now = shared + peak > in_use ? shared + peak : in_use;
    hw_now = hw_now > (int64_t)k->count ? (int64_t)k->count : hw_now;
    out->in_use = (uint64_t)in_use;
    out->free = k->count - out->in_use;
    out->high_water = hw > (uint64_t)hw_now ? hw : (uint64_t)hw_now;
    out->failures = atomic_load_explicit(&k->failures, memory_order_relaxed);
    out->size = k->size;
    out->count = k->count;
}

/* -------------------------------------------------------- thread magazines */

/* One per thread, bound to one arena at a time. The fast path touches only
   its own thread's magazine (no lock); the registry lock is taken to bind,
   unbind and flush, and by me_slab_arena_detach to drain other threads'. */
struct tcache {
    void *arena;
    uint32_t pid;
    uint32_t cap[ME_SLAB_MAX_CLASSES];
    uint32_t n[ME_SLAB_MAX_CLASSES];
    uint32_t idx[ME_SLAB_MAX_CLASSES][ME_SLAB_MAG_MAX];
    /* In-use accounting without a locked instruction per operation: blocks
       allocated minus freed through this magazine since it last settled with
       the shared count, and the most that reached. Written by the owner only
       (relaxed stores: plain moves), read by me_slab_stats under the lock. */
    _Atomic int64_t delta[ME_SLAB_MAX_CLASSES];
    _Atomic int64_t peak[ME_SLAB_MAX_CLASSES];
    struct tcache *prev, *next; /* registry links while bound */
};

/* The thread's magazine is on the heap (made at its first bind, freed at
   thread exit); the thread-local slot holds only its address, in the
   initial-exec model: this code lives in a dlopen()ed extension, where the
   default model costs a __tls_get_addr call per access, while 8 bytes of
   static TLS are always to be had. */
static __thread struct tcache *tcp __attribute__((tls_model("initial-exec")));
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tcache *registry;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;

/* Magazine size of a class: an eighth of its blocks, at most ME_SLAB_MAG_MAX;
   0 (no caching) for classes of fewer than 8 blocks. */
static uint32_t mag_cap(const struct klass *k)
{
    uint32_t c = k->count / 8;
    return c > ME_SLAB_MAG_MAX ? ME_SLAB_MAG_MAX : c;
}

/* Settle magazine c's unsettled count with the shared one (owner, or registry lock held). */
static void settle_class(struct tcache *t, uint32_t c)
{
    int64_t d = atomic_load_explicit(&t->delta[c], memory_order_relaxed);
    int64_t p = atomic_load_explicit(&t->peak[c], memory_order_relaxed);
    if (d == 0 && p == 0)
        return;
    settle(&hdr(t->arena)->k[c], d, p);
    atomic_store_explicit(&t->delta[c], 0, memory_order_relaxed);
    atomic_store_explicit(&t->peak[c], 0, memory_order_relaxed);
}

/* Magazine c of t back to the shared list (registry lock held or t is ours and bound). */
static void drain_class(struct tcache *t, uint32_t c, uint32_t keep)
{
    settle_class(t, c);
    if (t->n[c] <= keep)
        return;
    struct klass *k = &hdr(t->arena)->k[c];
    struct meta *mt = metas(t->arena, k);
    uint32_t from = keep, n = t->n[c] - keep;
    for (uint32_t i = from; i < t->n[c]; i++)
        atomic_store_explicit(&mt[t->idx[c][i]].state, word(ME_SLAB_FREE, 0), memory_order_relaxed);
    list_push(t->arena, k, &t->idx[c][from], n);
    t->n[c] = keep;
    wake_waiters(k);
}

static void drain_all(struct tcache *t)
{
    uint32_t nc = hdr(t->arena)->nclasses;
    for (uint32_t c = 0; c < nc; c++)
        drain_class(t, c, 0);
}

/* Registry lock held. */
static void unbind_locked(struct tcache *t)
{
    if (!t->arena)
        return;
    drain_all(t);
    if (t->prev)
        t->prev->next = t->next;
    else
        registry = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->arena = NULL;
}

static void on_thread_exit(void *arg)
{
    struct tcache *t = arg;
    pthread_mutex_lock(&registry_lock);
    unbind_locked(t);
    pthread_mutex_unlock(&registry_lock);
    tcp = NULL;
    free(t);
}

/* A child of fork() starts with a copy of the forking thread's magazine: those
   block indices are the parent's (in a shared arena, the parent keeps using
   them), so the child forgets them, and the other threads' entries. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static void atfork_child(void)
{
    if (tcp)
        memset(tcp, 0, sizeof *tcp);
    registry = NULL;
    pthread_mutex_unlock(&registry_lock);
}

static void make_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Slow path: bind this thread's magazine to arena (draining another
   binding); NULL when there is no memory for a magazine (then no caching). */
static struct tcache *bind(void *arena)
{
    pthread_once(&key_once, make_key);
    struct tcache *t = tcp;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        tcp = t;
        pthread_setspecific(exit_key, t); /* non-NULL, so on_thread_exit runs */
    }
    pthread_mutex_lock(&registry_lock);
    unbind_locked(t);
    struct header *h = hdr(arena);
    t->arena = arena;
    t->pid = (uint32_t)getpid();
    for (uint32_t c = 0; c < ME_SLAB_MAX_CLASSES; c++) {
        t->n[c] = 0;
        t->cap[c] = c < h->nclasses ? mag_cap(&h->k[c]) : 0;
    }
    t->prev = NULL;
    t->next = registry;
    if (registry)
        registry->prev = t;
    registry = t;
    pthread_mutex_unlock(&registry_lock);
    return t;
}

static void unsettled(const void *arena, uint32_t cls, int64_t *delta, int64_t *peak)
{
    pthread_mutex_lock(&registry_lock);
    for (struct tcache *t = registry; t; t = t->next) {
        if (t->arena != arena)
            continue;
        *delta += atomic_load_explicit(&t->delta[cls], memory_order_relaxed);
        *peak += atomic_load_explicit(&t->peak[cls], memory_order_relaxed);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* Count one allocation (+1) or free (-1) through t's magazine: plain stores. */
static inline void count_cached(struct tcache *t, uint32_t cls, int64_t by)
{
    int64_t d = atomic_load_explicit(&t->delta[cls], memory_order_relaxed) + by;
    atomic_store_explicit(&t->delta[cls], d, memory_order_relaxed);
    if (d > atomic_load_explicit(&t->peak[cls], memory_order_relaxed))
        atomic_store_explicit(&t->peak[cls], d, memory_order_relaxed);
}

/* Slow path of me_slab_alloc_cached: bind, refill half a magazine with one
   CAS (the blocks are ours: state CACHED), or take from the shared list. */
__attribute__((noinline, cold)) static int64_t alloc_cached_slow(void *arena, uint32_t cls, uint32_t owner)
{
    struct header *h = hdr(arena);
    if (cls >= h->nclasses)
        return -EINVAL;
    struct tcache *t = tcp;
    if (!t || t->arena != arena) {
        if (!(t = bind(arena)))
            return me_slab_alloc_class(arena, cls, owner);
    }
    struct klass *k = &h->k[cls];
    if (t->n[cls] == 0) {
        if (t->cap[cls] == 0)
            return me_slab_alloc_class(arena, cls, owner);
        settle_class(t, cls);
        int got = list_pop(arena, k, t->idx[cls], (t->cap[cls] + 1) / 2);
        if (got < 0)
            return got;
        if (got == 0) {
            atomic_fetch_add_explicit(&k->failures, 1, memory_order_relaxed);
            return -ENOMEM;
        }
        struct meta *mt = metas(arena, k);
        for (int i = 0; i < got; i++)
            atomic_store_explicit(&mt[t->idx[cls][i]].state, word(ME_SLAB_CACHED, t->pid), memory_order_relaxed);
        t->n[cls] = (uint32_t)got;
    }
    count_cached(t, cls, 1);
    return take(arena, k, t->idx[cls][--t->n[cls]], owner);
}

int64_t me_slab_alloc_cached(void *arena, uint32_t cls, uint32_t owner)
{
    struct tcache *t = tcp;
    /* n > 0 only for a class the bound arena has (cap is 0 past nclasses). */
    if (__builtin_expect(t && t->arena == arena && cls < ME_SLAB_MAX_CLASSES && t->n[cls], 1)) {
        count_cached(t, cls, 1);
        return take(arena, &hdr(arena)->k[cls], t->idx[cls][--t->n[cls]], owner);
    }
    return alloc_cached_slow(arena, cls, owner);
}

/* Slow path of me_slab_free_cached: a full magazine gives half back first. */
__attribute__((noinline, cold)) static int free_cached_full(struct tcache *t, struct klass *k, uint32_t cls,
                                                            uint32_t idx)
{
    int rc = release_word(t->arena, k, idx, word(ME_SLAB_CACHED, t->pid));
    if (rc < 0)
        return rc;
    count_cached(t, cls, -1);
    drain_class(t, cls, t->cap[cls] / 2);
    t->idx[cls][t->n[cls]++] = idx;
    return 0;
}

int me_slab_free_cached(void *arena, uint64_t off)
{
    /* Only a thread that allocates from this arena through its magazine keeps
       frees there; any other thread (a consumer that only frees, a thread
       whose magazine serves another arena) frees to the shared list, so no
       block strands in a magazine nobody allocates from. */
    struct tcache *t = tcp;
    if (!t || t->arena != arena)
        return me_slab_free(arena, off);
    uint32_t cls, idx;
    if (locate(arena, off, &cls, &idx) < 0)
        return -EINVAL;
    struct klass *k = &hdr(arena)->k[cls];
    /* Someone waits for this class: the block goes where the waiter looks. */
    if (t->cap[cls] == 0 || atomic_load_explicit(&k->waiters, memory_order_relaxed))
        return free_located(arena, k, idx);
    if (t->n[cls] == t->cap[cls])
        return free_cached_full(t, k, cls, idx);
    int rc = release_word(arena, k, idx, word(ME_SLAB_CACHED, t->pid));
    if (rc < 0)
        return rc;
    count_cached(t, cls, -1);
    t->idx[cls][t->n[cls]++] = idx;
    return 0;
}

void me_slab_cache_flush(void *arena)
{
    struct tcache *t = tcp;
    if (t && t->arena == arena)
        drain_all(t);
}

void me_slab_arena_detach(void *arena)
{
    pthread_mutex_lock(&registry_lock);
    for (struct tcache *t = registry, *next; t; t = next) {
        next = t->next;
        if (t->arena == arena)
            unbind_locked(t);
    }
    pthread_mutex_unlock(&registry_lock);
}
