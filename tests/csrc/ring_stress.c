/* ring_stress.c - threads drive the shared-memory rings and channels: nothing lost, duplicated or reordered. */
/* SPDX-License-Identifier: Apache-2.0 */
// sources: csrc/shm/ring.c csrc/shm/segment.c csrc/shm/chan.c csrc/shm/wake.c csrc/slab/slab.c csrc/frame/frame.c
// libs: -lpthread
/*
 * Run under -fsanitize=thread and -fsanitize=address,undefined (make
 * test-sanitize). Memory-ordering bugs do not show on x86 by themselves: TSan
 * sees the missing happens-before edges. Parts:
 *
 *  1. raw SPSC ring: one writer, one reader, random batch sizes on both sides,
 *     waits that spin, sleep on the futex, or wake through an eventfd;
 *  2. raw MPSC ring: three writers, per-writer sequence numbers in order;
 *  3. SPSC channel: loan, stamp, publish / receive, check, release, with and
 *     without the payload CRC; at the end every block is back in the arena;
 *  4. MPSC channel: three producers with their own segments and arenas;
 *  5. an MPSC writer that died holding a claimed slot: the reader abandons
 *     the claim and the live writers' entries come through in order;
 *  6. recovery: a consumer stops holding frames (as if killed); the producer
 *     recovers every block; a producer stops with loans and unread
 *     descriptors; the consumer recovers those and a new producer carries on.
 *  7. wake thresholds: a producer out of blocks or ring space, sleeping
 *     with no timeout, is woken by the consumer's releases (a batch at once)
 *     or its flush when it waits itself: no wake-up is lost.
 *
 * The payload stamp is (writer, sequence) plus a checksum of the block, so a
 * block handed out twice or read before it was written fails an assertion.
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
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include "../../csrc/shm/me_shm.h"
#include "../../csrc/shm/shm_internal.h" /* the MPSC sequence words, to leave a claim unfinished */

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); abort(); } } while (0)

/* frame.c checksums through the dispatched kernel in the real build; here a
   bitwise CRC32C (Castagnoli, reflected 0x82F63B78) stands in for it. */
uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct seg {
    int fd;
    void *base;
    size_t len;
    struct me_shm_info info;
};

static void seg_make(struct seg *s, const struct me_shm_layout *lay)
{
    s->len = me_shm_segment_bytes(lay);
    CHECK(s->len > 0);
    s->fd = me_shm_create("ring-stress", 0, s->len);
    CHECK(s->fd >= 0);
    CHECK(me_shm_map(s->fd, s->len, 1, &s->base) == 0);
    CHECK(me_shm_segment_init(s->base, s->len, lay) == 0);
    CHECK(me_shm_segment_check(s->base, s->len, &s->info) == 0);
}

static void seg_free(struct seg *s)
{
    CHECK(me_shm_unmap(s->base, s->len) == 0);
    close(s->fd);
}

static struct me_slab_config small_slab(void)
{
    struct me_slab_config cfg = {.nclasses = 3, .size = {64, 256, 4096}, .count = {64, 32, 16}};
    return cfg;
}

/* ------------------------------------------------------------ raw rings */

#define RAW_N 60000u

struct raw {
    struct seg seg;
    void *ring;
    size_t ring_bytes;
    uint32_t kind;
    int efd;
    uint32_t writers;
};

struct raw_writer {
    struct raw *raw;
    uint32_t id;
    uint64_t seed;
};

static void *raw_write(void *arg)
{
    struct raw_writer *w = arg;
    struct me_ring r;
    CHECK(me_ring_attach(&r, w->raw->ring, w->raw->ring_bytes, w->raw->kind, ME_RING_DATA_ENTRY) == 0);
    r.writer_id = w->id;
    r.wake_fd = w->raw->efd;
    uint8_t buf[16][ME_RING_DATA_ENTRY];
    uint64_t seq = 0;
    while (seq < RAW_N) {
        uint32_t want = 1 + (uint32_t)(rng_next(&w->seed) % 16);
        if (want > RAW_N - seq)
            want = (uint32_t)(RAW_N - seq);
        for (uint32_t i = 0; i < want; i++) {
            uint64_t v = seq + i;
            memset(buf[i], 0, sizeof buf[i]);
            memcpy(buf[i], &w->id, sizeof w->id);
            memcpy(buf[i] + 8, &v, sizeof v);
            memcpy(buf[i] + 16, &v, sizeof v); /* twice: a torn entry would differ */
            buf[i][31] = 0xA5;
        }
        uint32_t put = me_ring_write(&r, buf, want);
        seq += put;
        if (put)
            me_ring_wake_reader(&r);
        if (put < want) {
            uint64_t how = rng_next(&w->seed);
            int64_t spin = (how & 1) ? 20000 : 0;
            uint32_t need = (how & 2) ? r.entries / 2 : 1; /* the reader flushes before it waits */
            int rc = me_ring_wait_writable(&r, need, spin, 50000000);
            CHECK(rc == 0 || rc == -ETIMEDOUT);
        }
    }
    return NULL;
}

static void raw_read(struct raw *raw, uint64_t seed)
{
    struct me_ring r;
    CHECK(me_ring_attach(&r, raw->ring, raw->ring_bytes, raw->kind, ME_RING_DATA_ENTRY) == 0);
    uint64_t next[4] = {0, 0, 0, 0};
    uint64_t total = 0, want_total = (uint64_t)RAW_N * raw->writers;
    uint8_t buf[16][ME_RING_DATA_ENTRY];
    uint8_t who[16];
    while (total < want_total) {
        uint32_t max = 1 + (uint32_t)(rng_next(&seed) % 16);
        uint32_t n = me_ring_peek(&r, buf, who, max);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t id;
            uint64_t v, v2;
            memcpy(&id, buf[i], sizeof id);
            memcpy(&v, buf[i] + 8, sizeof v);
            memcpy(&v2, buf[i] + 16, sizeof v2);
            CHECK(v == v2 && buf[i][31] == 0xA5);
            CHECK(id < 4);
            if (raw->kind == ME_RING_MPSC)
                CHECK(who[i] == id);
            CHECK(v == next[id]); /* in order, nothing lost or repeated */
            next[id]++;
        }
        me_ring_consume(&r, n);
        total += n;
        if (n)
            me_ring_wake_writers(&r);
        if (n == 0) {
            me_ring_flush_writers(&r); /* nothing to read: writers held back for free slots get them now */
            uint64_t how = rng_next(&seed) % 3;
            if (how == 0) {
                CHECK(me_ring_wait_readable(&r, 1, 20000, 50000000) >= -ETIMEDOUT);
            } else if (how == 1) {
                int rc = me_ring_wait_readable(&r, 1, 0, 50000000);
                CHECK(rc == 0 || rc == -ETIMEDOUT);
            } else if (!me_ring_arm_fd(&r)) { /* the asyncio path: wait on the eventfd */
                struct pollfd p = {.fd = raw->efd, .events = POLLIN};
                int k = poll(&p, 1, 50);
                CHECK(k >= 0);
                uint64_t drain;
                if (k > 0)
                    CHECK(read(raw->efd, &drain, sizeof drain) == sizeof drain);
                me_ring_disarm_fd(&r);
            }
        }
    }
    for (uint32_t id = 1; id <= raw->writers; id++)
        CHECK(next[id] == RAW_N);
}

static void raw_run(uint32_t kind, uint32_t writers, uint32_t entries)
{
    struct raw raw = {.kind = kind, .writers = writers};
    struct me_shm_layout lay = {.data_kind = kind, .data_entries = entries, .producers = (uint16_t)writers};
    seg_make(&raw.seg, &lay);
    raw.ring = (uint8_t *)raw.seg.base + raw.seg.info.data_off;
    raw.ring_bytes = raw.seg.info.data_bytes;
    raw.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(raw.efd >= 0);
    pthread_t t[3];
    struct raw_writer w[3];
    for (uint32_t i = 0; i < writers; i++) {
        /* SPSC: writer id 1 stands for "the" writer in the stamp */
        w[i] = (struct raw_writer){&raw, i + 1, 0x9E3779B97F4A7C15u * (i + 1)};
        CHECK(pthread_create(&t[i], NULL, raw_write, &w[i]) == 0);
    }
    raw_read(&raw, 12345 + kind);
    for (uint32_t i = 0; i < writers; i++)
        pthread_join(t[i], NULL);
    close(raw.efd);
    seg_free(&raw.seg);
}

/* --------------------------------------------------------------- channels */

#define CHAN_N 20000u

struct chan {
    struct seg hub;
    struct seg own[3]; /* MPSC producer segments (SPSC: hub only) */
    uint32_t producers;
    uint32_t mpsc;
};

struct chan_producer {
    struct chan *ch;
    uint32_t slot;
    uint64_t seed;
    uint32_t count;
};

/* A payload: u32 writer, u32 length, u64 sequence, then bytes from the sequence, then a sum. */
static void stamp(uint8_t *p, uint32_t len, uint32_t writer, uint64_t seq)
{
    memcpy(p, &writer, 4);
    memcpy(p + 4, &len, 4);
    memcpy(p + 8, &seq, 8);
    uint32_t sum = 0;
    for (uint32_t i = 16; i + 4 < len; i++) {
        p[i] = (uint8_t)(seq * 31 + i);
        sum += p[i];
    }
    memcpy(p + len - 4, &sum, 4);
}

static void verify(const uint8_t *p, uint32_t len, uint32_t writer, uint64_t seq)
{
    uint32_t w, l, sum = 0, want;
    uint64_t s;
    memcpy(&w, p, 4);
    memcpy(&l, p + 4, 4);
    memcpy(&s, p + 8, 8);
    CHECK(w == writer && l == len && s == seq);
    for (uint32_t i = 16; i + 4 < len; i++) {
        CHECK(p[i] == (uint8_t)(seq * 31 + i));
        sum += p[i];
    }
    memcpy(&want, p + len - 4, 4);
    CHECK(sum == want);
}

static void producer_init(struct chan *ch, uint32_t slot, struct me_chan_producer *p)
{
    struct seg *own = ch->mpsc ? &ch->own[slot] : &ch->hub;
    CHECK(me_chan_producer_init(p, ch->hub.base, &ch->hub.info, own->base, &own->info, -1) == 0);
}

static void *chan_produce(void *arg)
{
    struct chan_producer *cp = arg;
    struct me_chan_producer p;
    producer_init(cp->ch, cp->slot, &p);
    uint32_t writer = p.segment;
    for (uint64_t seq = 0; seq < cp->count; seq++) {
        uint32_t len = 20 + (uint32_t)(rng_next(&cp->seed) % 4000);
        int64_t off;
        while ((off = me_chan_loan(&p, len)) == -ENOMEM) {
            int rc = me_chan_wait_blocks(&p, len, 50000000);
            CHECK(rc == 0 || rc == -ETIMEDOUT);
        }
        CHECK(off > 0);
        CHECK(me_chan_capacity(&p, (uint64_t)off) >= len);
        stamp(p.base + off, len, writer, seq);
        int rc;
        while ((rc = me_chan_publish(&p, (uint64_t)off, len, 7, seq, seq + 1 == cp->count ? ME_FRAME_F_END : 0)) ==
               -EAGAIN) {
            rc = me_chan_wait_space(&p, 50000000);
            CHECK(rc == 0 || rc == -ETIMEDOUT);
        }
        CHECK(rc == 0);
    }
    /* every block comes back once the consumer released them all */
    me_chan_producer_detach(&p);
    return NULL;
}

static uint32_t in_use(void *arena)
{
    struct me_slab_config cfg;
    me_slab_arena_config(arena, &cfg);
    uint64_t n = 0;
    for (uint32_t c = 0; c < cfg.nclasses; c++) {
        struct me_slab_class_stats st;
        me_slab_stats(arena, c, &st);
        n += st.in_use;
    }
    return (uint32_t)n;
}

static void chan_run(uint32_t mpsc, uint32_t producers, uint32_t flags)
{
    struct chan ch = {.producers = producers, .mpsc = mpsc};
    struct me_slab_config slab = small_slab();
    uint32_t done = me_shm_completion_entries(&slab);
    if (mpsc) {
        struct me_shm_layout hub = {.data_kind = ME_RING_MPSC, .data_entries = 16, .flags = flags,
                                    .producers = (uint16_t)producers};
        seg_make(&ch.hub, &hub);
        for (uint32_t i = 0; i < producers; i++) {
            struct me_shm_layout own = {.completion_entries = done, .flags = flags, .segment_id = (uint16_t)(i + 1),
                                        .producers = (uint16_t)producers, .slab = slab};
            seg_make(&ch.own[i], &own);
        }
    } else {
        struct me_shm_layout one = {.data_kind = ME_RING_SPSC, .data_entries = 16, .completion_entries = done,
                                    .flags = flags, .producers = 1, .slab = slab};
        seg_make(&ch.hub, &one);
    }
    struct me_chan_consumer *c = calloc(1, sizeof *c);
    CHECK(c);
    CHECK(me_chan_consumer_init(c, ch.hub.base, &ch.hub.info) == 0);
    if (mpsc)
        for (uint32_t i = 0; i < producers; i++)
            CHECK(me_chan_consumer_add(c, (uint16_t)(i + 1), ch.own[i].base, &ch.own[i].info) == 0);
    else
        CHECK(me_chan_consumer_add(c, 0, ch.hub.base, &ch.hub.info) == 0);

    pthread_t t[3];
    struct chan_producer cp[3];
    for (uint32_t i = 0; i < producers; i++) {
        cp[i] = (struct chan_producer){&ch, i, 0xD1B54A32D192ED03u * (i + 7), CHAN_N};
        CHECK(pthread_create(&t[i], NULL, chan_produce, &cp[i]) == 0);
    }
    /* hold a few frames at a time, release out of order */
    struct held { uint16_t seg; uint64_t off; } hold[8];
    uint32_t nheld = 0, ends = 0;
    uint64_t next[4] = {0, 0, 0, 0}, total = 0, seed = 99;
    while (total < (uint64_t)CHAN_N * producers) {
        struct me_frame f;
        uint8_t *payload;
        int rc = me_chan_receive(c, &f, &payload);
        CHECK(rc >= 0);
        if (rc == 0) {
            rc = me_chan_wait_frames(c, (total & 1) ? 5000 : 0, 50000000);
            CHECK(rc == 0 || rc == -ETIMEDOUT);
            continue;
        }
        CHECK(f.kind == ME_FRAME_BLOCK && f.type == 7);
        uint32_t writer = f.segment;
        CHECK(f.id == next[writer]);
        verify(payload, f.payload_len, writer, f.id);
        next[writer]++;
        total++;
        if (f.flags & ME_FRAME_F_END)
            ends++;
        hold[nheld++] = (struct held){f.segment, f.offset};
        if (nheld == 8 || (rng_next(&seed) & 3) == 0) {
            while (nheld) {
                uint32_t k = (uint32_t)(rng_next(&seed) % nheld);
                CHECK(me_chan_release(c, hold[k].seg, hold[k].off) == 0);
                hold[k] = hold[--nheld];
            }
        }
    }
    while (nheld) {
        nheld--;
        CHECK(me_chan_release(c, hold[nheld].seg, hold[nheld].off) == 0);
    }
    for (uint32_t i = 0; i < producers; i++)
        pthread_join(t[i], NULL);
    CHECK(ends == producers);
    CHECK(c->st.received == (uint64_t)CHAN_N * producers && c->st.dropped == 0);
    /* The producers are gone (threads ended): a last reap by a new producer
       end on each segment brings every block home. */
    for (uint32_t i = 0; i < producers; i++) {
        struct me_chan_producer p;
        producer_init(&ch, i, &p);
        CHECK(in_use(p.arena) == 0);
        me_chan_producer_detach(&p);
    }
    free(c);
    if (mpsc)
        for (uint32_t i = 0; i < producers; i++)
            seg_free(&ch.own[i]);
    seg_free(&ch.hub);
}

/* --------------------------------------------------------------- recovery */

static void recovery_run(void)
{
    struct me_slab_config slab = small_slab();
    struct me_shm_layout one = {.data_kind = ME_RING_SPSC, .data_entries = 8,
                                .completion_entries = me_shm_completion_entries(&slab), .producers = 1,
                                .slab = slab};
    struct seg s;
    seg_make(&s, &one);
    struct me_chan_producer p;
    CHECK(me_chan_producer_init(&p, s.base, &s.info, s.base, &s.info, -1) == 0);

    /* A consumer takes 3 frames, releases one, dies holding 2 with 2 more unread. */
    struct me_chan_consumer *c = calloc(1, sizeof *c);
    CHECK(c && me_chan_consumer_init(c, s.base, &s.info) == 0 && me_chan_consumer_add(c, 0, s.base, &s.info) == 0);
    int64_t kept = me_chan_loan(&p, 100); /* the producer's own loan survives */
    CHECK(kept > 0);
    for (int i = 0; i < 5; i++) {
        int64_t off = me_chan_loan(&p, 64 + 500 * (uint32_t)i);
        CHECK(off > 0);
        CHECK(me_chan_publish(&p, (uint64_t)off, 64, 1, (uint64_t)i, 0) == 0);
    }
    struct me_frame f;
    uint8_t *payload;
    uint64_t first = 0;
    for (int i = 0; i < 3; i++) {
        CHECK(me_chan_receive(c, &f, &payload) == 1 && f.id == (uint64_t)i);
        if (i == 0)
            first = f.offset;
    }
    CHECK(me_chan_release(c, 0, first) == 0);
    /* "killed": the remaining two peeked descriptors sit in its batch, never delivered */
    free(c);
    CHECK(in_use(p.arena) == 6);
    uint32_t back = me_chan_recover_consumer(&p);
    CHECK(back == 5); /* held 2, batched 2, and the released one (still tagged, its completion dropped) */
    me_chan_reap(&p);                      /* the dropped completion ring holds nothing now */
    CHECK(in_use(p.arena) == 1);            /* only the producer's own loan */
    CHECK(me_chan_unloan(&p, (uint64_t)kept) == 0);
    CHECK(in_use(p.arena) == 0);

    /* A new consumer attaches and the stream goes on. */
    c = calloc(1, sizeof *c);
    CHECK(c && me_chan_consumer_init(c, s.base, &s.info) == 0 && me_chan_consumer_add(c, 0, s.base, &s.info) == 0);
    int64_t off = me_chan_loan(&p, 64);
    CHECK(off > 0 && me_chan_publish(&p, (uint64_t)off, 64, 1, 42, 0) == 0);
    CHECK(me_chan_receive(c, &f, &payload) == 1 && f.id == 42);

    /* Now the producer "dies" with a loan and two unread descriptors, while
       the consumer holds the frame it got. */
    int64_t lost = me_chan_loan(&p, 3000);
    CHECK(lost > 0);
    for (int i = 0; i < 2; i++) {
        off = me_chan_loan(&p, 200);
        CHECK(off > 0 && me_chan_publish(&p, (uint64_t)off, 200, 1, 100 + (uint64_t)i, 0) == 0);
    }
    me_chan_producer_detach(&p); /* its magazines, as me_slab_reclaim_pid would find them after a kill */
    CHECK(in_use(p.arena) == 4);
    uint32_t rec = me_chan_recover_producer(c, 0, 0);
    CHECK(rec == 3);                   /* the loan and the two unread */
    CHECK(in_use(p.arena) == 1);       /* the frame the consumer holds */
    CHECK(me_chan_receive(c, &f, &payload) == 0);
    /* the consumer releases its frame; a new producer attaches and reaps it */
    CHECK(me_chan_release(c, 0, f.offset) == 0);
    struct me_chan_producer p2;
    me_chan_source_reopen(c, 0);
    CHECK(me_chan_producer_init(&p2, s.base, &s.info, s.base, &s.info, -1) == 0);
    CHECK(in_use(p2.arena) == 0 && p2.st.reaped == 1);
    /* a second release of the same block is found free, counted, not freed twice */
    CHECK(me_chan_release(c, 0, f.offset) == 0);
    CHECK(me_chan_reap(&p2) == 0 && p2.st.stale_done == 1);
    off = me_chan_loan(&p2, 64);
    CHECK(off > 0 && me_chan_publish(&p2, (uint64_t)off, 64, 1, 7, 0) == 0);
    CHECK(me_chan_receive(c, &f, &payload) == 1 && f.id == 7);
    CHECK(me_chan_release(c, 0, f.offset) == 0);
    free(c);
    me_chan_producer_detach(&p2);
    seg_free(&s);
}

/* ------------------------------------------------------- abandoned claims */

struct claim_writer {
    void *ring;
    size_t bytes;
    uint32_t id;
    uint32_t count;
};

static void *claim_write(void *arg)
{
    struct claim_writer *w = arg;
    struct me_ring r;
    CHECK(me_ring_attach(&r, w->ring, w->bytes, ME_RING_MPSC, ME_RING_DATA_ENTRY) == 0);
    r.writer_id = w->id;
    uint8_t e[ME_RING_DATA_ENTRY];
    for (uint64_t seq = 0; seq < w->count;) {
        memset(e, 0, sizeof e);
        memcpy(e, &w->id, sizeof w->id);
        memcpy(e + 8, &seq, sizeof seq);
        e[31] = 0xA5;
        if (me_ring_write(&r, e, 1)) {
            seq++;
            me_ring_wake_reader(&r);
        } else {
            CHECK(me_ring_wait_writable(&r, 1, 0, 20000000) >= -ETIMEDOUT);
        }
    }
    return NULL;
}

/* A writer that dies between claiming a slot and filling it (here: a claim
   made by hand, never finished) stops the reader at that slot; once the
   writer is known dead, me_ring_abandon turns the claim into an empty entry
   and everything the live writers wrote comes through in order. */
static void abandon_run(void)
{
    struct me_shm_layout lay = {.data_kind = ME_RING_MPSC, .data_entries = 8, .producers = 3};
    struct seg s;
    seg_make(&s, &lay);
    void *ring = (uint8_t *)s.base + s.info.data_off;
    struct me_ring r;
    CHECK(me_ring_attach(&r, ring, s.info.data_bytes, ME_RING_MPSC, ME_RING_DATA_ENTRY) == 0);
    /* writer 2 claims position 0 the way mpsc_write_one does, and "dies" */
    struct ring_shared *sh = ring;
    uint64_t cur = SEQ(0, SEQ_FREE);
    CHECK(atomic_compare_exchange_strong(&r.seq[0], &cur, SEQ(0, 2)));
    atomic_store(&sh->tail, 1);
    atomic_fetch_or(&sh->writers.waiting, UINT64_C(1) << 1); /* and it slept once: its bit stays */

    pthread_t t[2];
    struct claim_writer w[2] = {{ring, s.info.data_bytes, 1, 3000}, {ring, s.info.data_bytes, 3, 3000}};
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, claim_write, &w[i]) == 0);
    uint64_t next[4] = {0, 0, 0, 0}, got = 0, skipped = 0;
    uint8_t buf[8][ME_RING_DATA_ENTRY], who[8];
    int abandoned = 0;
    while (got < 6000) {
        uint32_t n = me_ring_peek(&r, buf, who, 8);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t id;
            uint64_t v;
            memcpy(&id, buf[i], 4);
            memcpy(&v, buf[i] + 8, 8);
            if (id == 0) { /* the abandoned claim */
                CHECK(who[i] == 0 && abandoned);
                skipped++;
                continue;
            }
            CHECK(id == who[i] && (id == 1 || id == 3) && buf[i][31] == 0xA5);
            CHECK(v == next[id]);
            next[id]++;
            got++;
        }
        me_ring_consume(&r, n);
        if (n)
            me_ring_wake_writers(&r);
        if (n == 0) {
            if (!abandoned && me_ring_readable(&r) == 0) {
                /* the reader is stuck behind writer 2's claim: it is dead, so abandon it */
                CHECK(me_ring_abandon(&r, 2) == 1);
                CHECK((atomic_load(&sh->writers.waiting) & (UINT64_C(1) << 1)) == 0);
                abandoned = 1;
            } else {
                CHECK(me_ring_wait_readable(&r, 1, 0, 20000000) >= -ETIMEDOUT);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(abandoned && skipped == 1 && next[1] == 3000 && next[3] == 3000);
    CHECK(me_ring_abandon(&r, 2) == 0);
    seg_free(&s);
}

/* --------------------------------------------------------- wake thresholds */

/* A producer out of blocks (or ring space) sleeps with no timeout and no
   recheck: only the consumer's wake can end its sleep, so a wake-up lost to
   the thresholds hangs here (main's alarm ends the run). The consumer holds
   frames and releases them in random batches, and waits itself (no timeout
   either) holding fewer than the class has blocks, sometimes after giving
   all back. One class of 1, 3 or 16 blocks: the producer asks to be woken at
   the first block back (1 block), or once half are back (3 and 16: 1, 8). */
#define TH_N 6000u

struct th_producer {
    struct seg *s;
    uint64_t seed;
    uint64_t sleeps;
};

static void *th_produce(void *arg)
{
    struct th_producer *tp = arg;
    struct me_chan_producer p;
    CHECK(me_chan_producer_init(&p, tp->s->base, &tp->s->info, tp->s->base, &tp->s->info, -1) == 0);
    p.done.recheck_ns = 0;
    p.data.recheck_ns = 0;
    for (uint64_t seq = 0; seq < TH_N; seq++) {
        uint32_t len = 20 + (uint32_t)(rng_next(&tp->seed) % 44);
        int64_t off;
        while ((off = me_chan_loan(&p, len)) == -ENOMEM)
            CHECK(me_chan_wait_blocks(&p, len, -1) == 0);
        CHECK(off > 0);
        stamp(p.base + off, len, 0, seq);
        int rc;
        while ((rc = me_chan_publish(&p, (uint64_t)off, len, 7, seq, 0)) == -EAGAIN)
            CHECK(me_chan_wait_space(&p, -1) == 0);
        CHECK(rc == 0);
    }
    tp->sleeps = p.done.sleeps + p.data.sleeps;
    me_chan_producer_detach(&p);
    return NULL;
}

static void threshold_run(uint32_t count, uint32_t entries, uint64_t seed)
{
    struct me_slab_config slab = {.nclasses = 1, .size = {64}, .count = {count}};
    struct me_shm_layout one = {.data_kind = ME_RING_SPSC, .data_entries = entries,
                                .completion_entries = me_shm_completion_entries(&slab), .producers = 1,
                                .slab = slab};
    struct seg s;
    seg_make(&s, &one);
    struct me_chan_consumer *c = calloc(1, sizeof *c);
    CHECK(c && me_chan_consumer_init(c, s.base, &s.info) == 0 && me_chan_consumer_add(c, 0, s.base, &s.info) == 0);
    pthread_t t;
    struct th_producer tp = {&s, seed * 0x9E3779B97F4A7C15u + 1, 0};
    CHECK(pthread_create(&t, NULL, th_produce, &tp) == 0);
    uint64_t held[16];
    uint32_t nheld = 0;
    uint64_t next = 0;
    while (next < TH_N) {
        struct me_frame f;
        uint8_t *payload;
        int rc = me_chan_receive(c, &f, &payload);
        CHECK(rc >= 0);
        if (rc == 0) {
            uint64_t how = rng_next(&seed);
            while ((how & 1) && nheld) /* sometimes give everything back before waiting */
                CHECK(me_chan_release(c, 0, held[--nheld]) == 0);
            CHECK(me_chan_wait_frames(c, (how & 2) ? 5000 : 0, -1) == 0);
            continue;
        }
        CHECK(f.kind == ME_FRAME_BLOCK && f.id == next);
        verify(payload, f.payload_len, 0, f.id);
        next++;
        held[nheld++] = f.offset;
        /* never wait holding every block: the producer could then make nothing */
        if (nheld == count || (rng_next(&seed) & 3) == 0) {
            uint32_t k = 1 + (uint32_t)(rng_next(&seed) % nheld);
            while (k--) {
                uint32_t i = (uint32_t)(rng_next(&seed) % nheld);
                CHECK(me_chan_release(c, 0, held[i]) == 0);
                held[i] = held[--nheld];
            }
        }
    }
    while (nheld)
        CHECK(me_chan_release(c, 0, held[--nheld]) == 0);
    pthread_join(t, NULL);
    uint64_t wakes = c->data.wakes + c->src[0].done.wakes, kept = c->data.held + c->src[0].done.held;
    printf("ring_stress: %u blocks, %u entries: %llu messages, producer slept %llu times, consumer woke it %llu "
           "times and held %llu wake-ups back\n", count, entries, (unsigned long long)TH_N,
           (unsigned long long)tp.sleeps, (unsigned long long)wakes, (unsigned long long)kept);
    CHECK(c->st.received == TH_N && c->st.released == TH_N);
    struct me_chan_producer p;
    CHECK(me_chan_producer_init(&p, s.base, &s.info, s.base, &s.info, -1) == 0);
    CHECK(in_use(p.arena) == 0);
    me_chan_producer_detach(&p);
    free(c);
    seg_free(&s);
}

/* ------------------------------------------------------------- bad segments */

static void segment_checks(void)
{
    struct me_slab_config slab = small_slab();
    struct me_shm_layout one = {.data_kind = ME_RING_SPSC, .data_entries = 8,
                                .completion_entries = me_shm_completion_entries(&slab), .producers = 1,
                                .slab = slab};
    struct seg s;
    seg_make(&s, &one);
    struct me_shm_info info;
    CHECK(me_shm_segment_check(s.base, s.len - 4096, &info) == -EMSGSIZE);
    CHECK(me_shm_segment_check(s.base, 8, &info) == -EMSGSIZE);
    uint8_t *b = s.base;
    b[0] ^= 1;
    CHECK(me_shm_segment_check(s.base, s.len, &info) == -ENOMSG);
    b[0] ^= 1;
    b[8] ^= 2; /* version */
    CHECK(me_shm_segment_check(s.base, s.len, &info) == -EPROTONOSUPPORT);
    b[8] ^= 2;
    CHECK(me_shm_segment_check(s.base, s.len, &info) == 0);
    seg_free(&s);
    struct me_shm_layout bad = one;
    bad.data_entries = 12;
    CHECK(me_shm_segment_bytes(&bad) == 0);
}

int main(void)
{
    alarm(600); /* a lost wake-up hangs a part that waits without a timeout: end the run instead */
    segment_checks();
    raw_run(ME_RING_SPSC, 1, 8);
    raw_run(ME_RING_MPSC, 3, 8);
    chan_run(0, 1, 0);
    chan_run(0, 1, ME_SHM_F_PAYLOAD_CRC);
    chan_run(1, 3, 0);
    abandon_run();
    recovery_run();
    threshold_run(1, 8, 1);
    threshold_run(3, 2, 2);
    threshold_run(16, 8, 3);
    threshold_run(16, 4, 4);
    printf("ring_stress: ok\n");
    return 0;
}
