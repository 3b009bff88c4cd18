# cython: language_level=3
"""Aligned buffers and hugepage-backed buffer pools for O_DIRECT I/O."""

from cpython.buffer cimport PyBuffer_FillInfo
from libc.stdint cimport uint32_t
from posix.uio cimport iovec

from mcp_edge.native._check cimport check
from mcp_edge.native.includes.me_dio cimport (
    ME_PAGES_4K,
    ME_PAGES_AUTO,
    ME_PAGES_HUGETLB,
    ME_PAGES_THP,
    me_dio_alignment,
    me_dio_alloc,
    me_dio_free,
    me_hugepage_size,
    me_region_map,
    me_region_unmap,
)

DEFAULT_ALIGN = 4096
_PAGE_NAMES = {ME_PAGES_4K: "4k", ME_PAGES_THP: "thp", ME_PAGES_HUGETLB: "hugetlb"}
_PAGE_KINDS = {"auto": ME_PAGES_AUTO, "4k": ME_PAGES_4K, "thp": ME_PAGES_THP, "hugetlb": ME_PAGES_HUGETLB}


cdef size_t _checked_align(object align) except 0:
    cdef size_t a = DEFAULT_ALIGN if align is None else align
    if a < 8 or a & (a - 1):
        raise ValueError(f"alignment must be a power of two >= 8, got {align}")
    return a


cdef class _Memory:
    """Memory exposed through the writable buffer protocol; subclasses say whether it is still there."""

    cdef int _usable(self) except -1:
        return 0

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._usable()
        PyBuffer_FillInfo(view, self, self._ptr, self._size, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def __len__(self):
        return self._size

    @property
    def size(self):
        return self._size

    @property
    def address(self):
        return <size_t>self._ptr


cdef class AlignedBuffer(_Memory):
    """AlignedBuffer(size, align=None)

    int me_dio_alloc(void **out, size_t size, size_t align)

    ``size`` zeroed bytes aligned to ``align`` (default 4096), for O_DIRECT.
    Exposes the writable buffer protocol: ``memoryview(buf)``,
    ``numpy.frombuffer(buf, ...)`` read and write it in place.
    """

    def __cinit__(self, Py_ssize_t size, align=None):
        if size <= 0:
            raise ValueError(f"buffer size must be positive, got {size}")
        self._align = _checked_align(align)
        check(me_dio_alloc(&self._ptr, <size_t>size, self._align), "aligned allocation")
        self._size = size

    def __dealloc__(self):
        if self._ptr != NULL:
            me_dio_free(self._ptr)
            self._ptr = NULL

    cdef int _usable(self) except -1:
        if self._ptr == NULL:
            raise ValueError("buffer is closed")
        return 0

    @property
    def align(self):
        return self._align

    def close(self):
        """Free the memory now; BufferError while a memoryview of it is alive."""
        if self._exports:
            raise BufferError(f"buffer still has {self._exports} exported view(s): release them first")
        if self._ptr != NULL:
            me_dio_free(self._ptr)
            self._ptr = NULL


cdef class PoolBuffer(_Memory):
    """One fixed-size buffer of a BufferPool; ``index`` is its registered-buffer index."""

    cdef int _usable(self) except -1:
        if self._pool is None or self._pool._base == NULL:
            raise ValueError("the pool of this buffer is closed")
        return 0

    @property
    def index(self):
        return self._index

    def release(self):
        """Give the buffer back to its pool."""
        self._pool.release(self)


cdef class BufferPool:
    """BufferPool(count, size, align=None, pages="auto")

    int me_region_map(void **out, size_t size, int want, int *got, size_t *mapped)

    ``count`` buffers of ``size`` bytes carved out of one region, each aligned
    to ``align`` (default 4096). ``pages``: "auto" tries reserved hugepages
    (MAP_HUGETLB), then transparent hugepages (madvise), then 4 KiB pages;
    "hugetlb", "thp" or "4k" demand one. ``pages_used`` says which was used.
    """

    def __cinit__(self, Py_ssize_t count, Py_ssize_t size, align=None, str pages="auto"):
        if count <= 0 or size <= 0:
            raise ValueError(f"a pool needs count > 0 and size > 0, got count={count} size={size}")
        self._align = _checked_align(align)
        if self._align > 4096:
            raise ValueError(f"pool alignment is at most 4096 (the page size), got {self._align}")
        if size % self._align:
            raise ValueError(f"buffer size {size} is not a multiple of the alignment {self._align}")
        if pages not in _PAGE_KINDS:
            raise ValueError(f"pages must be one of {', '.join(_PAGE_KINDS)}, got {pages!r}")
        cdef int got = 0
        cdef size_t mapped = 0
        check(me_region_map(&self._base, <size_t>(count * size), _PAGE_KINDS[pages], &got, &mapped),
              f"mapping a {count}x{size} byte pool with {pages} pages")
        self._mapped = mapped
        self._kind = got
        self._count = count
        self._size = size
        self._free = list(range(count - 1, -1, -1))
        self._buffers = []
        cdef PoolBuffer b
        cdef Py_ssize_t i
        for i in range(count):
            b = PoolBuffer.__new__(PoolBuffer)
            b._pool = self
            b._index = i
            b._ptr = <char *>self._base + i * size
            b._size = size
            self._buffers.append(b)

    def __dealloc__(self):
        if self._base != NULL:
            me_region_unmap(self._base, self._mapped)
            self._base = NULL

    @property
    def count(self):
        return self._count

    @property
    def buffer_size(self):
        return self._size

    @property
    def align(self):
        return self._align

    @property
    def pages_used(self):
        return _PAGE_NAMES[self._kind]

    @property
    def mapped_bytes(self):
        return self._mapped

    @property
    def available(self):
        return len(self._free)

    @property
    def buffers(self):
        return tuple(self._buffers)

    def acquire(self):
        """A free buffer; BlockingIOError when all are in use."""
        if self._base == NULL:
            raise ValueError("the pool is closed")
        if not self._free:
            raise BlockingIOError(f"all {self._count} buffers of the pool are in use")
        return self._buffers[self._free.pop()]

    def release(self, PoolBuffer buf):
        """Return ``buf``; ValueError if it is not this pool's or already free."""
        if buf._pool is not self:
            raise ValueError("this buffer belongs to another pool")
        if buf._index in self._free:
            raise ValueError(f"buffer {buf._index} is already free")
        self._free.append(buf._index)

    cdef int fill_iovecs(self, iovec *out) except -1:
        cdef Py_ssize_t i
        for i in range(self._count):
            out[i].iov_base = <char *>self._base + i * self._size
            out[i].iov_len = <size_t>self._size
        return 0

    def close(self):
        """Unmap the region; BufferError while any buffer has a live memoryview."""
        for b in self._buffers:
            if (<PoolBuffer>b)._exports:
                raise BufferError(f"buffer {(<PoolBuffer>b)._index} still has exported views: release them first")
        if self._base != NULL:
            me_region_unmap(self._base, self._mapped)
            self._base = NULL


def hugepage_size():
    """hugepage_size() -> int

    size_t me_hugepage_size(void)

    Size in bytes of a reserved hugepage on this machine (0 if unknown).
    """
    return me_hugepage_size()


def dio_alignment(int fd):
    """dio_alignment(fd) -> tuple[int, int] | None

    int me_dio_alignment(int fd, uint32_t *mem_align, uint32_t *offset_align)

    (memory alignment, file-offset alignment) for O_DIRECT on ``fd`` from
    statx(STATX_DIOALIGN), or None when the kernel or filesystem does not say.
    """
    cdef uint32_t mem = 0, off = 0
    cdef int rc = me_dio_alignment(fd, &mem, &off)
    if rc == -95:  # EOPNOTSUPP
        return None
    check(rc, "statx(STATX_DIOALIGN)")
    return (mem, off)
