# cython: language_level=3, binding=False
"""Slab pools: fixed size classes carved from pre-faulted arenas, one per NUMA node, and arenas in shared memory.

``Pool`` is process-local: one arena per NUMA node with memory (bound to its
node with mbind when there is more than one), allocation from the caller's
node, then the other nodes by distance. ``Arena`` lays out (or attaches to)
an arena inside a buffer the caller owns, a shared-memory segment typically,
where blocks are named by their offset. Both hand out ``Block`` objects:
writable buffers that go back with ``release()`` or at the end of a ``with``.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_WRITABLE,
    PyBuffer_FillInfo,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EALREADY, EINTR, EINVAL, ENOENT, ENOMEM, ETIMEDOUT
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import os
import time

from mcp_edge.errors import SlabExhausted

from mcp_edge.native._check cimport check
from mcp_edge.native.includes.me_numa cimport ME_HAVE_NUMA, me_numa_kernel
from mcp_edge.native.includes.me_slab cimport (
    ME_SLAB_ALIGN,
    ME_SLAB_ALLOCATED,
    ME_SLAB_CACHED,
    ME_SLAB_FREE,
    ME_SLAB_MAX_CLASSES,
    ME_SLAB_MAX_COUNT,
    ME_SLAB_MAX_SIZE,
    ME_SLAB_MIN_SIZE,
    me_slab_alloc_cached,
    me_slab_alloc_class,
    me_slab_arena_bytes,
    me_slab_arena_check,
    me_slab_arena_config,
    me_slab_arena_detach,
    me_slab_arena_init,
    me_slab_arena_size,
    me_slab_bench_malloc,
    me_slab_bench_pairs,
    me_slab_block_state,
    me_slab_cache_flush,
    me_slab_class_stats,
    me_slab_config,
    me_slab_free,
    me_slab_free_cached,
    me_slab_locate,
    me_slab_reclaim_owner,
    me_slab_reclaim_pid,
    me_slab_set_owner,
    me_slab_stats,
    me_slab_wait,
)
from mcp_edge.native.includes.me_slab_numa cimport (
    ME_NUMA_MAX_CPUS,
    me_numa_map,
    me_numa_order,
    me_numa_parse_list,
    me_numa_read,
    me_numa_single,
    me_numa_topology,
    me_numa_unmap,
)


cdef extern from "<sched.h>" nogil:
    int sched_getcpu()

cdef extern from "<dlfcn.h>" nogil:
    void *dlopen(const char *filename, int flags)
    void *dlsym(void *handle, const char *symbol)
    char *dlerror()
    int RTLD_NOW
    int RTLD_LOCAL

cdef extern from "<stdlib.h>" nogil:
    void *c_malloc "malloc"(size_t n)
    void c_free "free"(void *p)

DEFAULT_SIZES = (64, 256, 1024, 4096, 16384, 65536)
DEFAULT_COUNTS = (1024, 512, 256, 128, 64, 16)
NUMA_DIR = "/sys/devices/system/node"
_STATES = {ME_SLAB_FREE: "free", ME_SLAB_ALLOCATED: "allocated", ME_SLAB_CACHED: "cached"}


cdef int _config(me_slab_config *cfg, object sizes, object counts) except -1:
    """Fill cfg from Python sequences, or ValueError saying what is wrong."""
    sizes = tuple(sizes)
    counts = tuple(counts)
    if not sizes or len(sizes) > ME_SLAB_MAX_CLASSES:
        raise ValueError(f"a slab needs 1 to {ME_SLAB_MAX_CLASSES} size classes, got {len(sizes)}")
    if len(counts) != len(sizes):
        raise ValueError(f"a slab needs one count per size class ({len(sizes)}), got {len(counts)}")
    memset(cfg, 0, sizeof(me_slab_config))
    cfg.nclasses = len(sizes)
    cdef Py_ssize_t i
    for i in range(len(sizes)):
        size, count = sizes[i], counts[i]
        if size < ME_SLAB_MIN_SIZE or size > ME_SLAB_MAX_SIZE or size % ME_SLAB_MIN_SIZE:
            raise ValueError(f"slab class size {size} is not a multiple of {ME_SLAB_MIN_SIZE} "
                             f"between {ME_SLAB_MIN_SIZE} and {ME_SLAB_MAX_SIZE}")
        if i and size <= sizes[i - 1]:
            raise ValueError(f"slab class sizes must be ascending and distinct, got {', '.join(map(str, sizes))}")
        if count < 1 or count > ME_SLAB_MAX_COUNT:
            raise ValueError(f"slab class {size} B: count must be between 1 and {ME_SLAB_MAX_COUNT}, got {count}")
        cfg.size[i] = size
        cfg.count[i] = count
    return 0


def arena_bytes(sizes=DEFAULT_SIZES, counts=DEFAULT_COUNTS):
    """arena_bytes(sizes=DEFAULT_SIZES, counts=DEFAULT_COUNTS) -> int

    size_t me_slab_arena_bytes(const struct me_slab_config *cfg)

    Bytes an arena of these classes occupies (header, block metadata, blocks;
    a multiple of 4096): the size of the buffer ``Arena`` needs.
    """
    cdef me_slab_config cfg
    _config(&cfg, sizes, counts)
    return me_slab_arena_bytes(&cfg)


cdef object _stats(const void *arena, uint32_t nclasses):
    cdef me_slab_class_stats st
    out = []
    for c in range(nclasses):
        me_slab_stats(arena, c, &st)
        out.append({"size": st.size, "count": st.count, "in_use": st.in_use, "free": st.free,
                    "high_water": st.high_water, "failures": st.failures})
    return out


cdef int64_t _ns(double seconds):
    """Nanoseconds of one futex sleep: at most an hour (the caller loops until its deadline)."""
    if not seconds > 0:
        return 0
    return <int64_t>(min(seconds, 3600.0) * 1e9)


cdef class _Source:
    """What Pool and Arena share: the classes, the open/closed state, the count of exported views."""

    cdef int _class_of(self, Py_ssize_t n) except -1:
        cdef uint32_t c
        if n < 0:
            raise ValueError(f"a block size cannot be negative, got {n}")
        for c in range(self._nclasses):
            if <size_t>n <= self._sizes[c]:
                return c
        raise ValueError(f"{n} bytes is more than the largest slab class ({self._sizes[self._nclasses - 1]} B)")

    cdef int _usable(self) except -1:
        if self._closed:
            raise ValueError(f"the {type(self).__name__.lower()} is closed")
        return 0

    @property
    def sizes(self):
        return tuple(self._sizes[c] for c in range(self._nclasses))

    @property
    def counts(self):
        return tuple(self._counts[c] for c in range(self._nclasses))

    @property
    def closed(self):
        return bool(self._closed)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


@cython.freelist(64)
@cython.no_gc
@cython.final
cdef class Block:
    """One block of a Pool or an Arena: ``size`` writable bytes through the buffer protocol.

    ``memoryview(block)``, ``numpy.frombuffer(block, ...)``, ``sock.recv_into(block)``
    read and write it in place. ``release()`` (or the end of a ``with`` block)
    gives it back; after that any use raises ValueError. Releasing while a
    memoryview of it is alive raises BufferError (release the view first), as
    ``mmap`` does. A block dropped without ``release()`` goes back when
    garbage-collected.
    """

    def __dealloc__(self):
        if self._held:
            self._owner._live -= 1
        if self._held and not self._owner._closed:
            if self._cached:
                me_slab_free_cached(self._arena, <uint64_t>self._off)
            else:
                me_slab_free(self._arena, <uint64_t>self._off)

    def __getbuffer__(self, Py_buffer *view, int flags):
        if not self._held:
            raise ValueError("the block is released")
        self._owner._usable()
        PyBuffer_FillInfo(view, self, self._ptr, self._size, 0, flags)
        self._exports += 1
        self._owner._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1
        self._owner._exports -= 1

    def __len__(self):
        return self._size

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._held:
            self.release()
        return False

    def __repr__(self):
        state = "released" if not self._held else f"{self._size}/{self._capacity} B"
        return f"<Block offset={self._off} node={self._node} {state}>"

    def release(self):
        """Give the block back. ValueError if it was released already, BufferError while views of it live."""
        cdef int rc
        if not self._held:
            raise ValueError(f"the block at offset {self._off} is already released")
        if self._exports:
            raise BufferError(f"the block at offset {self._off} still has {self._exports} exported view(s): "
                              "release them first")
        self._held = False
        self._owner._live -= 1
        if self._owner._closed:
            return  # its memory went with the pool: nothing to give back
        if self._cached:
            rc = me_slab_free_cached(self._arena, <uint64_t>self._off)
        else:
            rc = me_slab_free(self._arena, <uint64_t>self._off)
        if rc == -EALREADY:
            raise ValueError(f"the block at offset {self._off} was freed by someone else (its arena says free)")
        check(rc, "slab free")

    def detach(self):
        """detach() -> int

        Give the block up without freeing it: it was handed over (to a ring,
        another process) and whoever holds it now frees it, by offset. The
        Block is unusable afterwards; its offset is returned. BufferError
        while views of it live.
        """
        if not self._held:
            raise ValueError(f"the block at offset {self._off} is already released")
        if self._exports:
            raise BufferError(f"the block at offset {self._off} still has {self._exports} exported view(s): "
                              "release them first")
        self._held = False
        self._owner._live -= 1
        return self._off

    @property
    def offset(self):
        """Offset of the block from its arena's base: how another process that maps the arena names it."""
        return self._off

    @property
    def size(self):
        """Bytes asked for (the length of the buffer)."""
        return self._size

    @property
    def capacity(self):
        """Bytes of the size class the block came from (>= size)."""
        return self._capacity

    @property
    def node(self):
        """NUMA node id of the arena the block came from."""
        return self._node

    @property
    def released(self):
        return not self._held


cdef Block make_block(_Source owner, void *arena, int64_t off, Py_ssize_t size, uint32_t capacity, int node,
                      bint cached):
    cdef Block b = Block.__new__(Block)
    b._owner = owner
    b._arena = arena
    b._ptr = <char *>arena + off
    b._off = off
    b._size = size
    b._capacity = capacity
    b._node = node
    b._cached = cached
    b._held = True
    owner._live += 1
    return b


cdef object _exhausted(_Source src, int cls, timeout):
    size, count = src._sizes[cls], src._counts[cls]
    if timeout is None:
        return SlabExhausted(f"slab class {size} B is exhausted: all {count} blocks are in use (release blocks, "
                             f"raise slab_counts, or pass timeout= to wait for one)", size, count, None)
    return SlabExhausted(f"slab class {size} B is exhausted: no block of the {count} came free within {timeout} s",
                         size, count, timeout)


cdef int _wait(void *arena, int cls, double remaining) except -1:
    """Sleep on the class's futex for up to remaining seconds; a signal runs its Python handler."""
    cdef int rc
    cdef int64_t ns = _ns(remaining)
    with nogil:
        rc = me_slab_wait(arena, cls, ns)
    if rc == -EINTR:
        PyErr_CheckSignals()
    elif rc != -ETIMEDOUT:
        check(rc, "slab wait")
    return 0


cdef class Arena(_Source):
    """Arena(buffer, sizes=None, counts=None, *, cache=False)

    int me_slab_arena_init(void *base, size_t len, const struct me_slab_config *cfg)
    int me_slab_arena_check(const void *base, size_t len)

    A slab arena inside ``buffer`` (writable, 64-byte aligned: an ``mmap`` or a
    shared-memory segment's memoryview). With ``sizes`` and ``counts`` the
    arena is laid out anew (every block free, the pages touched); without,
    the arena already in the buffer is checked and attached: another process
    laid it out, both now allocate and free in it. Blocks are named by their
    offset from the buffer's start. The buffer stays exported (it cannot be
    closed or resized) until ``close()``.

    ``cache=True`` puts the calling thread's magazine in front of the shared
    free lists; leave it off when blocks are freed by other processes.
    """

    def __cinit__(self, buffer, sizes=None, counts=None, *, bint cache=False):
        cdef me_slab_config cfg
        cdef int rc
        cdef uint32_t c
        if (sizes is None) != (counts is None):
            raise ValueError("give both sizes and counts to lay out a new arena, or neither to attach")
        PyObject_GetBuffer(buffer, &self._buf, PyBUF_WRITABLE)
        self._have_buf = True
        self._base = self._buf.buf
        self._len = <size_t>self._buf.len
        self._cache = cache
        if <size_t>self._base % ME_SLAB_ALIGN:
            raise ValueError(f"an arena's buffer must be {ME_SLAB_ALIGN}-byte aligned (an mmap or shared-memory "
                             "segment is)")
        if sizes is not None:
            _config(&cfg, sizes, counts)
            need = me_slab_arena_bytes(&cfg)
            if need > self._len:
                raise ValueError(f"an arena of these classes needs {need} bytes; the buffer has {self._len}")
            with nogil:
                rc = me_slab_arena_init(self._base, self._len, &cfg)
            check(rc, "laying out a slab arena")
        else:
            rc = me_slab_arena_check(self._base, self._len)
            if rc < 0:
                raise ValueError(f"the buffer holds no usable slab arena ({os.strerror(-rc)})")
        me_slab_arena_config(self._base, &cfg)
        self._nclasses = cfg.nclasses
        for c in range(cfg.nclasses):
            self._sizes[c] = cfg.size[c]
            self._counts[c] = cfg.count[c]

    def __dealloc__(self):
        if self._have_buf:
            me_slab_arena_detach(self._base)
            PyBuffer_Release(&self._buf)
            self._have_buf = False

    @property
    def nbytes(self):
        """Bytes the arena occupies at the start of the buffer."""
        self._usable()
        return me_slab_arena_size(self._base)

    cdef Block _alloc(self, Py_ssize_t n, uint32_t owner):
        cdef int cls = self._class_of(n)
        cdef int64_t off
        if self._cache:
            off = me_slab_alloc_cached(self._base, cls, owner)
        else:
            off = me_slab_alloc_class(self._base, cls, owner)
        if off == -ENOMEM:
            return None
        check(<int>off if off < 0 else 0, "slab alloc")
        return make_block(self, self._base, off, n, self._sizes[cls], -1, self._cache)

    def alloc(self, Py_ssize_t n, timeout=None, *, uint32_t owner=0):
        """alloc(n, timeout=None, *, owner=0) -> Block

        A block of ``n`` bytes from the smallest class that fits, tagged
        ``owner`` (0: this process; a ring or peer id, see ``reclaim_owner``).
        ``timeout=None``: SlabExhausted at once when the class is empty; a
        number: wait that many seconds for a release (from any thread or any
        process that maps the arena), then SlabExhausted.
        """
        self._usable()
        cdef Block b = self._alloc(n, owner)
        if b is not None:
            return b
        cls = self._class_of(n)
        if timeout is None:
            raise _exhausted(self, cls, None)
        if not timeout >= 0:
            raise ValueError(f"timeout must be a number >= 0 (inf: no limit) or None, got {timeout}")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _exhausted(self, cls, timeout)
            _wait(self._base, cls, remaining)
            b = self._alloc(n, owner)
            if b is not None:
                return b

    def adopt(self, uint64_t offset, size=None):
        """adopt(offset, size=None) -> Block

        A Block for an allocated block named by ``offset`` (one another process
        handed over): releasing it frees the block here, to the shared list.
        ``size`` defaults to the class size. ValueError if ``offset`` names no
        allocated block.
        """
        self._usable()
        cdef uint32_t cls, index
        if me_slab_locate(self._base, offset, &cls, &index) < 0:
            raise ValueError(f"offset {offset} names no block of this arena")
        cdef int64_t st = me_slab_block_state(self._base, offset)
        if (st >> 32) != ME_SLAB_ALLOCATED:
            raise ValueError(f"the block at offset {offset} is not allocated ({_STATES.get(st >> 32, st >> 32)})")
        cdef uint32_t capacity = self._sizes[cls]
        n = capacity if size is None else size
        if n < 0 or n > capacity:
            raise ValueError(f"size {n} does not fit the block's {capacity} bytes")
        return make_block(self, self._base, <int64_t>offset, n, capacity, -1, False)

    def free(self, uint64_t offset):
        """free(offset)

        int me_slab_free(void *arena, uint64_t off)

        Free the block at ``offset`` to the shared list (for blocks held by
        offset, not as a Block). ValueError if it is already free or
        ``offset`` names no block.
        """
        self._usable()
        cdef int rc = me_slab_free(self._base, offset)
        if rc == -EALREADY:
            raise ValueError(f"the block at offset {offset} is already free")
        if rc == -EINVAL:
            raise ValueError(f"offset {offset} names no block of this arena")
        check(rc, "slab free")

    def set_owner(self, uint64_t offset, uint32_t owner):
        """set_owner(offset, owner)

        int me_slab_set_owner(void *arena, uint64_t off, uint32_t owner)

        Retag an allocated block (handed to a peer or a ring).
        """
        self._usable()
        cdef int rc = me_slab_set_owner(self._base, offset, owner)
        if rc == -EALREADY:
            raise ValueError(f"the block at offset {offset} is free")
        if rc == -EINVAL:
            raise ValueError(f"offset {offset} names no block of this arena")
        check(rc, "slab set owner")

    def block_state(self, uint64_t offset):
        """block_state(offset) -> tuple[str, int]

        ("free" | "allocated" | "cached", owner tag or caching pid) of the block at ``offset``.
        """
        self._usable()
        cdef int64_t st = me_slab_block_state(self._base, offset)
        if st < 0:
            raise ValueError(f"offset {offset} names no block of this arena")
        return (_STATES.get(st >> 32, str(st >> 32)), st & 0xFFFFFFFF)

    def reclaim_owner(self, uint32_t owner):
        """reclaim_owner(owner) -> int

        uint32_t me_slab_reclaim_owner(void *arena, uint32_t owner)

        Free every allocated block tagged ``owner`` (a dead peer's); how many.
        """
        self._usable()
        cdef uint32_t n
        with nogil:
            n = me_slab_reclaim_owner(self._base, owner)
        return n

    def reclaim_pid(self, uint32_t pid):
        """reclaim_pid(pid) -> int

        uint32_t me_slab_reclaim_pid(void *arena, uint32_t pid)

        Put back the blocks sitting in the thread magazines of process ``pid`` (dead); how many.
        """
        self._usable()
        cdef uint32_t n
        with nogil:
            n = me_slab_reclaim_pid(self._base, pid)
        return n

    def flush(self):
        """Give the calling thread's magazine back to the shared lists (cache=True arenas)."""
        self._usable()
        me_slab_cache_flush(self._base)

    def stats(self):
        """stats() -> list[dict[str, int]]

        Per class: size, count, in_use, free, high_water, failures.
        """
        self._usable()
        return _stats(self._base, self._nclasses)

    def close(self):
        """Stop using the arena: this process's magazines go back, the buffer is released.

        BufferError while a view of one of its blocks is alive; ValueError
        while a Block of it is held (release it, or ``detach()`` it when
        another process frees it): in a shared arena a block forgotten here
        would stay allocated for everyone. The arena's contents stay in the
        buffer for other processes that map it.
        """
        if self._closed:
            return
        if self._exports:
            raise BufferError(f"{self._exports} view(s) of this arena's blocks are alive: release them first")
        if self._live:
            raise ValueError(f"{self._live} block(s) of this arena are still held: release them, or detach() "
                             "those handed to another process, first")
        me_slab_arena_detach(self._base)
        self._closed = True
        if self._have_buf:
            PyBuffer_Release(&self._buf)
            self._have_buf = False


cdef class Pool(_Source):
    """Pool(sizes=DEFAULT_SIZES, counts=DEFAULT_COUNTS, numa=True, *, topology=None, bind=None)

    int me_slab_arena_init(void *base, size_t len, const struct me_slab_config *cfg)
    int64_t me_slab_alloc_cached(void *arena, uint32_t cls, uint32_t owner)

    Process-local slab pool: ``counts[i]`` blocks of ``sizes[i]`` bytes per
    NUMA node with memory (sizes ascending multiples of 64), pre-faulted and
    kept. ``numa=True`` reads the topology from ``topology`` (a
    /sys/devices/system/node folder, the default, or a copy of one) and makes
    one arena per node with memory, bound to it with mbind when there is more
    than one (``bind`` forces it on or off); an allocation comes from the
    calling CPU's node, then from the other nodes by distance. ``numa=False``,
    or a kernel without NUMA, gives one arena: the same code with one node.

    Each thread keeps a magazine of a few blocks per class of its node's arena
    in front of the shared free lists (``flush()`` gives this thread's back;
    ``close()`` and thread exit give them all back).
    """

    def __cinit__(self, sizes=DEFAULT_SIZES, counts=DEFAULT_COUNTS, bint numa=True, *, topology=None, bind=None):
        cdef me_slab_config cfg
        cdef int rc
        cdef uint32_t c, row, k, got
        cdef uint32_t order[64]
        cdef int pos_to_arena[64]
        _config(&cfg, sizes, counts)
        self._nclasses = cfg.nclasses
        for c in range(cfg.nclasses):
            self._sizes[c] = cfg.size[c]
            self._counts[c] = cfg.count[c]
        self._topo = <me_numa_topology *>malloc(sizeof(me_numa_topology))
        if self._topo == NULL:
            raise MemoryError()
        if numa:
            path = os.fsencode(NUMA_DIR if topology is None else topology)
            rc = me_numa_read(path, self._topo)
            if rc == -ENOENT and topology is None:
                me_numa_single(self._topo)  # a kernel built without NUMA: one node is the truth
            elif rc == -EINVAL:
                raise ValueError(f"the NUMA topology under {os.fsdecode(path)} is malformed")
            else:
                check(rc, f"reading the NUMA topology under {os.fsdecode(path)}")
        else:
            me_numa_single(self._topo)
        self._narenas = 0
        for k in range(self._topo.nnodes):
            pos_to_arena[k] = -1
            if self._topo.has_memory[k]:
                pos_to_arena[k] = self._narenas
                self._node_ids[self._narenas] = self._topo.node_id[k]
                self._narenas += 1
        if self._narenas == 0:
            raise ValueError("the NUMA topology has no node with memory")
        self._bound = (self._narenas > 1) if bind is None else bool(bind)
        if self._bound and not ME_HAVE_NUMA:
            raise OSError(38, "binding slab arenas to NUMA nodes needs libnuma, which this build lacks")
        # Node order per CPU; the last row is for a CPU the topology does not list.
        self._order_rows = self._topo.ncpus + 1
        self._order = <uint32_t *>malloc(self._order_rows * self._narenas * sizeof(uint32_t))
        if self._order == NULL:
            raise MemoryError()
        for row in range(<uint32_t>self._order_rows):
            got = me_numa_order(self._topo, <int>row if row < self._topo.ncpus else -1, order, 64)
            for k in range(<uint32_t>self._narenas):
                self._order[row * self._narenas + k] = pos_to_arena[order[k]] if k < got else 0
        self._arena_len = me_slab_arena_bytes(&cfg)
        for k in range(<uint32_t>self._narenas):
            rc = me_numa_map(&self._arenas[k], self._arena_len, self._node_ids[k] if self._bound else -1)
            if rc < 0:
                self._arenas[k] = NULL
                self._unmap()
                check(rc, f"mapping a {self._arena_len}-byte slab arena" +
                      (f" bound to NUMA node {self._node_ids[k]}" if self._bound else ""))
            with nogil:
                rc = me_slab_arena_init(self._arenas[k], self._arena_len, &cfg)
            if rc < 0:
                self._unmap()
                check(rc, "laying out a slab arena")

    cdef void _unmap(self) noexcept:
        cdef int k
        for k in range(self._narenas):
            if self._arenas[k] != NULL:
                me_slab_arena_detach(self._arenas[k])
                me_numa_unmap(self._arenas[k], self._arena_len)
                self._arenas[k] = NULL

    def __dealloc__(self):
        if not self._closed:
            self._unmap()
        free(self._order)
        free(self._topo)

    cdef Block _try_alloc(self, int cls, Py_ssize_t n):
        cdef uint32_t *row = self._order
        cdef int cpu, k, a
        cdef int64_t off
        if self._narenas > 1:
            cpu = sched_getcpu()
            row += (<uint32_t>cpu if 0 <= cpu < self._order_rows - 1 else self._order_rows - 1) * self._narenas
        # The own node's arena through this thread's magazine; the others (rare) through their shared lists.
        a = row[0]
        off = me_slab_alloc_cached(self._arenas[a], cls, 0)
        if off >= 0:
            return make_block(self, self._arenas[a], off, n, self._sizes[cls], self._node_ids[a], True)
        for k in range(1, self._narenas):
            if off != -ENOMEM:
                break
            a = row[k]
            off = me_slab_alloc_class(self._arenas[a], cls, 0)
            if off >= 0:
                return make_block(self, self._arenas[a], off, n, self._sizes[cls], self._node_ids[a], False)
        if off != -ENOMEM:
            check(<int>off, "slab alloc")
        return None

    def alloc(self, Py_ssize_t n, timeout=None):
        """alloc(n, timeout=None) -> Block

        A block of ``n`` bytes from the smallest class that fits (ValueError
        if none does). ``timeout=None``: SlabExhausted at once when the class
        is empty on every node; a number: wait up to that many seconds for a
        release from another thread, then SlabExhausted.
        """
        if self._closed:
            raise ValueError("the pool is closed")
        cdef int cls = self._class_of(n)
        cdef Block b = self._try_alloc(cls, n)
        if b is not None:
            return b
        if timeout is None:
            raise _exhausted(self, cls, None)
        if not timeout >= 0:
            raise ValueError(f"timeout must be a number >= 0 (inf: no limit) or None, got {timeout}")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _exhausted(self, cls, timeout)
            # One node: sleep until a release. Several: a release may land on any
            # of them, so look at all of them at least every 10 ms.
            _wait(self._arenas[self._order[0]], cls, remaining if self._narenas == 1 else min(remaining, 0.01))
            b = self._try_alloc(cls, n)
            if b is not None:
                return b

    @property
    def nodes(self):
        """NUMA node ids of the pool's arenas, one per node with memory."""
        return tuple(self._node_ids[k] for k in range(self._narenas))

    @property
    def bound(self):
        """Whether each arena is bound to its node with mbind."""
        return bool(self._bound)

    @property
    def arena_bytes(self):
        """Bytes of each node's arena."""
        return self._arena_len

    def node_order(self, int cpu):
        """node_order(cpu) -> tuple[int, ...]

        Node ids an allocation from ``cpu`` tries, in order.
        """
        cdef uint32_t row = <uint32_t>cpu if 0 <= cpu < self._order_rows - 1 else self._order_rows - 1
        return tuple(self._node_ids[self._order[row * self._narenas + k]] for k in range(self._narenas))

    def flush(self):
        """Give the calling thread's magazines back to the shared free lists."""
        self._usable()
        for k in range(self._narenas):
            me_slab_cache_flush(self._arenas[k])

    def stats(self):
        """stats() -> list[dict[str, int]]

        Per class, summed over the nodes: size, count, in_use, free, high_water
        (the sum of each node's), failures.
        """
        self._usable()
        total = None
        for k in range(self._narenas):
            per = _stats(self._arenas[k], self._nclasses)
            if total is None:
                total = per
                continue
            for t, p in zip(total, per):
                for key in ("count", "in_use", "free", "high_water", "failures"):
                    t[key] += p[key]
        return total

    def node_stats(self):
        """node_stats() -> dict[int, list[dict[str, int]]]

        ``stats()`` of each node's arena, by node id.
        """
        self._usable()
        return {self._node_ids[k]: _stats(self._arenas[k], self._nclasses) for k in range(self._narenas)}

    def close(self):
        """Unmap the arenas (every thread's magazine is dropped with them).

        BufferError while a view of one of its blocks is alive. Blocks not
        released become unusable (ValueError); releasing them does nothing.
        """
        if self._closed:
            return
        if self._exports:
            raise BufferError(f"{self._exports} view(s) of this pool's blocks are alive: release them first")
        self._closed = True
        self._unmap()


def parse_cpulist(str text):
    """parse_cpulist(text) -> list[int]

    int me_numa_parse_list(const char *s, uint8_t *bits, uint32_t nbits)

    The numbers of a kernel list such as ``"0-3,8-11"``. ValueError if malformed.
    """
    cdef uint8_t bits[512]
    cdef int n = me_numa_parse_list(text.encode(), bits, ME_NUMA_MAX_CPUS)
    if n < 0:
        raise ValueError(f"malformed cpu list {text!r}")
    return [i for i in range(ME_NUMA_MAX_CPUS) if bits[i // 8] >> (i % 8) & 1]


cdef int _read_topology(me_numa_topology *t, object path) except -1:
    p = os.fsencode(path)
    cdef int rc = me_numa_read(p, t)
    if rc == -EINVAL:
        raise ValueError(f"the NUMA topology under {os.fsdecode(p)} is malformed")
    check(rc, f"reading the NUMA topology under {os.fsdecode(p)}")
    return 0


def numa_topology(path=NUMA_DIR):
    """numa_topology(path=NUMA_DIR) -> dict

    int me_numa_read(const char *dir, struct me_numa_topology *t)

    The topology under ``path``: ``nodes`` (ids), ``memory`` (ids of the
    nodes with memory), ``cpus`` ({node: [cpu, ...]}), ``distance``
    ({node: {node: distance}}). ValueError if a file there is malformed.
    """
    cdef me_numa_topology *t = <me_numa_topology *>malloc(sizeof(me_numa_topology))
    if t == NULL:
        raise MemoryError()
    try:
        _read_topology(t, path)
        ids = [t.node_id[k] for k in range(t.nnodes)]
        cpus = {i: [] for i in ids}
        for c in range(t.ncpus):
            if t.cpu_node[c] >= 0:
                cpus[ids[t.cpu_node[c]]].append(c)
        return {
            "nodes": ids,
            "memory": [ids[k] for k in range(t.nnodes) if t.has_memory[k]],
            "cpus": cpus,
            "distance": {ids[i]: {ids[j]: t.distance[i][j] for j in range(t.nnodes)} for i in range(t.nnodes)},
        }
    finally:
        free(t)


def numa_order(int cpu, path=NUMA_DIR):
    """numa_order(cpu, path=NUMA_DIR) -> list[int]

    uint32_t me_numa_order(const struct me_numa_topology *t, int cpu, uint32_t *out, uint32_t max)

    Node ids a pool allocation from ``cpu`` tries, in order: its own node
    when that has memory, then the nodes with memory by distance (ties by
    id); a cpu the topology does not list gets them by id.
    """
    cdef uint32_t out[64]
    cdef uint32_t n
    cdef me_numa_topology *t = <me_numa_topology *>malloc(sizeof(me_numa_topology))
    if t == NULL:
        raise MemoryError()
    try:
        _read_topology(t, path)
        n = me_numa_order(t, cpu, out, 64)
        return [t.node_id[out[k]] for k in range(n)]
    finally:
        free(t)


def numa_available():
    """Whether this build has libnuma and the kernel NUMA support (mbind works)."""
    return bool(ME_HAVE_NUMA and me_numa_kernel())


# ------------------------------------------------------------------ benchmarks (perf/bench_slab.py)


def _bench_pairs(_Source src, Py_ssize_t n, uint64_t iters, bint cached=True):
    """_bench_pairs(pool_or_arena, n, iters, cached=True) -> int

    int64_t me_slab_bench_pairs(void *arena, uint32_t cls, uint64_t iters, int cached)

    Nanoseconds for ``iters`` alloc+free pairs of ``n``-byte blocks in a C
    loop, on a Pool's first arena or an Arena.
    """
    src._usable()
    cdef int cls = src._class_of(n)
    cdef void *arena
    if isinstance(src, Pool):
        arena = (<Pool>src)._arenas[(<Pool>src)._order[0]]
    else:
        arena = (<Arena>src)._base
    cdef int64_t ns
    with nogil:
        ns = me_slab_bench_pairs(arena, cls, iters, cached)
    check(<int>ns if ns < 0 else 0, "slab bench")
    return ns


def _bench_malloc(library, size_t n, uint64_t iters):
    """_bench_malloc(library, n, iters) -> int

    int64_t me_slab_bench_malloc(void *(*alloc)(size_t), void (*release)(void *), size_t n, uint64_t iters)

    Nanoseconds for ``iters`` malloc(n)+free pairs in the same C loop shape:
    this process's malloc (glibc's) when ``library`` is None, else
    ``(soname, malloc symbol, free symbol)`` loaded with dlopen (RTLD_LOCAL).
    OSError naming the library if it cannot be loaded.
    """
    cdef void *(*alloc)(size_t) noexcept nogil
    cdef void (*release)(void *) noexcept nogil
    cdef void *handle
    if library is None:
        alloc = c_malloc
        release = c_free
    else:
        soname, malloc_name, free_name = library
        handle = dlopen(os.fsencode(soname), RTLD_NOW | RTLD_LOCAL)
        if handle == NULL:
            raise OSError(ENOENT, f"cannot load {soname}: {dlerror().decode()}")
        alloc = <void *(*)(size_t) noexcept nogil>dlsym(handle, malloc_name.encode())
        release = <void (*)(void *) noexcept nogil>dlsym(handle, free_name.encode())
        if alloc == NULL or release == NULL:
            raise OSError(ENOENT, f"{soname} exports no {malloc_name}/{free_name}")
    cdef int64_t ns
    with nogil:
        ns = me_slab_bench_malloc(alloc, release, n, iters)
    check(<int>ns if ns < 0 else 0, "malloc bench")
    return ns
