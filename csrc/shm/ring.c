/* ring.c - SPSC and MPSC rings of fixed-size entries in shared memory, with spin-then-futex waits. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>

#include "shm_internal.h"

static inline struct ring_shared *rs(const struct me_ring *r)
{
    return (struct ring_shared *)r->shared;
}

static inline uint8_t *slot(const struct me_ring *r, uint64_t pos)
{
    return r->slots + (size_t)(pos & r->mask) * r->entry_size;
}

static size_t align64(size_t n)
{
    return (n + SHM_LINE - 1) & ~(size_t)(SHM_LINE - 1);
}

static size_t seq_bytes(uint32_t kind, uint32_t entries)
{
    return kind == ME_RING_MPSC ? align64((size_t)entries * sizeof(uint64_t)) : 0;
}

size_t me_ring_bytes(uint32_t kind, uint32_t entries, uint32_t entry_size)
{
    if (kind != ME_RING_SPSC && kind != ME_RING_MPSC)
        return 0;
    if (entries < ME_RING_MIN_ENTRIES || entries > ME_RING_MAX_ENTRIES || (entries & (entries - 1)))
        return 0;
    if (entry_size != ME_RING_DATA_ENTRY && entry_size != ME_RING_DONE_ENTRY)
        return 0;
    return sizeof(struct ring_shared) + seq_bytes(kind, entries) + align64((size_t)entries * entry_size);
}

int me_ring_init(void *at, size_t len, uint32_t kind, uint32_t entries, uint32_t entry_size)
{
    size_t need = me_ring_bytes(kind, entries, entry_size);
    if (need == 0 || need > len || ((uintptr_t)at % SHM_LINE))
        return -EINVAL;
    memset(at, 0, need);
    struct ring_shared *s = at;
    s->kind = kind;
    s->entries = entries;
    s->entry_size = entry_size;
    if (kind == ME_RING_MPSC) {
        _Atomic uint64_t *seq = (_Atomic uint64_t *)((uint8_t *)at + sizeof *s);
        for (uint32_t i = 0; i < entries; i++)
            atomic_store_explicit(&seq[i], SEQ(i, SEQ_FREE), memory_order_relaxed);
    }
    s->magic = RING_MAGIC; /* others see the ring only after the descriptor is sent: a system call orders it */
    return 0;
}

int me_ring_attach(struct me_ring *r, void *at, size_t len, uint32_t kind, uint32_t entry_size)
{
    memset(r, 0, sizeof *r);
    r->wake_fd = -1;
    r->recheck_ns = ME_RING_RECHECK_NS;
    if (len < sizeof(struct ring_shared) || ((uintptr_t)at % SHM_LINE))
        return -EINVAL;
    const struct ring_shared *s = at;
    /* The geometry is read once, here, and kept: a peer writing to the header
       later cannot move where this side reads and writes. */
    uint32_t entries = s->entries;
    if (s->magic != RING_MAGIC || s->kind != kind || s->entry_size != entry_size)
        return -EINVAL;
    size_t need = me_ring_bytes(kind, entries, entry_size);
    if (need == 0 || need > len)
        return -EINVAL;
    r->shared = at;
    r->kind = kind;
    r->entries = entries;
    r->mask = entries - 1;
    r->entry_size = entry_size;
    r->seq = kind == ME_RING_MPSC ? (_Atomic uint64_t *)((uint8_t *)at + sizeof(struct ring_shared)) : NULL;
    r->slots = (uint8_t *)at + sizeof(struct ring_shared) + seq_bytes(kind, entries);
    struct ring_shared *w = at;
    r->head = atomic_load_explicit(&w->head, memory_order_acquire);
    r->tail = atomic_load_explicit(&w->tail, memory_order_acquire);
    r->seen = r->head; /* writer: head last seen; reader: tail last seen (it reloads when short) */
    return 0;
}

/* ----------------------------------------------------------------- writer */

static uint32_t spsc_write(struct me_ring *r, const uint8_t *in, uint32_t n)
{
    uint64_t used = r->tail - r->seen;
    if (used + n > r->entries) { /* looks full: see how far the reader got */
        r->seen = atomic_load_explicit(&rs(r)->head, memory_order_acquire);
        used = r->tail - r->seen;
        if (used > r->entries) /* a head past the tail: a broken peer; write nothing */
            return 0;
    }
    uint32_t room = r->entries - (uint32_t)used;
    if (n > room)
        n = room;
    for (uint32_t i = 0; i < n; i++)
        memcpy(slot(r, r->tail + i), in + (size_t)i * r->entry_size, r->entry_size);
    if (n) {
        r->tail += n;
        /* seq_cst, not release: ordered before the wait-word load in wake() (see there). */
        atomic_store_explicit(&rs(r)->tail, r->tail, memory_order_seq_cst);
    }
    return n;
}

/* One entry into an MPSC ring: claim a slot by CAS on its sequence word (with
   this writer's id, so a claim left by a dead writer is recognisable), move
   the claim position on (or help another writer move it), fill, mark ready. */
static int mpsc_write_one(struct me_ring *r, const uint8_t *in)
{
    struct ring_shared *s = rs(r);
    for (;;) {
        uint64_t pos = atomic_load_explicit(&s->tail, memory_order_relaxed);
        _Atomic uint64_t *sq = &r->seq[pos & r->mask];
        uint64_t cur = atomic_load_explicit(sq, memory_order_acquire);
        if (cur == SEQ(pos, SEQ_FREE)) {
            if (!atomic_compare_exchange_weak_explicit(sq, &cur, SEQ(pos, r->writer_id), memory_order_acquire,
                                                       memory_order_relaxed))
                continue;
            uint64_t expect = pos;
            atomic_compare_exchange_strong_explicit(&s->tail, &expect, pos + 1, memory_order_relaxed,
                                                    memory_order_relaxed);
            memcpy(slot(r, pos), in, r->entry_size);
            atomic_store_explicit(sq, SEQ(pos, SEQ_READY | r->writer_id), memory_order_seq_cst);
            return 1;
        }
        uint64_t spos = SEQ_POS(cur);
        if (spos == pos) { /* taken for this position, the claim position not moved yet: help */
            uint64_t expect = pos;
            atomic_compare_exchange_strong_explicit(&s->tail, &expect, pos + 1, memory_order_relaxed,
                                                    memory_order_relaxed);
            continue;
        }
        if (spos < pos)
            return 0; /* the slot still holds the entry of the previous lap: full */
        /* spos > pos: our view of the claim position was old; look again */
    }
}

uint32_t me_ring_write(struct me_ring *r, const void *entries, uint32_t n)
{
    const uint8_t *in = entries;
    if (r->kind == ME_RING_SPSC)
        return spsc_write(r, in, n);
    uint32_t done = 0;
    while (done < n && mpsc_write_one(r, in + (size_t)done * r->entry_size))
        done++;
    return done;
}

uint32_t me_ring_writable(struct me_ring *r)
{
    if (r->kind == ME_RING_SPSC) {
        r->seen = atomic_load_explicit(&rs(r)->head, memory_order_seq_cst);
        uint64_t used = r->tail - r->seen;
        return used > r->entries ? 0 : r->entries - (uint32_t)used;
    }
    uint64_t pos = atomic_load_explicit(&rs(r)->tail, memory_order_seq_cst);
    return SEQ_POS(atomic_load_explicit(&r->seq[pos & r->mask], memory_order_seq_cst)) >= pos;
}

/* ----------------------------------------------------------------- reader */

uint32_t me_ring_peek(struct me_ring *r, void *out, uint8_t *who, uint32_t max)
{
    uint8_t *o = out;
    if (r->kind == ME_RING_SPSC) {
        uint64_t avail = r->seen - r->head;
        if (avail < max) {
            r->seen = atomic_load_explicit(&rs(r)->tail, memory_order_acquire);
            avail = r->seen - r->head;
            if (avail > r->entries) /* a tail past a full lap: a broken peer; read what the ring holds */
                avail = r->entries;
        }
        uint32_t n = avail < max ? (uint32_t)avail : max;
        for (uint32_t i = 0; i < n; i++) {
            memcpy(o + (size_t)i * r->entry_size, slot(r, r->head + i), r->entry_size);
            if (who)
                who[i] = 0;
        }
        return n;
    }
    uint32_t n = 0;
    for (; n < max; n++) {
        uint64_t pos = r->head + n;
        uint64_t cur = atomic_load_explicit(&r->seq[pos & r->mask], memory_order_acquire);
        uint32_t st = SEQ_STATE(cur);
        if (SEQ_POS(cur) != pos || !(st & SEQ_READY))
            break; /* free, or claimed and still being filled */
        if (st == SEQ_ABANDONED)
            memset(o + (size_t)n * r->entry_size, 0, r->entry_size);
        else
            memcpy(o + (size_t)n * r->entry_size, slot(r, pos), r->entry_size);
        if (who)
            who[n] = st == SEQ_ABANDONED ? 0 : (uint8_t)(st & ~SEQ_READY);
    }
    return n;
}

void me_ring_consume(struct me_ring *r, uint32_t n)
{
    if (r->kind == ME_RING_MPSC)
        for (uint32_t i = 0; i < n; i++) {
            uint64_t pos = r->head + i;
            atomic_store_explicit(&r->seq[pos & r->mask], SEQ(pos + r->entries, SEQ_FREE), memory_order_seq_cst);
        }
    r->head += n;
    atomic_store_explicit(&rs(r)->head, r->head, memory_order_seq_cst);
}

uint32_t me_ring_readable(struct me_ring *r)
{
    if (r->kind == ME_RING_SPSC) {
        r->seen = atomic_load_explicit(&rs(r)->tail, memory_order_seq_cst);
        uint64_t avail = r->seen - r->head;
        return avail > r->entries ? r->entries : (uint32_t)avail;
    }
    uint64_t cur = atomic_load_explicit(&r->seq[r->head & r->mask], memory_order_seq_cst);
    return SEQ_POS(cur) == r->head && (SEQ_STATE(cur) & SEQ_READY);
}

/* ------------------------------------------------------------------ waits */

/* Entries the reader may take now, as the writer sees them (writer side). */
static uint32_t ready_for_reader(struct me_ring *r)
{
    uint64_t tail = r->kind == ME_RING_SPSC ? r->tail : atomic_load_explicit(&rs(r)->tail, memory_order_seq_cst);
    uint64_t n = tail - atomic_load_explicit(&rs(r)->head, memory_order_seq_cst);
    return n > r->entries ? r->entries : (uint32_t)n;
}

/* Free slots the writers have now, as the reader sees them (reader side). */
static uint32_t room_for_writers(struct me_ring *r)
{
    uint64_t used = atomic_load_explicit(&rs(r)->tail, memory_order_seq_cst) - r->head;
    return used >= r->entries ? 0 : r->entries - (uint32_t)used;
}

/* The waker's half: its index store, then one load of the wait word, both
   seq_cst; the kernel only when a bit is set. The sleeper's half (sleep_on)
   sets its bit, then loads the index, both seq_cst. In the single total order
   of seq_cst operations one of the two loads comes after the other side's
   store: the waker sees the bit, or the sleeper sees the entry. (Operations,
   not fences: ThreadSanitizer does not model fences.)

   A sleeper that asked for more than one (its `need`, stored before its bit,
   so seen with it) is left asleep while fewer are there: the wake is owed
   (r->owed) and paid by a later call that finds enough, or by a flush
   (`flush`: wake for one or more) when this side has nothing more to give.
   A sleeper that checked before sleeping found none, so it loses nothing
   but time by sleeping on, and it looks again after at most
   ME_RING_RECHECK_NS whatever happens. */
static int wake(struct me_ring *r, struct shm_wait *w, int fd, int reader_word, int flush)
{
    uint64_t v = atomic_load_explicit(&w->waiting, memory_order_seq_cst);
    if (!v) {
        r->owed = 0; /* nobody asleep: whoever sleeps next looks first */
        return 0;
    }
    int woke = 0;
    uint64_t sleepers = reader_word ? (v & WAIT_READER) : v;
    if (sleepers) {
        uint32_t need = atomic_load_explicit(&w->need, memory_order_relaxed);
        if (flush || need > 1) {
            uint32_t have = reader_word ? ready_for_reader(r) : room_for_writers(r);
            if (have == 0 || (!flush && have < need)) {
                r->owed = have > 0;
                r->held += !flush;
                sleepers = 0;
            }
        }
    }
    /* The bits of those woken are cleared here, not only by each sleeper as
       it runs again: until then the next writes find nobody to wake and stay
       out of the kernel. (A sleeper between its bit and its FUTEX_WAIT finds
       seq moved and does not sleep.) */
    if (sleepers) {
        r->owed = 0;
        if (atomic_fetch_and_explicit(&w->waiting, ~sleepers, memory_order_seq_cst) & sleepers) {
            atomic_fetch_add_explicit(&w->seq, 1, memory_order_seq_cst);
            me_shm_futex(&w->seq, FUTEX_WAKE, INT_MAX, NULL);
            woke = 1;
        }
    }
    if (reader_word && (v & WAIT_ARMED) &&
        (atomic_fetch_and_explicit(&w->waiting, ~(uint64_t)WAIT_ARMED, memory_order_seq_cst) & WAIT_ARMED)) {
        if (fd >= 0)
            me_shm_eventfd_signal(fd);
        woke = 1;
    }
    return woke;
}

int me_ring_wake_reader(struct me_ring *r)
{
    int woke = wake(r, &rs(r)->reader, r->wake_fd, 1, 0);
    r->wakes += (uint64_t)woke;
    return woke;
}

int me_ring_wake_writers(struct me_ring *r)
{
    int woke = wake(r, &rs(r)->writers, -1, 0, 0);
    r->wakes += (uint64_t)woke;
    return woke;
}

int me_ring_flush_reader(struct me_ring *r)
{
    if (!r->owed)
        return 0;
    int woke = wake(r, &rs(r)->reader, r->wake_fd, 1, 1);
    r->wakes += (uint64_t)woke;
    return woke;
}

int me_ring_flush_writers(struct me_ring *r)
{
    if (!r->owed)
        return 0;
    int woke = wake(r, &rs(r)->writers, -1, 0, 1);
    r->wakes += (uint64_t)woke;
    return woke;
}

static void kick(struct shm_wait *w, int fd)
{
    atomic_fetch_add_explicit(&w->seq, 1, memory_order_seq_cst);
    me_shm_futex(&w->seq, FUTEX_WAKE, INT_MAX, NULL);
    if (fd >= 0)
        me_shm_eventfd_signal(fd);
}

void me_ring_kick_reader(struct me_ring *r)
{
    kick(&rs(r)->reader, r->wake_fd);
}

void me_ring_kick_writers(struct me_ring *r)
{
    kick(&rs(r)->writers, -1);
}

static uint64_t writer_bit(const struct me_ring *r)
{
    return r->kind == ME_RING_MPSC && r->writer_id ? UINT64_C(1) << (r->writer_id - 1) : 1;
}

/* One futex sleep on w unless ready(r) holds once this side is announced
   (with `need`): 0 (look again), -ETIMEDOUT, -EINTR. */
static int sleep_on(struct me_ring *r, struct shm_wait *w, uint64_t bit, uint32_t need,
                    uint32_t (*ready)(struct me_ring *), int64_t timeout_ns)
{
    atomic_store_explicit(&w->need, need, memory_order_relaxed); /* published by the seq_cst RMW below */
    atomic_fetch_or_explicit(&w->waiting, bit, memory_order_seq_cst);
    uint32_t seq = atomic_load_explicit(&w->seq, memory_order_seq_cst);
    int rc = 0;
    if (!ready(r)) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        r->sleeps++;
        if (me_shm_futex(&w->seq, FUTEX_WAIT, seq, tsp) < 0 && errno != EAGAIN)
            rc = errno == ETIMEDOUT ? -ETIMEDOUT : -errno;
    }
    atomic_fetch_and_explicit(&w->waiting, ~bit, memory_order_seq_cst);
    return rc;
}

static int wait_for(struct me_ring *r, struct shm_wait *w, uint64_t bit, uint32_t need,
                    uint32_t (*ready)(struct me_ring *), int64_t spin_ns, int64_t timeout_ns)
{
    if (ready(r))
        return 0;
    if (need == 0)
        need = 1;
    int64_t start = me_shm_now_ns();
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
    if (spin_ns > 0) {
        int64_t spin_end = spin_ns < deadline - start ? start + spin_ns : deadline;
        for (uint32_t i = 1;; i++) {
            me_shm_cpu_relax();
            if (ready(r))
                return 0;
            if ((i & 63) == 0 && me_shm_now_ns() >= spin_end)
                break;
        }
    }
    for (;;) {
        int64_t left = -1;
        if (timeout_ns >= 0) {
            left = deadline - me_shm_now_ns();
            if (left <= 0)
                return ready(r) ? 0 : -ETIMEDOUT;
        }
        /* A waker may hold back for `need`: look again now and then. */
        if (need > 1 && r->recheck_ns > 0 && (left < 0 || left > r->recheck_ns))
            left = r->recheck_ns;
        int rc = sleep_on(r, w, bit, need, ready, left);
        if (ready(r))
            return 0;
        if (rc == -EINTR)
            return rc;
    }
}

int me_ring_wait_readable(struct me_ring *r, uint32_t need, int64_t spin_ns, int64_t timeout_ns)
{
    return wait_for(r, &rs(r)->reader, WAIT_READER, need, me_ring_readable, spin_ns, timeout_ns);
}

int me_ring_wait_writable(struct me_ring *r, uint32_t need, int64_t spin_ns, int64_t timeout_ns)
{
    return wait_for(r, &rs(r)->writers, writer_bit(r), need, me_ring_writable, spin_ns, timeout_ns);
}

int me_ring_arm_fd(struct me_ring *r)
{
    struct shm_wait *w = &rs(r)->reader;
    atomic_fetch_or_explicit(&w->waiting, WAIT_ARMED, memory_order_seq_cst);
    if (me_ring_readable(r)) {
        atomic_fetch_and_explicit(&w->waiting, ~(uint64_t)WAIT_ARMED, memory_order_seq_cst);
        return 1;
    }
    return 0;
}

void me_ring_disarm_fd(struct me_ring *r)
{
    atomic_fetch_and_explicit(&rs(r)->reader.waiting, ~(uint64_t)WAIT_ARMED, memory_order_seq_cst);
}

/* --------------------------------------------------------------- recovery */

uint32_t me_ring_abandon(struct me_ring *r, uint32_t writer_id)
{
    if (r->kind != ME_RING_MPSC || writer_id == 0 || writer_id >= SEQ_READY)
        return 0;
    struct ring_shared *s = rs(r);
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->entries; i++) {
        uint64_t cur = atomic_load_explicit(&r->seq[i], memory_order_acquire);
        if (SEQ_STATE(cur) != writer_id)
            continue;
        uint64_t pos = SEQ_POS(cur);
        memset(r->slots + (size_t)i * r->entry_size, 0, r->entry_size);
        atomic_store_explicit(&r->seq[i], SEQ(pos, SEQ_ABANDONED), memory_order_release);
        uint64_t expect = pos; /* it may have died before moving the claim position on */
        atomic_compare_exchange_strong_explicit(&s->tail, &expect, pos + 1, memory_order_relaxed,
                                                memory_order_relaxed);
        n++;
    }
    /* A writer that died asleep on a full ring leaves its bit: clear it, or
       every later consume would enter the kernel to wake nobody. */
    atomic_fetch_and_explicit(&s->writers.waiting, ~(UINT64_C(1) << (writer_id - 1)), memory_order_seq_cst);
    return n;
}

uint64_t me_ring_claimed(struct me_ring *r)
{
    return atomic_load_explicit(&rs(r)->tail, memory_order_acquire);
}

uint32_t me_ring_scan(struct me_ring *r, uint32_t writer_id, void (*fn)(void *ctx, const uint8_t *entry), void *ctx)
{
    struct ring_shared *s = rs(r);
    uint32_t n = 0;
    if (r->kind == ME_RING_SPSC) {
        uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
        uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
        uint64_t count = tail - head;
        if (count > r->entries)
            count = r->entries;
        for (uint64_t i = 0; i < count; i++, n++)
            fn(ctx, slot(r, head + i));
        return n;
    }
    for (uint32_t i = 0; i < r->entries; i++) {
        uint64_t cur = atomic_load_explicit(&r->seq[i], memory_order_acquire);
        if (SEQ_STATE(cur) == (SEQ_READY | writer_id)) {
            fn(ctx, r->slots + (size_t)i * r->entry_size);
            n++;
        }
    }
    return n;
}

void me_ring_reset(struct me_ring *r)
{
    struct ring_shared *s = rs(r);
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
    atomic_store_explicit(&s->head, tail, memory_order_release);
    atomic_store_explicit(&s->reader.waiting, 0, memory_order_seq_cst);
    atomic_store_explicit(&s->writers.waiting, 0, memory_order_seq_cst);
    r->head = r->tail = r->seen = tail;
    r->owed = 0;
}

void me_ring_positions(const struct me_ring *r, uint64_t *head, uint64_t *tail)
{
    *head = atomic_load_explicit(&rs(r)->head, memory_order_acquire);
    *tail = atomic_load_explicit(&rs(r)->tail, memory_order_acquire);
}
