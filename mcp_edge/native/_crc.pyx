# cython: language_level=3, boundscheck=False, wraparound=False
"""CRC32C (Castagnoli) over any contiguous buffer, through the dispatched kernel."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint32_t, uint64_t

from mcp_edge.errors import IsaLevelError
from mcp_edge.native._cpu import active as _active_level
from mcp_edge.native._cpu import level_number as _level_number
from mcp_edge.native.includes.me_cpu cimport ME_LEVEL_COUNT, me_cpu_level_name
from mcp_edge.native.includes.me_crc32c cimport (
    me_crc32c,
    me_crc32c_active_kernel,
    me_crc32c_combine,
    me_crc32c_level,
    me_crc32c_level_kernel,
    me_crc32c_set_level,
    me_crc32c_variant,
)

# Inputs at least this long are checksummed with the GIL released.
DEF NOGIL_MIN = 16384

# Level name -> C level number, filled on first use of each name.
cdef dict _variant_numbers = {}


cdef int _get(object data, Py_buffer *view) except -1:
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except BufferError as exc:
        raise BufferError(f"crc32c needs a C-contiguous buffer ({exc}); pass bytes(data) "
                          f"or a contiguous copy") from None
    except ValueError as exc:  # numpy reports non-contiguous arrays as ValueError
        raise BufferError(f"crc32c needs a C-contiguous buffer ({exc}); pass a contiguous copy") from None
    return 0


cdef inline uint32_t _run(uint32_t value, Py_buffer *view) noexcept:
    cdef uint32_t r
    if view.len >= NOGIL_MIN:
        with nogil:
            r = me_crc32c(value, view.buf, <size_t>view.len)
        return r
    return me_crc32c(value, view.buf, <size_t>view.len)


def crc32c(data, uint32_t value=0):
    """crc32c(data, value=0) -> int

    uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len)

    CRC32C of ``data`` (any C-contiguous buffer: bytes, bytearray, memoryview,
    numpy array, mmap), read in place, continuing from ``value``, the CRC of
    what came before. Inputs of 16 KiB or more run with the GIL released.
    """
    cdef Py_buffer view
    _get(data, &view)
    try:
        return _run(value, &view)
    finally:
        PyBuffer_Release(&view)


def crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b):
    """crc32c_combine(crc_a, crc_b, len_b) -> int

    uint32_t me_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)

    The CRC32C of A followed by B, from crc32c(A), crc32c(B) and len(B).
    """
    return me_crc32c_combine(crc_a, crc_b, len_b)


def crc32c_variant(str level, data, uint32_t value=0):
    """crc32c_variant(level, data, value=0) -> int

    int me_crc32c_variant(int level, uint32_t crc, const void *buf, size_t len, uint32_t *out)

    crc32c() through the kernel of one ISA level (``scalar``, ``sse42``,
    ``avx2``, ``avx512``, ``neon``), whatever level is active. IsaLevelError
    when this CPU cannot run it.
    """
    found = _variant_numbers.get(level)
    if found is None:
        found = _variant_numbers[level] = _level_number(level)  # IsaLevelError if not runnable
    cdef int number = found
    cdef Py_buffer view
    cdef uint32_t out = 0
    cdef int rc
    _get(data, &view)
    try:
        if view.len >= NOGIL_MIN:
            with nogil:
                rc = me_crc32c_variant(number, value, view.buf, <size_t>view.len, &out)
        else:
            rc = me_crc32c_variant(number, value, view.buf, <size_t>view.len, &out)
    finally:
        PyBuffer_Release(&view)
    if rc < 0:
        raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {level!r}")
    return out


def kernel_level():
    """kernel_level() -> str

    int me_crc32c_level(void)

    The ISA level of the kernel that crc32c() runs, found from the kernel in
    use (so it cannot disagree with what runs).
    """
    cdef int n = me_crc32c_level()
    cdef const char *name = me_cpu_level_name(n) if n >= 0 else NULL
    if name == NULL:
        raise RuntimeError(f"CRC32C dispatch runs a kernel of no known level ({n})")
    return name.decode()


def kernels():
    """kernels() -> list[str]

    uintptr_t me_crc32c_level_kernel(int level)

    The ISA levels this build has a CRC32C kernel for, lowest first, whether or
    not this CPU runs them (``cpu.levels()`` says which it runs).
    """
    cdef int i
    return [me_cpu_level_name(i).decode() for i in range(ME_LEVEL_COUNT) if me_crc32c_level_kernel(i)]


def _kernel_addresses():
    """_kernel_addresses() -> dict[str, int]

    Test hook: the address of each level's kernel in this build.
    """
    cdef int i
    return {me_cpu_level_name(i).decode(): me_crc32c_level_kernel(i)
            for i in range(ME_LEVEL_COUNT) if me_crc32c_level_kernel(i)}


def _active_kernel():
    """_active_kernel() -> int

    uintptr_t me_crc32c_active_kernel(void)

    Test hook: the address of the kernel crc32c() calls now.
    """
    return me_crc32c_active_kernel()


cdef int _rc = me_crc32c_set_level(_level_number(_active_level()))
if _rc < 0:
    raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {_active_level()!r}")
