/* uring.c - io_uring ring: probed setup, queueing, batched submit and syscall-free reaping. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_uring.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

static const char *const op_names[ME_OP_COUNT] = {
    "read", "write", "readv", "writev", "fsync", "openat", "close", "statx",
};
static const int op_codes[ME_OP_COUNT] = {
    IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READV, IORING_OP_WRITEV,
    IORING_OP_FSYNC, IORING_OP_OPENAT, IORING_OP_CLOSE, IORING_OP_STATX,
};

const char *me_ring_op_name(int op)
{
    return (op >= 0 && op < ME_OP_COUNT) ? op_names[op] : "op";
}

int me_ring_init(me_ring *r, unsigned entries, unsigned options, unsigned sq_idle_ms)
{
    memset(r, 0, sizeof *r);
    /* Most wanted first; each is dropped when the kernel refuses it (EINVAL). Cooperative task run: a
       completion that needs this task in the kernel to be posted waits for its next transition instead of an
       IPI; TASKRUN_FLAG makes the kernel say so in the SQ flags, which me_ring_ready() reads, so a poller
       enters the kernel only when there is something to post. */
    const unsigned coop = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    const unsigned defer = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    unsigned optional[] = {defer, IORING_SETUP_SINGLE_ISSUER | coop, coop, IORING_SETUP_COOP_TASKRUN,
                           IORING_SETUP_SINGLE_ISSUER, 0};
    int rc = -EINVAL;
    unsigned first = (options & ME_RING_DEFER) ? 0 : (options & ME_RING_NOCOOP) ? 4 : 1;
    for (unsigned i = first; i < sizeof optional / sizeof optional[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE | optional[i];
        p.cq_entries = entries * 2;
        if (options & ME_RING_SQPOLL) {
            p.flags |= IORING_SETUP_SQPOLL;
            /* not with SQPOLL */
            p.flags &= ~(unsigned)(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                                   IORING_SETUP_DEFER_TASKRUN);
            p.sq_thread_idle = sq_idle_ms ? sq_idle_ms : 50;
        }
        rc = io_uring_queue_init_params(entries, &r->ring, &p);
        if (rc == 0) {
            r->entries = p.sq_entries;
            r->cq_entries = p.cq_entries;
            r->setup_flags = p.flags;
            r->features = p.features;
            break;
        }
        if (rc != -EINVAL)
            return rc;
    }
    if (rc < 0)
        return rc;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
    for (int i = 0; i < ME_OP_COUNT; i++)
        r->supported[i] = probe ? (uint8_t)io_uring_opcode_supported(probe, op_codes[i]) : 0;
    if (probe)
        io_uring_free_probe(probe);
    return 0;
}

void me_ring_exit(me_ring *r)
{
    io_uring_queue_exit(&r->ring);
}

int me_ring_register_buffers(me_ring *r, const struct iovec *iov, unsigned n)
{
    return io_uring_register_buffers(&r->ring, iov, n);
}

int me_ring_unregister_buffers(me_ring *r)
{
    return io_uring_unregister_buffers(&r->ring);
}

int me_ring_register_files(me_ring *r, const int *fds, unsigned n)
{
    return io_uring_register_files(&r->ring, fds, n);
}

int me_ring_unregister_files(me_ring *r)
{
    return io_uring_unregister_files(&r->ring);
}

int me_ring_register_eventfd(me_ring *r, int efd)
{
    return io_uring_register_eventfd(&r->ring, efd);
}

static struct io_uring_sqe *next_sqe(me_ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (sqe)
        r->queued++;
    return sqe;
}

static void finish(struct io_uring_sqe *sqe, int fixed_file, uint64_t ud)
{
    if (fixed_file)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ud);
}

int me_ring_queue_read(me_ring *r, int fd, void *buf, unsigned len, uint64_t off, int buf_index, int fixed_file,
                       uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    if (buf_index >= 0)
        io_uring_prep_read_fixed(sqe, fd, buf, len, off, buf_index);
    else
        io_uring_prep_read(sqe, fd, buf, len, off);
    finish(sqe, fixed_file, ud);
    return 0;
}

int me_ring_queue_write(me_ring *r, int fd, const void *buf, unsigned len, uint64_t off, int buf_index,
                        int fixed_file, uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    if (buf_index >= 0)
        io_uring_prep_write_fixed(sqe, fd, buf, len, off, buf_index);
    else
        io_uring_prep_write(sqe, fd, buf, len, off);
    finish(sqe, fixed_file, ud);
    return 0;
}

int me_ring_queue_readv(me_ring *r, int fd, const struct iovec *iov, unsigned n, uint64_t off, int fixed_file,
                        uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_readv(sqe, fd, iov, n, off);
    finish(sqe, fixed_file, ud);
    return 0;
}

int me_ring_queue_writev(me_ring *r, int fd, const struct iovec *iov, unsigned n, uint64_t off, int fixed_file,
                         uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_writev(sqe, fd, iov, n, off);
    finish(sqe, fixed_file, ud);
    return 0;
}

int me_ring_queue_fsync(me_ring *r, int fd, int datasync, int fixed_file, uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    finish(sqe, fixed_file, ud);
    return 0;
}

int me_ring_queue_openat(me_ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_openat(sqe, dfd, path, flags, mode);
    finish(sqe, 0, ud);
    return 0;
}

int me_ring_queue_close(me_ring *r, int fd, uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_close(sqe, fd);
    finish(sqe, 0, ud);
    return 0;
}

int me_ring_queue_statx(me_ring *r, int dfd, const char *path, int flags, unsigned mask, struct statx *out,
                        uint64_t ud)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_statx(sqe, dfd, path, flags, mask, out);
    finish(sqe, 0, ud);
    return 0;
}

int me_ring_submit(me_ring *r, unsigned wait)
{
    int rc = wait ? io_uring_submit_and_wait(&r->ring, wait) : io_uring_submit(&r->ring);
    if (rc > 0) {
        r->in_flight += (unsigned)rc;
        r->queued -= (unsigned)rc <= r->queued ? (unsigned)rc : r->queued;
    }
    return rc;
}

static int needs_enter(me_ring *r)
{
    return (IO_URING_READ_ONCE(*r->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

/* Run the task work the kernel left for us, which posts completions. The eventfd is off meanwhile: those
   completions are reaped right after, and a signal for them would only wake the loop for nothing. Work
   added while it is off sets the flag again, so the loop runs until there is none (then it is back on). */
static void run_task_work(me_ring *r)
{
    unsigned *cq_flags = r->ring.cq.kflags;
    int toggle = cq_flags && !(IO_URING_READ_ONCE(*cq_flags) & IORING_CQ_EVENTFD_DISABLED);
    for (int round = 0; round < 4; round++) { /* bounded: the kernel may leave the flag up (another thread's call) */
        if (toggle)
            io_uring_cq_eventfd_toggle(&r->ring, false);
        int rc = io_uring_get_events(&r->ring);
        if (toggle)
            io_uring_cq_eventfd_toggle(&r->ring, true);
        if (rc < 0 || !needs_enter(r) || io_uring_cq_has_overflow(&r->ring))
            break;
    }
}

unsigned me_ring_ready(me_ring *r)
{
    if (needs_enter(r))
        run_task_work(r);
    return io_uring_cq_ready(&r->ring);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

unsigned me_ring_spin(me_ring *r, uint64_t max_ns)
{
    unsigned n = me_ring_ready(r);
    if (n || !max_ns)
        return n;
    uint64_t end = now_ns() + max_ns;
    do {
        for (int i = 0; i < 16; i++)
            cpu_relax();
        n = me_ring_ready(r);
    } while (!n && now_ns() < end);
    return n;
}

int me_ring_eventfd_enable(me_ring *r, int on)
{
    return io_uring_cq_eventfd_toggle(&r->ring, on != 0);
}

int me_ring_read_nowait(int fd, const struct iovec *iov, int n, uint64_t off)
{
    ssize_t got = preadv2(fd, iov, n, (off_t)off, RWF_NOWAIT);
    return got < 0 ? -errno : (int)got;
}

int me_ring_fd_direct(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -errno : (fl & O_DIRECT) != 0;
}

unsigned me_ring_reap(me_ring *r, me_cqe *out, unsigned max)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    if (needs_enter(r))
        run_task_work(r);
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        if (n == max)
            break;
        out[n].user_data = cqe->user_data;
        out[n].res = cqe->res;
        out[n].flags = cqe->flags;
        n++;
    }
    io_uring_cq_advance(&r->ring, n);
    r->in_flight -= n <= r->in_flight ? n : r->in_flight;
    return n;
}

int me_ring_read_batch(me_ring *r, int fd, int fixed_file, void *const *bufs, const int *buf_index, unsigned len,
                       const uint64_t *offsets, unsigned n, unsigned depth, unsigned submit_batch, int32_t *results)
{
    if (depth == 0 || depth > r->entries)
        depth = r->entries;
    if (submit_batch == 0 || submit_batch > depth)
        submit_batch = depth;
    unsigned next = 0, done = 0, inflight = 0;
    while (done < n) {
        while (next < n && inflight < depth) {
            int idx = buf_index ? buf_index[next] : -1;
            if (me_ring_queue_read(r, fd, bufs[next], len, offsets[next], idx, fixed_file, next) < 0)
                break;
            next++;
            inflight++;
            /* Hand reads to the kernel `submit_batch` at a time as they are queued; what is left goes
               with the wait below. One at a time (fio's default) is what O_DIRECT wants: on virtio-blk
               here, refilling the whole queue in one io_uring_enter gives 15-20% fewer random 4 KiB
               reads at depth 32. Reads served from the page cache want the opposite (one enter for all:
               a syscall per read costs them 30%). */
            if (r->queued >= submit_batch && next < n && inflight < depth) {
                int rc = me_ring_submit(r, 0);
                if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
                    return rc;
            }
        }
        int rc = me_ring_submit(r, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            return rc;
        struct io_uring_cqe *cqe;
        unsigned head, got = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe)
        {
            results[cqe->user_data] = cqe->res;
            got++;
        }
        io_uring_cq_advance(&r->ring, got);
        r->in_flight -= got <= r->in_flight ? got : r->in_flight;
        inflight -= got;
        done += got;
    }
    return 0;
}

int me_ring_drain(me_ring *r, me_cqe *out, unsigned max, unsigned *reaped)
{
    *reaped = 0;
    if (r->queued)
        me_ring_submit(r, 0);
    if (r->in_flight) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (sqe) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64(sqe, UINT64_MAX); /* its own completion is dropped below */
            r->queued++;
            me_ring_submit(r, 0);
        }
    }
    while (r->in_flight && *reaped < max) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&r->ring, &cqe);
        if (rc < 0 && rc != -EINTR)
            return rc;
        unsigned got = me_ring_reap(r, out + *reaped, max - *reaped);
        unsigned kept = 0;
        for (unsigned i = 0; i < got; i++)
            if (out[*reaped + i].user_data != UINT64_MAX)
                out[*reaped + kept++] = out[*reaped + i];
        *reaped += kept;
    }
    return 0;
}
