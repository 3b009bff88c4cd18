/* chan.c - the producer and consumer ends of a channel: loan, publish, receive, release, and recovery from a dead peer. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>

#include "shm_internal.h"

/* Descriptors a producer publishes between two looks at its completion ring. */
#define REAP_EVERY 16u
#define REAP_BATCH 64u

static int in_arena(uint64_t arena_off, uint64_t arena_bytes, uint64_t off, uint64_t len)
{
    return off >= arena_off && off - arena_off <= arena_bytes && len <= arena_bytes - (off - arena_off);
}

/* ---------------------------------------------------------------- producer */

int me_chan_producer_init(struct me_chan_producer *p, void *hub, const struct me_shm_info *hub_info, void *own,
                          const struct me_shm_info *own_info, int wake_fd)
{
    memset(p, 0, sizeof *p);
    const struct me_shm_layout *hl = &hub_info->layout, *ol = &own_info->layout;
    if (hl->data_kind == ME_RING_NONE || !own_info->done_bytes || !own_info->arena_bytes)
        return -EINVAL;
    /* SPSC: everything in one segment, id 0. MPSC: producer slot k writes
       as id k + 1, from its own segment k + 1. */
    if (hl->data_kind == ME_RING_SPSC ? (own != hub || ol->segment_id != 0)
                                      : (ol->segment_id == 0 || ol->segment_id > hl->producers))
        return -EINVAL;
    int rc = me_ring_attach(&p->data, (uint8_t *)hub + hub_info->data_off, hub_info->data_bytes, hl->data_kind,
                            ME_RING_DATA_ENTRY);
    if (rc < 0)
        return rc;
    p->data.wake_fd = wake_fd;
    p->data.writer_id = ol->segment_id;
    rc = me_ring_attach(&p->done, (uint8_t *)own + own_info->done_off, own_info->done_bytes, ME_RING_SPSC,
                        ME_RING_DONE_ENTRY);
    if (rc < 0)
        return rc;
    p->base = own;
    p->arena = (uint8_t *)own + own_info->arena_off;
    p->arena_off = own_info->arena_off;
    p->arena_bytes = own_info->arena_bytes;
    p->segment = ol->segment_id;
    p->owner = ME_SHM_OWNER_PRODUCER(ol->segment_id);
    p->flags = hl->flags;
    /* Before any allocation: completions a dead predecessor had freed but not
       taken off the ring are found free now (-EALREADY) instead of being
       freed again after a new loan took them. */
    me_chan_reap(p);
    return 0;
}

uint32_t me_chan_reap(struct me_chan_producer *p)
{
    uint64_t offs[REAP_BATCH];
    uint32_t freed = 0, n;
    while ((n = me_ring_peek(&p->done, offs, NULL, REAP_BATCH)) > 0) {
        for (uint32_t i = 0; i < n; i++) {
            uint64_t off = offs[i];
            if (in_arena(p->arena_off, p->arena_bytes, off, 1) &&
                me_slab_free_cached(p->arena, off - p->arena_off) == 0)
                freed++;
            else
                p->st.stale_done++;
        }
        me_ring_consume(&p->done, n);
    }
    p->st.reaped += freed;
    return freed;
}

int64_t me_chan_loan(struct me_chan_producer *p, uint32_t n)
{
    if ((p->st.loans % REAP_EVERY) == 0)
        me_chan_reap(p);
    int cls = me_slab_class_of(p->arena, n);
    if (cls < 0)
        return cls;
    int64_t off = me_slab_alloc_cached(p->arena, (uint32_t)cls, p->owner);
    if (off == -ENOMEM && me_chan_reap(p) > 0)
        off = me_slab_alloc_cached(p->arena, (uint32_t)cls, p->owner);
    if (off < 0) {
        if (off == -ENOMEM)
            p->st.exhausted++;
        return off;
    }
    p->st.loans++;
    return (int64_t)p->arena_off + off;
}

int64_t me_chan_capacity(struct me_chan_producer *p, uint64_t off)
{
    uint32_t cls, idx;
    if (!in_arena(p->arena_off, p->arena_bytes, off, 1) || me_slab_locate(p->arena, off - p->arena_off, &cls, &idx))
        return -EINVAL;
    return me_slab_class_size(p->arena, cls);
}

int me_chan_unloan(struct me_chan_producer *p, uint64_t off)
{
    if (!in_arena(p->arena_off, p->arena_bytes, off, 1))
        return -EINVAL;
    return me_slab_free_cached(p->arena, off - p->arena_off);
}

static int put(struct me_chan_producer *p, struct me_frame *f, const void *payload, int hold)
{
    uint8_t e[ME_RING_DATA_ENTRY];
    if (me_frame_encode_header(e, f, NULL, payload) < 0)
        return -EINVAL;
    if (me_ring_write(&p->data, e, 1) == 0) {
        p->st.full++;
        return -EAGAIN;
    }
    p->st.published++;
    if (hold)
        p->data.owed = 1; /* me_chan_flush_reader pays it */
    else
        me_ring_wake_reader(&p->data);
    return 0;
}

int me_chan_flush_reader(struct me_chan_producer *p)
{
    int woke = me_ring_flush_reader(&p->data);
    p->st.wakes += (uint64_t)woke;
    return woke;
}

static void descriptor(struct me_frame *f, uint8_t kind, uint8_t type, uint64_t id, uint8_t flags)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->type = type;
    f->id = id;
    f->flags = flags;
}

int me_chan_publish(struct me_chan_producer *p, uint64_t off, uint32_t len, uint8_t type, uint64_t id,
                    uint8_t flags)
{
    int64_t cap = me_chan_capacity(p, off);
    if (cap < 0 || len > (uint64_t)cap || (flags & ~(ME_FRAME_F_END | ME_CHAN_HOLD_WAKE)))
        return -EINVAL;
    int hold = (flags & ME_CHAN_HOLD_WAKE) != 0;
    flags &= (uint8_t)~ME_CHAN_HOLD_WAKE;
    /* Only a block this producer loaned and still holds. */
    int64_t st = me_slab_block_state(p->arena, off - p->arena_off);
    if (st < 0 || (uint64_t)st != ((uint64_t)ME_SLAB_ALLOCATED << 32 | p->owner))
        return -EINVAL;
    struct me_frame f;
    descriptor(&f, ME_FRAME_BLOCK, type, id, flags);
    f.payload_len = len;
    f.segment = p->segment;
    f.offset = off;
    const void *payload = NULL;
    if (p->flags & ME_SHM_F_PAYLOAD_CRC) {
        f.flags |= ME_FRAME_F_PAYLOAD_CRC;
        payload = p->base + off;
    }
    return put(p, &f, payload, hold);
}

int me_chan_signal(struct me_chan_producer *p, uint8_t type, uint64_t id, uint8_t flags)
{
    if (flags & ~ME_FRAME_F_END)
        return -EINVAL;
    struct me_frame f;
    descriptor(&f, ME_FRAME_INLINE, type, id, flags);
    return put(p, &f, NULL, 0);
}

/* A producer waits only for its consumer, which is busy with what it has:
   no spin (it would take the consumer's CPU where the two share a core), and
   a wake-up asked for a batch, not for each message. */
int me_chan_wait_space(struct me_chan_producer *p, int64_t timeout_ns)
{
    return me_ring_wait_writable(&p->data, p->data.entries / ME_CHAN_WAKE_SPACE, 0, timeout_ns);
}

/* The time between two blocks coming back, from a wait of `ns` after which
   `got` of the `out` blocks in flight were back: a running mean that follows
   a change within a few waits. All back means the consumer may have waited
   for more: the pace was slower than the truth, so it is cut by a quarter. */
static void pace_update(struct me_chan_producer *p, int64_t ns, uint32_t got, uint64_t out)
{
    if (got == 0 || ns <= 0)
        return;
    if (p->pace_ns && got >= out) {
        p->pace_ns -= p->pace_ns / 4;
        return;
    }
    int64_t each = ns / (int64_t)got;
    p->pace_ns = p->pace_ns ? (p->pace_ns + each) / 2 : each;
}

/* Sleep ns on the monotonic clock: 0, or -EINTR (a signal). */
static int nap(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
    return clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0 ? 0 : -EINTR;
}

int me_chan_wait_blocks(struct me_chan_producer *p, uint32_t n, int64_t timeout_ns)
{
    uint32_t need = 1;
    uint64_t out = 0;
    int cls = me_slab_class_of(p->arena, n);
    if (cls >= 0) {
        struct me_slab_class_stats st;
        me_slab_stats(p->arena, (uint32_t)cls, &st);
        need = (uint32_t)(st.count / ME_CHAN_WAKE_BLOCKS);
        out = st.in_use;
    }
    if (me_ring_readable(&p->done))
        return 0;
    int64_t start = me_shm_now_ns();
    if (need > 1 && p->pace_ns > 0 && p->pace_ns <= ME_RING_RECHECK_NS) {
        int64_t t = p->pace_ns * (int64_t)need; /* till the batch is back, at the pace seen */
        if (t >= ME_CHAN_PACE_MIN_NS && t <= ME_RING_RECHECK_NS && (timeout_ns < 0 || t < timeout_ns)) {
            p->st.paced++;
            if (nap(t) < 0)
                return -EINTR;
            int64_t slept = me_shm_now_ns() - start;
            uint32_t got = me_ring_readable(&p->done);
            if (got) {
                pace_update(p, slept, got, out);
                return 0;
            }
            p->pace_ns = 0; /* nothing came back: the consumer stopped; ask to be woken */
            if (timeout_ns >= 0 && (timeout_ns -= slept) <= 0)
                return -ETIMEDOUT;
            start = me_shm_now_ns();
        }
    }
    int rc = me_ring_wait_readable(&p->done, need, 0, timeout_ns);
    if (rc == 0)
        pace_update(p, me_shm_now_ns() - start, me_ring_readable(&p->done), out);
    return rc;
}

struct scan_ctx {
    struct me_chan_producer *p;
    uint32_t freed;
};

static void free_unread(void *ctx, const uint8_t *entry)
{
    struct scan_ctx *sc = ctx;
    struct me_chan_producer *p = sc->p;
    struct me_frame f;
    if (me_frame_parse_header(entry, ME_RING_DATA_ENTRY, NULL, &f) < 0 || f.kind != ME_FRAME_BLOCK ||
        f.segment != p->segment || !in_arena(p->arena_off, p->arena_bytes, f.offset, 1))
        return;
    /* -EALREADY: the dead consumer had claimed it (tag reclaimed just before). */
    if (me_slab_free(p->arena, f.offset - p->arena_off) == 0)
        sc->freed++;
}

uint32_t me_chan_recover_consumer(struct me_chan_producer *p)
{
    /* Blocks it had taken (tagged as the consumer's): held, released but not
       reaped, or claimed mid-receive. Then the descriptors it never read. */
    uint32_t n = me_slab_reclaim_owner(p->arena, ME_SHM_OWNER_CONSUMER);
    struct scan_ctx sc = {p, 0};
    me_ring_scan(&p->data, p->segment, free_unread, &sc);
    n += sc.freed;
    /* Their completions name blocks freed above: drop them. */
    me_ring_reset(&p->done);
    if (p->data.kind == ME_RING_SPSC)
        me_ring_reset(&p->data);
    p->st.reclaimed += n;
    p->st.peer_deaths++;
    return n;
}

void me_chan_producer_detach(struct me_chan_producer *p)
{
    if (p->arena)
        me_slab_arena_detach(p->arena);
}

/* ---------------------------------------------------------------- consumer */

int me_chan_consumer_init(struct me_chan_consumer *c, void *hub, const struct me_shm_info *hub_info)
{
    memset(c, 0, sizeof *c);
    if (hub_info->layout.data_kind == ME_RING_NONE)
        return -EINVAL;
    c->flags = hub_info->layout.flags;
    return me_ring_attach(&c->data, (uint8_t *)hub + hub_info->data_off, hub_info->data_bytes,
                          hub_info->layout.data_kind, ME_RING_DATA_ENTRY);
}

int me_chan_consumer_add(struct me_chan_consumer *c, uint16_t segment, void *seg, const struct me_shm_info *info)
{
    if (segment >= ME_SHM_MAX_SEGMENTS || info->layout.segment_id != segment || !info->done_bytes ||
        !info->arena_bytes)
        return -EINVAL;
    if ((c->data.kind == ME_RING_SPSC) != (segment == 0))
        return -EINVAL;
    struct me_chan_source *s = &c->src[segment];
    if (s->state == ME_PEER_ATTACHED)
        return -EBUSY;
    struct me_chan_source fresh;
    memset(&fresh, 0, sizeof fresh);
    int rc = me_ring_attach(&fresh.done, (uint8_t *)seg + info->done_off, info->done_bytes, ME_RING_SPSC,
                            ME_RING_DONE_ENTRY);
    if (rc < 0)
        return rc;
    fresh.base = seg;
    fresh.arena = (uint8_t *)seg + info->arena_off;
    fresh.arena_off = info->arena_off;
    fresh.arena_bytes = info->arena_bytes;
    fresh.state = ME_PEER_ATTACHED;
    *s = fresh;
    return 0;
}

/* Batch outcomes besides a -errno. */
#define TAKE_OK 0
#define TAKE_SKIP 1 /* an abandoned slot, or a descriptor of a dead producer: nothing to deliver */

/* Check one descriptor as it comes off the ring and claim its block for the
   consumer (owner tag) before the slot goes back: so a consumer that dies
   holding it leaves a block its producer can find. TAKE_OK, TAKE_SKIP or
   -errno (f->reason set for frame errors). */
static int take(struct me_chan_consumer *c, const uint8_t *e, uint8_t who, struct me_frame *f)
{
    static const uint8_t zero[ME_RING_DATA_ENTRY];
    if (memcmp(e, zero, sizeof zero) == 0) {
        memset(f, 0, sizeof *f);
        return TAKE_SKIP;
    }
    struct me_frame_limits lim = {0, 0}; /* no inline payload, no extensions fit a ring entry */
    int rc = me_frame_parse_header(e, ME_RING_DATA_ENTRY, &lim, f);
    if (rc < 0)
        return rc;
    if (f->kind == ME_FRAME_INLINE)
        return me_frame_check(f, e, NULL, NULL) < 0 ? -EBADMSG : TAKE_OK;
    if (f->kind != ME_FRAME_BLOCK) {
        f->reason = ME_FRAME_BAD_FIELD;
        return -EINVAL;
    }
    /* The writer's id says whose segment it may name. */
    if (c->data.kind == ME_RING_MPSC ? f->segment != who : f->segment != 0) {
        f->reason = ME_FRAME_BAD_FIELD;
        return -EINVAL;
    }
    struct me_chan_source *s = &c->src[f->segment];
    if (s->state == ME_PEER_STALE || s->state == ME_PEER_DEAD)
        return TAKE_SKIP; /* recovered with its producer's loans */
    uint32_t cls, idx;
    if (s->state != ME_PEER_ATTACHED || !in_arena(s->arena_off, s->arena_bytes, f->offset, f->payload_len) ||
        me_slab_locate(s->arena, f->offset - s->arena_off, &cls, &idx) < 0 ||
        f->payload_len > me_slab_class_size(s->arena, cls)) {
        f->reason = ME_FRAME_BAD_FIELD;
        return -EINVAL;
    }
    if (me_slab_set_owner(s->arena, f->offset - s->arena_off, ME_SHM_OWNER_CONSUMER) < 0) {
        f->reason = ME_FRAME_BAD_FIELD; /* a free block: the producer broke the protocol */
        return -EINVAL;
    }
    /* The ring's payload-CRC option decides: a descriptor may not opt out of
       it (nor into it, which would cost the consumer a CRC per block). */
    if (!(f->flags & ME_FRAME_F_PAYLOAD_CRC) != !(c->flags & ME_SHM_F_PAYLOAD_CRC)) {
        f->reason = ME_FRAME_BAD_FIELD;
        rc = -EINVAL;
    } else {
        rc = me_frame_check(f, e, NULL, NULL);
    }
    if (rc < 0) {
        me_chan_release(c, f->segment, f->offset);
        return rc;
    }
    return TAKE_OK;
}

int me_chan_receive(struct me_chan_consumer *c, struct me_frame *f, uint8_t **payload)
{
    for (;;) {
        if (c->at == c->nbatch) {
            uint32_t n = me_ring_peek(&c->data, c->batch, c->who, ME_CHAN_BATCH);
            if (n == 0) {
                me_chan_flush(c); /* nothing to deliver: nothing more comes back until a producer runs */
                return 0;
            }
            /* Claim every block of the batch, then give the slots back. */
            for (uint32_t i = 0; i < n; i++)
                c->rc[i] = take(c, c->batch[i], c->who[i], &c->frames[i]);
            me_ring_consume(&c->data, n);
            me_ring_wake_writers(&c->data);
            c->owed |= c->data.owed;
            c->nbatch = n;
            c->at = 0;
        }
        uint32_t i = c->at++;
        int rc = c->rc[i];
        if (rc == TAKE_SKIP) {
            c->st.dropped++;
            continue;
        }
        memcpy(f, &c->frames[i], sizeof *f);
        if (rc < 0) {
            c->st.dropped++;
            return rc;
        }
        *payload = NULL;
        if (f->kind == ME_FRAME_BLOCK) {
            struct me_chan_source *s = &c->src[f->segment];
            *payload = s->base + f->offset;
            if ((f->flags & ME_FRAME_F_PAYLOAD_CRC) && me_frame_verify_payload(f, *payload, f->payload_len) < 0) {
                me_chan_release(c, f->segment, f->offset);
                c->st.dropped++;
                return -EBADMSG;
            }
        }
        c->st.received++;
        return 1;
    }
}

int me_chan_ready(struct me_chan_consumer *c)
{
    return c->at < c->nbatch || me_ring_readable(&c->data);
}

uint32_t me_chan_flush(struct me_chan_consumer *c)
{
    if (!c->owed)
        return 0;
    c->owed = 0;
    uint32_t woke = (uint32_t)me_ring_flush_writers(&c->data);
    for (uint32_t i = 0; i < ME_SHM_MAX_SEGMENTS; i++)
        if (c->src[i].done.owed && c->src[i].base)
            woke += (uint32_t)me_ring_flush_reader(&c->src[i].done);
    return woke;
}

int me_chan_wait_frames(struct me_chan_consumer *c, int64_t spin_ns, int64_t timeout_ns)
{
    if (me_chan_ready(c))
        return 0;
    me_chan_flush(c);
    return me_ring_wait_readable(&c->data, 1, spin_ns, timeout_ns);
}

int me_chan_release(struct me_chan_consumer *c, uint16_t segment, uint64_t off)
{
    if (segment >= ME_SHM_MAX_SEGMENTS)
        return -EINVAL;
    struct me_chan_source *s = &c->src[segment];
    if (s->state == ME_PEER_FREE || !s->base)
        return -EINVAL;
    if (me_ring_write(&s->done, &off, 1) == 0)
        return -ENOSPC;
    me_ring_wake_reader(&s->done);
    c->owed |= s->done.owed;
    c->st.released++;
    return 0;
}

uint32_t me_chan_recover_producer(struct me_chan_consumer *c, uint16_t segment, uint32_t pid)
{
    if (segment >= ME_SHM_MAX_SEGMENTS)
        return 0;
    struct me_chan_source *s = &c->src[segment];
    if (!s->base)
        return 0;
    uint32_t n = 0;
    if (c->data.kind == ME_RING_MPSC) {
        /* Its half-written slots become skippable; what it wrote is dropped
           as it comes (TAKE_SKIP) until the reader passes its last position. */
        me_ring_abandon(&c->data, segment);
        s->stale_until = me_ring_claimed(&c->data);
        s->state = ME_PEER_STALE;
    } else {
        me_ring_reset(&c->data);
        s->state = ME_PEER_DEAD;
    }
    /* Its loans and unread descriptors (still tagged as its own), and what
       sat in its thread magazines. Blocks this consumer holds keep their tag
       and go back through the completion ring to the next producer. */
    n += me_slab_reclaim_owner(s->arena, ME_SHM_OWNER_PRODUCER(segment));
    if (pid)
        n += me_slab_reclaim_pid(s->arena, pid);
    c->st.reclaimed += n;
    c->st.peer_deaths++;
    return n;
}

int me_chan_slot_free(struct me_chan_consumer *c, uint16_t segment)
{
    if (segment >= ME_SHM_MAX_SEGMENTS)
        return 0;
    struct me_chan_source *s = &c->src[segment];
    if (s->state == ME_PEER_STALE && c->data.head >= s->stale_until && c->at == c->nbatch)
        s->state = ME_PEER_DEAD;
    return s->state != ME_PEER_ATTACHED && s->state != ME_PEER_STALE;
}

void me_chan_source_reopen(struct me_chan_consumer *c, uint16_t segment)
{
    if (segment < ME_SHM_MAX_SEGMENTS && c->src[segment].base)
        c->src[segment].state = ME_PEER_ATTACHED;
}
