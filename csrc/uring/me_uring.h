/* me_uring.h - io_uring ring over the system liburing: batched submission, syscall-free reaping. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_URING_H
#define MCP_EDGE_ME_URING_H

#include <stdint.h>
#include <sys/uio.h>

#include <liburing.h>

#include "../compat/me_uring_compat.h"

/* Operations, as named in errors and in the probe. */
#define ME_OP_READ     0
#define ME_OP_WRITE    1
#define ME_OP_READV    2
#define ME_OP_WRITEV   3
#define ME_OP_FSYNC    4
#define ME_OP_OPENAT   5
#define ME_OP_CLOSE    6
#define ME_OP_STATX    7
#define ME_OP_COUNT    8

/* Options of me_ring_init(). */
#define ME_RING_SQPOLL 1u
#define ME_RING_DEFER  2u /* prefer IORING_SETUP_DEFER_TASKRUN (completions posted only when we ask) */
#define ME_RING_NOCOOP 4u /* no cooperative task run (completions interrupt the task at once) */

typedef struct me_ring {
    struct io_uring ring;
    unsigned entries;     /* SQ entries */
    unsigned cq_entries;
    unsigned setup_flags; /* IORING_SETUP_* the kernel accepted */
    unsigned features;    /* IORING_FEAT_* the kernel reported */
    unsigned queued;      /* prepared, not yet submitted */
    unsigned in_flight;   /* submitted, completion not yet reaped */
    uint8_t supported[ME_OP_COUNT];
} me_ring;

typedef struct me_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} me_cqe;

/* Set up a ring of `entries` (rounded up by the kernel); the best setup flags
   the running kernel accepts are probed, never assumed. 0 or -errno. */
int me_ring_init(me_ring *r, unsigned entries, unsigned options, unsigned sq_idle_ms);
void me_ring_exit(me_ring *r);

/* Name of an ME_OP_*; "op" when out of range. */
const char *me_ring_op_name(int op);

int me_ring_register_buffers(me_ring *r, const struct iovec *iov, unsigned n);
int me_ring_unregister_buffers(me_ring *r);
int me_ring_register_files(me_ring *r, const int *fds, unsigned n);
int me_ring_unregister_files(me_ring *r);
int me_ring_register_eventfd(me_ring *r, int efd);

/* Queue one operation; 0, or -EBUSY when the submission queue is full (submit
   first). `fixed_file`: fd is an index into the registered files; `buf_index`
   >= 0: buf lies in registered buffer number buf_index. */
int me_ring_queue_read(me_ring *r, int fd, void *buf, unsigned len, uint64_t off, int buf_index, int fixed_file,
                       uint64_t ud);
int me_ring_queue_write(me_ring *r, int fd, const void *buf, unsigned len, uint64_t off, int buf_index,
                        int fixed_file, uint64_t ud);
int me_ring_queue_readv(me_ring *r, int fd, const struct iovec *iov, unsigned n, uint64_t off, int fixed_file,
                        uint64_t ud);
int me_ring_queue_writev(me_ring *r, int fd, const struct iovec *iov, unsigned n, uint64_t off, int fixed_file,
                         uint64_t ud);
int me_ring_queue_fsync(me_ring *r, int fd, int datasync, int fixed_file, uint64_t ud);
int me_ring_queue_openat(me_ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud);
int me_ring_queue_close(me_ring *r, int fd, uint64_t ud);
int me_ring_queue_statx(me_ring *r, int dfd, const char *path, int flags, unsigned mask, struct statx *out,
                        uint64_t ud);

/* Submit everything queued; with `wait` > 0 also wait until that many
   completions are ready. Count submitted, or -errno. */
int me_ring_submit(me_ring *r, unsigned wait);

/* Move up to `max` ready completions into out[] without a syscall; the count. */
unsigned me_ring_reap(me_ring *r, me_cqe *out, unsigned max);

/* Synchronous batch: `n` reads of `len` bytes at offsets[i] into bufs[i]
   (registered buffer buf_index[i] when buf_index is not NULL and >= 0), with at
   most `depth` in flight; results[i] gets each read's byte count or -errno.
   Reads are submitted `submit_batch` at a time as they are queued (0: all that
   fit, one io_uring_enter per wait). 0, or -errno when the ring itself fails.
   Runs without the GIL. */
int me_ring_read_batch(me_ring *r, int fd, int fixed_file, void *const *bufs, const int *buf_index, unsigned len,
                       const uint64_t *offsets, unsigned n, unsigned depth, unsigned submit_batch, int32_t *results);

/* Cancel everything in flight and reap until nothing is; 0 or -errno. */
int me_ring_drain(me_ring *r, me_cqe *out, unsigned max, unsigned *reaped);

/* Completions ready to reap. When the kernel flagged task work it left for this
   task (IORING_SQ_TASKRUN: a completion that needs a kernel transition to be
   posted) or an overflow, enters the kernel once to run it; else no syscall. */
unsigned me_ring_ready(me_ring *r);

/* me_ring_ready(), polled for up to `max_ns` nanoseconds while it is 0; the count. */
unsigned me_ring_spin(me_ring *r, uint64_t max_ns);

/* Whether the kernel signals the registered eventfd for new completions
   (IORING_CQ_EVENTFD_DISABLED, a flag in shared memory: no syscall). 0, or
   -EOPNOTSUPP where the kernel has no such flag. */
int me_ring_eventfd_enable(me_ring *r, int on);

/* preadv2(RWF_NOWAIT): the bytes that can be read from the page cache without
   blocking (0 at EOF), or -errno (-EAGAIN: nothing is cached there). */
int me_ring_read_nowait(int fd, const struct iovec *iov, int n, uint64_t off);

/* 1 when `fd` is open with O_DIRECT, 0 when not, -errno when fcntl fails. */
int me_ring_fd_direct(int fd);

#endif /* MCP_EDGE_ME_URING_H */
