# cython: language_level=3
"""CPU features and the ISA level every native kernel dispatches on.

The level is chosen once, at import: the best this CPU runs, or the one named
by ``MCP_EDGE_ISA`` (a cap), which must be a level this CPU can run.
"""

from libc.stdint cimport uint32_t

from mcp_edge.board.environ import process_environ
from mcp_edge.errors import IsaLevelError
from mcp_edge.native.includes.me_cpu cimport (
    ME_CPU_FEATURE_COUNT,
    ME_LEVEL_COUNT,
    me_cpu_best_level,
    me_cpu_best_level_for,
    me_cpu_feature_name,
    me_cpu_features,
    me_cpu_level_from_name,
    me_cpu_level_name,
    me_cpu_level_runnable,
)

ISA_ENV = "MCP_EDGE_ISA"


def features():
    """features() -> dict[str, bool]

    uint32_t me_cpu_features(void)

    The SIMD features of this CPU's architecture that mcp_edge uses, each True
    when both the CPU and the OS enable it (xgetbv on x86-64, AT_HWCAP on aarch64).
    """
    cdef uint32_t bits = me_cpu_features()
    cdef int i
    cdef const char *name
    result = {}
    for i in range(ME_CPU_FEATURE_COUNT):
        name = me_cpu_feature_name(i)
        if name != NULL and _feature_on_this_arch(i):
            result[name.decode()] = bool(bits & (1u << i))
    return result


cdef bint _feature_on_this_arch(int bit):
    import platform
    arm = platform.machine() in ("aarch64", "arm64")
    return (bit >= 8) == arm


_ARCHES = {"x86_64": 0, "amd64": 0, "aarch64": 1, "arm64": 1}


def feature_names(str arch):
    """feature_names(arch) -> list[str]

    The feature names of architecture ``arch`` (x86_64 or aarch64) that the
    level logic knows, in bit order; ValueError for another architecture.
    """
    aarch64 = _arch_number(arch)
    cdef int i
    cdef const char *name
    out = []
    for i in range(ME_CPU_FEATURE_COUNT):
        name = me_cpu_feature_name(i)
        if name != NULL and (i >= 8) == bool(aarch64):
            out.append(name.decode())
    return out


cdef int _arch_number(str arch) except -1:
    number = _ARCHES.get(arch)
    if number is None:
        raise ValueError(f"unknown architecture {arch!r}: levels exist for x86_64 and aarch64")
    return number


def best_level_for(str arch, features):
    """best_level_for(arch, features) -> str

    int me_cpu_best_level_for(uint32_t features, int aarch64)

    The level the dispatcher would pick on a CPU of ``arch`` with the named
    ``features`` (names from feature_names(arch)); ValueError naming an unknown
    feature. The same rule as this CPU's choice, fed another CPU's features.
    """
    cdef int aarch64 = _arch_number(arch)
    known = feature_names(arch)
    cdef uint32_t bits = 0
    cdef int i
    cdef const char *name
    for feature in features:
        if feature not in known:
            raise ValueError(f"unknown {arch} CPU feature {feature!r} (known: {', '.join(known)})")
        for i in range(ME_CPU_FEATURE_COUNT):
            name = me_cpu_feature_name(i)
            if name != NULL and name.decode() == feature:
                bits |= 1u << i
    return me_cpu_level_name(me_cpu_best_level_for(bits, aarch64)).decode()


# Probed once: cpuid traps to the hypervisor in a VM and costs tens of microseconds.
_LEVELS = tuple(
    me_cpu_level_name(i).decode() for i in range(ME_LEVEL_COUNT) if me_cpu_level_runnable(i)
)
_NUMBERS = {name: me_cpu_level_from_name(name.encode()) for name in _LEVELS}


def levels():
    """levels() -> list[str]

    int me_cpu_level_runnable(int level)

    The ISA levels this CPU can run, lowest first.
    """
    return list(_LEVELS)


def level_number(str name):
    """level_number(name) -> int

    The C number of level ``name``; IsaLevelError for an unknown name or a level
    this CPU cannot run.
    """
    number = _NUMBERS.get(name)
    if number is not None:
        return number
    cdef int level = me_cpu_level_from_name(name.encode())
    runnable = _LEVELS
    if level < 0:
        raise IsaLevelError(
            f"unknown ISA level {name!r}: levels are scalar, sse42, avx2, avx512 (x86-64) "
            f"and scalar, armv8crc, neon (aarch64); this CPU runs {', '.join(runnable)}"
        )
    raise IsaLevelError(f"this CPU cannot run ISA level {name!r}; it runs {', '.join(runnable)}")


def _select():
    forced = process_environ().get(ISA_ENV)
    if forced is None or forced == "":
        return me_cpu_level_name(me_cpu_best_level()).decode()
    try:
        level_number(forced)
    except IsaLevelError as exc:
        raise IsaLevelError(f"{ISA_ENV}={forced}: {exc}") from None
    return forced


_ACTIVE = _select()


def active():
    """active() -> str

    The ISA level the kernels run: the best this CPU has, capped by MCP_EDGE_ISA.
    """
    return _ACTIVE


def forced():
    """forced() -> bool

    True when MCP_EDGE_ISA chose the level.
    """
    return bool(process_environ().get(ISA_ENV))
