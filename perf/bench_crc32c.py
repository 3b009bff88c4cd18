"""CRC32C throughput: mcp_edge (dispatched and every ISA level) against the PyPI packages and ISA-L.

Cases are buffer sizes (64B, 4KiB, 1MiB, 1MiB+7, 64MiB) of seeded random
bytes; the metric is decimal GB/s, plus calls/s at 64B where call overhead
dominates. 1MiB+7 ends in a 7-byte tail (the other sizes are multiples of 64,
all 16 mod 24), so a kernel that mishandles tails cannot pass the cross-check.
Impls: ``mcp_edge`` (dispatched), ``mcp_edge[<level>]`` for each level this CPU
runs, the peers ``crc32c`` and ``google-crc32c`` (PyPI) and ``isa-l``
(libisal ``crc32_iscsi`` through ctypes, so its per-call cost includes ctypes'
argument conversion), and ``memcpy`` (numpy copy of the same bytes into a
preallocated array) as the memory-bandwidth yardstick. A peer that is not
installed is skipped with a note. Before anything is timed, every impl must
give the CRC-32C check value and the same CRC as every other on every case
(``cross_check``); the impls are timed interleaved, best round kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from mcp_edge.perf import BenchContext, BenchError, Call, Row

NAME = "crc32c"

SEED = 0x5EED_C2C
SIZES = {"64B": 64, "4KiB": 4 << 10, "1MiB": 1 << 20, "1MiB+7": (1 << 20) + 7, "64MiB": 64 << 20}
CALLS_CASE = "64B"
CHECK_VALUE = (b"123456789", 0xE3069283)  # the CRC-32C check value (RFC 3720, B.4)

def _isal() -> Callable[..., int] | None:
    """ISA-L's ``crc32_iscsi(buf, len, init)``: CRC32C with the init/final inversion left to the caller."""
    for name in (ctypes.util.find_library("isal"), "libisal.so.2"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        fn: Callable[..., int] = lib.crc32_iscsi
        fn.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]  # type: ignore[attr-defined]
        fn.restype = ctypes.c_uint32  # type: ignore[attr-defined]
        return fn
    return None


@dataclass(frozen=True)
class Impl:
    """How to time an implementation on a buffer, and the standard CRC32C it computes for one."""

    fn: Callable[..., object]
    args_before: tuple[object, ...] = ()
    raw_crc: bool = False  # ISA-L style: init 0xFFFFFFFF passed in, result not inverted

    def call(self, buf: bytes) -> Call:
        if self.raw_crc:
            return Call(self.fn, (buf, len(buf), 0xFFFFFFFF))
        return Call(self.fn, (*self.args_before, buf))

    def crc(self, buf: bytes) -> int:
        value = self.call(buf)()
        assert isinstance(value, int)
        return value ^ 0xFFFFFFFF if self.raw_crc else value


def _impls(ctx: BenchContext) -> dict[str, Impl]:
    from mcp_edge.native import cpu, crc32c, crc32c_variant

    impls = {"mcp_edge": Impl(crc32c)}
    if cpu.forced():
        ctx.note(f"MCP_EDGE_ISA caps the dispatch: the mcp_edge row runs {cpu.active()}")
    for level in cpu.levels():
        impls[f"mcp_edge[{level}]"] = Impl(crc32c_variant, (level,))

    try:
        import crc32c as crc32c_pkg
    except ImportError:
        ctx.note("peer crc32c is not installed (pip install crc32c); skipped")
    else:
        impls["crc32c"] = Impl(crc32c_pkg.crc32c)

    try:
        import google_crc32c
    except ImportError:
        ctx.note("peer google-crc32c is not installed (pip install google-crc32c); skipped")
    else:
        if google_crc32c.implementation != "c":
            ctx.note("google-crc32c has no C extension here (pure-Python fallback); skipped")
        else:
            impls["google-crc32c"] = Impl(google_crc32c.value)

    isal = _isal()
    if isal is None:
        ctx.note("ISA-L (libisal.so.2) not found (apt-get install libisal2); isa-l skipped")
    else:
        impls["isa-l"] = Impl(isal, raw_crc=True)
    return impls


def _memcpy(ctx: BenchContext, max_size: int) -> Callable[[bytes], Call] | None:
    """np.copyto of the buffer into a preallocated array, or None without numpy."""
    try:
        import numpy as np
    except ImportError:
        ctx.note("numpy is not installed (pip install numpy); memcpy reference skipped")
        return None
    dst_all = np.empty(max_size, dtype=np.uint8)
    dst_all.fill(0)  # fault the pages in before timing

    def make(buf: bytes) -> Call:
        src = np.frombuffer(buf, dtype=np.uint8)
        dst = dst_all[: len(buf)]
        np.copyto(dst, src)
        if dst.tobytes() != buf:
            raise BenchError(f"memcpy reference copied {len(buf)} bytes wrongly")
        return Call(np.copyto, (dst, src))

    return make


def _cases(ctx: BenchContext) -> Iterator[tuple[str, bytes]]:
    data = random.Random(SEED).randbytes(max(SIZES.values()))
    for case, size in SIZES.items():
        yield case, data if size == len(data) else data[:size]


def cross_check(impls: dict[str, Impl], cases: Iterable[tuple[str, bytes]]) -> None:
    """BenchError unless every impl gives the CRC-32C check value and, on every case, the CRC of ``mcp_edge``;
    the first impl to differ is named. A wrong CRC, however fast, is never timed."""
    for impl, spec in impls.items():
        got = spec.crc(CHECK_VALUE[0])
        if got != CHECK_VALUE[1]:
            raise BenchError(f"{impl} fails the CRC-32C check value: {got:#010x}, not {CHECK_VALUE[1]:#010x}")
    for case, buf in cases:
        expected = impls["mcp_edge"].crc(buf)
        for impl, spec in impls.items():
            got = spec.crc(buf)
            if got != expected:
                raise BenchError(
                    f"CRC32C mismatch at {case}: {impl} gives {got:#010x}, mcp_edge gives {expected:#010x}"
                )


def run(ctx: BenchContext) -> Iterator[Row]:
    impls = _impls(ctx)
    cross_check(impls, _cases(ctx))
    memcpy = _memcpy(ctx, max(SIZES.values()))
    ctx.plan(len(SIZES) * (len(impls) + (memcpy is not None)))
    for case, buf in _cases(ctx):
        calls = {impl: spec.call(buf) for impl, spec in impls.items()}
        if memcpy is not None:
            calls["memcpy"] = memcpy(buf)
        timings = ctx.compare(calls, label=case)
        for impl, timing in timings.items():
            yield Row(case, impl, "GB/s", timing.gb_per_s(len(buf)))
        if case == CALLS_CASE:
            for impl, timing in timings.items():
                yield Row(case, impl, "calls/s", timing.per_second())
