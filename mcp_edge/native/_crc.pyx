# cython: language_level=3, boundscheck=False, wraparound=False
"""CRC32C (Castagnoli) over any contiguous buffer, through the dispatched kernel."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint32_t, uint64_t

from mcp_edge.errors import IsaLevelError
from mcp_edge.native._cpu import active as _active_level
from mcp_edge.native._cpu import level_number as _level_number
from mcp_edge.native._cpu import levels as _levels
from mcp_edge.native.includes.me_cpu cimport me_cpu_feature_name, me_cpu_level_name
from mcp_edge.native.includes.me_crc32c cimport (
    me_crc32c,
    me_crc32c_active,
    me_crc32c_active_kernel,
    me_crc32c_combine,
    me_crc32c_kernel_address,
    me_crc32c_kernel_count,
    me_crc32c_kernel_detail,
    me_crc32c_kernel_level,
    me_crc32c_kernel_name,
    me_crc32c_kernel_needs,
    me_crc32c_kernel_runnable,
    me_crc32c_level,
    me_crc32c_level_kernel,
    me_crc32c_set_level,
    me_crc32c_variant,
)

# Inputs at least this long are checksummed with the GIL released.
DEF NOGIL_MIN = 16384

# Kernel or level name -> C kernel number, filled on first use of each name.
cdef dict _variant_numbers = {}


cdef str _name_of(int kernel):
    return me_crc32c_kernel_name(kernel).decode()


# The kernels of this build, by name (lowest level first), and those this CPU runs.
_KERNELS = {_name_of(k): k for k in range(me_crc32c_kernel_count())}
_RUNNABLE = [name for name, k in _KERNELS.items() if me_crc32c_kernel_runnable(k)]


cdef int _kernel_number(str name) except -1:
    """The kernel `name` runs: a kernel's own name, or a level's (its best kernel here)."""
    found = _variant_numbers.get(name)
    if found is not None:
        return found
    cdef int k
    cdef uint32_t needs
    kernel = _KERNELS.get(name)
    if kernel is None:
        try:
            level = _level_number(name)
        except IsaLevelError as exc:
            raise IsaLevelError(f"{exc}; the CRC32C kernels of this build are {', '.join(_KERNELS)}") from None
        k = me_crc32c_level_kernel(level)
        if k < 0:
            raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {name!r}")
    else:
        k = kernel
        if not me_crc32c_kernel_runnable(k):
            level_name = me_cpu_level_name(me_crc32c_kernel_level(k)).decode()
            needs = me_crc32c_kernel_needs(k)
            extra = [me_cpu_feature_name(i).decode() for i in range(32)
                     if needs & (1u << i) and me_cpu_feature_name(i) != NULL]
            wants = f"the {level_name} level" + (f" and {', '.join(extra)}" if extra else "")
            raise IsaLevelError(f"this CPU cannot run CRC32C kernel {name!r} (it needs {wants}); "
                                f"it runs {', '.join(_RUNNABLE)}")
    _variant_numbers[name] = k
    return k


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


def crc32c_variant(str kernel, data, uint32_t value=0):
    """crc32c_variant(kernel, data, value=0) -> int

    int me_crc32c_variant(int kernel, uint32_t crc, const void *buf, size_t len, uint32_t *out)

    crc32c() through one kernel, whatever level is active: a kernel's name
    (``kernels()``: ``avx2-pclmul``, ``avx2-vpclmul`` ...) or an ISA level's
    (``scalar``, ``sse42``, ``avx2``, ``avx512``, ``armv8crc``, ``neon``: the
    kernel that level runs on this CPU). IsaLevelError when the name is unknown
    or this CPU cannot run it.
    """
    cdef int number = _kernel_number(kernel)
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
        raise IsaLevelError(f"this CPU cannot run CRC32C kernel {kernel!r}")
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


def kernel_name():
    """kernel_name() -> str

    int me_crc32c_active(void)

    The name of the kernel that crc32c() runs (``avx2-vpclmul``), found from
    the kernel in use.
    """
    cdef int k = me_crc32c_active()
    if k < 0:
        raise RuntimeError("CRC32C dispatch runs a kernel that is not in the kernel table")
    return _name_of(k)


def kernel_description():
    """kernel_description() -> str

    const char *me_crc32c_kernel_detail(int kernel)

    The level and what the kernel that crc32c() runs does, for people:
    ``avx2 (vpclmulqdq-256 + crc32 x3)``.
    """
    cdef int k = me_crc32c_active()
    if k < 0:
        raise RuntimeError("CRC32C dispatch runs a kernel that is not in the kernel table")
    return f"{kernel_level()} ({me_crc32c_kernel_detail(k).decode()})"


def kernels():
    """kernels() -> list[str]

    const char *me_crc32c_kernel_name(int kernel)

    The CRC32C kernels of this build, lowest level first, whether or not this
    CPU runs them (``runnable_kernels()`` says which it runs).
    """
    return list(_KERNELS)


def runnable_kernels():
    """runnable_kernels() -> list[str]

    int me_crc32c_kernel_runnable(int kernel)

    The CRC32C kernels this CPU runs, lowest level first.
    """
    return list(_RUNNABLE)


def level_kernels():
    """level_kernels() -> dict[str, str]

    int me_crc32c_level_kernel(int level)

    For each ISA level this CPU runs, the kernel it runs (the best of its kernels here).
    """
    out = {}
    for name in _levels():
        k = me_crc32c_level_kernel(_level_number(name))
        if k >= 0:
            out[name] = _name_of(k)
    return out


def _kernel_addresses():
    """_kernel_addresses() -> dict[str, int]

    uintptr_t me_crc32c_kernel_address(int kernel)

    Test hook: the address of each kernel of this build.
    """
    return {name: me_crc32c_kernel_address(k) for name, k in _KERNELS.items()}


def _active_kernel():
    """_active_kernel() -> int

    uintptr_t me_crc32c_active_kernel(void)

    Test hook: the address of the kernel crc32c() calls now.
    """
    return me_crc32c_active_kernel()


cdef int _rc = me_crc32c_set_level(_level_number(_active_level()))
if _rc < 0:
    raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {_active_level()!r}")
