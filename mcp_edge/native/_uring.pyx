# cython: language_level=3
"""io_uring ring over the system liburing.

Operations are queued with ``prep_*`` (each holding its buffers until its
completion is reaped), submitted in one syscall with ``submit()``, and reaped
with ``reap()`` straight from the completion ring, without a syscall per
completion. ``read_batch`` runs a whole batch of reads in C without the GIL.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.errno cimport EAGAIN, EBUSY, EINTR, ENOMEM
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset, strerror
from posix.fcntl cimport AT_FDCWD
from posix.uio cimport iovec
from posix.unistd cimport close as c_close
from posix.unistd cimport read as c_read

from mcp_edge.native._check cimport check
from mcp_edge.native._dio cimport AlignedBuffer, BufferPool, PoolBuffer, _Memory
from mcp_edge.native.includes.me_uring cimport (
    ECANCELED,
    ME_OP_CLOSE,
    ME_OP_COUNT,
    ME_OP_FSYNC,
    ME_OP_OPENAT,
    ME_OP_READ,
    ME_OP_READV,
    ME_OP_STATX,
    ME_OP_WRITE,
    ME_OP_WRITEV,
    ME_RING_DEFER,
    ME_RING_NOCOOP,
    ME_RING_SQPOLL,
    me_cqe,
    me_ring_drain,
    me_ring_eventfd_enable,
    me_ring_exit,
    me_ring_fd_direct,
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
    me_ring_read_nowait,
    me_ring_ready,
    me_ring_reap,
    me_ring_register_buffers,
    me_ring_register_eventfd,
    me_ring_register_files,
    me_ring_spin,
    me_ring_submit,
    me_ring_unregister_buffers,
    me_ring_unregister_files,
    statx,
)

import collections
import functools

DEF REAP_MAX = 256
STATX_BASIC_STATS = 0x7FF
STATX_DIOALIGN = 0x2000

_SETUP_FLAGS = {1 << 1: "sqpoll", 1 << 3: "cqsize", 1 << 4: "clamp", 1 << 8: "coop_taskrun",
                1 << 9: "taskrun_flag", 1 << 12: "single_issuer", 1 << 13: "defer_taskrun"}
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
    return _statx_values(pin.stx)


cdef dict _statx_values(statx *s):
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
    """Ring(entries=256, sqpoll=False, sq_idle_ms=0, defer_taskrun=False)

    int me_ring_init(me_ring *r, unsigned entries, unsigned options, unsigned sq_idle_ms)

    An io_uring instance. Setup flags (single issuer, cooperative task run) are
    probed against the running kernel; ``setup_flags`` and ``supported_ops``
    say what this kernel gave. SQPOLL is never a default (it is pathological on
    small machines).
    """

    def __cinit__(self, unsigned entries=256, bint sqpoll=False, unsigned sq_idle_ms=0, bint defer_taskrun=False,
                  bint coop_taskrun=True):
        self._pins = {}
        self._open = False
        self._buffers = None
        self._files = None
        if entries == 0:
            raise ValueError("a ring needs at least one entry")
        cdef unsigned options = ((ME_RING_SQPOLL if sqpoll else 0) | (ME_RING_DEFER if defer_taskrun else 0)
                                 | (0 if coop_taskrun else ME_RING_NOCOOP))
        check(me_ring_init(&self._r, entries, options, sq_idle_ms), "io_uring_setup")
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


# -- the asyncio side ----------------------------------------------------------------------------------------

DEF CHUNK_SHIFT = 6  # slots are allocated 64 at a time and never move (the kernel may point into a slot's iovecs)
DEF CHUNK = 1 << CHUNK_SHIFT
DEF NO_SLOT = -1
DEF FD_MEMO = 1024
DEF SPIN_MISSES = 4  # polls of an idle ring that found nothing, in a row, before polling rests
DEF SPIN_REST = 64   # operations that then go straight to the eventfd


cdef struct Slot:
    PyObject *fut      # the awaiter's future (owned); NULL while the slot is free
    PyObject *keep     # openat/statx: the path bytes (owned)
    Py_buffer view     # read/write: the one buffer, pinned until the completion is reaped
    Py_buffer *views   # readv/writev: nviews pinned buffers
    iovec *iov         # readv/writev: their iovecs
    statx *stx         # statx: what the kernel fills in
    uint64_t offset
    int32_t base       # bytes read inline (RWF_NOWAIT) before the ring took over the rest
    int nviews         # buffers pinned: 0, 1 (view), or n (views)
    int kind           # ME_OP_*
    int fd
    int buf_index      # registered buffer, or -1
    int flags          # openat flags; fsync: datasync
    unsigned mode
    unsigned length    # read/write: bytes asked for (view.len - base on the ring)
    int next           # the free list, or the backlog, through slot numbers


cdef dict _KINDS = {op_name(i): i for i in range(ME_OP_COUNT)}


@cython.no_gc_clear  # __dealloc__ needs the ring, to let what is in flight finish before slots are freed
cdef class AsyncRing:
    """AsyncRing(ring, efd, errors, precheck, refuse, fatal, alignment)

    The asyncio side of a Ring: operations become futures, completions resolve
    them. Everything an operation needs until its completion (the future, the
    pinned buffers, iovecs, the statx block) lives in a slot of a C table whose
    number is the operation's user_data, so an operation costs no Python object
    but its future. One eventfd wake-up (``on_ready``, the loop's reader
    callback) reaps every ready completion and resolves the futures in one
    pass. Operations queued in one loop iteration share one io_uring_enter
    (``flush``, scheduled once per iteration, after the tasks that completions
    woke); operations beyond the completion queue's size wait in a backlog, in
    order.

    Two shortcuts skip the loop entirely, each within a budget of ``inline``
    completions per loop iteration (then the awaiter yields as usual, so one
    coroutine cannot starve the loop): a read of a buffered file first tries
    ``preadv2(RWF_NOWAIT)``, which returns what the page cache holds without
    blocking (the rest, if any, goes to the ring); and an operation that finds
    the ring idle is submitted at once and the completion queue polled for up
    to ``spin_ns`` before the loop is left to wait for the eventfd.

    ``errors(kind, fd, buffers, offset, path, datasync, err, closed)`` builds
    the exception of a failed operation; ``precheck(kind, fd, buffer, offset)``
    raises what the engine's checks raise (read-only buffer, O_DIRECT
    alignment); ``refuse(loop)`` raises why this object cannot take operations
    now (closed, another thread), or binds the engine to ``loop``, the running
    loop; ``fatal(exc)`` is told when the kernel refuses a submission for good;
    ``alignment`` is a module whose ``_strictest`` is the largest O_DIRECT
    alignment seen. Single-threaded: only the thread that created it may call
    it (but ``close`` of an idle one, and ``pending``).
    """

    cdef Ring _ring
    cdef unsigned long _owner
    cdef int _efd
    cdef object _errors
    cdef object _precheck
    cdef object _refuse
    cdef object _fatal
    cdef bint _failed
    cdef object _alignment
    cdef object _loop
    cdef object _create_future
    cdef object _call_soon
    cdef object _flush_cb
    cdef object _ready
    cdef bint _base_loop
    cdef object _poll_cb
    cdef bint _poll_scheduled
    cdef int _spin_misses
    cdef int _spin_skip
    cdef object _get_loop
    cdef BufferPool _pool
    cdef Slot **_chunks
    cdef int _nchunks
    cdef int _free
    cdef int _backlog_head
    cdef int _backlog_tail
    cdef int _backlog_len
    cdef int _in_ring
    cdef int _used
    cdef int _capacity
    cdef bint _closed
    cdef bint _flush_scheduled
    cdef int _own
    cdef bint _own_found
    cdef int _own_res
    cdef int _inline_left
    cdef public unsigned long spin_ns
    cdef unsigned long long _n_nowait_hit, _n_nowait_miss, _n_spin_hit, _n_spin_miss, _n_wakeups, _n_enters
    cdef unsigned long long _n_ops, _n_read_bytes, _n_written_bytes
    cdef public int inline
    cdef public bint nowait
    cdef public int batch
    cdef public int eager
    cdef unsigned char _fd_direct[FD_MEMO]  # per fd: 0 not known, 1 buffered, 2 O_DIRECT (when last asked)

    def __cinit__(self, Ring ring, int efd, errors, precheck, refuse, fatal, alignment):
        self._owner = PyThread_get_thread_ident()
        self._ring = ring
        self._efd = efd
        self._errors = errors
        self._precheck = precheck
        self._refuse = refuse
        self._fatal = fatal
        self._alignment = alignment
        self._free = NO_SLOT
        self._backlog_head = self._backlog_tail = NO_SLOT
        self._capacity = ring._r.cq_entries  # never more in the ring than the CQ holds: nothing overflows
        self._flush_cb = self.flush
        self._poll_cb = self._poll
        self._own = NO_SLOT
        import asyncio.events
        self._get_loop = asyncio.events._get_running_loop
        self.inline = 32
        self._inline_left = 32
        self.nowait = True
        self.spin_ns = 0

    def __dealloc__(self):
        cdef me_cqe cqes[REAP_MAX]
        cdef unsigned got = 0
        cdef int i
        if self._chunks == NULL:
            return
        if self._used and self._ring is not None and self._ring._open:
            # Slots are released below: whatever is in flight must complete first (the kernel writes into them).
            while self._ring._r.in_flight or self._ring._r.queued:
                if me_ring_drain(&self._ring._r, cqes, REAP_MAX, &got) < 0 or (
                        got == 0 and self._ring._r.in_flight == 0):
                    break
        for i in range(self._nchunks * CHUNK):
            if self._slot(i).fut != NULL:
                self._release(i)
        for i in range(self._nchunks):
            free(self._chunks[i])
        free(self._chunks)

    # -- state -------------------------------------------------------------------------------------------------

    @property
    def pending(self):
        """Operations taken whose futures are not resolved yet (in the ring or in the backlog)."""
        return self._used

    @property
    def stats(self):
        """Counters since creation: operations completed (failed ones left out) and the bytes their reads and
        writes moved, reads served inline from the page cache (RWF_NOWAIT) or not, polls of an idle ring that
        found the completion or gave up, eventfd wake-ups, io_uring_enter calls."""
        return {"ops": self._n_ops, "read_bytes": self._n_read_bytes, "written_bytes": self._n_written_bytes,
                "nowait_hits": self._n_nowait_hit, "nowait_misses": self._n_nowait_miss,
                "spin_hits": self._n_spin_hit, "spin_misses": self._n_spin_miss, "wakeups": self._n_wakeups,
                "enters": self._n_enters}

    @property
    def in_ring(self):
        return self._in_ring

    @property
    def loop(self):
        return self._loop

    def bind(self, loop):
        """Resolve futures of ``loop`` from now on (the engine moves its eventfd reader there)."""
        self._loop = loop
        self._create_future = loop.create_future
        self._call_soon = loop.call_soon
        self._flush_scheduled = False
        self._poll_scheduled = False
        self._inline_left = self.inline
        if self._ring._open:
            # A poll deferred on the old loop (which will not run it) left the eventfd off: on again, and the
            # completions that came meanwhile reaped on the new loop's first pass.
            me_ring_eventfd_enable(&self._ring._r, 1)
            if self._in_ring:
                loop.call_soon(self._poll_cb)
        import asyncio
        self._base_loop = isinstance(loop, asyncio.BaseEventLoop)
        if self._base_loop and type(loop).create_future is asyncio.BaseEventLoop.create_future:
            # What BaseEventLoop.create_future does, without its Python frame: the (C) Future of this loop.
            self._create_future = functools.partial(asyncio.Future, loop=loop)
        ready = getattr(loop, "_ready", None)  # asyncio's base loop: the callbacks due in this iteration
        self._ready = ready if self._base_loop and isinstance(ready, collections.deque) else None

    def set_pool(self, BufferPool pool=None):
        """The pool registered with the ring (its whole buffers use the fixed-buffer operations), or None."""
        self._pool = pool

    # -- slots -------------------------------------------------------------------------------------------------

    cdef inline Slot *_slot(self, int i) noexcept:
        return &self._chunks[i >> CHUNK_SHIFT][i & (CHUNK - 1)]

    cdef int _alloc(self) except -1:
        cdef int i
        cdef Slot **chunks
        cdef Slot *chunk
        if self._free == NO_SLOT:
            chunks = <Slot **>malloc((self._nchunks + 1) * sizeof(Slot *))
            chunk = <Slot *>calloc(CHUNK, sizeof(Slot))
            if chunks == NULL or chunk == NULL:
                free(chunks)
                free(chunk)
                raise MemoryError()
            for i in range(self._nchunks):
                chunks[i] = self._chunks[i]
            chunks[self._nchunks] = chunk
            free(self._chunks)
            self._chunks = chunks
            for i in range(CHUNK - 1, -1, -1):
                chunk[i].next = self._free
                self._free = self._nchunks * CHUNK + i
            self._nchunks += 1
        i = self._free
        cdef Slot *s = self._slot(i)
        self._free = s.next
        memset(s, 0, sizeof(Slot))
        s.buf_index = -1
        s.next = NO_SLOT
        self._used += 1
        return i

    cdef void _release(self, int i) noexcept:
        cdef Slot *s = self._slot(i)
        cdef int k
        if s.nviews == 1 and s.views == NULL:
            PyBuffer_Release(&s.view)
        elif s.views != NULL:
            for k in range(s.nviews):
                PyBuffer_Release(&s.views[k])
            free(s.views)
        free(s.iov)
        free(s.stx)
        Py_XDECREF(s.keep)
        Py_XDECREF(s.fut)
        memset(s, 0, sizeof(Slot))
        s.next = self._free
        self._free = i
        self._used -= 1

    cdef object _set_future(self, Slot *s):
        fut = self._create_future()
        Py_INCREF(fut)
        s.fut = <PyObject *>fut
        return fut

    # -- taking operations -------------------------------------------------------------------------------------

    cdef int _enter(self) except -1:
        """Go on only when open, on the owner thread and in the bound loop; else the engine's refuse(loop)
        raises why not (closed, another thread), or moves the engine to this running loop."""
        cdef unsigned long me = PyThread_get_thread_ident()
        if not self._closed and me == self._owner and self._base_loop:
            # asyncio's base loop records the thread running it, and a thread runs one loop at a time: no
            # need to ask for the running loop (in Python 3.11 that costs a getpid() system call).
            tid = self._loop._thread_id
            if tid is not None and <unsigned long>tid == me:
                return 0
        loop = self._get_loop()
        if self._closed or loop is not self._loop or me != self._owner:
            self._refuse(loop)
            if self._closed or loop is None or loop is not self._loop:
                raise RuntimeError("the engine's refuse() neither raised nor bound this loop")
        return 0

    cdef bint _surely_aligned(self, object buf, uint64_t offset):
        cdef size_t align
        cdef _Memory m
        if type(buf) is not PoolBuffer and type(buf) is not AlignedBuffer:
            return False
        align = self._alignment._strictest
        m = <_Memory>buf
        return offset % align == 0 and <size_t>m._ptr % align == 0 and <size_t>m._size % align == 0

    cdef int _fixed_index(self, object buf):
        if self._pool is not None and type(buf) is PoolBuffer and (<PoolBuffer>buf)._pool is self._pool:
            return <int>(<PoolBuffer>buf)._index
        return -1

    def read(self, int fd, buf, unsigned long long offset):
        """read(fd, buf, offset) -> int | Future[int]

        Checks, pins ``buf``, then reads: the count when it is known at once
        (from the page cache, or the completion of a polled idle ring), else a
        future of it. A future that is already done means the inline budget
        ran out: the caller should let the loop run once before taking it.
        """
        self._enter()
        return self._rw(ME_OP_READ, fd, buf, offset, True, False)

    def write(self, int fd, data, unsigned long long offset):
        """write(fd, data, offset) -> int | Future[int]: as ``read``."""
        self._enter()
        return self._rw(ME_OP_WRITE, fd, data, offset, True, False)

    cdef object _rw(self, int kind, int fd, object buf, uint64_t offset, bint checks, bint want_future):
        cdef int direct, i, rc
        cdef Slot *s
        cdef iovec iov
        cdef bint aligned = self._surely_aligned(buf, offset)
        if aligned and 0 <= fd < FD_MEMO and self._fd_direct[fd] == 2:
            # O_DIRECT when last asked, and aligned anyway: no fcntl. Were the memo stale (the fd reused for a
            # buffered file), this read would only miss its RWF_NOWAIT attempt: no check depends on it.
            direct = 1
        else:
            direct = me_ring_fd_direct(fd)
            if 0 <= fd < FD_MEMO and direct >= 0:
                self._fd_direct[fd] = 2 if direct else 1
        if checks and direct > 0 and not aligned:
            self._precheck(kind, fd, buf, offset)  # raises DirectIOAlignmentError when misaligned
        i = self._alloc()
        s = self._slot(i)
        try:
            PyObject_GetBuffer(buf, &s.view, PyBUF_WRITABLE if kind == ME_OP_READ else PyBUF_SIMPLE)
        except BaseException:
            self._release(i)
            if checks:
                self._precheck(kind, fd, buf, offset)  # the engine's words for it (a read-only buffer)
            raise
        s.nviews = 1
        if kind == ME_OP_READ and direct == 0 and self.nowait and s.view.len:
            iov.iov_base = s.view.buf
            iov.iov_len = <size_t>s.view.len
            rc = me_ring_read_nowait(fd, &iov, 1, offset)
            if rc == s.view.len or rc == 0:
                self._n_nowait_hit += 1
                self._n_ops += 1
                self._n_read_bytes += <unsigned long long>rc
                self._release(i)
                if want_future:  # a gather: it lets the loop run anyway
                    return self._done(rc, None)
                if self._inline_left > 0:
                    self._inline_left -= 1
                    return rc
                # Past the budget: a future already done, which the engine awaits after one pass of the loop.
                self._inline_left = self.inline
                return self._done(rc, None)
            self._n_nowait_miss += 1
            if rc > 0:
                s.base = rc  # what the page cache held; the ring reads the rest
        s.kind = kind
        s.fd = fd
        s.offset = offset
        s.length = <unsigned>(s.view.len - s.base)
        s.buf_index = self._fixed_index(buf)
        return self._start(i, want_future)

    def submit(self, op):
        """submit(op) -> Future: any IoOp (already checked by the engine)."""
        self._enter()
        cdef int kind = _KINDS[op.kind]
        cdef int i, k, n
        cdef Slot *s
        cdef tuple bufs
        if kind == ME_OP_READ or kind == ME_OP_WRITE:
            return self._rw(kind, op.fd, op.buffers[0], op.offset, False, True)
        i = self._alloc()
        s = self._slot(i)
        s.kind = kind
        s.fd = op.fd
        try:
            if kind == ME_OP_READV or kind == ME_OP_WRITEV:
                bufs = op.buffers
                n = len(bufs)
                s.offset = op.offset
                s.views = <Py_buffer *>calloc(max(n, 1), sizeof(Py_buffer))
                s.iov = <iovec *>calloc(max(n, 1), sizeof(iovec))
                if s.views == NULL or s.iov == NULL:
                    raise MemoryError()
                for k in range(n):
                    PyObject_GetBuffer(bufs[k], &s.views[k], PyBUF_WRITABLE if kind == ME_OP_READV else PyBUF_SIMPLE)
                    s.nviews = k + 1
                    s.iov[k].iov_base = s.views[k].buf
                    s.iov[k].iov_len = <size_t>s.views[k].len
                s.nviews = n
            elif kind == ME_OP_FSYNC:
                s.flags = op.datasync
            elif kind == ME_OP_OPENAT or kind == ME_OP_STATX:
                path = op.path
                path = bytes(path, "utf-8", "surrogateescape") if isinstance(path, str) else bytes(path)
                Py_INCREF(path)
                s.keep = <PyObject *>path
                s.flags = op.flags
                s.mode = op.mode
                if kind == ME_OP_STATX:
                    s.stx = <statx *>calloc(1, sizeof(statx))
                    if s.stx == NULL:
                        raise MemoryError()
        except BaseException:
            self._release(i)
            raise
        return self._start(i, True)

    cdef object _done(self, object result, object exc):
        fut = self._create_future()
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
        return fut

    cdef object _start(self, int i, bint want_future):
        """Hand slot ``i`` to the ring (or the backlog); its result when the kernel gave it at once, else a
        future (always a future with ``want_future``: never polled for)."""
        cdef Slot *s
        cdef unsigned n
        cdef int res
        if self._spin_skip:
            self._spin_skip -= 1
        elif (not want_future and self._in_ring == 0 and self._backlog_len == 0 and self.spin_ns
                and not self._poll_scheduled and self._ready is not None and len(self._ready) <= self._flush_scheduled
                and self._prep(i) == 0):
            # A lone read or write (not a gather's: its operations go together), the ring idle and no other
            # callback ready in the loop: hand the operation to the kernel now and poll for its completion a
            # moment, with the eventfd off (it would only wake the loop for nothing later). Within the inline
            # budget the poll runs here, and the awaiter goes on without a pass through the loop when the
            # completion comes in time; past it, the poll runs as the loop's next callback, after the loop has
            # looked at its other file descriptors.
            me_ring_eventfd_enable(&self._ring._r, 0)
            self._submit_now()
            if self._inline_left <= 0:
                self._poll_scheduled = True
                self._call_soon(self._poll_cb)  # turns the eventfd back on
                return self._set_future(self._slot(i))
            n = me_ring_spin(&self._ring._r, self.spin_ns)
            me_ring_eventfd_enable(&self._ring._r, 1)
            if n == 0:
                n = me_ring_ready(&self._ring._r)  # posted after the poll but before the eventfd was back on
            if n:
                self._own = i
                self._own_found = False
                self._reap(False)
                self._own = NO_SLOT
                if self._own_found:
                    self._spun(True)
                    self._inline_left -= 1
                    s = self._slot(i)
                    res = self._own_res
                    try:
                        if res < 0 and s.base == 0:
                            raise self._exception(s, -res, False)
                        return s.base if res < 0 else self._value(s, res)
                    finally:
                        self._release(i)
            self._spun(False)
            return self._set_future(self._slot(i))  # in the ring: the eventfd reader delivers it
        fut = self._set_future(self._slot(i))
        if self._in_ring >= self._capacity or self._backlog_len or self._prep(i) < 0:
            self._slot(i).next = NO_SLOT
            if self._backlog_tail == NO_SLOT:
                self._backlog_head = i
            else:
                self._slot(self._backlog_tail).next = i
            self._backlog_tail = i
            self._backlog_len += 1
        if self.batch and (self._ring._r.queued >= <unsigned>self.batch
                           or self._in_ring - <int>self._ring._r.queued < self.eager):
            self._submit_now()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._flush_cb)
        return fut

    cdef int _prep(self, int i) noexcept:
        cdef Slot *s = self._slot(i)
        cdef me_ring *r = &self._ring._r
        cdef int rc, k = s.kind
        cdef char *path = NULL
        cdef unsigned char *buf
        for _ in range(2):
            if k == ME_OP_READ or k == ME_OP_WRITE:
                buf = <unsigned char *>s.view.buf
                if k == ME_OP_READ:
                    rc = me_ring_queue_read(r, s.fd, buf + s.base, s.length, s.offset + <uint64_t>s.base, s.buf_index,
                                            0, i)
                else:
                    rc = me_ring_queue_write(r, s.fd, buf, s.length, s.offset, s.buf_index, 0, i)
            elif k == ME_OP_READV:
                rc = me_ring_queue_readv(r, s.fd, s.iov, s.nviews, s.offset, 0, i)
            elif k == ME_OP_WRITEV:
                rc = me_ring_queue_writev(r, s.fd, s.iov, s.nviews, s.offset, 0, i)
            elif k == ME_OP_FSYNC:
                rc = me_ring_queue_fsync(r, s.fd, s.flags, 0, i)
            elif k == ME_OP_OPENAT:
                path = <bytes><object>s.keep
                rc = me_ring_queue_openat(r, AT_FDCWD, path, s.flags, s.mode, i)
            elif k == ME_OP_CLOSE:
                rc = me_ring_queue_close(r, s.fd, i)
            else:
                path = <bytes><object>s.keep
                rc = me_ring_queue_statx(r, AT_FDCWD, path, 0, STATX_BASIC_STATS | STATX_DIOALIGN, s.stx, i)
            if rc != -EBUSY:
                break
            self._submit_now()  # the submission queue is full: hand it to the kernel and queue again
        if rc < 0:
            return rc  # still full: the kernel takes nothing for now (short of memory); the backlog keeps it
        self._in_ring += 1
        return 0

    cdef int _submit_now(self) noexcept:
        """Submit what is queued. A refusal for the moment (EAGAIN, EBUSY, ENOMEM) is retried on the next
        iteration; any other failure goes to the engine's ``fatal`` on the next iteration (it closes the
        engine, which fails every awaiter): the caller of a read never sees another read's submission fail."""
        cdef int rc
        if not self._ring._r.queued:
            return 0
        self._n_enters += 1
        while True:
            rc = me_ring_submit(&self._ring._r, 0)
            if rc != -EINTR:
                break
        if rc >= 0 or self._loop is None:
            return rc
        try:
            if rc == -EAGAIN or rc == -EBUSY or rc == -ENOMEM:
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self._call_soon(self._flush_cb)
            elif not self._failed:
                self._failed = True
                self._call_soon(self._fatal, OSError(-rc, f"io_uring_enter: {strerror(-rc).decode()}"))
        except BaseException:  # the loop is closed: nobody is left to tell
            pass
        return rc

    cdef void _spun(self, bint hit) noexcept:
        """Count a poll of an idle ring; after SPIN_MISSES misses in a row (a device slower than the poll),
        the next SPIN_REST operations do not poll, so a slow disk does not cost a CPU."""
        if hit:
            self._n_spin_hit += 1
            self._spin_misses = 0
            return
        self._n_spin_miss += 1
        self._spin_misses += 1
        if self._spin_misses >= SPIN_MISSES:
            self._spin_misses = 0
            self._spin_skip = SPIN_REST

    def _poll(self):
        """The deferred poll of an idle ring (see _start): a new inline budget, the eventfd back on."""
        cdef unsigned n
        self._poll_scheduled = False
        self._inline_left = self.inline
        if self._closed:
            return
        n = me_ring_spin(&self._ring._r, self.spin_ns)
        me_ring_eventfd_enable(&self._ring._r, 1)
        self._spun(n != 0)
        self._reap(True)

    def flush(self):
        """Submit everything queued since the last submission (one io_uring_enter)."""
        self._flush_scheduled = False
        if not self._closed:
            self._submit_now()

    # -- completions -------------------------------------------------------------------------------------------

    def on_ready(self):
        """The eventfd reader: reap every ready completion, resolve the futures, refill from the backlog."""
        cdef uint64_t value
        c_read(self._efd, &value, sizeof(value))
        self._n_wakeups += 1
        self._inline_left = self.inline  # the loop has run: a new budget of inline completions
        if not self._closed:
            self._reap(True)

    cdef int _reap(self, bint schedule_flush) except -1:
        cdef me_cqe cqes[REAP_MAX]
        cdef unsigned n, k
        cdef uint64_t ud
        cdef int delivered = 0
        cdef int i
        cdef Slot *s
        while True:
            n = me_ring_reap(&self._ring._r, cqes, REAP_MAX)
            for k in range(n):
                ud = cqes[k].user_data
                if ud == <uint64_t>self._own and self._own != NO_SLOT:
                    self._in_ring -= 1
                    self._own_found = True
                    self._own_res = cqes[k].res
                    continue
                if ud >= <uint64_t>(self._nchunks * CHUNK) or self._slot(<int>ud).fut == NULL:
                    continue
                self._in_ring -= 1
                self._complete(<int>ud, cqes[k].res)
                delivered += 1
            if n < REAP_MAX:
                break
        while self._backlog_len and self._in_ring < self._capacity:
            i = self._backlog_head
            s = self._slot(i)
            if (<object>s.fut).done():  # cancelled while waiting: it never reaches the kernel
                self._unlink_head()
                self._release(i)
            elif self._prep(i) == 0:
                self._unlink_head()
            else:
                break  # the submission queue takes nothing for now: it stays first in the backlog
        self._submit_now()
        if delivered and schedule_flush and not self._flush_scheduled:
            # The tasks these completions woke run next, then this: their operations share one enter.
            self._flush_scheduled = True
            self._call_soon(self._flush_cb)
        return 0

    cdef void _unlink_head(self) noexcept:
        self._backlog_head = self._slot(self._backlog_head).next
        self._backlog_len -= 1
        if self._backlog_head == NO_SLOT:
            self._backlog_tail = NO_SLOT

    cdef object _value(self, Slot *s, int res):
        cdef int k = s.kind
        self._n_ops += 1
        if k == ME_OP_READ or k == ME_OP_READV:
            self._n_read_bytes += <unsigned long long>(res + s.base)
            return res + s.base
        if k == ME_OP_WRITE or k == ME_OP_WRITEV:
            self._n_written_bytes += <unsigned long long>(res + s.base)
            return res + s.base
        if k == ME_OP_OPENAT:
            return res
        if k == ME_OP_STATX:
            return _statx_values(s.stx)
        return None

    cdef object _exception(self, Slot *s, int err, bint closed):
        cdef int k
        if s.nviews == 1 and s.views == NULL:
            bufs = (<object>s.view.obj,)
        else:
            bufs = tuple([<object>s.views[k].obj for k in range(s.nviews)])
        path = <object>s.keep if s.keep != NULL else b""
        return self._errors(s.kind, s.fd, bufs, s.offset, path, s.flags, err, closed)

    cdef void _complete(self, int i, int res) noexcept:
        cdef Slot *s = self._slot(i)
        fut = <object>s.fut
        try:
            if fut.done():  # its awaiter was cancelled
                if s.kind == ME_OP_OPENAT and res >= 0:
                    c_close(res)  # nobody else will close this fd
            elif res < 0 and s.base > 0:
                fut.set_result(s.base)  # the cached part; the error comes with the next read
            elif res < 0:
                fut.set_exception(self._exception(s, -res, False))
            else:
                fut.set_result(self._value(s, res))
        except RuntimeError:  # its loop is closed: nobody can await it any more
            pass
        except BaseException as exc:
            try:
                if not fut.done():
                    fut.set_exception(exc)
            except BaseException:
                pass
        self._release(i)

    # -- close -------------------------------------------------------------------------------------------------

    def close(self):
        """Cancel what is in flight, wait for every completion, tear the ring down; each future gets its result,
        its error, or the engine's closed error. Idempotent."""
        cdef int i
        cdef Slot *s
        if self._closed:
            return
        self._closed = True
        completions = self._ring.close()  # cancels what is in flight and waits for every completion
        outcomes = []
        for ud, res, _op, _payload in completions:
            if ud >= self._nchunks * CHUNK:
                continue
            i = ud
            s = self._slot(i)
            if s.fut == NULL:
                continue
            fut = <object>s.fut
            if fut.done():
                if s.kind == ME_OP_OPENAT and res >= 0:
                    c_close(res)
            elif res == -ECANCELED or s.kind == ME_OP_STATX:
                outcomes.append((fut, None, self._exception(s, ECANCELED, True)))
            elif res < 0 and s.base > 0:
                outcomes.append((fut, s.base, None))
            elif res < 0:
                outcomes.append((fut, None, self._exception(s, -res, False)))
            else:
                outcomes.append((fut, self._value(s, res), None))
            self._release(i)
        for i in range(self._nchunks * CHUNK):
            s = self._slot(i)
            if s.fut != NULL:
                fut = <object>s.fut
                if not fut.done():
                    outcomes.append((fut, None, self._exception(s, ECANCELED, True)))
                self._release(i)
        self._backlog_head = self._backlog_tail = NO_SLOT
        self._backlog_len = 0
        self._in_ring = 0
        self._pool = None
        for fut, result, exc in outcomes:
            try:
                if fut.done():
                    continue
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
            except RuntimeError:  # its loop is closed
                pass
