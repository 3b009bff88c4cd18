"""CRC32C throughput: mcp_edge (dispatched and every kernel) against the PyPI packages and ISA-L.

Cases are buffer sizes (64B, 4KiB, 1MiB, 1MiB+7, 64MiB) of seeded random
bytes; the metric is decimal GB/s, plus calls/s at 64B where call overhead
dominates. 1MiB+7 ends in a 7-byte tail (the other sizes are multiples of 64,
all 16 mod 24), so a kernel that mishandles tails cannot pass the cross-check
and its tail handling is always measured.

Impls:

- ``mcp_edge``: the dispatched ``crc32c``; a note names the kernel it ran
  and its level (``kernel_name()``, ``kernel_description()``);
- ``mcp_edge[<level>]``: ``crc32c_variant(level, ...)`` for every ISA level
  this CPU runs (``scalar``, ``sse42``, ``avx2``, ...: the names that hold
  across machines; a note says which kernel a level runs when its name
  differs), and ``mcp_edge[<kernel>]`` for every other kernel name this build
  reports (``mcp_edge.native._crc.kernels()``: ``avx2-pclmul``,
  ``avx2-vpclmul`` ...); a kernel this CPU cannot run is skipped with a note
  that names it;
- ``crc32c`` and ``google-crc32c`` (PyPI, C extensions);
- ``isa-l``: libisal's dispatched ``crc32_iscsi`` (its AVX-512 kernel where the
  CPU has one), and ``isa-l[01]``: ``crc32_iscsi_01``, its SSE4.2 + PCLMULQDQ
  kernel called directly, the reference for an AVX2-class kernel on any x86
  machine; both through ctypes, so their per-call cost includes ctypes'
  argument conversion;
- ``memcpy``: numpy copy of the same bytes into a preallocated array, the
  memory-bandwidth yardstick.

A peer that is not installed is skipped with a note.

Placement: every impl runs in a child process (:mod:`mcp_edge.perf.isolation`):
one for all the ``mcp_edge`` rows, one per peer, one for memcpy. A peer that
crashes (an instruction this CPU lacks), hangs or raises is noted and its rows
left out; the others go on. Each child gets the case's bytes over a pipe, so
every impl reads its own copy of the same bytes, in a process that holds
nothing else; the pipe round trip is outside the timed region.

Before anything is timed, every impl must give the CRC-32C check value and the
same CRC as every other on every case (``cross_check``). Within each size the
impls are timed interleaved (A B C A B C ..., ``ROUNDS`` rounds, quick or
full) and the **median** round is reported, so a noisy moment on this shared
machine lands on one round of every impl rather than on one row.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import platform
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mcp_edge.perf import BenchContext, BenchError, Call, Child, PeerFailed, PeerSkipped, Row, Timer

NAME = "crc32c"

SEED = 0x5EED_C2C
SIZES = {"64B": 64, "4KiB": 4 << 10, "1MiB": 1 << 20, "1MiB+7": (1 << 20) + 7, "64MiB": 64 << 20}
CALLS_CASE = "64B"
CHECK_VALUE = (b"123456789", 0xE3069283)  # the CRC-32C check value (RFC 3720, B.4)
ROUNDS = {True: 5, False: 9}  # interleaved rounds per size, quick / full; the median is reported
PEERS = ("crc32c", "google-crc32c", "isa-l", "isa-l[01]")
ISAL_SYMBOLS = {"isa-l": "crc32_iscsi", "isa-l[01]": "crc32_iscsi_01"}


# --------------------------------------------------------------------------- impls (built where they run)


def _isal(symbol: str) -> Callable[..., int]:
    """ISA-L's ``symbol(buf, len, init)``: CRC32C with the init/final inversion left to the caller."""
    for name in (ctypes.util.find_library("isal"), "libisal.so.2"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            fn: Callable[..., int] = getattr(lib, symbol)
        except AttributeError:
            raise PeerSkipped(f"libisal ({name}) exports no {symbol} on this machine") from None
        fn.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]  # type: ignore[attr-defined]
        fn.restype = ctypes.c_uint32  # type: ignore[attr-defined]
        return fn
    raise PeerSkipped("ISA-L (libisal.so.2) not found (apt-get install libisal2)")


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

    def timer(self, buf: bytes) -> Call | Timer:
        return self.call(buf)

    def close(self) -> None:
        pass


def build_impl(impl: str) -> Impl:
    """The :class:`Impl` named ``impl``, built in the process that will run it; PeerSkipped if it cannot run here."""
    if impl == "mcp_edge":
        from mcp_edge.native import crc32c

        return Impl(crc32c)
    if impl.startswith("mcp_edge["):
        from mcp_edge.native import crc32c_variant

        return Impl(crc32c_variant, (impl.removeprefix("mcp_edge[").removesuffix("]"),))
    if impl == "crc32c":
        try:
            import crc32c as crc32c_pkg
        except ImportError:
            raise PeerSkipped("not installed (pip install crc32c)") from None
        return Impl(crc32c_pkg.crc32c)
    if impl == "google-crc32c":
        try:
            import google_crc32c
        except ImportError:
            raise PeerSkipped("not installed (pip install google-crc32c)") from None
        if google_crc32c.implementation != "c":
            raise PeerSkipped("no C extension here (pure-Python fallback)")
        return Impl(google_crc32c.value)
    if impl == "isa-l[01]" and platform.machine() in ("x86_64", "AMD64", "i686"):
        from mcp_edge.native import cpu

        missing = [f for f in ("sse42", "pclmulqdq") if not cpu.features().get(f)]
        if missing:
            raise PeerSkipped(f"crc32_iscsi_01 needs {' and '.join(missing)}, which this CPU lacks")
    if impl in ISAL_SYMBOLS:
        return Impl(_isal(ISAL_SYMBOLS[impl]), raw_crc=True)
    raise ValueError(f"no CRC32C impl named {impl!r}")


class Host:
    """What a child process runs: some impls (or ``memcpy``) over the current buffer.

    ``load(buf)`` makes ``buf`` the current buffer; ``crc(impl)`` is that impl's
    CRC32C of it; ``timed_call(impl)`` the call to time on it.
    """

    def __init__(self, impls: list[str]) -> None:
        self._impls = {name: build_impl(name) for name in impls if name != "memcpy"}
        self._memcpy = _Memcpy() if "memcpy" in impls else None
        self._buf = b""

    def load(self, buf: bytes) -> None:
        self._buf = buf
        if self._memcpy is not None:
            self._memcpy.load(buf)

    def crc(self, impl: str) -> int:
        return self._impls[impl].crc(self._buf)

    def timed_call(self, impl: str) -> Call:
        if impl == "memcpy" and self._memcpy is not None:
            return self._memcpy.call()
        return self._impls[impl].call(self._buf)


class _Memcpy:
    """np.copyto of the buffer into a preallocated array (pages faulted in before timing)."""

    def __init__(self) -> None:
        try:
            import numpy as np
        except ImportError:
            raise PeerSkipped("numpy is not installed (pip install numpy); no memory-bandwidth yardstick") from None
        self._np = np
        self._dst = np.empty(0, dtype=np.uint8)
        self._src = self._dst

    def load(self, buf: bytes) -> None:
        np = self._np
        if len(self._dst) < len(buf):
            self._dst = np.zeros(len(buf), dtype=np.uint8)
        self._src = np.frombuffer(buf, dtype=np.uint8)
        dst = self._dst[: len(buf)]
        np.copyto(dst, self._src)
        if dst.tobytes() != buf:
            raise BenchError(f"memcpy reference copied {len(buf)} bytes wrongly")

    def call(self) -> Call:
        return Call(self._np.copyto, (self._dst[: len(self._src)], self._src))


# --------------------------------------------------------------------------- impls seen from the parent


class Handle(Protocol):
    def crc(self, buf: bytes) -> int: ...
    def timer(self, buf: bytes) -> Call | Timer: ...
    def close(self) -> None: ...


class _Group:
    """One child process hosting a :class:`Host`; sends a buffer only when it is not the current one."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self._current: bytes | None = None

    def load(self, buf: bytes) -> None:
        if buf is not self._current:
            self._current = None
            self.child.call("load", buf)
            self._current = buf


@dataclass
class Isolated:
    """An impl in a child process, as the parent sees it."""

    group: _Group
    impl: str

    def crc(self, buf: bytes) -> int:
        self.group.load(buf)
        value = self.group.child.call("crc", self.impl)
        assert isinstance(value, int)
        return value

    def timer(self, buf: bytes) -> Timer:
        self.group.load(buf)
        return self.group.child.timer(self.impl)

    def close(self) -> None:
        self.group.child.close()


def _host(ctx: BenchContext, peer: str, impls: list[str]) -> _Group | None:
    child = ctx.child(peer, f"{Path(__file__).resolve()}:Host", impls)
    return _Group(child) if child is not None else None


def _mcp_edge_impls(ctx: BenchContext) -> list[str]:
    """``mcp_edge``, ``mcp_edge[<level>]`` for every ISA level this CPU runs (the names that hold across
    machines), and ``mcp_edge[<kernel>]`` for every other kernel name of this build (``kernels()``) this CPU
    runs; a note for each kernel it cannot run, for each level that runs a kernel of another name, and for
    the kernel the dispatched row ran."""
    from mcp_edge.errors import IsaLevelError
    from mcp_edge.native import _crc, cpu, crc32c_variant

    levels = cpu.levels()
    names = ["mcp_edge", *(f"mcp_edge[{level}]" for level in levels)]
    for kernel in _crc.kernels():
        if kernel in levels:
            continue
        try:
            crc32c_variant(kernel, b"")
        except IsaLevelError as exc:
            ctx.note(f"mcp_edge[{kernel}] skipped: this CPU cannot run it ({exc})", f"mcp_edge[{kernel}]")
            continue
        names.append(f"mcp_edge[{kernel}]")
    for level, kernel in _crc.level_kernels().items():
        if kernel != level:
            ctx.note(f"mcp_edge[{level}] runs the {kernel} kernel here (the same as mcp_edge[{kernel}])",
                     f"mcp_edge[{level}]")
    forced = f", capped by {cpu.ISA_ENV}={cpu.active()}" if cpu.forced() else ""
    ctx.note(f"mcp_edge (dispatched) ran the {_crc.kernel_name()} kernel: {_crc.kernel_description()}{forced}",
             "mcp_edge")
    return names


def _cpu_note(ctx: BenchContext) -> None:
    """The CPU the figures come from: x86 family/model and the features the kernels use."""
    from mcp_edge.native import cpu

    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    ident = " ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "CPU implementer", "CPU part") if k in fields)
    flags = " ".join(name for name, on in cpu.features().items() if on) or "none"
    ctx.note(f"cpu: {fields.get('model name', platform.processor() or platform.machine())}"
             f"{f' ({ident})' if ident else ''}; features {flags}")


def _impls(ctx: BenchContext) -> dict[str, Handle]:
    """Every impl to run, each in its child process (see the module docstring); memcpy is apart (not a CRC)."""
    impls: dict[str, Handle] = {}
    names = _mcp_edge_impls(ctx)
    group = _host(ctx, "mcp_edge", names)
    if group is None:  # pragma: no cover - ctx.child raises BenchError for mcp_edge
        raise BenchError("the mcp_edge child process did not start")
    for name in names:
        impls[name] = Isolated(group, name)
    for peer in PEERS:
        peer_group = _host(ctx, peer, [peer])
        if peer_group is not None:
            impls[peer] = Isolated(peer_group, peer)
    return impls


def _memcpy(ctx: BenchContext) -> Handle | None:
    group = _host(ctx, "memcpy", ["memcpy"])
    return Isolated(group, "memcpy") if group is not None else None


# --------------------------------------------------------------------------- the bench


def _cases(ctx: BenchContext) -> Iterator[tuple[str, bytes]]:
    data = random.Random(SEED).randbytes(max(SIZES.values()))
    for case, size in SIZES.items():
        yield case, data if size == len(data) else data[:size]


def cross_check(
    impls: Mapping[str, Handle],
    cases: Iterable[tuple[str, bytes]],
    on_failure: Callable[[str, Exception], None] | None = None,
) -> dict[str, Handle]:
    """BenchError unless every impl gives the CRC-32C check value and, on every case, the CRC of ``mcp_edge``;
    the first impl to differ is named. A wrong CRC, however fast, is never timed.

    An impl whose child process fails (PeerFailed) or that cannot run (PeerSkipped) goes to
    ``on_failure`` and is dropped, when it is given (else the exception propagates). Returns
    the impls left.
    """
    left = dict(impls)

    def crc(impl: str, buf: bytes) -> int | None:
        try:
            return left[impl].crc(buf)
        except (PeerFailed, PeerSkipped) as exc:
            if on_failure is None:
                raise
            on_failure(impl, exc)
            del left[impl]
            return None

    for impl in list(left):
        got = crc(impl, CHECK_VALUE[0])
        if got is not None and got != CHECK_VALUE[1]:
            raise BenchError(f"{impl} fails the CRC-32C check value: {got:#010x}, not {CHECK_VALUE[1]:#010x}")
    for case, buf in cases:
        expected = crc("mcp_edge", buf)
        for impl in list(left):
            got = crc(impl, buf)
            if got is not None and got != expected:
                raise BenchError(
                    f"CRC32C mismatch at {case}: {impl} gives {got:#010x}, mcp_edge gives {expected:#010x}"
                )
    return left


def run(ctx: BenchContext) -> Iterator[Row]:
    _cpu_note(ctx)
    opened: list[Handle] = []
    try:
        impls = _impls(ctx)
        opened += impls.values()
        cases = list(_cases(ctx))
        impls = cross_check(impls, cases, ctx.peer_failed)
        memcpy = _memcpy(ctx)
        if memcpy is not None:
            opened.append(memcpy)
        rounds = ROUNDS[ctx.quick]
        ctx.plan(math.ceil(len(cases) * (len(impls) + (memcpy is not None)) * rounds / ctx.rounds))
        for case, buf in cases:
            timers: dict[str, Any] = {}
            for impl, handle in {**impls, **({"memcpy": memcpy} if memcpy is not None else {})}.items():
                if impl in ctx.failed:
                    continue
                try:
                    timers[impl] = handle.timer(buf)
                except (PeerFailed, PeerSkipped) as exc:
                    ctx.peer_failed(impl, exc)
            timings = ctx.compare(timers, label=case, rounds=rounds)
            for impl, timing in timings.items():
                yield Row.from_samples(case, impl, "GB/s", timing.gb_per_s_samples(len(buf)))
            if case == CALLS_CASE:
                for impl, timing in timings.items():
                    yield Row.from_samples(case, impl, "calls/s", timing.per_second_samples())
    finally:
        for handle in opened:
            handle.close()
