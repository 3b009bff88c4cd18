# Declarations of csrc/uring/me_uring.h.
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from posix.uio cimport iovec


cdef extern from "<linux/stat.h>":
    struct statx_timestamp:
        long long tv_sec
        unsigned int tv_nsec

    struct statx:
        unsigned int stx_mask
        unsigned int stx_blksize
        unsigned long long stx_attributes
        unsigned int stx_nlink
        unsigned int stx_uid
        unsigned int stx_gid
        unsigned short stx_mode
        unsigned long long stx_ino
        unsigned long long stx_size
        unsigned long long stx_blocks
        statx_timestamp stx_mtime
        unsigned int stx_dio_mem_align
        unsigned int stx_dio_offset_align


cdef extern from "<errno.h>" nogil:
    enum: ECANCELED  # not in Cython's libc.errno


cdef extern from "uring/me_uring.h" nogil:
    int ME_OP_READ
    int ME_OP_WRITE
    int ME_OP_READV
    int ME_OP_WRITEV
    int ME_OP_FSYNC
    int ME_OP_OPENAT
    int ME_OP_CLOSE
    int ME_OP_STATX
    int ME_OP_COUNT
    unsigned ME_RING_SQPOLL
    unsigned ME_RING_DEFER
    unsigned ME_RING_NOCOOP

    ctypedef struct me_ring:
        unsigned entries
        unsigned cq_entries
        unsigned setup_flags
        unsigned features
        unsigned queued
        unsigned in_flight
        uint8_t supported[8]

    ctypedef struct me_cqe:
        uint64_t user_data
        int32_t res
        uint32_t flags

    int me_ring_init(me_ring *r, unsigned entries, unsigned options, unsigned sq_idle_ms)
    void me_ring_exit(me_ring *r)
    const char *me_ring_op_name(int op)
    int me_ring_register_buffers(me_ring *r, const iovec *iov, unsigned n)
    int me_ring_unregister_buffers(me_ring *r)
    int me_ring_register_files(me_ring *r, const int *fds, unsigned n)
    int me_ring_unregister_files(me_ring *r)
    int me_ring_register_eventfd(me_ring *r, int efd)
    int me_ring_queue_read(me_ring *r, int fd, void *buf, unsigned len, uint64_t off, int buf_index,
                           int fixed_file, uint64_t ud)
    int me_ring_queue_write(me_ring *r, int fd, const void *buf, unsigned len, uint64_t off, int buf_index,
                            int fixed_file, uint64_t ud)
    int me_ring_queue_readv(me_ring *r, int fd, const iovec *iov, unsigned n, uint64_t off, int fixed_file,
                            uint64_t ud)
    int me_ring_queue_writev(me_ring *r, int fd, const iovec *iov, unsigned n, uint64_t off, int fixed_file,
                             uint64_t ud)
    int me_ring_queue_fsync(me_ring *r, int fd, int datasync, int fixed_file, uint64_t ud)
    int me_ring_queue_openat(me_ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud)
    int me_ring_queue_close(me_ring *r, int fd, uint64_t ud)
    int me_ring_queue_statx(me_ring *r, int dfd, const char *path, int flags, unsigned mask, statx *out,
                            uint64_t ud)
    int me_ring_submit(me_ring *r, unsigned wait)
    unsigned me_ring_reap(me_ring *r, me_cqe *out, unsigned max)
    int me_ring_read_batch(me_ring *r, int fd, int fixed_file, void *const *bufs, const int *buf_index,
                           unsigned len, const uint64_t *offsets, unsigned n, unsigned depth, unsigned submit_batch,
                           int32_t *results)
    int me_ring_drain(me_ring *r, me_cqe *out, unsigned max, unsigned *reaped)
    unsigned me_ring_ready(me_ring *r)
    unsigned me_ring_spin(me_ring *r, uint64_t max_ns)
    int me_ring_eventfd_enable(me_ring *r, int on)
    int me_ring_read_nowait(int fd, const iovec *iov, int n, uint64_t off)
    int me_ring_fd_direct(int fd)
