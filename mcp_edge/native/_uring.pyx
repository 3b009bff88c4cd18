# cython: language_level=3
"""io_uring ring over the system liburing.

Operations are queued with ``prep_*`` (each holding its buffers until its
completion is reaped), submitted in one syscall with ``submit()``, and reaped
with ``reap()`` straight from the completion ring, without a syscall per
completion. ``read_batch`` runs a whole batch of reads in C without the GIL.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EBUSY, EINTR, ENOMEM
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from posix.fcntl cimport AT_FDCWD
from posix.uio cimport iovec

from mcp_edge.native._check cimport check
from mcp_edge.native._dio cimport BufferPool
from mcp_edge.native.includes.me_uring cimport (
    ME_OP_CLOSE,
    ME_OP_COUNT,
    ME_OP_FSYNC,
    ME_OP_OPENAT,
    ME_OP_READ,
    ME_OP_READV,
    ME_OP_STATX,
    ME_OP_WRITE,
    ME_OP_WRITEV,
    ME_RING_SQPOLL,
    me_cqe,
    me_ring_drain,
    me_ring_exit,
    me_ring_init,
    me_ring_op_name,
    me_ring_queue_close,
    me_ring_queue_fsync,
    me_ring_queue_openat,
    me_ring_queue_read,
    me_ring_queue_readv,
    me_ring_queue_statx,
    me_ring_queue_write,
    me_ring_queue_writev,
    me_ring_read_batch,
    me_ring_reap,
    me_ring_register_buffers,
    me_ring_register_eventfd,
    me_ring_register_files,
    me_ring_submit,
    me_ring_unregister_buffers,
    me_ring_unregister_files,
    statx,
)

DEF REAP_MAX = 256
STATX_BASIC_STATS = 0x7FF
STATX_DIOALIGN = 0x2000

_SETUP_FLAGS = {1 << 1: "sqpoll", 1 << 3: "cqsize", 1 << 4: "clamp", 1 << 8: "coop_taskrun",
                1 << 12: "single_issuer", 1 << 13: "defer_taskrun"}
_FEATURES = {1 << 0: "single_mmap", 1 << 1: "nodrop", 1 << 2: "submit_stable", 1 << 3: "rw_cur_pos",
             1 << 4: "cur_personality", 1 << 5: "fast_poll", 1 << 6: "poll_32bits", 1 << 7: "sqpoll_nonfixed",
             1 << 8: "ext_arg", 1 << 9: "native_workers", 1 << 10: "rsrc_tags", 1 << 11: "cqe_skip",
             1 << 12: "linked_file"}


cdef class _Pin:
    """Keeps what one in-flight operation points at alive until it completes."""
    cdef Py_buffer *views
    cdef int nviews
    cdef iovec *iov
    cdef statx *stx
    cdef object keep
    cdef int op

    def __dealloc__(self):
        cdef int i
        if self.views != NULL:
            for i in range(self.nviews):
                PyBuffer_Release(&self.views[i])
            free(self.views)
        if self.iov != NULL:
            free(self.iov)
        if self.stx != NULL:
            free(self.stx)


cdef _Pin _pin_buffers(object bufs, bint writable, int op):
    cdef _Pin pin = _Pin.__new__(_Pin)
    pin.op = op
    cdef int n = len(bufs)
    pin.views = <Py_buffer *>malloc(max(n, 1) * sizeof(Py_buffer))
    pin.iov = <iovec *>malloc(max(n, 1) * sizeof(iovec))
    if pin.views == NULL or pin.iov == NULL:
        raise MemoryError()
    cdef int flags = PyBUF_WRITABLE if writable else PyBUF_SIMPLE
    for i, b in enumerate(bufs):
        PyObject_GetBuffer(b, &pin.views[i], flags)
        pin.nviews = i + 1
        pin.iov[i].iov_base = pin.views[i].buf
        pin.iov[i].iov_len = <size_t>pin.views[i].len
    return pin


def _statx_dict(_Pin pin):
    cdef statx *s = pin.stx
    return {
        "mask": s.stx_mask, "mode": s.stx_mode, "size": s.stx_size, "blocks": s.stx_blocks,
        "blksize": s.stx_blksize, "nlink": s.stx_nlink, "uid": s.stx_uid, "gid": s.stx_gid,
        "ino": s.stx_ino, "mtime_ns": s.stx_mtime.tv_sec * 1_000_000_000 + s.stx_mtime.tv_nsec,
        "dio_mem_align": s.stx_dio_mem_align if s.stx_mask & STATX_DIOALIGN else 0,
        "dio_offset_align": s.stx_dio_offset_align if s.stx_mask & STATX_DIOALIGN else 0,
    }


def op_name(int op):
    """The name of an operation code, as used in errors."""
    return me_ring_op_name(op).decode()


cdef class Ring:
    """Ring(entries=256, sqpoll=False, sq_idle_ms=0)

    int me_ring_init(me_ring *r, unsigned entries, unsigned options, unsigned sq_idle_ms)

    An io_uring instance. Setup flags (single issuer, cooperative task run) are
    probed against the running kernel; ``setup_flags`` and ``supported_ops``
    say what this kernel gave. SQPOLL is never a default (it is pathological on
    small machines).
    """

    def __cinit__(self, unsigned entries=256, bint sqpoll=False, unsigned sq_idle_ms=0):
        self._pins = {}
        self._open = False
        self._buffers = None
        self._files = None
        if entries == 0:
            raise ValueError("a ring needs at least one entry")
        check(me_ring_init(&self._r, entries, ME_RING_SQPOLL if sqpoll else 0, sq_idle_ms), "io_uring_setup")
        self._open = True

    def __dealloc__(self):
        cdef me_cqe cqes[REAP_MAX]
        cdef unsigned got = 0
        if self._open:
            self._open = False
            # The pins are released right after this: let what is in flight finish first, so the
            # kernel never writes into freed memory.
            while self._r.in_flight:
                if me_ring_drain(&self._r, cqes, REAP_MAX, &got) < 0 or (got == 0 and self._r.in_flight == 0):
                    break
            me_ring_exit(&self._r)

    cdef int _ensure_open(self) except -1:
        if not self._open:
            raise ValueError("the ring is closed")
        return 0

    @property
    def closed(self):
        return not self._open

    @property
    def entries(self):
        return self._r.entries

    @property
    def cq_entries(self):
        return self._r.cq_entries

    @property
    def in_flight(self):
        return self._r.in_flight

    @property
    def queued(self):
        return self._r.queued

    @property
    def setup_flags(self):
        return [name for bit, name in _SETUP_FLAGS.items() if self._r.setup_flags & bit]

    @property
    def features(self):
        return [name for bit, name in _FEATURES.items() if self._r.features & bit]

    @property
    def supported_ops(self):
        return {op_name(i): bool(self._r.supported[i]) for i in range(ME_OP_COUNT)}

    # -- registration ------------------------------------------------------

    def register_buffers(self, buffers):
        """Register writable buffers; op ``buf_index`` i then means buffers[i].

        ENOMEM here is almost always RLIMIT_MEMLOCK: the message says so.
        """
        self._ensure_open()
        if self._buffers is not None:
            raise ValueError("buffers are already registered: unregister_buffers() first")
        pin = _pin_buffers(list(buffers), True, ME_OP_READ)
        self._register(pin.iov, pin.nviews, sum(pin.views[i].len for i in range(pin.nviews)))
        self._buffers = pin

    def register_pool(self, BufferPool pool):
        """Register every buffer of ``pool``; PoolBuffer.index is its buf_index."""
        self._ensure_open()
        if self._buffers is not None:
            raise ValueError("buffers are already registered: unregister_buffers() first")
        cdef _Pin pin = _Pin.__new__(_Pin)
        pin.iov = <iovec *>malloc(pool._count * sizeof(iovec))
        if pin.iov == NULL:
            raise MemoryError()
        pool.fill_iovecs(pin.iov)
        pin.keep = pool
        self._register(pin.iov, <int>pool._count, pool._count * pool._size)
        self._buffers = pin

    cdef int _register(self, iovec *iov, int n, Py_ssize_t total) except -1:
        cdef int rc = me_ring_register_buffers(&self._r, iov, n)
        if rc == -ENOMEM:
            import resource
            soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft / 1048576:.1f} MiB"
            raise OSError(ENOMEM, f"registering {total / 1048576:.1f} MiB of buffers with io_uring needs "
                                  f"locked memory beyond RLIMIT_MEMLOCK ({limit}): raise it (ulimit -l, "
                                  f"LimitMEMLOCK= in the systemd unit) or use a smaller pool")
        return check(rc, "io_uring_register_buffers")

    def unregister_buffers(self):
        self._ensure_open()
        if self._buffers is None:
            return
        if self._r.in_flight:
            raise BlockingIOError(f"{self._r.in_flight} operations in flight may use the registered buffers")
        check(me_ring_unregister_buffers(&self._r), "io_uring_unregister_buffers")
        self._buffers = None

    def register_files(self, fds):
        """Register file descriptors; with ``fixed_file=True`` an op's fd is an index into them."""
        self._ensure_open()
        cdef list lst = [int(fd) for fd in fds]
        cdef int *arr = <int *>malloc(max(len(lst), 1) * sizeof(int))
        if arr == NULL:
            raise MemoryError()
        try:
            for i, fd in enumerate(lst):
                arr[i] = fd
            check(me_ring_register_files(&self._r, arr, len(lst)), "io_uring_register_files")
        finally:
            free(arr)
        self._files = lst

    def unregister_files(self):
        self._ensure_open()
        if self._files is not None:
            check(me_ring_unregister_files(&self._r), "io_uring_unregister_files")
            self._files = None

    def register_eventfd(self, int efd):
        """Have each completion signal eventfd ``efd`` (how asyncio learns of them)."""
        self._ensure_open()
        check(me_ring_register_eventfd(&self._r, efd), "io_uring_register_eventfd")

    # -- queueing ----------------------------------------------------------

    cdef int _space(self) except -1:
        # A full submission queue is flushed to the kernel; the caller never sees EBUSY.
        if self._r.queued >= self._r.entries:
            self.submit()
        return 0

    cdef int _queued(self, int rc, uint64_t ud, object pin, int op) except -1:
        check(rc, f"queue {op_name(op)}")
        if pin is not None:
            (<_Pin>pin).op = op
        self._pins[ud] = pin if pin is not None else op
        return 0

    def prep_read(self, int fd, buf, unsigned long long offset, unsigned long long user_data,
                  int buf_index=-1, bint fixed_file=False):
        """Queue a read of len(buf) bytes at ``offset`` into ``buf`` (kept alive until reaped)."""
        self._ensure_open()
        self._space()
        cdef _Pin pin = _pin_buffers((buf,), True, ME_OP_READ)
        self._queued(me_ring_queue_read(&self._r, fd, pin.views[0].buf, <unsigned>pin.views[0].len, offset,
                                        buf_index, fixed_file, user_data), user_data, pin, ME_OP_READ)

    def prep_write(self, int fd, data, unsigned long long offset, unsigned long long user_data,
                   int buf_index=-1, bint fixed_file=False):
        """Queue a write of ``data`` at ``offset``."""
        self._ensure_open()
        self._space()
        cdef _Pin pin = _pin_buffers((data,), False, ME_OP_WRITE)
        self._queued(me_ring_queue_write(&self._r, fd, pin.views[0].buf, <unsigned>pin.views[0].len, offset,
                                         buf_index, fixed_file, user_data), user_data, pin, ME_OP_WRITE)

    def prep_readv(self, int fd, buffers, unsigned long long offset, unsigned long long user_data,
                   bint fixed_file=False):
        """Queue a vectored read into ``buffers`` at ``offset``."""
        self._ensure_open()
        self._space()
        cdef _Pin pin = _pin_buffers(list(buffers), True, ME_OP_READV)
        self._queued(me_ring_queue_readv(&self._r, fd, pin.iov, pin.nviews, offset, fixed_file, user_data),
                     user_data, pin, ME_OP_READV)

    def prep_writev(self, int fd, buffers, unsigned long long offset, unsigned long long user_data,
                    bint fixed_file=False):
        """Queue a vectored write of ``buffers`` at ``offset``."""
        self._ensure_open()
        self._space()
        cdef _Pin pin = _pin_buffers(list(buffers), False, ME_OP_WRITEV)
        self._queued(me_ring_queue_writev(&self._r, fd, pin.iov, pin.nviews, offset, fixed_file, user_data),
                     user_data, pin, ME_OP_WRITEV)

    def prep_fsync(self, int fd, unsigned long long user_data, bint datasync=False, bint fixed_file=False):
        """Queue fsync (or fdatasync with ``datasync``)."""
        self._ensure_open()
        self._space()
        self._queued(me_ring_queue_fsync(&self._r, fd, datasync, fixed_file, user_data), user_data, None,
                     ME_OP_FSYNC)

    def prep_openat(self, path, int flags, unsigned mode, unsigned long long user_data, int dir_fd=AT_FDCWD):
        """Queue openat(dir_fd, path, flags, mode); the result is the new fd."""
        self._ensure_open()
        self._space()
        cdef _Pin pin = _Pin.__new__(_Pin)
        pin.keep = bytes(path, "utf-8", "surrogateescape") if isinstance(path, str) else bytes(path)
        self._queued(me_ring_queue_openat(&self._r, dir_fd, <bytes>pin.keep, flags, mode, user_data),
                     user_data, pin, ME_OP_OPENAT)

    def prep_close(self, int fd, unsigned long long user_data):
        """Queue close(fd)."""
        self._ensure_open()
        self._space()
        self._queued(me_ring_queue_close(&self._r, fd, user_data), user_data, None, ME_OP_CLOSE)

    def prep_statx(self, path, unsigned long long user_data, int flags=0, unsigned mask=STATX_BASIC_STATS,
                   int dir_fd=AT_FDCWD):
        """Queue statx; reap() gives the fields as a dict."""
        self._ensure_open()
        self._space()
        cdef _Pin pin = _Pin.__new__(_Pin)
        pin.keep = bytes(path, "utf-8", "surrogateescape") if isinstance(path, str) else bytes(path)
        pin.stx = <statx *>malloc(sizeof(statx))
        if pin.stx == NULL:
            raise MemoryError()
        memset(pin.stx, 0, sizeof(statx))
        self._queued(me_ring_queue_statx(&self._r, dir_fd, <bytes>pin.keep, flags, mask, pin.stx, user_data),
                     user_data, pin, ME_OP_STATX)

    # -- submission and completion ------------------------------------------

    def submit(self, unsigned wait=0):
        """submit(wait=0) -> int

        int me_ring_submit(me_ring *r, unsigned wait)

        Submit everything queued in one syscall; with ``wait`` also block (GIL
        released, Ctrl-C honoured) until that many completions are ready.
        """
        self._ensure_open()
        cdef int rc
        while True:
            with nogil:
                rc = me_ring_submit(&self._r, wait)
            if rc == -EINTR:
                PyErr_CheckSignals()
                continue
            if rc == -EBUSY:  # completion queue full: the caller must reap first
                return 0
            return check(rc, "io_uring_enter")

    def reap(self, unsigned max_completions=REAP_MAX):
        """reap(max_completions=256) -> list[tuple[int, int, int, object]]

        unsigned me_ring_reap(me_ring *r, me_cqe *out, unsigned max)

        Ready completions as (user_data, result, op, payload), read from the
        completion ring without a syscall; result is a byte count, an fd, or
        -errno. payload is the statx dict for statx, else None.
        """
        self._ensure_open()
        cdef me_cqe cqes[REAP_MAX]
        cdef unsigned n = me_ring_reap(&self._r, cqes, min(max_completions, REAP_MAX))
        out = []
        cdef object pin
        for i in range(n):
            pin = self._pins.pop(cqes[i].user_data, None)
            if isinstance(pin, _Pin):
                op = (<_Pin>pin).op
                payload = _statx_dict(pin) if op == ME_OP_STATX and cqes[i].res >= 0 else None
            else:
                op = pin if pin is not None else -1
                payload = None
            out.append((cqes[i].user_data, cqes[i].res, op, payload))
        return out

    def read_batch(self, int fd, buffers, offsets, unsigned depth=32, bint fixed_file=False, bint registered=False,
                   unsigned submit_batch=0):
        """read_batch(fd, buffers, offsets, depth=32, fixed_file=False, registered=False, submit_batch=0) -> list[int]

        int me_ring_read_batch(me_ring *r, int fd, int fixed_file, void *const *bufs, const int *buf_index,
                               unsigned len, const uint64_t *offsets, unsigned n, unsigned depth,
                               unsigned submit_batch, int32_t *results)

        Read len(buffers[i]) bytes at offsets[i] into each buffer, keeping
        ``depth`` reads in flight, in C with the GIL released. Reads go to the
        kernel ``submit_batch`` at a time as they are queued; 0 submits all
        that fit with each wait (one io_uring_enter per wait: best for page
        cache hits), 1 each as soon as it is queued (best for O_DIRECT: the
        device starts on it at once, as fio does). All buffers have
        one size. With ``registered`` the buffers are a registered pool's
        (PoolBuffer, whose index is used). Returns the byte counts; the first
        failed read raises OSError naming its offset.
        """
        self._ensure_open()
        if self._r.in_flight or self._r.queued:
            raise BlockingIOError("read_batch needs a ring with nothing else queued or in flight")
        cdef list bufs = list(buffers)
        cdef list offs = [int(o) for o in offsets]
        cdef unsigned n = len(bufs)
        if n != len(offs):
            raise ValueError(f"{n} buffers but {len(offs)} offsets")
        if n == 0:
            return []
        cdef _Pin pin = _pin_buffers(bufs, True, ME_OP_READ)
        cdef unsigned length = <unsigned>pin.views[0].len
        cdef void **ptrs = <void **>malloc(n * sizeof(void *))
        cdef int *idx = <int *>malloc(n * sizeof(int)) if registered else NULL
        cdef uint64_t *coffs = <uint64_t *>malloc(n * sizeof(uint64_t))
        cdef int32_t *res = <int32_t *>malloc(n * sizeof(int32_t))
        cdef int rc
        try:
            if ptrs == NULL or coffs == NULL or res == NULL or (registered and idx == NULL):
                raise MemoryError()
            for i in range(n):
                if pin.views[i].len != length:
                    raise ValueError(f"read_batch buffers must all be {length} bytes; buffer {i} is "
                                     f"{pin.views[i].len}")
                ptrs[i] = pin.views[i].buf
                coffs[i] = offs[i]
                if registered:
                    idx[i] = bufs[i].index
            with nogil:
                rc = me_ring_read_batch(&self._r, fd, fixed_file, ptrs, idx, length, coffs, n, depth, submit_batch,
                                        res)
            check(rc, "io_uring read batch")
            out = [res[i] for i in range(n)]
        finally:
            free(ptrs)
            free(idx)
            free(coffs)
            free(res)
        for i in range(n):
            if out[i] < 0:
                check(out[i], f"read of {length} bytes at offset {offs[i]}")
        return out

    def close(self):
        """close() -> list[tuple[int, int, int, object]]

        Cancel what is in flight, wait for every completion (so no buffer is
        freed under the kernel), tear the ring down; returns those completions.
        """
        if not self._open:
            return []
        cdef me_cqe cqes[REAP_MAX]
        cdef unsigned got = 0
        out = []
        cdef int rc = 0
        while self._r.in_flight or self._r.queued:
            with nogil:
                rc = me_ring_drain(&self._r, cqes, REAP_MAX, &got)
            for i in range(got):
                pin = self._pins.pop(cqes[i].user_data, None)
                op = (<_Pin>pin).op if isinstance(pin, _Pin) else (pin if pin is not None else -1)
                out.append((cqes[i].user_data, cqes[i].res, op, None))
            if rc < 0 or (got == 0 and self._r.in_flight == 0):
                # Nothing in flight and the queued entries could not be submitted (another thread of a
                # single-issuer ring, or the kernel refused): they never reached the kernel, so their
                # buffers are safe to release with the ring.
                break
        self._open = False
        me_ring_exit(&self._r)
        self._pins.clear()
        self._buffers = None
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
