# cython: language_level=3, boundscheck=False, wraparound=False
"""Shared-memory segments and the two ends of a ring of 32-byte frame descriptors between processes.

A ``Producer`` loans blocks of a slab arena that lives in a shared segment,
fills them in place and publishes a descriptor (a 32-byte frame header of kind
BLOCK: segment, offset, length, id, type, flags) on the data ring. A
``Consumer`` receives the descriptor as a ``Frame`` whose payload is a
memoryview of the block where it lies, and releases it: the offset goes back
on a completion ring to the producer, who frees the block. Only offsets move;
payload bytes are written once.

``mcp_edge.ipc`` sets the two ends up between processes (a unix socket passes
the segments' descriptors); this module holds the mechanics. Timeouts are in
seconds: ``None`` waits without limit, ``0`` does not wait.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.slice cimport PySlice_AdjustIndices, PySlice_Check, PySlice_Unpack
from libc.errno cimport EAGAIN, EBADMSG, EINTR, EMSGSIZE, ENOMEM, ENOMSG, EPROTONOSUPPORT
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from posix.unistd cimport close, getpid

import os

from mcp_edge.errors import (
    FrameError,
    IsaLevelError,
    PeerClosed,
    PeerDied,
    RingClosed,
    RingFull,
    SegmentError,
    SlabExhausted,
)

from mcp_edge.native._check cimport check
from mcp_edge.native._cpu import active as _active_level
from mcp_edge.native._cpu import level_number as _level_number
from mcp_edge.native.includes.me_crc32c cimport me_crc32c_set_level
from mcp_edge.native.includes.me_frame cimport (
    ME_FRAME_BLOCK,
    ME_FRAME_F_END,
    ME_FRAME_HEADER_SIZE,
    ME_FRAME_INLINE,
    me_frame,
    me_frame_decode,
    me_frame_encode_header,
    me_frame_limits,
    me_frame_parse_header,
    me_frame_reason_name,
)
from mcp_edge.native.includes.me_shm cimport (
    ME_CHAN_HOLD_WAKE,
    ME_PEER_CLOSED,
    ME_PEER_DEAD,
    ME_RING_HEADER_BYTES,
    ME_RING_MPSC,
    ME_RING_NONE,
    ME_RING_SPSC,
    ME_SHM_F_PAYLOAD_CRC,
    ME_SHM_MAX_PRODUCERS,
    ME_SHM_MAX_SEGMENTS,
    ME_SHM_VERSION,
    me_chan_capacity,
    me_chan_consumer,
    me_chan_consumer_add,
    me_chan_consumer_init,
    me_chan_flush_reader,
    me_chan_loan,
    me_chan_producer_detach,
    me_chan_producer_init,
    me_chan_publish,
    me_chan_reap,
    me_chan_ready,
    me_chan_receive,
    me_chan_recover_consumer,
    me_chan_recover_producer,
    me_chan_release,
    me_chan_signal,
    me_chan_slot_free,
    me_chan_source_reopen,
    me_chan_stats,
    me_chan_unloan,
    me_chan_wait_blocks,
    me_chan_wait_frames,
    me_chan_wait_space,
    me_ring_arm_fd,
    me_ring_disarm_fd,
    me_ring_kick_reader,
    me_ring_kick_writers,
    me_ring_claimed,
    me_ring_positions,
    me_shm_can_run_apart,
    me_shm_completion_entries,
    me_shm_create,
    me_shm_fd_size,
    me_shm_layout,
    me_shm_map,
    me_shm_now_ns,
    me_shm_open,
    me_shm_peer_get,
    me_shm_peer_set,
    me_shm_pid_alive,
    me_shm_pidfd_open,
    me_shm_segment_bytes,
    me_shm_segment_check,
    me_shm_segment_init,
    me_shm_unlink,
    me_shm_unmap,
)
from mcp_edge.native.includes.me_slab cimport (
    ME_SLAB_MAX_CLASSES,
    ME_SLAB_MAX_COUNT,
    ME_SLAB_MIN_SIZE,
    me_slab_class_of,
    me_slab_class_stats,
    me_slab_config,
    me_slab_stats,
)


cdef extern from "Python.h":
    ctypedef struct _PyManagedBufferObject:
        Py_ssize_t exports
    ctypedef struct PyMemoryViewObject:
        _PyManagedBufferObject *mbuf
        int flags
        Py_ssize_t exports
    int _Py_MEMORYVIEW_RELEASED
    Py_buffer *PyMemoryView_GET_BUFFER(object mview)
    object PyMemoryView_FromObject(object obj)
    Py_ssize_t Py_REFCNT(PyObject *o)

cdef extern from *:
    """
    static inline PyObject *me_view_obj(PyObject *view) { return PyMemoryView_GET_BUFFER(view)->obj; }
    """
    PyObject *me_view_obj(object view)


DEF PEER_POLL_NS = 50000000      # the longest a wait goes without looking at the peer (50 ms)
DEF PEER_CHECK_NS = 10000000     # outside waits, the peer is looked at at most this often (10 ms) ...
DEF PEER_CHECK_EVERY = 256       # ... and a producer looks only every this many publishes
DEF SPIN_RECHECK_NS = 1000000000  # affinity masks are read again after this long (1 s)
DEF POOL_MAX = 64                # Frame / Loan objects kept for reuse
DEF NOGIL_COPY = 65536           # send() copies at least this long with the GIL released

VERSION = ME_SHM_VERSION
MAX_PRODUCERS = ME_SHM_MAX_PRODUCERS
RING_HEADER_BYTES = ME_RING_HEADER_BYTES  # an SPSC data ring's 32-byte entries start this far into it
DEFAULT_SLAB_SIZES = (64, 256, 1024, 4096, 16384, 65536)
DEFAULT_SLAB_COUNTS = (1024, 512, 256, 128, 64, 16)
PEER_STATES = {0: "free", 1: "attached", 2: "closed", 3: "dead", 4: "stale"}

cdef int _crc_rc = me_crc32c_set_level(_level_number(_active_level()))
if _crc_rc < 0:
    raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {_active_level()!r}")


cdef int64_t _deadline(object timeout) except -2:
    """A CLOCK_MONOTONIC deadline in ns for a timeout in seconds: -1 for None (no limit)."""
    if timeout is None:
        return -1
    cdef double t = timeout
    if not t >= 0:  # also NaN
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    if t > 1e9:
        return -1
    return me_shm_now_ns() + <int64_t>(t * 1e9)


cdef int64_t _left(int64_t deadline) noexcept:
    """ns until deadline (0 when passed), or PEER_POLL_NS for no deadline; never more than PEER_POLL_NS."""
    if deadline < 0:
        return PEER_POLL_NS
    cdef int64_t left = deadline - me_shm_now_ns()
    if left <= 0:
        return 0
    return left if left < PEER_POLL_NS else PEER_POLL_NS


cdef int _slab_config(me_slab_config *cfg, object sizes, object counts) except -1:
    sizes = tuple(sizes)
    counts = tuple(counts)
    if not 1 <= len(sizes) <= ME_SLAB_MAX_CLASSES:
        raise ValueError(f"a ring's arena needs 1 to {ME_SLAB_MAX_CLASSES} slab sizes, got {len(sizes)}")
    if len(counts) != len(sizes):
        raise ValueError(f"a ring's arena needs one slab count per size ({len(sizes)}), got {len(counts)}")
    memset(cfg, 0, sizeof(me_slab_config))
    cfg.nclasses = <uint32_t>len(sizes)
    cdef Py_ssize_t i
    for i in range(len(sizes)):
        size, count = sizes[i], counts[i]
        if size < ME_SLAB_MIN_SIZE or size % ME_SLAB_MIN_SIZE or size > (1 << 30):
            raise ValueError(f"slab size {size} is not a multiple of {ME_SLAB_MIN_SIZE} between "
                             f"{ME_SLAB_MIN_SIZE} B and 1 GiB")
        if i and size <= sizes[i - 1]:
            raise ValueError(f"slab sizes must be ascending and distinct, got {', '.join(map(str, sizes))}")
        if not 1 <= count <= ME_SLAB_MAX_COUNT:
            raise ValueError(f"slab count for {size} B must be between 1 and {ME_SLAB_MAX_COUNT}, got {count}")
        cfg.size[i] = size
        cfg.count[i] = count
    return 0


# ---------------------------------------------------------------- segments

cdef object _segment_error(int rc, size_t have, me_shm_info *info):
    if rc == -ENOMSG:
        return SegmentError("bad magic", "the shared memory does not start with a segment header (magic "
                                         "'MESEG001'): it is not an mcp_edge segment")
    if rc == -EPROTONOSUPPORT:
        return SegmentError("bad version", f"the segment has layout version {info.version}; this mcp_edge "
                                           f"reads version {ME_SHM_VERSION} only")
    if rc == -EMSGSIZE:
        return SegmentError("too small", f"the segment says it holds {info.total} bytes but its file has "
                                         f"{have}" if info.total else
                            f"{have} bytes are too few for a segment header")
    return SegmentError("malformed", "the segment's parts (rings, arena) are out of bounds or inconsistent "
                                     "with its header")


cdef class Segment:
    """Segment: one shared-memory segment mapped in this process.

    From ``create_segment``, ``attach_segment`` (a descriptor, e.g. received
    over a unix socket) or ``open_segment`` (a POSIX shm name). The mapping
    lasts as long as the object (and everything made from it) does.
    """

    def __cinit__(self):
        self._fd = -1
        self._base = NULL

    def __init__(self):
        raise TypeError("Segment objects come from create_segment(), attach_segment() or open_segment()")

    def __dealloc__(self):
        if self._base != NULL:
            me_shm_unmap(self._base, self._len)
        if self._fd >= 0:
            close(self._fd)

    def fileno(self):
        """The descriptor of the shared memory (to pass to a peer with SCM_RIGHTS)."""
        if self._fd < 0:
            raise ValueError("the segment's descriptor is closed")
        return self._fd

    def close_fd(self):
        """Close the descriptor (the mapping stays): once every peer has it."""
        if self._fd >= 0:
            close(self._fd)
            self._fd = -1

    @property
    def name(self):
        """The POSIX shm name, or None for a memfd."""
        return self._name

    @property
    def size(self):
        return self._info.total

    @property
    def segment_id(self):
        return self._info.layout.segment_id

    @property
    def info(self):
        """The checked layout: kind of data ring, entries, completion entries, arena classes, offsets."""
        cdef me_shm_layout *lay = &self._info.layout
        kinds = {ME_RING_NONE: None, ME_RING_SPSC: "spsc", ME_RING_MPSC: "mpsc"}
        return {
            "version": self._info.version,
            "size": self._info.total,
            "segment_id": lay.segment_id,
            "creator_pid": self._info.creator_pid,
            "producers": lay.producers,
            "data": kinds.get(lay.data_kind),
            "entries": lay.data_entries,
            "completion_entries": lay.completion_entries,
            "payload_crc": bool(lay.flags & ME_SHM_F_PAYLOAD_CRC),
            "slab_sizes": tuple(lay.slab.size[i] for i in range(lay.slab.nclasses)),
            "slab_counts": tuple(lay.slab.count[i] for i in range(lay.slab.nclasses)),
            "data_offset": self._info.data_off,
            "completion_offset": self._info.done_off,
            "arena_offset": self._info.arena_off,
            "arena_bytes": self._info.arena_bytes,
        }

    def peer(self, int slot):
        """(state, pid) of peer-table slot ``slot``: 0 the consumer, 1 + k producer slot k."""
        cdef uint32_t pid = 0
        cdef int st = me_shm_peer_get(self._base, slot, &pid)
        check(st, "me_shm_peer_get")
        return PEER_STATES.get(st, str(st)), pid

    def set_peer(self, int slot, int pid, str state):
        """Write peer-table slot ``slot`` (the process that set the ring up does)."""
        codes = {v: k for k, v in PEER_STATES.items()}
        if state not in codes:
            raise ValueError(f"peer state must be one of {', '.join(codes)}, got {state!r}")
        check(me_shm_peer_set(self._base, slot, pid, codes[state]), "me_shm_peer_set")

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self._base, <Py_ssize_t>self._len, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def __repr__(self):
        where = self._name if self._name is not None else f"memfd {self._fd}"
        return f"<Segment {self._info.layout.segment_id} {where} {self._info.total} B>"


cdef Segment _map(int fd, object name):
    """Map the whole file behind fd (which the Segment then owns) and check it."""
    cdef Segment seg = Segment.__new__(Segment)
    seg._fd = fd
    seg._name = name
    cdef int64_t size = me_shm_fd_size(fd)
    check(<int>size if size < 0 else 0, "fstat")
    cdef me_shm_info info
    memset(&info, 0, sizeof(info))
    if size < 12:
        raise _segment_error(-EMSGSIZE, <size_t>size, &info)
    check(me_shm_map(fd, <size_t>size, 0, &seg._base), "mmap")
    seg._len = <size_t>size
    cdef int rc = me_shm_segment_check(seg._base, seg._len, &info)
    if rc < 0:
        raise _segment_error(rc, seg._len, &info)
    seg._info = info
    return seg


def create_segment(*, data=None, uint32_t entries=1024, slab_sizes=None, slab_counts=None, int segment_id=0,
                   int producers=1, bint payload_crc=False, name=None):
    """create_segment(*, data=None, entries=1024, slab_sizes=None, slab_counts=None, segment_id=0, producers=1,
    payload_crc=False, name=None) -> Segment

    int me_shm_segment_init(void *base, size_t len, const struct me_shm_layout *lay)

    A new segment, laid out and pre-faulted.

    Parameters
    ----------
    data
        The data ring it holds: ``"spsc"``, ``"mpsc"`` or None.
    entries
        Descriptors the data ring holds (a power of two).
    slab_sizes, slab_counts
        The arena's size classes and their block counts; with them the segment
        also holds the completion ring (as many entries as blocks, so it is
        never full). None: neither.
    segment_id, producers
        Its id (0 for a channel's hub, k + 1 for producer slot k of an MPSC
        channel) and the channel's producer slots.
    payload_crc
        Descriptors carry a CRC32C of the payload too (off by default: a 1 MiB
        CRC costs tens of microseconds).
    name
        A POSIX shm name (``/...``): the segment is created there (and must be
        ``unlink_segment``-ed); None: an anonymous memfd.
    """
    cdef me_shm_layout lay
    memset(&lay, 0, sizeof(lay))
    kinds = {None: ME_RING_NONE, "spsc": ME_RING_SPSC, "mpsc": ME_RING_MPSC}
    if data not in kinds:
        raise ValueError(f"data must be 'spsc', 'mpsc' or None, got {data!r}")
    lay.data_kind = kinds[data]
    if lay.data_kind != ME_RING_NONE:
        if entries < 2 or entries > (1 << 24) or entries & (entries - 1):
            raise ValueError(f"ring entries must be a power of two from 2 to {1 << 24}, got {entries}")
        lay.data_entries = entries
    if (slab_sizes is None) != (slab_counts is None):
        raise ValueError("give slab_sizes and slab_counts together")
    if slab_sizes is not None:
        _slab_config(&lay.slab, slab_sizes, slab_counts)
        lay.completion_entries = me_shm_completion_entries(&lay.slab)
        if lay.completion_entries == 0:
            raise ValueError("too many slab blocks for one segment")
    if not 1 <= producers <= ME_SHM_MAX_PRODUCERS:
        raise ValueError(f"producers must be between 1 and {ME_SHM_MAX_PRODUCERS}, got {producers}")
    if not 0 <= segment_id <= ME_SHM_MAX_PRODUCERS:
        raise ValueError(f"segment_id must be between 0 and {ME_SHM_MAX_PRODUCERS}, got {segment_id}")
    lay.producers = <uint16_t>producers
    lay.segment_id = <uint16_t>segment_id
    lay.flags = ME_SHM_F_PAYLOAD_CRC if payload_crc else 0
    cdef size_t total = me_shm_segment_bytes(&lay)
    if total == 0:
        raise ValueError("this segment layout is invalid (sizes out of range)")
    cdef bytes label = (name or "mcp-edge-ring").encode()
    cdef int fd = me_shm_create(label, name is not None, total)
    check(fd, f"creating shared memory {name!r}" if name else "memfd_create")
    cdef Segment seg = Segment.__new__(Segment)
    seg._fd = fd
    seg._name = name
    check(me_shm_map(fd, total, 1, &seg._base), "mmap")
    seg._len = total
    cdef int rc
    with nogil:
        rc = me_shm_segment_init(seg._base, total, &lay)
    check(rc, "me_shm_segment_init")
    check(me_shm_segment_check(seg._base, total, &seg._info), "me_shm_segment_check")
    return seg


def attach_segment(int fd):
    """attach_segment(fd) -> Segment

    int me_shm_segment_check(const void *base, size_t len, struct me_shm_info *out)

    Map the segment behind ``fd`` (the Segment owns the descriptor from now
    on, even when this raises) and check it before anything in it is trusted.
    SegmentError (``bad magic``, ``bad version``, ``too small``, ``malformed``).
    """
    return _map(fd, None)


def open_segment(str name):
    """open_segment(name) -> Segment: attach the POSIX shm segment ``name`` (``/...``)."""
    cdef bytes raw = name.encode()
    cdef int fd = me_shm_open(raw)
    check(fd, f"shm_open {name!r}")
    return _map(fd, name)


def unlink_segment(str name):
    """unlink_segment(name): remove a POSIX shm segment's name (mappings stay)."""
    cdef bytes raw = name.encode()
    check(me_shm_unlink(raw), f"shm_unlink {name!r}")


def completion_entries(slab_sizes, slab_counts):
    """Entries of the completion ring of an arena with these classes (a power of two >= its block count)."""
    cdef me_slab_config cfg
    _slab_config(&cfg, slab_sizes, slab_counts)
    return me_shm_completion_entries(&cfg)


def pidfd_open(int pid):
    """pidfd_open(pid) -> int: a descriptor that becomes readable when ``pid`` exits (Linux >= 5.3); -1 if
    this kernel has none (liveness is then checked with kill(pid, 0))."""
    cdef int fd = me_shm_pidfd_open(pid)
    return fd if fd >= 0 else -1


def can_run_apart(int a, int b):
    """can_run_apart(a, b) -> bool: whether processes ``a`` and ``b`` (0: this one) can run at the same moment
    on two CPUs (their affinity masks name two CPUs or more). The rings spin only then."""
    cdef int rc = me_shm_can_run_apart(a, b)
    check(rc, "sched_getaffinity")
    return bool(rc)


cdef dict _arena_stats(void *arena, const me_shm_info *info):
    cdef me_slab_class_stats st
    out = []
    for i in range(info.layout.slab.nclasses):
        me_slab_stats(arena, i, &st)
        out.append({"size": st.size, "count": st.count, "in_use": st.in_use, "free": st.free,
                    "high_water": st.high_water, "failures": st.failures})
    return {"classes": out, "in_use": sum(c["in_use"] for c in out)}


cdef dict _chan_stats(me_chan_stats *st):
    return {"loans": st.loans, "published": st.published, "full": st.full, "exhausted": st.exhausted,
            "reaped": st.reaped, "stale_completions": st.stale_done, "received": st.received,
            "released": st.released, "dropped": st.dropped, "reclaimed": st.reclaimed,
            "peer_deaths": st.peer_deaths}


# ---------------------------------------------------------------- the ends

cdef class _End:
    """What both ends share: the hub segment, spin decision, closing."""

    def __cinit__(self):
        self._efd = -1

    cdef int _usable(self) except -1:
        if self._closed:
            raise RingClosed("this end of the ring is closed")
        if self._sticky is not None:
            cls, message, args = self._sticky
            raise cls(message, *args)
        return 0

    cdef void _decide_spin(self, int pid) noexcept:
        """Spin only when this process and the peer can run at once: never on one shared CPU."""
        cdef int64_t now = me_shm_now_ns()
        if self._spin_setting <= 0 or pid <= 0:
            self._spin = 0
            return
        if self._spin_checked and now - self._spin_checked < SPIN_RECHECK_NS:
            return
        self._spin_checked = now
        self._spin = self._spin_setting if me_shm_can_run_apart(0, pid) == 1 else 0

    @property
    def closed(self):
        return self._closed

    @property
    def spin_ns(self):
        """The spin before sleeping in effect now (0 when the peer may share this CPU; always 0 for a Producer)."""
        return self._spin

    def _set_on_close(self, callback):
        self._on_close = callback

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


cdef class Loan:
    """Loan: a loaned block as a writable buffer, from ``Producer.loan_block`` (and behind ``loan``'s views).

    ``len(loan)``, ``loan[i] = b``, ``loan[a:b] = data`` (one memcpy),
    ``memoryview(loan)``, ``numpy.frombuffer(loan, ...)``, ``sock.recv_into(loan)``
    write the block in place; ``Producer.publish(loan)`` hands it over, after
    which every write is refused (ValueError). Nothing is allocated per
    message: the objects are pooled.
    """

    def __init__(self):
        raise TypeError("loans come from Producer.loan() or Producer.loan_block()")

    def __dealloc__(self):
        # A loan dropped unpublished (one beyond the pool) goes back.
        if self._live and self._owner is not None and not self._owner._closed:
            me_chan_unloan(&self._owner._p, self._off)

    def __getbuffer__(self, Py_buffer *view, int flags):
        if not self._live:
            raise ValueError("this loan was published or given back")
        PyBuffer_FillInfo(view, self, self._owner._p.base + self._off, self._size, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def __len__(self):
        return self._size

    def __setitem__(self, key, value):
        if not self._live:
            raise ValueError("this loan was published or given back: its bytes are not the producer's")
        cdef uint8_t *base = self._owner._p.base + self._off
        cdef Py_ssize_t start, stop, step, n
        cdef Py_buffer src
        if PySlice_Check(key):
            PySlice_Unpack(key, &start, &stop, &step)
            n = PySlice_AdjustIndices(self._size, &start, &stop, step)
            if step != 1:
                raise ValueError("a loan takes contiguous slices only")
            PyObject_GetBuffer(value, &src, PyBUF_SIMPLE)
            try:
                if src.len != n:
                    raise ValueError(f"{src.len} bytes do not fit a slice of {n}")
                memcpy(base + start, src.buf, n)
            finally:
                PyBuffer_Release(&src)
            return
        cdef Py_ssize_t i = key
        if i < 0:
            i += self._size
        if not 0 <= i < self._size:
            raise IndexError(f"index {key} out of the loan's {self._size} bytes")
        base[i] = <uint8_t>value

    def __getitem__(self, key):
        return PyMemoryView_FromObject(self)[key]

    @property
    def nbytes(self):
        return self._size

    @property
    def released(self):
        """True once published or given back."""
        return not self._live

    @property
    def offset(self):
        return self._off

    @property
    def capacity(self):
        """Bytes of the block (its slab class's size): at least the size asked for."""
        return me_chan_capacity(&self._owner._p, self._off)

    def __repr__(self):
        return f"<Loan {self._size} B at {self._off}{', released' if not self._live else ''}>"


@cython.no_gc_clear  # its segments stay mapped until its own end (its magazines are drained into them)
cdef class Producer(_End):
    """Producer: the writing end of a ring (from ``mcp_edge.ipc``).

    ``loan(n)`` gives a writable memoryview of a slab block in the shared
    segment; ``publish(view, type=, id=)`` hands it to the consumer without a
    copy. ``send(data)`` copies ``data`` into a block and publishes it.
    Blocks come back when the consumer releases them (reaped at later loans,
    or by ``reap()``).

    A producer waits only for its consumer (a slab class with every block
    out, a full ring), and never spins for it: it sleeps at once, and the
    consumer wakes it once half the class's blocks (half the ring)
    are back, or as soon as it has nothing more to release; it also looks
    again every 50 ms. ``spin_us`` is accepted for symmetry with
    ``Consumer`` and not used (``spin_ns`` is 0).
    """

    def __cinit__(self):
        self._peer_pidfd = -1

    def __init__(self, Segment hub, Segment own, *, int wake_fd=-1, int spin_us=50):
        if spin_us < 0:
            raise ValueError(f"spin_us must be >= 0, got {spin_us}")
        check(me_chan_producer_init(&self._p, hub._base, &hub._info, own._base, &own._info, wake_fd),
              "me_chan_producer_init")
        self._hub = hub
        self._own = own
        self._efd = wake_fd
        self._spin_setting = 0  # a producer's waits never spin (see the class docstring)
        self._slot = own._info.layout.segment_id if hub._info.layout.data_kind == ME_RING_MPSC else 1
        self._loans = []

    def __dealloc__(self):
        if self._p.arena != NULL and not self._closed:
            me_chan_producer_detach(&self._p)
        if self._peer_pidfd >= 0:
            close(self._peer_pidfd)
        if self._efd >= 0:
            close(self._efd)

    def _attach_peer(self, int pid, int pidfd):
        """A consumer attached (pid, and its pidfd or -1, which this end then owns)."""
        if self._peer_pidfd >= 0:
            close(self._peer_pidfd)
        self._peer_pid = pid
        self._peer_pidfd = pidfd
        self._peer = True
        self._sticky = None
        self._spin_checked = 0
        self._decide_spin(pid)

    def _drop_peer(self):
        """Undo _attach_peer after a failed handshake."""
        if self._peer_pidfd >= 0:
            close(self._peer_pidfd)
        self._peer_pidfd = -1
        self._peer_pid = 0
        self._peer = False

    def _peer_free(self):
        """Whether a new consumer may attach (none is, or the last one was found dead or closed now)."""
        try:
            self._check_peer(True)
        except (PeerDied, PeerClosed):
            pass  # recovered; the error waits for the next publish
        return not self._peer

    @property
    def peer_pid(self):
        """The consumer's pid (0 when none is attached)."""
        return self._peer_pid if self._peer else 0

    @property
    def slot(self):
        """This producer's peer-table slot in the hub segment (1 + its producer slot)."""
        return self._slot

    @property
    def segment_id(self):
        return self._p.segment

    @property
    def entries(self):
        return self._p.data.entries

    @property
    def max_message(self):
        """The largest payload one block holds (the largest slab class)."""
        cdef me_slab_config *lay = &self._own._info.layout.slab
        return lay.size[lay.nclasses - 1]

    @property
    def payload_crc(self):
        return bool(self._p.flags & ME_SHM_F_PAYLOAD_CRC)

    cdef int _check_peer(self, bint force) except -1:
        """Look at the consumer: closed (peer table) or dead (pidfd) -> recover its blocks, raise."""
        if not self._peer:
            return 0
        cdef int64_t now = me_shm_now_ns()
        if not force and now - self._peer_checked < PEER_CHECK_NS:
            return 0
        self._peer_checked = now
        cdef uint32_t pid = 0
        cdef int state = me_shm_peer_get(self._hub._base, 0, &pid)
        cdef bint closed = state == ME_PEER_CLOSED
        if not closed and me_shm_pid_alive(self._peer_pidfd, self._peer_pid):
            return 0
        cdef uint32_t n = me_chan_recover_consumer(&self._p)
        if not closed:
            me_shm_peer_set(self._hub._base, 0, self._peer_pid, ME_PEER_DEAD)
        self._peer = False
        if self._peer_pidfd >= 0:
            close(self._peer_pidfd)
            self._peer_pidfd = -1
        if closed:
            self._sticky = (PeerClosed, f"the consumer (pid {self._peer_pid}) closed the ring; {n} block(s) it "
                                        f"held came back", (self._peer_pid, n))
        else:
            self._sticky = (PeerDied, f"the consumer (pid {self._peer_pid}) died; {n} block(s) it held came "
                                      f"back and the ring was reset", (self._peer_pid, "consumer", n))
        self._usable()
        return 0

    cdef int _wait(self, bint space, double timeout, uint32_t size) except -1:
        """Wait for room in the ring (space) or for released blocks of size's class, up to timeout s (< 0: no
        limit), looking at the consumer between sleeps. No spin: the consumer wakes this end once a batch is
        back (me_chan_wait_space / me_chan_wait_blocks). 1 ready, 0 timed out."""
        cdef int64_t deadline = -1 if timeout < 0 else me_shm_now_ns() + <int64_t>(timeout * 1e9)
        cdef int64_t left
        cdef int rc
        while True:
            left = _left(deadline)
            if left == 0:
                return 0
            with nogil:
                if space:
                    rc = me_chan_wait_space(&self._p, left)
                else:
                    rc = me_chan_wait_blocks(&self._p, size, left)
            if rc == 0:
                return 1
            if rc == -EINTR:
                PyErr_CheckSignals()
            self._check_peer(True)

    cdef Loan _new_loan(self, uint64_t off, Py_ssize_t size):
        """A Loan object for the block: a pooled one nobody references any more, or a new one."""
        cdef Py_ssize_t n = PyList_GET_SIZE(self._loans), i, k
        cdef PyObject *o
        cdef Loan loan = None
        for k in range(n):
            i = (self._next_loan + k) % n
            o = PyList_GET_ITEM(self._loans, i)
            if Py_REFCNT(o) == 1 and (<Loan>o)._exports == 0:
                loan = <Loan>o
                if loan._live:  # dropped unpublished (nothing refers to it): its block goes back
                    me_chan_unloan(&self._p, loan._off)
                self._next_loan = i + 1
                break
        if loan is None:
            loan = Loan.__new__(Loan)
            loan._owner = self
            if n < POOL_MAX:
                self._loans.append(loan)
        loan._off = off
        loan._size = size
        loan._live = True
        return loan

    cdef int64_t _loan(self, Py_ssize_t size, object timeout) except -2:
        self._usable()
        if timeout is not None and not timeout >= 0:
            _deadline(timeout)  # raises
        if not 0 <= size <= 0xFFFFFFFF:
            raise ValueError(f"a loan of {size} bytes: the size must be between 0 and 4 GiB - 1")
        cdef int64_t off = me_chan_loan(&self._p, <uint32_t>size)
        cdef int64_t deadline
        cdef me_slab_class_stats st
        if off == -ENOMEM:
            deadline = _deadline(timeout)
            while off == -ENOMEM:
                if deadline >= 0 and me_shm_now_ns() >= deadline or not self._wait(
                        False, -1.0 if deadline < 0 else (deadline - me_shm_now_ns()) / 1e9, <uint32_t>size):
                    me_slab_stats(self._p.arena, me_slab_class_of(self._p.arena, <uint32_t>size), &st)
                    raise SlabExhausted(
                        f"the ring's slab class {st.size} B is exhausted: all {st.count} blocks are loaned or "
                        f"held by the consumer" + ("" if timeout == 0 else f" for {timeout} s") +
                        " (the consumer must release frames; or raise slab_counts)",
                        st.size, st.count, 0.0 if timeout is None else float(timeout))
                off = me_chan_loan(&self._p, <uint32_t>size)
        if off == -EMSGSIZE:
            raise ValueError(f"{size} bytes is more than the largest slab class of this ring ({self.max_message} "
                             "B): raise slab_sizes, or split the message")
        if off < 0:
            check(<int>off, "me_chan_loan")
        return off

    def loan(self, Py_ssize_t size, timeout=None):
        """loan(size, timeout=None) -> memoryview

        int64_t me_chan_loan(struct me_chan_producer *p, uint32_t n)

        A writable memoryview of ``size`` bytes of a slab block in the shared
        segment (the block may be larger: the smallest class that fits).
        Fill it, then ``publish`` it (or ``unloan`` it). When the class is
        exhausted, waits up to ``timeout`` seconds for the consumer to release
        blocks (None: no limit, 0: not at all), then SlabExhausted. ValueError
        when ``size`` is more than the largest class (``max_message``).
        """
        return PyMemoryView_FromObject(self._new_loan(<uint64_t>self._loan(size, timeout), size))

    cdef Loan _loan_of(self, object view):
        """The live Loan behind a memoryview loan() gave, checked to be the only view and not exported."""
        if type(view) is not memoryview:
            raise TypeError(f"publish/unloan take the memoryview loan() gave, not {type(view).__name__}")
        cdef PyMemoryViewObject *mv = <PyMemoryViewObject *>view
        if mv.flags & _Py_MEMORYVIEW_RELEASED:
            raise ValueError("this view was released (published or given back already)")
        cdef Py_buffer *b = PyMemoryView_GET_BUFFER(view)
        cdef PyObject *obj = me_view_obj(view)
        if obj == NULL or type(<object>obj) is not Loan or (<Loan>obj)._owner is not self:
            raise ValueError("this memoryview is not a loan of this ring")
        cdef Loan loan = <Loan>obj
        if not loan._live:
            raise ValueError("this loan was published or given back already")
        if b.buf != <void *>(self._p.base + loan._off):
            raise ValueError("pass the memoryview loan() gave, not a slice of it (publish a prefix with length=)")
        if mv.exports or mv.mbuf.exports > 1 or loan._exports > 1:
            raise BufferError("another view of this loan (a slice, a numpy array) is still alive: delete it "
                              "first (the bytes are the consumer's once published), or publish a prefix with "
                              "length=")
        return loan

    cdef int _publish(self, Loan loan, Py_ssize_t n, int type, uint64_t id, bint end, object timeout) except -1:
        if not 0 <= type <= 255:
            raise ValueError(f"type {type} does not fit the header's byte (0-255)")
        if timeout is not None and not timeout >= 0:
            _deadline(timeout)  # raises
        cdef uint64_t off = loan._off if loan is not None else 0
        cdef uint8_t flags = ME_FRAME_F_END if end else 0
        cdef int rc
        cdef int64_t deadline
        while True:
            if loan is not None:
                rc = me_chan_publish(&self._p, off, <uint32_t>n, <uint8_t>type, id, flags)
            else:
                rc = me_chan_signal(&self._p, <uint8_t>type, id, flags)
            if rc != -EAGAIN:
                break
            deadline = _deadline(timeout)
            if timeout == 0 or not self._wait(True, -1.0 if deadline < 0 else
                                              max(0.0, (deadline - me_shm_now_ns()) / 1e9), 0):
                raise RingFull(f"the ring's {self._p.data.entries} descriptors are all unread" +
                               ("" if timeout == 0 else f" after {timeout} s") +
                               ": the consumer is behind (wait with a timeout, or raise ring_entries)")
            timeout = None if deadline < 0 else max(0.0, (deadline - me_shm_now_ns()) / 1e9)
        check(rc, "me_chan_publish")
        self._since_check += 1
        if self._since_check >= PEER_CHECK_EVERY:
            self._since_check = 0
            self._check_peer(False)
        return 0

    def loan_block(self, Py_ssize_t size, timeout=None):
        """loan_block(size, timeout=None) -> Loan

        ``loan`` without a memoryview: the ``Loan`` itself is the writable
        buffer (slice assignment, buffer protocol), pooled, so a loop of
        loan_block / fill / publish allocates nothing per message. After
        ``publish`` it refuses writes.
        """
        return self._new_loan(<uint64_t>self._loan(size, timeout), size)

    def publish(self, view, *, int type=0, uint64_t id=0, bint end=False, length=None, timeout=None):
        """publish(view, *, type=0, id=0, end=False, length=None, timeout=None) -> None

        int me_chan_publish(struct me_chan_producer *p, uint64_t off, uint32_t len, uint8_t type, uint64_t id,
        uint8_t flags)

        Hand the loaned block behind ``view`` (a memoryview from ``loan``, or
        a ``Loan`` from ``loan_block``) to the consumer: one descriptor (type
        0-255, id u64, ``end`` sets F_END) on the ring, ``length`` bytes
        (default: the view's length). ``view`` is released (a Loan refuses
        writes): the bytes are the consumer's now. A full ring waits up to
        ``timeout`` seconds (None: no limit, 0: not at all), then RingFull,
        whose ``view`` is a new view of the same loan. BufferError while
        another view of the loan, or a buffer taken from ``view`` (a numpy
        array), is alive. PeerDied / PeerClosed when the consumer is gone.
        """
        self._usable()
        cdef Loan loan
        cdef bint is_view = not isinstance(view, Loan)
        if is_view:
            loan = self._loan_of(view)
        else:
            loan = <Loan>view
            if loan._owner is not self:
                raise ValueError("this Loan is not one of this ring's")
            if not loan._live:
                raise ValueError("this loan was published or given back already")
            if loan._exports:
                raise BufferError("a view of this loan (a memoryview, a numpy array) is still alive: delete it "
                                  "first (the bytes are the consumer's once published)")
        cdef Py_ssize_t n = (PyMemoryView_GET_BUFFER(view).len if is_view else loan._size) if length is None \
            else length
        if not 0 <= n <= loan._size:
            raise ValueError(f"length {n} is outside the loan's {loan._size} bytes")
        if not 0 <= type <= 255:
            raise ValueError(f"type {type} does not fit the header's byte (0-255)")
        if timeout is not None and not timeout >= 0:
            _deadline(timeout)  # raises, before the view is given up
        if is_view:
            view.release()
        try:
            self._publish(loan, n, type, id, end, timeout)
        except RingFull as exc:
            exc.view = PyMemoryView_FromObject(loan) if is_view else loan
            raise
        loan._live = False
        return None

    def send(self, data, *, int type=0, uint64_t id=0, bint end=False, timeout=None):
        """send(data, *, type=0, id=0, end=False, timeout=None) -> None

        ``loan`` + copy + ``publish`` in one call, for any C-contiguous buffer:
        the copying path (zero-copy is loan/publish). ``timeout`` bounds each
        wait (a block, then room in the ring); on RingFull the block is given
        back.
        """
        cdef Py_buffer buf
        PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
        cdef int64_t off
        cdef uint8_t *dst
        try:
            off = self._loan(buf.len, timeout)
            dst = self._p.base + off
            if buf.len >= NOGIL_COPY:
                with nogil:
                    memcpy(dst, buf.buf, buf.len)
            else:
                memcpy(dst, buf.buf, buf.len)
            n = buf.len
        finally:
            PyBuffer_Release(&buf)
        cdef Loan loan = self._new_loan(<uint64_t>off, n)
        try:
            self._publish(loan, n, type, id, end, timeout)
        except BaseException:
            me_chan_unloan(&self._p, <uint64_t>off)
            loan._live = False
            raise
        loan._live = False
        return None

    def send_block(self, int type, uint64_t id, extensions, body, bint hold_wake=False):
        """send_block(type, id, extensions, body, hold_wake=False) -> bool

        int me_frame_encode_header(void *out, struct me_frame *f, const void *ext, const void *payload)

        One whole message in one block, at once, in one call: a block gets a
        BLOCK frame header (the body's length, this ring's segment, the
        offset of the body in this very block, END; its CRC over the header
        and ``extensions``), then the extension TLVs and the body; it is
        published with the same type and id and END. False when the slab
        class or the ring has no room now (nothing sent, nothing waited);
        ValueError when it is more than the largest class; PeerDied /
        PeerClosed when the consumer is gone. ``hold_wake``: the consumer is
        not woken now; ``flush_wake`` does it (an event loop pays one wake-up
        at the end of its turn for all it sent in it).
        """
        self._usable()
        if not 0 <= type <= 255:
            raise ValueError(f"type {type} does not fit the header's byte (0-255)")
        cdef Py_buffer ext, data
        PyObject_GetBuffer(extensions, &ext, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(body, &data, PyBUF_SIMPLE)
        except BaseException:
            PyBuffer_Release(&ext)
            raise
        cdef Py_ssize_t start = ME_FRAME_HEADER_SIZE + ext.len
        cdef Py_ssize_t size = start + data.len
        cdef int64_t off = -1
        cdef uint8_t *dst
        cdef me_frame f
        cdef int rc
        try:
            if ext.len > 0xFFFF:
                raise ValueError(f"{ext.len} bytes of extensions: the header's field holds 65535 at most")
            if size > 0xFFFFFFFF:
                raise ValueError(f"a {size}-byte message does not fit the header's 32-bit length")
            off = me_chan_loan(&self._p, <uint32_t>size)
            if off == -ENOMEM:
                return False
            if off == -EMSGSIZE:
                raise ValueError(f"{size} bytes is more than the largest slab class of this ring "
                                 f"({self.max_message} B)")
            if off < 0:
                check(<int>off, "me_chan_loan")
            dst = self._p.base + off
            memset(&f, 0, sizeof(f))
            f.type = <uint8_t>type
            f.id = id
            f.kind = ME_FRAME_BLOCK
            f.flags = ME_FRAME_F_END
            f.ext_len = <uint16_t>ext.len
            f.segment = self._p.segment
            f.offset = <uint64_t>off + <uint64_t>start
            f.payload_len = <uint32_t>data.len
            if me_frame_encode_header(dst, &f, ext.buf, NULL) < 0:
                raise ValueError("the frame header's fields are out of range")
            memcpy(dst + ME_FRAME_HEADER_SIZE, ext.buf, ext.len)
            if data.len >= NOGIL_COPY:
                with nogil:
                    memcpy(dst + start, data.buf, data.len)
            else:
                memcpy(dst + start, data.buf, data.len)
            rc = me_chan_publish(&self._p, <uint64_t>off, <uint32_t>size, <uint8_t>type, id,
                                 ME_FRAME_F_END | (ME_CHAN_HOLD_WAKE if hold_wake else 0))
            if rc == -EAGAIN:
                me_chan_unloan(&self._p, <uint64_t>off)
                return False
            if rc < 0:
                me_chan_unloan(&self._p, <uint64_t>off)
                off = -1
                check(rc, "me_chan_publish")
            off = -1  # published: the block is the consumer's
        except BaseException:
            if off >= 0:
                me_chan_unloan(&self._p, <uint64_t>off)
            raise
        finally:
            PyBuffer_Release(&data)
            PyBuffer_Release(&ext)
        self._since_check += 1
        if self._since_check >= PEER_CHECK_EVERY:
            self._since_check = 0
            self._check_peer(False)
        return True

    def flush_wake(self):
        """flush_wake() -> bool

        int me_chan_flush_reader(struct me_chan_producer *p)

        Wake the consumer for what ``send_block(..., hold_wake=True)``
        published, if it sleeps; True if it woke it. Nothing to do after a
        close.
        """
        if self._closed:
            return False
        return me_chan_flush_reader(&self._p) != 0

    def signal(self, *, int type=0, uint64_t id=0, bint end=False, timeout=None):
        """signal(*, type=0, id=0, end=False, timeout=None) -> None

        int me_chan_signal(struct me_chan_producer *p, uint8_t type, uint64_t id, uint8_t flags)

        A descriptor with no payload (an inline frame of length 0): end of a
        stream, a tick. The consumer gets a Frame whose ``is_signal`` is True.
        """
        self._usable()
        self._publish(None, 0, type, id, end, timeout)

    def unloan(self, view):
        """unloan(view) -> None: give a loaned block back unpublished (a memoryview ``view`` is released)."""
        self._usable()
        cdef Loan loan
        if isinstance(view, Loan) and (<Loan>view)._owner is self and (<Loan>view)._live:
            loan = <Loan>view
            if loan._exports:
                raise BufferError("a view of this loan is still alive: delete it first")
        else:
            loan = self._loan_of(view)
            view.release()
        loan._live = False
        check(me_chan_unloan(&self._p, loan._off), "me_chan_unloan")

    def reap(self):
        """reap() -> int: free the blocks the consumer released (loan does it by itself); how many."""
        return me_chan_reap(&self._p)

    def check_peer(self):
        """check_peer() -> None: look at the consumer now; PeerDied / PeerClosed if it is gone."""
        self._usable()
        self._check_peer(True)

    def stats(self):
        """Counters: loans, published, full (publishes that found the ring full), exhausted, reaped,
        stale_completions, reclaimed, peer_deaths; sleeps (futex sleeps: sleeps_space for room in the ring,
        sleeps_blocks for released blocks), sleeps_paced (timed sleeps for released blocks, at the consumer's
        pace: no wake-up asked), wakes (futex wakes and eventfd writes for the consumer); the
        ring's unread descriptors; the arena's classes (in_use, free, high_water, failures)."""
        cdef uint64_t head, tail
        me_ring_positions(&self._p.data, &head, &tail)
        out = _chan_stats(&self._p.st)
        out["sleeps"] = self._p.data.sleeps + self._p.done.sleeps
        out["sleeps_space"] = self._p.data.sleeps
        out["sleeps_blocks"] = self._p.done.sleeps
        out["sleeps_paced"] = self._p.st.paced
        out["wakes"] = self._p.data.wakes
        out["entries"] = self._p.data.entries
        out["unread"] = tail - head if self._p.data.kind == ME_RING_SPSC else None
        out["arena"] = _arena_stats(self._p.arena, &self._own._info)
        return out

    def close(self):
        """close() -> None

        Leave the ring: loans not yet published go back, this process's slab
        magazines are flushed, the peer table says "closed" and the consumer
        is woken to see it (it gets PeerClosed once it has read what was
        published). Idempotent.
        """
        if self._closed:
            return
        for loan in self._loans:
            if (<Loan>loan)._live:
                me_chan_unloan(&self._p, (<Loan>loan)._off)
                (<Loan>loan)._live = False
        me_chan_reap(&self._p)
        me_chan_producer_detach(&self._p)
        me_shm_peer_set(self._hub._base, self._slot, getpid(), ME_PEER_CLOSED)
        me_ring_kick_reader(&self._p.data)
        self._closed = True
        if self._peer_pidfd >= 0:
            close(self._peer_pidfd)
            self._peer_pidfd = -1
        if self._efd >= 0:
            close(self._efd)
            self._efd = -1
            self._p.data.wake_fd = -1
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()

    def __repr__(self):
        state = "closed" if self._closed else (f"consumer pid {self._peer_pid}" if self._peer else "no consumer")
        return f"<Producer segment {self._p.segment} {self._p.data.entries} entries, {state}>"


# ---------------------------------------------------------------- consumer

cdef class Frame:
    """Frame: one descriptor received from a ring, its payload where the producer wrote it.

    ``payload`` is a memoryview of the block in the shared segment (writable,
    ``numpy.frombuffer(frame.payload, ...)`` works); ``release()`` hands the
    block back to the producer (also at the end of a ``with`` block). A
    release while views of the payload are still alive (a numpy array) hands
    the block back when the last of them goes. After ``release()`` the
    frame's payload cannot be taken again. A signal (``Producer.signal``) has
    an empty payload and ``is_signal`` True.
    """

    def __init__(self):
        raise TypeError("Frame objects come from Consumer.receive()")

    def __dealloc__(self):
        # A frame dropped unreleased (one beyond the pool) hands its block back; none when the collector
        # cleared its owner first (then the consumer is going away, and its close or death returns all).
        if (self._live or self._pending) and self._owner is not None and not self._owner._closed \
                and self.f.kind == ME_FRAME_BLOCK:
            me_chan_release(self._owner._c, self.f.segment, self.f.offset)

    cdef int _give_back(self) except -1:
        self._pending = False
        if self.f.kind == ME_FRAME_BLOCK and not self._owner._closed:
            check(me_chan_release(self._owner._c, self.f.segment, self.f.offset), "me_chan_release")
        return 0

    def __getbuffer__(self, Py_buffer *view, int flags):
        if not self._live:
            raise ValueError("the frame was released: its block is the producer's again")
        PyBuffer_FillInfo(view, self, self._ptr, self.f.payload_len if self._ptr != NULL else 0, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1
        if self._exports == 0 and self._pending:
            self._give_back()

    def block_head(self, uint32_t max_extensions):
        """block_head(max_extensions) -> (bytes, int) | None

        int me_frame_decode(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f)

        For a block that starts with a frame header of its own (as
        ``Producer.send_block`` writes it): a copy of that header and its
        extension TLVs, checked on the copy (magic, version, fields, CRC,
        TLVs, at most ``max_extensions`` bytes of them) and found to describe
        this very block (a BLOCK frame of the descriptor's type, id and END,
        its body right after the extensions and running to the block's end),
        and the offset where the body starts. None when the block is not one.
        """
        if not self._live or self.f.kind != ME_FRAME_BLOCK or self.f.payload_len < ME_FRAME_HEADER_SIZE:
            return None
        cdef me_frame_limits lim
        lim.max_payload = self.f.payload_len
        lim.max_ext = max_extensions
        cdef uint8_t first[ME_FRAME_HEADER_SIZE]
        cdef me_frame w
        memcpy(first, self._ptr, ME_FRAME_HEADER_SIZE)  # the producer may still write there: read it once
        cdef int start = me_frame_parse_header(first, ME_FRAME_HEADER_SIZE, &lim, &w)
        if start < ME_FRAME_HEADER_SIZE or <uint32_t>start > self.f.payload_len:
            return None
        head = PyBytes_FromStringAndSize(<char *>self._ptr, start)  # checked below, on this copy
        if me_frame_decode(PyBytes_AS_STRING(head), <size_t>start, &lim, &w) != start:
            return None
        if (w.kind != ME_FRAME_BLOCK or w.type != self.f.type or w.id != self.f.id
                or (w.flags & ME_FRAME_F_END) != (self.f.flags & ME_FRAME_F_END)
                or w.offset != self.f.offset + <uint64_t>start
                or <uint64_t>start + w.payload_len != self.f.payload_len):
            return None
        return head, start

    @property
    def payload(self):
        """The payload: a memoryview of the block in the shared segment (empty for a signal)."""
        if self._view is None:
            self._view = PyMemoryView_FromObject(self)
        return self._view

    @property
    def type(self):
        return self.f.type

    @property
    def id(self):
        return self.f.id

    @property
    def flags(self):
        return self.f.flags

    @property
    def end(self):
        return bool(self.f.flags & ME_FRAME_F_END)

    @property
    def is_signal(self):
        return self.f.kind == ME_FRAME_INLINE

    @property
    def segment(self):
        return self.f.segment

    @property
    def offset(self):
        return self.f.offset

    @property
    def payload_length(self):
        return self.f.payload_len

    @property
    def crc(self):
        """The header's CRC32C (over the payload too when the ring has payload_crc on)."""
        return self.f.crc

    @property
    def released(self):
        return not self._live

    def __len__(self):
        return self.f.payload_len

    def release(self):
        """release() -> None

        int me_chan_release(struct me_chan_consumer *c, uint16_t segment, uint64_t off)

        Hand the block back to its producer, now, or when the last view of the
        payload still alive goes. Idempotent.
        """
        if not self._live:
            return None
        self._live = False
        self._pending = True
        self._view = None  # ours; a view someone else still holds keeps the block until it goes
        if self._pending and self._exports == 0:
            self._give_back()
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def __repr__(self):
        what = "signal" if self.f.kind == ME_FRAME_INLINE else \
            f"{self.f.payload_len} B at segment {self.f.segment}+{self.f.offset}"
        return (f"<Frame type={self.f.type} id={self.f.id} {what}{', end' if self.end else ''}"
                f"{', released' if not self._live else ''}>")


cdef object _descriptor_error(int rc, me_frame *f):
    cdef const char *name = me_frame_reason_name(f.reason)
    reason = name.decode() if name != NULL and f.reason else "bad field"
    if f.reason == 0 and rc == -EBADMSG:
        reason = "bad CRC"
    if reason == "bad CRC":
        return FrameError(reason, f"the descriptor's CRC32C ({f.crc:#010x}) does not match its header or "
                                  f"payload ({f.payload_len} B at segment {f.segment}+{f.offset}); the block "
                                  "went back to the producer")
    if reason == "bad field":
        return FrameError(reason, f"the descriptor names no block of this ring (kind {f.kind}, segment "
                                  f"{f.segment}, offset {f.offset}, {f.payload_len} B)")
    return FrameError(reason, f"a malformed descriptor on the ring (errno {-rc})")


@cython.no_gc_clear  # its segments stay mapped while frames may still hand blocks back through them
cdef class Consumer(_End):
    """Consumer: the reading end of a ring (from ``mcp_edge.ipc``).

    ``receive(timeout=)`` gives the next ``Frame`` (zero-copy payload);
    ``await areceive()`` does the same inside asyncio, woken through an
    eventfd the loop watches. An MPSC consumer reads several producers; the
    frames of each arrive in the order it published them.
    """

    def __cinit__(self):
        self._c = <me_chan_consumer *>PyMem_Malloc(sizeof(me_chan_consumer))
        if self._c == NULL:
            raise MemoryError()
        memset(self._c, 0, sizeof(me_chan_consumer))
        for i in range(ME_SHM_MAX_SEGMENTS):
            self._pid[i] = 0
            self._pidfd[i] = -1
            self._closed_at[i] = 0

    def __init__(self, Segment hub, *, int wake_fd=-1, int spin_us=50):
        if spin_us < 0:
            raise ValueError(f"spin_us must be >= 0, got {spin_us}")
        check(me_chan_consumer_init(self._c, hub._base, &hub._info), "me_chan_consumer_init")
        self._hub = hub
        self._efd = wake_fd
        self._spin_setting = <int64_t>spin_us * 1000
        self._mpsc = hub._info.layout.data_kind == ME_RING_MPSC
        self._segs = [None] * ME_SHM_MAX_SEGMENTS
        self._frames = []
        self._deaths = []

    def __dealloc__(self):
        for i in range(ME_SHM_MAX_SEGMENTS):
            if self._pidfd[i] >= 0:
                close(self._pidfd[i])
        if self._efd >= 0:
            close(self._efd)
        PyMem_Free(self._c)

    def _add_producer(self, int segment, Segment seg, int pid, int pidfd):
        """Producer `segment` (SPSC: 0, the hub) attached: its segment, pid, and pidfd (or -1; owned now)."""
        if not 0 <= segment < ME_SHM_MAX_SEGMENTS:
            raise ValueError(f"segment {segment} out of range")
        if self._c.src[segment].base == NULL:
            check(me_chan_consumer_add(self._c, <uint16_t>segment, seg._base, &seg._info), "me_chan_consumer_add")
            self._segs[segment] = seg
        else:
            me_chan_source_reopen(self._c, <uint16_t>segment)
        if self._pidfd[segment] >= 0:
            close(self._pidfd[segment])
        self._pid[segment] = pid
        self._pidfd[segment] = pidfd
        self._closed_at[segment] = 0
        self._sticky = None
        self._spin_checked = 0
        self._decide_spin(pid)

    def _drop_producer(self, int segment):
        """Undo _add_producer after a failed handshake: its slot is recovered (nothing was published yet)."""
        if self._c.src[segment].base != NULL:
            me_chan_recover_producer(self._c, <uint16_t>segment, 0)
        if self._pidfd[segment] >= 0:
            close(self._pidfd[segment])
        self._pid[segment] = 0
        self._pidfd[segment] = -1

    def _slot_free(self, int segment):
        """Whether producer `segment` can take a new producer (after looking at the attached ones)."""
        self._scan_peers(True)  # what it finds is raised by the next receive
        return bool(me_chan_slot_free(self._c, <uint16_t>segment))

    @property
    def producers(self):
        """Pids of the producers attached now."""
        return [self._pid[i] for i in range(ME_SHM_MAX_SEGMENTS) if self._pid[i] > 0]

    @property
    def entries(self):
        return self._c.data.entries

    cdef int _check_peers(self, bint force) except -1:
        """Look at the producers (_scan_peers), then raise what was found: the next death or close (MPSC:
        once each), or the sticky error of an SPSC ring whose producer is gone."""
        self._scan_peers(force)
        if self._deaths:
            cls, message, args = self._deaths.pop(0)
            raise cls(message, *args)
        self._usable()
        return 0

    cdef int _scan_peers(self, bint force) except -1:
        """Look at every attached producer: closed or dead -> recover its blocks, queue the error (SPSC:
        sticky). Raises nothing itself."""
        cdef int64_t now = me_shm_now_ns()
        if not force and now - self._peer_checked < PEER_CHECK_NS:
            return 0
        self._peer_checked = now
        cdef int i, slot, state
        cdef uint32_t pid, n
        cdef bint closed
        for i in range(ME_SHM_MAX_SEGMENTS):
            if self._pid[i] <= 0:
                continue
            slot = i if self._mpsc else 1
            pid = 0
            state = me_shm_peer_get(self._hub._base, slot, &pid)
            closed = state == ME_PEER_CLOSED
            if not closed and me_shm_pid_alive(self._pidfd[i], self._pid[i]):
                continue
            if closed:
                # It published everything before it said so: its descriptors all lie before the ring's claim
                # position read now. Deliver them first; recover (and free its slot) once they are read.
                if self._closed_at[i] == 0:
                    self._closed_at[i] = me_ring_claimed(&self._c.data) + 1
                if self._c.data.head + 1 < self._closed_at[i] or self._c.at < self._c.nbatch:
                    continue
            n = me_chan_recover_producer(self._c, <uint16_t>i, <uint32_t>self._pid[i])
            if not closed:
                me_shm_peer_set(self._hub._base, slot, self._pid[i], ME_PEER_DEAD)
            if closed:
                err = (PeerClosed, f"producer pid {self._pid[i]} closed the ring; {n} block(s) it held came back",
                       (self._pid[i], n))
            else:
                err = (PeerDied, f"producer pid {self._pid[i]} died; {n} block(s) it held came back to its arena"
                                 + ("" if self._mpsc else " and the ring was reset"), (self._pid[i], "producer", n))
            self._pid[i] = 0
            self._closed_at[i] = 0
            if self._pidfd[i] >= 0:
                close(self._pidfd[i])
                self._pidfd[i] = -1
            if self._mpsc:
                self._deaths.append(err)
            else:
                self._sticky = err
        return 0

    cdef Frame _take_frame(self):
        """A Frame object for the next descriptor: a pooled one nobody references any more, or a new one."""
        cdef Py_ssize_t n = PyList_GET_SIZE(self._frames), i, k
        cdef PyObject *o
        for k in range(n):
            i = (self._next_frame + k) % n
            o = PyList_GET_ITEM(self._frames, i)
            if Py_REFCNT(o) == 1 and not (<Frame>o)._live and not (<Frame>o)._pending and (<Frame>o)._exports == 0:
                self._next_frame = i + 1
                (<Frame>o)._view = None
                return <Frame>o
        cdef Frame fr = Frame.__new__(Frame)
        fr._owner = self
        if n < POOL_MAX:
            self._frames.append(fr)
        return fr

    cdef Frame _poll(self):
        """The next frame, or None when nothing is ready. FrameError for a refused descriptor."""
        cdef me_frame f
        cdef uint8_t *payload = NULL
        cdef int rc = me_chan_receive(self._c, &f, &payload)
        if rc == 0:
            return None
        if rc < 0:
            raise _descriptor_error(rc, &f)
        cdef Frame fr = self._take_frame()
        memcpy(&fr.f, &f, sizeof(me_frame))
        fr._ptr = payload
        fr._live = True
        fr._pending = False
        return fr

    cdef int _wait(self, double timeout) except -1:
        """Wait until a descriptor is ready, up to timeout s (< 0: no limit), looking at the producers
        between sleeps. 1 ready, 0 timed out."""
        cdef int64_t deadline = -1 if timeout < 0 else me_shm_now_ns() + <int64_t>(timeout * 1e9)
        cdef int64_t left
        cdef int rc
        cdef int pid = 0
        for i in range(ME_SHM_MAX_SEGMENTS):
            if self._pid[i] > 0:
                pid = self._pid[i]
                break
        while True:
            if me_chan_ready(self._c):
                return 1
            left = _left(deadline)
            if left == 0:
                return 0
            self._decide_spin(pid)
            with nogil:
                rc = me_chan_wait_frames(self._c, self._spin, left)
            if rc == 0:
                return 1
            if rc == -EINTR:
                PyErr_CheckSignals()
            self._check_peers(True)

    def receive(self, timeout=None):
        """receive(timeout=None) -> Frame

        int me_chan_receive(struct me_chan_consumer *c, struct me_frame *f, uint8_t **payload)

        The next frame; waits up to ``timeout`` seconds (None: no limit, 0:
        not at all), then TimeoutError. PeerDied / PeerClosed when a producer
        is gone (its blocks recovered; an MPSC consumer goes on with the
        others on the next call); FrameError for a malformed descriptor (its
        block, if it names one, went back).
        """
        self._usable()
        cdef Frame fr = self._poll()
        if fr is not None:
            return fr
        self._check_peers(False)
        cdef int64_t deadline = _deadline(timeout)
        while True:
            if deadline >= 0 and me_shm_now_ns() >= deadline or not self._wait(
                    -1.0 if deadline < 0 else max(0.0, (deadline - me_shm_now_ns()) / 1e9)):
                fr = self._poll()
                if fr is not None:
                    return fr
                raise TimeoutError(f"no frame within {timeout} s")
            fr = self._poll()
            if fr is not None:
                return fr

    def try_receive(self):
        """try_receive() -> Frame | None: the next frame if one is ready, else None (never waits)."""
        self._usable()
        cdef Frame fr = self._poll()
        if fr is None:
            self._check_peers(False)
        return fr

    @property
    def wake_fd(self):
        """The eventfd a producer writes when it publishes to an armed consumer (``arm``), or -1 when this
        consumer was set up without one. For an event loop that keeps it registered (no add/remove per frame)."""
        return self._efd

    @property
    def peer_pidfds(self):
        """The pidfds of the attached producers (readable once a producer has exited); owned here: dup them
        to watch them, since this end closes a dead producer's pidfd when it finds it."""
        return [self._pidfd[i] for i in range(ME_SHM_MAX_SEGMENTS) if self._pidfd[i] >= 0]

    def arm(self):
        """arm() -> bool

        int me_ring_arm_fd(struct me_ring *r)

        Ask the next publish to write ``wake_fd``. True when a descriptor is
        ready already (then nothing was armed: read on); False when armed:
        the loop may sleep on ``wake_fd``. One eventfd write per arm."""
        self._usable()
        return bool(me_ring_arm_fd(&self._c.data))

    def disarm(self):
        """disarm() -> None: take back an ``arm`` (the producers stop writing ``wake_fd``)."""
        me_ring_disarm_fd(&self._c.data)

    def check_peers(self, bint closed_only=False):
        """check_peers(closed_only=False) -> None: look at the producers now; PeerDied / PeerClosed for one
        that is gone (its blocks came back). ``closed_only``: look only for a producer that said it closed
        (the peer table in shared memory: no system call), as after a wake-up that brought nothing."""
        self._usable()
        cdef uint32_t pid
        cdef bint any_closed = False
        if closed_only:
            for i in range(ME_SHM_MAX_SEGMENTS):
                if self._pid[i] > 0 and me_shm_peer_get(self._hub._base, i if self._mpsc else 1,
                                                        &pid) == ME_PEER_CLOSED:
                    any_closed = True
            if not any_closed:
                return
        self._check_peers(True)

    async def areceive(self, timeout=None):
        """areceive(timeout=None) -> Frame (a coroutine)

        ``receive`` for asyncio: when nothing is ready the loop watches the
        ring's eventfd (and the producers' pidfds) with ``add_reader`` and the
        producer writes the eventfd when it publishes; no thread. TimeoutError
        after ``timeout`` seconds.
        """
        self._usable()
        fr = self.try_receive()
        if fr is not None:
            return fr
        if self._efd < 0:
            raise RingClosed("this consumer has no eventfd (it was set up without one): use receive()")
        import asyncio
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + _check_timeout(timeout)
        fds = [self._efd] + [self._pidfd[i] for i in range(ME_SHM_MAX_SEGMENTS) if self._pidfd[i] >= 0]
        while True:
            fut = loop.create_future()
            for fd in fds:
                loop.add_reader(fd, _wake, fut)
            timer = None
            try:
                if not me_ring_arm_fd(&self._c.data):
                    if deadline is not None:
                        timer = loop.call_at(deadline, _wake, fut)
                    await fut
            finally:
                me_ring_disarm_fd(&self._c.data)
                for fd in fds:
                    loop.remove_reader(fd)
                if timer is not None:
                    timer.cancel()
                try:
                    os.read(self._efd, 8)
                except BlockingIOError:
                    pass
            self._usable()
            fr = self._poll()
            if fr is not None:
                return fr
            self._check_peers(True)
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"no frame within {timeout} s")

    def stats(self):
        """Counters: received, released, dropped (malformed, or a dead producer's unread descriptors),
        reclaimed, peer_deaths, sleeps (futex sleeps waiting for frames), wakes (futex wakes of producers
        waiting for blocks or room), wakes_held (wake-ups held back because a producer waited for more
        than was back yet; paid later in one wake); per producer segment its arena's classes."""
        out = _chan_stats(&self._c.st)
        out["sleeps"] = self._c.data.sleeps
        cdef uint64_t wakes = self._c.data.wakes, held = self._c.data.held
        out["entries"] = self._c.data.entries
        segs = {}
        for i in range(ME_SHM_MAX_SEGMENTS):
            if self._c.src[i].base != NULL:
                wakes += self._c.src[i].done.wakes
                held += self._c.src[i].done.held
                segs[i] = _arena_stats(self._c.src[i].arena, &(<Segment>self._segs[i])._info)
        out["wakes"] = wakes
        out["wakes_held"] = held
        out["segments"] = segs
        return out

    def close(self):
        """close() -> None

        Leave the ring: the peer table says "closed" and the producers are
        woken to see it; they take back every block this end held (frames
        still referenced here must not be read after this). Idempotent.
        """
        if self._closed:
            return
        for fr in self._frames:
            (<Frame>fr)._live = False
            (<Frame>fr)._pending = False
        self._closed = True
        me_shm_peer_set(self._hub._base, 0, getpid(), ME_PEER_CLOSED)
        me_ring_kick_writers(&self._c.data)
        for i in range(ME_SHM_MAX_SEGMENTS):
            if self._c.src[i].base != NULL:
                me_ring_kick_reader(&self._c.src[i].done)
            if self._pidfd[i] >= 0:
                close(self._pidfd[i])
                self._pidfd[i] = -1
        if self._efd >= 0:
            close(self._efd)
            self._efd = -1
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()

    def __repr__(self):
        kind = "mpsc" if self._mpsc else "spsc"
        return (f"<Consumer {kind} {self._c.data.entries} entries, producers {self.producers}"
                f"{', closed' if self._closed else ''}>")


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


def _check_timeout(timeout):
    if not timeout >= 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    return timeout
