/* shm_internal.h - shared layouts of the segment header and the ring header, private to csrc/shm. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_SHM_INTERNAL_H
#define MCP_EDGE_SHM_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "me_shm.h"

#define SHM_LINE 64u
#define SHM_PAGE 4096u
#define RING_MAGIC 0x474E4952u /* "RING" */

struct shm_peer {
    _Atomic uint32_t pid;
    _Atomic uint32_t state;
};

/* The first page of a segment. Fields up to `peers` are written once at init. */
struct shm_header {
    uint8_t magic[ME_SHM_MAGIC_LEN];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t total;
    uint32_t flags;
    uint32_t creator_pid;
    uint16_t segment_id;
    uint16_t producers;
    uint32_t data_kind;
    uint32_t data_entries;
    uint32_t completion_entries;
    uint64_t data_off, data_bytes;
    uint64_t done_off, done_bytes;
    uint64_t arena_off, arena_bytes;
    uint8_t pad[SHM_LINE];
    struct shm_peer peers[1 + ME_SHM_MAX_PRODUCERS];
};

_Static_assert(sizeof(struct shm_header) <= ME_SHM_HEADER_BYTES, "segment header fits its page");

/* One side's wait word: `seq`, the futex word, bumped by a waker that saw
   sleepers; `waiting`, a bit per sleeper (the reader: bit 0; writers: bit
   id - 1, so a dead sleeper's bit can be cleared) and, on the reader's word,
   WAIT_ARMED while an eventfd reader waits; `need`, written by a sleeper
   before it sets its bit: how many entries (reader) or free slots (writers)
   it waits for. The waker enters the kernel only once that many are there,
   or when it has nothing more to give (me_ring_flush_*); 0 counts as 1. */
#define WAIT_READER 0x1u
#define WAIT_ARMED 0x2u
struct shm_wait {
    _Atomic uint64_t waiting;
    _Atomic uint32_t seq;
    _Atomic uint32_t need;
};

/* A ring's header: each index on its own line, each wait word on its own
   line, then the geometry (read at attach only). MPSC: a u64 sequence word
   per slot follows, then the slots. */
struct ring_shared {
    _Atomic uint64_t tail; /* SPSC: written by the writer; MPSC: claim position, CAS'd by writers */
    uint8_t pad0[SHM_LINE - 8];
    _Atomic uint64_t head; /* written by the reader */
    uint8_t pad1[SHM_LINE - 8];
    struct shm_wait reader; /* the reader sleeps here on an empty ring */
    uint8_t pad2[SHM_LINE - sizeof(struct shm_wait)];
    struct shm_wait writers; /* writers sleep here on a full ring */
    uint8_t pad3[SHM_LINE - sizeof(struct shm_wait)];
    uint32_t magic;
    uint32_t kind;
    uint32_t entries;
    uint32_t entry_size;
    uint8_t pad4[SHM_LINE - 16];
};

_Static_assert(sizeof(struct ring_shared) == 5 * SHM_LINE, "ring header: five cache lines");
_Static_assert(sizeof(struct ring_shared) == ME_RING_HEADER_BYTES, "ME_RING_HEADER_BYTES says where entries start");

/* MPSC slot sequence words: position << 8 | state. */
#define SEQ_FREE 0x00u          /* free for this position */
#define SEQ_READY 0x80u         /* | writer id: filled */
#define SEQ_ABANDONED 0xFFu     /* the claimer died: skip */
#define SEQ_STATE(s) ((uint32_t)((s) & 0xFFu))
#define SEQ_POS(s) ((s) >> 8)
#define SEQ(pos, state) ((uint64_t)(pos) << 8 | (state))

long me_shm_futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts);
void me_shm_cpu_relax(void);
void me_shm_eventfd_signal(int fd);

#endif /* MCP_EDGE_SHM_INTERNAL_H */
