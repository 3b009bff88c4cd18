/* me_shm.h - shared-memory segments, rings of 32-byte frame descriptors, and the producer/consumer ends over them. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_SHM_H
#define MCP_EDGE_ME_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../frame/me_frame.h"
#include "../slab/me_slab.h"

/*
 * A segment is one shared mapping (a memfd, or POSIX shm by name), laid out as
 *
 *   offset 0     header (one 4 KiB page): magic "MESEG001", version, size,
 *                segment id, creator pid, where its parts are, a peer table
 *   then         the data ring (optional): 32-byte frame headers, SPSC or MPSC
 *   then         the completion ring (optional): u64 block offsets going back
 *                from the consumer to the producer that loaned them
 *   then         one slab arena (optional, page aligned; csrc/slab)
 *
 * Everything in it is an offset from the segment base. A block is named by
 * (segment id, offset from that segment's base): the frame header's
 * ME_FRAME_BLOCK locator.
 *
 * A channel is either one segment (SPSC: id 0 holds data ring, completion
 * ring and arena), or a hub segment 0 holding an MPSC data ring plus one
 * segment per producer slot k (id k + 1: completion ring and arena). Only the
 * producer of a segment allocates and frees in its arena; the consumer hands
 * blocks back through the completion ring, so no reference count crosses a
 * process and the blocks of a dead peer can be found again by their owner
 * tag (me_slab_reclaim_owner).
 *
 * Wake-ups: a consumer that finds nothing to read spins up to spin_ns
 * (never when both sides may share one CPU), then announces itself on a wait
 * word in the ring and sleeps on a futex (shared, not FUTEX_PRIVATE). A
 * writer looks at that word after each batch and enters the kernel only when
 * someone sleeps; an asyncio reader arms an eventfd instead, which the
 * writer then writes. A producer held back by its consumer (its slab class
 * empty, or the data ring full) does not spin: spinning buys nothing while
 * the consumer works, and takes CPU from it where the two share a core (SMT
 * siblings, a VM's vCPUs). It sleeps at once, saying how much it waits for
 * (half its class's blocks, half the ring), and the consumer wakes
 * it once that much is back, or sooner when it has nothing more to give (it
 * is about to wait itself): one kernel entry per batch, not per message. A
 * sleeping producer also looks again every ME_RING_RECHECK_NS.
 *
 * Pacing: a wake-up is a system call on the consumer's path, and where the
 * producer's CPU is idle it costs an interrupt to another CPU (tens of
 * microseconds on a VM's vCPUs). So a producer out of blocks that has seen
 * how fast they come back, and would wait at least ME_CHAN_PACE_MIN_NS for
 * its batch, sleeps that long on a timer instead, without asking to be
 * woken, and takes what is back; only when nothing came back does it sleep
 * on the futex as above. A consumer busier than its producer then pays no
 * wake-up at all.
 *
 * Errors are -errno, never printed.
 */

#define ME_SHM_MAGIC "MESEG001"
#define ME_SHM_MAGIC_LEN 8
#define ME_SHM_VERSION 1u
#define ME_SHM_HEADER_BYTES 4096u
#define ME_SHM_MAX_PRODUCERS 64u                      /* MPSC producer slots */
#define ME_SHM_MAX_SEGMENTS (ME_SHM_MAX_PRODUCERS + 1) /* hub + one per producer */
#define ME_SHM_MAX_BYTES (UINT64_C(1) << 40)           /* a segment's size limit (offsets stay far below u48) */

/* Segment flags. */
#define ME_SHM_F_PAYLOAD_CRC 0x1u /* descriptors carry a CRC32C over the block payload too */

/* Ring kinds and entry sizes. */
#define ME_RING_NONE 0u
#define ME_RING_SPSC 1u
#define ME_RING_MPSC 2u
#define ME_RING_DATA_ENTRY ME_FRAME_HEADER_SIZE /* a data-ring entry IS a frame header */
#define ME_RING_DONE_ENTRY 8u                   /* a completion entry: u64 segment offset */
#define ME_RING_HEADER_BYTES 320u /* a ring's header; an SPSC ring's entries follow it */
#define ME_RING_MIN_ENTRIES 2u
#define ME_RING_MAX_ENTRIES (1u << 24)
#define ME_RING_RECHECK_NS 50000000 /* a waiter for more than one entry looks again at least this often (50 ms) */
#define ME_CHAN_WAKE_BLOCKS 2u      /* a producer out of blocks is woken once 1/2 of its class's blocks are back */
#define ME_CHAN_WAKE_SPACE 2u       /* a producer facing a full ring is woken once 1/2 of the ring is free */
#define ME_CHAN_PACE_MIN_NS 100000  /* a producer out of blocks paces itself only if it would sleep this long */

/* Owner tags of blocks (me_slab owner words): who holds a block now. */
#define ME_SHM_OWNER_CONSUMER 1u
#define ME_SHM_OWNER_PRODUCER(segment) (2u + (uint32_t)(segment))

/* Peer-table entries in a segment header: [0] the consumer, [1 + k] producer slot k. */
#define ME_PEER_FREE 0u
#define ME_PEER_ATTACHED 1u
#define ME_PEER_CLOSED 2u /* left on purpose: its part was handed back */
#define ME_PEER_DEAD 3u   /* died: the survivor recovered its blocks */
#define ME_PEER_STALE 4u  /* MPSC slot of a dead producer, until the consumer passed its last entry */

/* What a segment holds. */
struct me_shm_layout {
    uint32_t data_kind;          /* ME_RING_NONE, ME_RING_SPSC or ME_RING_MPSC */
    uint32_t data_entries;       /* power of two (0 with ME_RING_NONE) */
    uint32_t completion_entries; /* power of two; 0: no completion ring */
    uint32_t flags;              /* ME_SHM_F_* */
    uint16_t segment_id;
    uint16_t producers;          /* producer slots of the channel (1 for SPSC) */
    struct me_slab_config slab;  /* nclasses 0: no arena */
};

/* Where the parts of a checked segment are (offsets from its base). */
struct me_shm_info {
    struct me_shm_layout layout;
    uint64_t total;
    uint32_t creator_pid;
    uint32_t version;
    uint64_t data_off, data_bytes;
    uint64_t done_off, done_bytes;
    uint64_t arena_off, arena_bytes;
};

/* Bytes a segment with this layout needs (a multiple of 4 KiB), 0 if the layout is invalid. */
size_t me_shm_segment_bytes(const struct me_shm_layout *lay);

/* Completion-ring entries that hold every block of an arena with this config
   at once (a power of two): the ring can then never be full. */
uint32_t me_shm_completion_entries(const struct me_slab_config *cfg);

/* Lay out a segment in [base, base+len) (page aligned, zero or not): header,
   rings, arena (its pages touched). 0, -EINVAL (layout), -ENOSPC (len). */
int me_shm_segment_init(void *base, size_t len, const struct me_shm_layout *lay);

/* Check a segment someone else laid out before trusting anything in it: magic,
   version, size against len, every part in bounds and in order, each ring's
   own header, the arena (me_slab_arena_check). Fills *out. 0, -ENOMSG (not a
   segment: bad magic), -EPROTONOSUPPORT (another version), -EMSGSIZE (it says
   it is larger than the mapping, or smaller than its parts), -EINVAL (a part
   out of bounds or malformed). */
int me_shm_segment_check(const void *base, size_t len, struct me_shm_info *out);

/* A new shared-memory file of len bytes: memfd_create (name is then only a
   label) when `named` is 0, else shm_open(name, O_CREAT|O_EXCL) (name starts
   with '/'). The descriptor (close-on-exec), or -errno. */
int me_shm_create(const char *name, int named, size_t len);

/* shm_open an existing named segment read-write; descriptor or -errno. */
int me_shm_open(const char *name);

/* Remove a named segment's name; 0 or -errno. */
int me_shm_unlink(const char *name);

/* Size of the file behind fd, or -errno. */
int64_t me_shm_fd_size(int fd);

/* Map len bytes of fd shared, read-write (prefault: MAP_POPULATE). 0 and
   *out, or -errno. */
int me_shm_map(int fd, size_t len, int prefault, void **out);

/* Unmap; 0 or -errno. */
int me_shm_unmap(void *base, size_t len);

/* The peer table of a segment: slot i (0 the consumer, 1 + k producer slot k)
   holds a pid and an ME_PEER_* state. get: the state (and *pid), or -EINVAL. */
int me_shm_peer_get(const void *base, uint32_t i, uint32_t *pid);
int me_shm_peer_set(void *base, uint32_t i, uint32_t pid, uint32_t state);

/* ------------------------------------------------------------------ rings */

/* A process's view of one ring: where it lies in this mapping and the
   geometry checked at attach (never read again from shared memory), plus the
   positions this side keeps to itself. One per side and thread. */
struct me_ring {
    void *shared;              /* the ring's header in the segment */
    _Atomic uint64_t *seq;     /* MPSC: one sequence word per slot */
    uint8_t *slots;            /* entries */
    uint32_t kind, entries, mask, entry_size;
    uint64_t head;             /* reader: next position to read */
    uint64_t tail;             /* SPSC writer: next position to write */
    uint64_t seen;             /* SPSC reader: tail last seen; writer: head last seen */
    int wake_fd;               /* writer side: the reader's eventfd (asyncio), -1 none */
    uint32_t writer_id;        /* MPSC writer: 1..ME_SHM_MAX_PRODUCERS */
    uint64_t sleeps;           /* futex sleeps this side entered */
    uint64_t wakes;            /* futex wakes and eventfd writes this side did */
    uint64_t held;             /* wakes held back: the sleeper waited for more than there was */
    uint32_t owed;             /* a wake was held back and no later call paid it (me_ring_flush_*) */
    int64_t recheck_ns;        /* a waiter for more than one looks again this often (ME_RING_RECHECK_NS; <= 0 never) */
};

/* Bytes a ring needs, 0 if invalid (entries a power of two within limits). */
size_t me_ring_bytes(uint32_t kind, uint32_t entries, uint32_t entry_size);

/* Lay out an empty ring at `at` (64-byte aligned). 0 or -EINVAL. */
int me_ring_init(void *at, size_t len, uint32_t kind, uint32_t entries, uint32_t entry_size);

/* Check the ring at `at` and take a view of it; positions from the shared
   indices. 0, -EINVAL (not a ring of that kind and entry size, or does not fit len). */
int me_ring_attach(struct me_ring *r, void *at, size_t len, uint32_t kind, uint32_t entry_size);

/* Writer: copy up to n entries in; how many went in (0: full). SPSC: one
   index store for the batch. MPSC: each entry claims a slot with its writer
   id (r->writer_id), so a dead writer's claims can be found. */
uint32_t me_ring_write(struct me_ring *r, const void *entries, uint32_t n);

/* Reader: copy up to max ready entries to out without taking them (who[i]:
   the MPSC writer id of each, 0 for SPSC; who may be NULL). How many. An
   abandoned MPSC slot (me_ring_abandon) comes out as an all-zero entry. */
uint32_t me_ring_peek(struct me_ring *r, void *out, uint8_t *who, uint32_t max);

/* Reader: take the n entries peeked (their slots go back to the writers). */
void me_ring_consume(struct me_ring *r, uint32_t n);

/* Entries ready for the reader now (MPSC: 0 or 1, whether the next is ready). */
uint32_t me_ring_readable(struct me_ring *r);

/* Free slots for a writer now (MPSC: 0 or 1, whether the next slot is free). */
uint32_t me_ring_writable(struct me_ring *r);

/* Writer, after writing: wake the reader if it sleeps (futex) and the
   entries it asked for are there, or armed its eventfd. Enters the kernel
   only then. 1 if it woke someone, else 0 (r->held counts the wakes held
   back for the sleeper's need; r->owed says one is due). */
int me_ring_wake_reader(struct me_ring *r);

/* Reader, after consuming: wake writers sleeping on a full ring once the
   free slots they asked for are there. */
int me_ring_wake_writers(struct me_ring *r);

/* This side has nothing more to give for now (it is about to wait itself):
   pay a wake held back for the sleeper's need if anything at all is there
   for it. Free when none is owed. 1 if it woke someone, else 0. */
int me_ring_flush_reader(struct me_ring *r);
int me_ring_flush_writers(struct me_ring *r);

/* Wake the reader (writers) whether or not they announced themselves: after
   a state change they must look at (the other side closed). */
void me_ring_kick_reader(struct me_ring *r);
void me_ring_kick_writers(struct me_ring *r);

/* Wait until readable (writable): spin up to spin_ns, then sleep on the
   futex; timeout_ns < 0 waits without limit. `need`: entries (free slots)
   the waker should gather before it wakes this side (0 or 1: wake at the
   first); with more, each sleep lasts at most r->recheck_ns. Returns
   once at least one is there, not necessarily `need`. 0, -ETIMEDOUT, -EINTR. */
int me_ring_wait_readable(struct me_ring *r, uint32_t need, int64_t spin_ns, int64_t timeout_ns);
int me_ring_wait_writable(struct me_ring *r, uint32_t need, int64_t spin_ns, int64_t timeout_ns);

/* Reader through an eventfd: arm it (1: already readable, do not wait; 0:
   armed, the next write wakes the eventfd), or take the arming back. */
int me_ring_arm_fd(struct me_ring *r);
void me_ring_disarm_fd(struct me_ring *r);

/* Recovery, when the peer on the other side is gone and cannot touch the ring:
   MPSC: every slot claimed but never filled by writer `writer_id` becomes an
   all-zero entry the reader skips; how many. */
uint32_t me_ring_abandon(struct me_ring *r, uint32_t writer_id);

/* Recovery: call fn on every unread entry (SPSC: between the shared head and
   tail; MPSC: filled slots of writer `writer_id`); how many. The other side
   must be gone. */
uint32_t me_ring_scan(struct me_ring *r, uint32_t writer_id, void (*fn)(void *ctx, const uint8_t *entry), void *ctx);

/* MPSC: the writers' claim position (everything a dead writer wrote lies before it). */
uint64_t me_ring_claimed(struct me_ring *r);

/* SPSC: drop what is unread (head = tail) and clear the wait words; the other
   side must be gone. The local view follows. */
void me_ring_reset(struct me_ring *r);

/* The ring's shared positions (reader head, writer tail) for stats. */
void me_ring_positions(const struct me_ring *r, uint64_t *head, uint64_t *tail);

/* ------------------------------------------------------------ wake helpers */

/* Whether processes a and b could both run at once (the union of their
   affinity masks has two CPUs or more, and this machine has two online):
   1, 0 (they must share one CPU: spinning would only steal its time), or
   -errno (a pid is gone). 0 means self. */
int me_shm_can_run_apart(pid_t a, pid_t b);

/* Whether process pid is alive, by its pidfd (readable once it has exited)
   when pidfd >= 0, else by kill(pid, 0). 1 alive, 0 gone. */
int me_shm_pid_alive(int pidfd, pid_t pid);

/* pidfd_open(pid): a descriptor, or -errno (-ENOSYS before Linux 5.3). */
int me_shm_pidfd_open(pid_t pid);

/* Monotonic clock, ns. */
int64_t me_shm_now_ns(void);

/* ------------------------------------------------------- producer/consumer */

struct me_chan_stats {
    uint64_t loans;        /* blocks loaned */
    uint64_t published;    /* descriptors published */
    uint64_t full;         /* publishes refused: ring full */
    uint64_t exhausted;    /* loans refused: arena class empty */
    uint64_t reaped;       /* blocks freed from the completion ring */
    uint64_t stale_done;   /* completions for blocks already free (after a recovery) */
    uint64_t received;     /* descriptors delivered */
    uint64_t released;     /* blocks handed back */
    uint64_t dropped;      /* descriptors dropped: malformed, or of a dead producer */
    uint64_t reclaimed;    /* blocks recovered from dead peers */
    uint64_t peer_deaths;  /* dead peers recovered from */
    uint64_t wakes;        /* futex wakes or eventfd writes done for the peer */
    uint64_t sleeps;       /* futex sleeps entered */
    uint64_t paced;        /* timed sleeps of a producer out of blocks, at its consumer's pace (no wake asked) */
};

/* The producer end: writes one data ring, allocates in its own segment's
   arena, reaps its own completion ring. */
struct me_chan_producer {
    struct me_ring data;   /* writer */
    struct me_ring done;   /* reader */
    uint8_t *base;         /* its own segment (arena, completion ring) */
    void *arena;
    uint64_t arena_off, arena_bytes;
    uint16_t segment;      /* its segment id (goes into descriptors) */
    uint32_t owner;        /* tag of its loans */
    uint32_t flags;        /* ME_SHM_F_* of the channel */
    int64_t pace_ns;       /* measured time between two blocks coming back while it waited (0: none yet) */
    struct me_chan_stats st;
};

/* A producer segment as the consumer sees it. */
struct me_chan_source {
    struct me_ring done;   /* writer */
    uint8_t *base;
    void *arena;
    uint64_t arena_off, arena_bytes;
    uint32_t state;        /* ME_PEER_* */
    uint64_t stale_until;  /* ME_PEER_STALE: ring position past the dead producer's last entry */
};

#define ME_CHAN_BATCH 32u  /* descriptors a consumer takes from the ring at once */

struct me_chan_consumer {
    struct me_ring data;   /* reader */
    uint32_t flags;
    uint32_t nbatch, at;   /* descriptors taken and not yet delivered */
    uint32_t owed;         /* a source's (or the data ring's) wake-up was held back: me_chan_flush pays it */
    uint8_t batch[ME_CHAN_BATCH][ME_RING_DATA_ENTRY];
    uint8_t who[ME_CHAN_BATCH];
    struct me_frame frames[ME_CHAN_BATCH]; /* each checked as it was taken */
    int32_t rc[ME_CHAN_BATCH];
    struct me_chan_source src[ME_SHM_MAX_SEGMENTS];
    struct me_chan_stats st;
};

/* Producer end over the data ring of `hub` (checked) and the completion ring
   and arena of `own` (the same mapping for SPSC). `segment`: own's id;
   MPSC writers are segment ids 1..64. wake_fd: the consumer's eventfd or -1.
   0, -EINVAL (a part missing). */
int me_chan_producer_init(struct me_chan_producer *p, void *hub, const struct me_shm_info *hub_info, void *own,
                          const struct me_shm_info *own_info, int wake_fd);

/* Reap completions (free their blocks); how many were freed. */
uint32_t me_chan_reap(struct me_chan_producer *p);

/* A block of >= n bytes for the caller to fill: its offset from the segment
   base. Reaps first when its class is empty. -ENOMEM (class empty),
   -EMSGSIZE (larger than the largest class). */
int64_t me_chan_loan(struct me_chan_producer *p, uint32_t n);

/* Bytes the block at segment offset off holds, or -EINVAL. */
int64_t me_chan_capacity(struct me_chan_producer *p, uint64_t off);

/* Give a loan back unpublished. 0, -EINVAL, -EALREADY. */
int me_chan_unloan(struct me_chan_producer *p, uint64_t off);

/* Publish a loaned block (off from me_chan_loan, len bytes) as a BLOCK
   descriptor, then wake the consumer if it sleeps. flags: ME_FRAME_F_END,
   and ME_CHAN_HOLD_WAKE to hold the wake-up back until me_chan_flush_reader
   (an event loop publishing several messages in one turn pays one wake-up at
   its end, and its peer on the same CPU does not preempt it half way).
   With ME_SHM_F_PAYLOAD_CRC the CRC covers the payload. 0, -EAGAIN (ring
   full: the block stays loaned), -EINVAL (not a block of ours, len over its
   capacity). */
#define ME_CHAN_HOLD_WAKE 0x80u
int me_chan_publish(struct me_chan_producer *p, uint64_t off, uint32_t len, uint8_t type, uint64_t id,
                    uint8_t flags);

/* Pay a wake-up held back by ME_CHAN_HOLD_WAKE (none held, or nobody
   asleep: nothing). 1 if it woke the consumer, else 0. */
int me_chan_flush_reader(struct me_chan_producer *p);

/* Publish an empty INLINE descriptor (a signal: end of stream, a tick). 0, -EAGAIN. */
int me_chan_signal(struct me_chan_producer *p, uint8_t type, uint64_t id, uint8_t flags);

/* Sleep, without spinning, until the data ring has room (wait_space), or
   until the consumer released blocks (wait_blocks: `n` is the size of the
   loan that found its class empty). The consumer is asked to wake this end
   once half the ring is free (ME_CHAN_WAKE_SPACE), or half of the
   class's blocks are back (ME_CHAN_WAKE_BLOCKS), or when it has nothing more
   to give; each sleep lasts at most ME_RING_RECHECK_NS. wait_blocks paces
   itself first where it can (above: Pacing). 0 (there is room,
   or something to reap), -ETIMEDOUT, -EINTR. */
int me_chan_wait_space(struct me_chan_producer *p, int64_t timeout_ns);
int me_chan_wait_blocks(struct me_chan_producer *p, uint32_t n, int64_t timeout_ns);

/* After the consumer died or left: free every block it held (its owner tag,
   the completion ring, the unread descriptors of this producer), then reset
   this producer's completion ring and, for SPSC, the data ring. How many
   blocks came back. Only this producer's arena is touched. */
uint32_t me_chan_recover_consumer(struct me_chan_producer *p);

/* Give every magazine of this process back to the arena (before unmapping). */
void me_chan_producer_detach(struct me_chan_producer *p);

/* Consumer end over the data ring of `hub`. 0, -EINVAL. */
int me_chan_consumer_init(struct me_chan_consumer *c, void *hub, const struct me_shm_info *hub_info);

/* Attach producer segment `segment` (checked; for SPSC the hub itself, id 0). 0, -EINVAL, -EBUSY (attached). */
int me_chan_consumer_add(struct me_chan_consumer *c, uint16_t segment, void *seg, const struct me_shm_info *info);

/* The next descriptor: 1 and *f (parsed) with *payload the block's bytes in
   this mapping (NULL for a signal), 0 if nothing is ready, or -errno for a
   descriptor refused (f->reason says why when it is a frame error; its block,
   when it names a valid one, went back to its producer): -EBADMSG (bad CRC),
   -EINVAL (bad field, segment or offset), -ENOMSG, -EPROTONOSUPPORT. The
   block is tagged as the consumer's until me_chan_release. */
int me_chan_receive(struct me_chan_consumer *c, struct me_frame *f, uint8_t **payload);

/* Hand the block (segment, offset) back to its producer, waking it if it
   sleeps for blocks. 0, -EINVAL (no such segment), -ENOSPC (its completion
   ring is full: cannot happen with me_shm_completion_entries), -ESTALE (the
   producer died meanwhile: the block was recovered already). */
int me_chan_release(struct me_chan_consumer *c, uint16_t segment, uint64_t off);

/* Whether a descriptor is ready (in the batch or the ring). */
int me_chan_ready(struct me_chan_consumer *c);

/* The consumer has nothing more to release for now: wake the producers
   whose wake-ups were held back for their need (me_ring_flush_*).
   me_chan_receive does it when it finds nothing to deliver, and
   me_chan_wait_frames before it waits. How many it woke. */
uint32_t me_chan_flush(struct me_chan_consumer *c);

/* Wait for a descriptor (me_chan_ready): flush, then spin up to spin_ns and
   sleep on the data ring. 0, -ETIMEDOUT, -EINTR. */
int me_chan_wait_frames(struct me_chan_consumer *c, int64_t spin_ns, int64_t timeout_ns);

/* After producer `segment` died or left: for MPSC, its unfinished claims are
   skipped and its later descriptors dropped; its loans and its unread
   descriptors go back to its arena (owner tag, and `pid`'s magazines when
   pid > 0); SPSC: the data ring is reset. How many blocks came back. */
uint32_t me_chan_recover_producer(struct me_chan_consumer *c, uint16_t segment, uint32_t pid);

/* MPSC: whether producer slot `segment` can take a new producer (its stale
   descriptors are all behind the consumer). */
int me_chan_slot_free(struct me_chan_consumer *c, uint16_t segment);

/* Mark a recovered source usable again (a new producer attaches to it). */
void me_chan_source_reopen(struct me_chan_consumer *c, uint16_t segment);

#endif /* MCP_EDGE_ME_SHM_H */
