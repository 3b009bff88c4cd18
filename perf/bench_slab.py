"""Slab pools: ns per alloc+free pair against malloc/free, and heap allocations on the hot path.

Cases ``alloc-free-64B`` ... ``alloc-free-64KiB`` (metric ``ns`` per pair,
lower is better), one per default size class (``slab_sizes``), impls:

- ``mcp_edge[slab-c]``: a C loop (``me_slab_bench_pairs``) of
  ``me_slab_alloc_cached`` + ``me_slab_free_cached`` on a :class:`Pool`'s arena,
  one byte stored into each block;
- ``glibc``, ``jemalloc``, ``mimalloc``: the same C loop shape
  (``me_slab_bench_malloc``) over ``malloc``/``free``: this process's (glibc),
  or Debian's ``libjemalloc.so.2`` (package libjemalloc2) and
  ``libmimalloc.so.2`` (package libmimalloc2.0, ``mi_malloc``/``mi_free``)
  loaded with dlopen in a child process of their own (jemalloc needs static TLS
  that a dlopen only gets with ``GLIBC_TUNABLES=glibc.rtld.optional_static_tls``,
  set for that child); a library that is not installed is skipped with a note;
- ``mcp_edge[slab-py]``: ``pool.alloc(n).release()`` from Python, in the
  harness's unrolled loop (no wrapper frame, as for the others);
- ``bytearray``: ``bytearray(n)`` from Python (allocated, zeroed, freed).

The C loops time themselves (CLOCK_MONOTONIC around the loop) and report the
nanoseconds; every impl of a case is timed interleaved, round by round, and
the best round is reported.

Case ``hot-path-allocs`` (metric ``count``, impl ``mcp_edge``, lower is
better; the issue's bar is 0): a child process started under the
``LD_PRELOAD`` counter of ``tools/malloc_count`` with ``PYTHONMALLOC=malloc``
(so Python objects are malloc calls too) warms up, then counts
malloc/calloc/realloc calls while doing 10^6 alloc+free pairs per size class
in the C loop and 10^6 ``pool.alloc(n).release()`` per size class from Python;
each window's count has an empty window's (same calls, zero iterations)
subtracted (the same calls with 10^4 iterations: what calling and returning
cost). ``tracemalloc``'s peak over the Python loop is noted beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mcp_edge.perf import BenchContext, BenchError, Call, PeerSkipped, Row

NAME = "slab"

CASES = {"64B": 64, "256B": 256, "1KiB": 1024, "4KiB": 4096, "16KiB": 16384, "64KiB": 65536}
C_IMPLS = ("mcp_edge[slab-c]", "glibc", "jemalloc", "mimalloc")
PY_IMPLS = ("mcp_edge[slab-py]", "bytearray")
# soname, malloc symbol, free symbol, Debian package
LIBRARIES = {
    "jemalloc": ("libjemalloc.so.2", "malloc", "free", "libjemalloc2"),
    "mimalloc": ("libmimalloc.so.2", "mi_malloc", "mi_free", "libmimalloc2.0"),
}
STATIC_TLS = "glibc.rtld.optional_static_tls=65536"
HOT_OPS = 1_000_000
MALLOC_COUNT_DIR = Path(__file__).resolve().parents[1] / "tools" / "malloc_count"


# --------------------------------------------------------------------------- timers


class CLoop:
    """A :class:`~mcp_edge.perf.timing.Timer` over a C loop that times itself: ``loop(n) -> ns``."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop

    def calibrate(self, round_ns: float) -> int:
        self._loop(1000)  # warm-up: magazines filled, pages and caches hot
        n = 1000
        while True:
            ns = max(int(self._loop(n)), 1)
            if ns >= round_ns / 4 or n >= 1 << 34:
                return max(1000, int(n * round_ns / ns))
            n *= 10

    def run(self, n: int) -> tuple[int, int]:
        return n, int(self._loop(n))


class RemoteCLoop:
    """A C loop in a peer's child process: ``child.call("pairs", n_bytes, iters)`` returns ns."""

    def __init__(self, child: Any, size: int) -> None:
        self._local = CLoop(lambda n: child.call("pairs", size, n))

    def calibrate(self, round_ns: float) -> int:
        return self._local.calibrate(round_ns)

    def run(self, n: int) -> tuple[int, int]:
        return self._local.run(n)


class PyPairs:
    """``alloc(n).release()`` in the harness's kind of loop: unrolled, no wrapper frame, GC off."""

    UNROLL = 16

    def __init__(self, alloc: Any, size: int) -> None:
        body = "        _a(_n).release()\n" * self.UNROLL
        source = (
            "def _timed(_it, _timer, _a, _n):\n"
            "    _t0 = _timer()\n"
            "    for _ in _it:\n"
            f"{body}"
            "    return _timer() - _t0\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, "<bench_slab pairs>", "exec"), namespace)
        self._timed = namespace["_timed"]
        self._alloc = alloc
        self._size = size

    def _loop(self, n: int) -> int:
        import itertools

        steps = max(1, n // self.UNROLL)
        return int(self._timed(itertools.repeat(None, steps), time.perf_counter_ns, self._alloc, self._size))

    def calibrate(self, round_ns: float) -> int:
        return CLoop(self._loop).calibrate(round_ns) // self.UNROLL * self.UNROLL

    def run(self, n: int) -> tuple[int, int]:
        steps = max(1, n // self.UNROLL)
        return steps * self.UNROLL, self._loop(n)


# --------------------------------------------------------------------------- peers (built in their child)


class MallocHost:
    """In a child: ``pairs(n, iters)`` times iters malloc(n)+free pairs of a dlopen()ed allocator.

    ``library`` is the parent's ``LIBRARIES`` entry (soname or path, malloc and free symbols, Debian
    package), passed as an argument: the child loads this file afresh, so it must not read its own copy.
    """

    def __init__(self, library: tuple[str, str, str, str]) -> None:
        from mcp_edge.native import _slab

        soname, malloc_name, free_name, package = library
        self._lib = (soname, malloc_name, free_name)
        try:
            _slab._bench_malloc(self._lib, 64, 10)
        except OSError as exc:
            raise PeerSkipped(f"{soname} cannot be loaded ({exc.strerror}): apt-get install {package}") from None
        self._bench = _slab._bench_malloc

    def pairs(self, size: int, iters: int) -> int:
        return int(self._bench(self._lib, size, iters))


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the children started inside (this process does not read them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- hot-path allocations

_HOT_SCRIPT = r"""
import itertools, json, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import malloc_count as mc
from mcp_edge.native import _slab

ops = int(sys.argv[2])
BASE = 10_000
pool = _slab.Pool()
out = {"c": {}, "py": {}, "tracemalloc_bytes": {}}
for size in pool.sizes:
    bench, alloc = _slab._bench_pairs, pool.alloc
    bench(pool, size, 100_000)  # warm-up: magazines filled, every code path taken
    for _ in itertools.repeat(None, 100_000):
        alloc(size).release()
    # Baseline: the same calls with BASE iterations (the C loop's result is then
    # as large an int, and as much a heap object, as with BASE + ops).
    few_iters, many_iters = BASE, BASE + ops  # made outside the windows: an int is a heap object
    with mc.window() as empty:
        bench(pool, size, few_iters)
    with mc.window() as full:
        bench(pool, size, many_iters)
    out["c"][size] = (full - empty).calls
    few, many = itertools.repeat(None, BASE), itertools.repeat(None, BASE + ops)
    with mc.window() as empty:
        for _ in few:
            alloc(size).release()
    with mc.window() as full:
        for _ in many:
            alloc(size).release()
    out["py"][size] = (full - empty).calls
    many = itertools.repeat(None, ops)
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    for _ in many:
        alloc(size).release()
    out["tracemalloc_bytes"][size] = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
pool.close()
print(json.dumps(out))
"""


def hot_path_allocs(ctx: BenchContext) -> Iterable[Row]:
    """The ``hot-path-allocs`` row (and notes with the breakdown)."""
    if not (MALLOC_COUNT_DIR / "malloc_count.py").is_file():
        ctx.note("hot-path-allocs needs tools/malloc_count (a checkout): row left out", "mcp_edge")
        return
    sys.path.insert(0, str(MALLOC_COUNT_DIR))
    try:
        import malloc_count
    finally:
        sys.path.remove(str(MALLOC_COUNT_DIR))
    report = malloc_count.run([sys.executable, "-c", _HOT_SCRIPT, str(MALLOC_COUNT_DIR), str(HOT_OPS)],
                             python_objects=True, timeout=600)
    if report.returncode != 0:
        raise BenchError(f"hot-path-allocs child failed (exit {report.returncode}): {report.stderr.strip()[-500:]}")
    data = json.loads(report.stdout.strip().splitlines()[-1])
    c_total, py_total = sum(data["c"].values()), sum(data["py"].values())
    ctx.note(f"hot-path-allocs over {HOT_OPS:,} alloc+free pairs per class: C loop {c_total} heap "
             f"allocation(s) ({data['c']}), Python {py_total} ({data['py']}); tracemalloc peak growth over the "
             f"Python loop, bytes per class: {data['tracemalloc_bytes']}; a count, not a timing: one sample (the same "
             "every run), so perf compare shows it and never calls it a regression", "mcp_edge")
    ctx.advance(1, "hot-path-allocs")
    total = float(c_total + py_total)
    yield Row("hot-path-allocs", "mcp_edge", "count", total, higher_is_better=False, samples=(total,))


# --------------------------------------------------------------------------- run


def run(ctx: BenchContext) -> Iterable[Row]:
    from mcp_edge.native import _slab

    ctx.plan(len(CASES) * (len(C_IMPLS) + len(PY_IMPLS)) + 1)
    pool = _slab.Pool()
    if tuple(CASES.values()) != pool.sizes:
        raise BenchError(f"bench cases {tuple(CASES.values())} are not the pool's size classes {pool.sizes}")
    children: dict[str, Any] = {}
    try:
        for impl in LIBRARIES:
            tunables = os.environ.get("GLIBC_TUNABLES")
            with _environ(GLIBC_TUNABLES=f"{tunables}:{STATIC_TLS}" if tunables else STATIC_TLS):
                child = ctx.child(impl, f"{Path(__file__).resolve()}:MallocHost", LIBRARIES[impl])
            if child is not None:
                children[impl] = child
        ctx.note(f"pool: {len(pool.nodes)} NUMA node(s) {list(pool.nodes)}, bound={pool.bound}; C loops store one "
                 "byte per block; slab-c goes through the thread magazine")
        for case, size in CASES.items():
            timers: dict[str, Any] = {
                "mcp_edge[slab-c]": CLoop(lambda n, s=size: _slab._bench_pairs(pool, s, n)),
                "glibc": CLoop(lambda n, s=size: _slab._bench_malloc(None, s, n)),
                **{impl: RemoteCLoop(child, size) for impl, child in children.items()},
                "mcp_edge[slab-py]": PyPairs(pool.alloc, size),
                "bytearray": Call(bytearray, (size,)),
            }
            timings = ctx.compare(timers, label=f"alloc-free-{case}")
            for impl, timing in timings.items():
                yield Row.from_samples(f"alloc-free-{case}", impl, "ns", timing.samples_ns, higher_is_better=False,
                                       value="best")
        if pool.stats() and any(s["in_use"] for s in pool.stats()):
            raise BenchError(f"blocks left in use after the bench: {pool.stats()}")
    finally:
        for child in children.values():
            child.close()
        pool.close()
    yield from hot_path_allocs(ctx)
