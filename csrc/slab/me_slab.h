/* me_slab.h - slab arenas: size-class pools laid out in place (shared memory included), offsets only. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_SLAB_H
#define MCP_EDGE_ME_SLAB_H

#include <stddef.h>
#include <stdint.h>

/*
 * An arena is one contiguous range of memory (a private mapping, or a part of a
 * shared segment mapped at different addresses by different processes) holding:
 *
 *   offset 0      header: magic, version, the classes (free-list head, futex
 *                 word, counters), each class on its own cache lines
 *   then          per class, a metadata array: one 16-byte entry per block
 *                 (next index of the free list, state/owner word), apart from
 *                 the block bytes, so a write into a freed block cannot break
 *                 the list and a double free is caught on the state word
 *   then          per class, the blocks, each class starting on a 4 KiB offset
 *
 * Everything inside is an offset from the arena base, never a pointer: a block
 * is named by its offset, and every process maps the arena where it likes.
 *
 * Free lists are lock-free LIFOs of block indices with a 64-bit head (index in
 * bits 0-31, a tag bumped by every change in bits 32-63), compare-and-swapped:
 * ABA-safe between threads and between processes. The memory is touched at
 * init (pre-faulted) and never handed back to the kernel.
 *
 * Two ways in:
 * - me_slab_alloc / me_slab_free work on the shared lists only: any thread of
 *   any process that maps the arena, blocks freed for someone else.
 * - me_slab_alloc_cached / me_slab_free_cached go through the calling thread's
 *   magazine (a few block indices per class, bound to one arena at a time, the
 *   one it last allocated from): no shared write on the list in steady state.
 *   A free from a thread whose magazine is bound elsewhere (or nowhere) goes
 *   to the shared list, as does any free while someone waits on the class. Blocks in a magazine are in
 *   state CACHED, tagged with the caching process's pid, so a peer can recover
 *   them if that process dies (me_slab_reclaim_pid). Magazines go back to the
 *   list when full, at thread exit, at me_slab_cache_flush (this thread) and at
 *   me_slab_arena_detach (every thread of this process), which must be called
 *   before the arena's memory is unmapped.
 *
 * Errors are -errno: EINVAL (bad argument, or an offset that names no block),
 * ENOMEM (the class is empty), EMSGSIZE (larger than the largest class),
 * EALREADY (the block is already free), EUCLEAN (an arena whose shared state is
 * corrupt: a free-list index out of range), ETIMEDOUT, EINTR.
 */

#define ME_SLAB_MAX_CLASSES 16
#define ME_SLAB_MAGIC UINT64_C(0x313042414C53454D) /* "MESLAB01" read little-endian */
#define ME_SLAB_VERSION 1u
#define ME_SLAB_MIN_SIZE 64u                       /* class sizes: multiples of 64 ... */
#define ME_SLAB_MAX_SIZE (1u << 30)                /* ... up to 1 GiB */
#define ME_SLAB_MAX_COUNT (1u << 24)               /* blocks per class */
#define ME_SLAB_HEADER_BYTES 4096u
#define ME_SLAB_ALIGN 64u                          /* an arena base must be 64-byte aligned */
#define ME_SLAB_MAG_MAX 32u                        /* most block indices one thread keeps per class */

/* Block states (the high half of a block's state word; the low half is the owner tag or pid). */
#define ME_SLAB_FREE 0u
#define ME_SLAB_ALLOCATED 1u
#define ME_SLAB_CACHED 2u

struct me_slab_config {
    uint32_t nclasses;
    uint32_t size[ME_SLAB_MAX_CLASSES];  /* strictly increasing multiples of 64 */
    uint32_t count[ME_SLAB_MAX_CLASSES]; /* >= 1 each */
};

/* Magazines count their allocations and frees without a locked instruction
   and settle with the shared counters when they refill, give back or flush;
   me_slab_stats adds this process's unsettled share. So in_use is exact in the
   process that asks, and in others within the magazine sizes of the processes
   that cache; high_water is exact for one thread and may overstate by at most
   the magazine sizes with several. A process that dies leaves its unsettled
   share behind: me_slab_reclaim_* recount from the block states. */
struct me_slab_class_stats {
    uint64_t in_use;     /* blocks allocated now */
    uint64_t free;       /* count - in_use (some may sit in thread magazines) */
    uint64_t high_water; /* most blocks allocated at once */
    uint64_t failures;   /* allocations refused because the class was empty */
    uint64_t size;
    uint64_t count;
};

/* Bytes an arena with this layout needs; 0 if the config is invalid. */
size_t me_slab_arena_bytes(const struct me_slab_config *cfg);

/* Lay out an arena in [base, base+len) (base 64-byte aligned), every block
   free, and touch every page so none faults later. 0, -EINVAL (bad config or
   alignment), -ENOSPC (len too small). */
int me_slab_arena_init(void *base, size_t len, const struct me_slab_config *cfg);

/* Validate an arena laid out by someone else before using it (magic, version,
   classes within len, no overlaps). 0, -EINVAL, -EPROTONOSUPPORT (another
   version), -ENOSPC (the arena says it is larger than len). */
int me_slab_arena_check(const void *base, size_t len);

/* The layout of an initialised arena (cfg filled in). */
void me_slab_arena_config(const void *arena, struct me_slab_config *cfg);

/* Total bytes the arena occupies (as written at init). */
size_t me_slab_arena_size(const void *arena);

/* Class index a request of n bytes goes to; -EMSGSIZE if n is larger than the
   largest class (n = 0 takes the smallest). */
int me_slab_class_of(const void *arena, uint32_t n);

/* Block size of class cls, 0 if cls is out of range. */
uint32_t me_slab_class_size(const void *arena, uint32_t cls);

/* A block of >= n bytes from the smallest class that fits; its offset from
   the arena base, or -ENOMEM (class empty), -EMSGSIZE (n too large),
   -EUCLEAN (corrupt list). owner: tag stored with the block (0 = this process;
   ring or peer ids otherwise). Shared lists only. */
int64_t me_slab_alloc(void *arena, uint32_t n, uint32_t owner);

/* Same from class cls exactly (-EINVAL if out of range). */
int64_t me_slab_alloc_class(void *arena, uint32_t cls, uint32_t owner);

/* Free the block at off to the shared list. 0, -EINVAL (off names no block),
   -EALREADY (already free or sitting in a magazine). Wakes me_slab_wait()ers. */
int me_slab_free(void *arena, uint64_t off);

/* Through this thread's magazine (see above). Same results as the plain pair. */
int64_t me_slab_alloc_cached(void *arena, uint32_t cls, uint32_t owner);
int me_slab_free_cached(void *arena, uint64_t off);

/* Give this thread's magazine back to the list, if it is bound to arena. */
void me_slab_cache_flush(void *arena);

/* Give back the magazines of every thread of this process bound to arena and
   unbind them; call before unmapping or abandoning the arena, when no thread
   of this process uses it any more. */
void me_slab_arena_detach(void *arena);

/* Class and index of the block at off, and whether off names one: 0 or -EINVAL. */
int me_slab_locate(const void *arena, uint64_t off, uint32_t *cls, uint32_t *index);

/* Block state word (ME_SLAB_FREE/ALLOCATED/CACHED in bits 32-63, owner or
   pid in bits 0-31) of the block at off, or -EINVAL. */
int64_t me_slab_block_state(const void *arena, uint64_t off);

/* Retag an allocated block (handed to a peer or a ring). 0, -EINVAL,
   -EALREADY (the block is free). */
int me_slab_set_owner(void *arena, uint64_t off, uint32_t owner);

/* Free every allocated block tagged owner (a dead peer's); how many. Then
   the in-use counts are recounted from the block states. */
uint32_t me_slab_reclaim_owner(void *arena, uint32_t owner);

/* Put back every block sitting in the magazines of process pid (dead); how many. */
uint32_t me_slab_reclaim_pid(void *arena, uint32_t pid);

/* Sleep until class cls may have a free block on its shared list: 0 (look
   again: it may be gone by then), -ETIMEDOUT, -EINTR (a signal: the caller
   checks it and waits again), -EINVAL. timeout_ns < 0 waits without limit.
   A futex on a word in the arena, shared between processes. */
int me_slab_wait(void *arena, uint32_t cls, int64_t timeout_ns);

/* Counters of class cls (zeros if out of range). */
void me_slab_stats(const void *arena, uint32_t cls, struct me_slab_class_stats *out);

/* Benchmark loops, timed in C with CLOCK_MONOTONIC: iters alloc+free pairs of
   class cls on arena (cached: through the magazine), or of malloc/free given
   as pointers (glibc's, or one loaded with dlopen). Nanoseconds in total, or
   -errno from the first failing call. */
int64_t me_slab_bench_pairs(void *arena, uint32_t cls, uint64_t iters, int cached);
int64_t me_slab_bench_malloc(void *(*alloc)(size_t), void (*release)(void *), size_t n, uint64_t iters);

#endif /* MCP_EDGE_ME_SLAB_H */
