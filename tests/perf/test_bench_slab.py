"""perf/bench_slab.py: the row names, allocators that are missing as notes, and a hot-path count that can fail.

The bench runs for real with the smallest budget (its C loops and its allocator children included); nothing
here looks at a figure but the ``hot-path-allocs`` count, which is a count of calls, not a time.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from ci_honesty import MAY_SKIP_ENV, may_skip, require_or_skip

import mcp_edge
from mcp_edge.errors import BenchError
from mcp_edge.native import _slab
from mcp_edge.perf import BenchContext, PeerSkipped, Row
from mcp_edge.perf.harness import _result_row, load_bench

ROOT = Path(mcp_edge.__file__).resolve().parents[1]
BENCH = ROOT / "perf" / "bench_slab.py"
TOOL = ROOT / "tools" / "malloc_count"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_slab.py is not in this checkout")

CASES = ["alloc-free-64B", "alloc-free-256B", "alloc-free-1KiB", "alloc-free-4KiB", "alloc-free-16KiB",
         "alloc-free-64KiB"]
IMPLS = ["mcp_edge[slab-c]", "mcp_edge[slab-py]", "glibc", "jemalloc", "mimalloc", "bytearray"]
ALLOCATORS = ("jemalloc", "mimalloc")
HOT = "hot-path-allocs"
QUICK_HOT_OPS = 10_000


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_bench("slab", BENCH)
    monkeypatch.setattr(module, "HOT_OPS", QUICK_HOT_OPS)
    return module


def _ctx() -> BenchContext:
    ctx = BenchContext("slab", quick=True)
    ctx.min_time, ctx.rounds, ctx.peer_timeout = 0.01, 2, 60.0
    return ctx


def _skipped(ctx: BenchContext) -> dict[str, str]:
    return {n["impl"]: n["text"] for n in ctx.notes if n["impl"] and " skipped: " in n["text"]}


def _require_allocators(ctx: BenchContext) -> None:
    """jemalloc or mimalloc not loadable: a skip here, a failure under CI (Debian has both); one that CI may
    skip (MCP_EDGE_TEST_MAY_SKIP) does not hide the other."""
    skipped = _skipped(ctx)
    for impl in sorted((impl for impl in ALLOCATORS if impl in skipped), key=may_skip):
        require_or_skip(impl, skipped[impl])


def _require_counter() -> None:
    """The LD_PRELOAD counter: a checkout's tools/malloc_count, a C compiler to build it, malloc not owned by
    a sanitizer."""
    if "libasan" in os.environ.get("LD_PRELOAD", "") or os.environ.get("MCP_EDGE_SANITIZE"):
        pytest.skip("under AddressSanitizer, which owns malloc, allocations are not counted")
    if not (TOOL / "malloc_count.py").is_file():
        pytest.skip("tools/malloc_count is not in this checkout")
    if not (shutil.which("cc") or shutil.which("gcc")):
        require_or_skip("cc", "counting allocations builds tools/malloc_count with a C compiler; none found")


@pytest.fixture
def malloc_count() -> Iterator[ModuleType]:
    _require_counter()
    sys.path.insert(0, str(TOOL))
    try:
        import malloc_count as module
    finally:
        sys.path.remove(str(TOOL))
    yield module


def _hot_note(ctx: BenchContext) -> dict[str, dict[str, int]]:
    """The per-class counts the hot-path-allocs note gives: {"c": {size: calls}, "py": {size: calls}}."""
    [text] = [n["text"] for n in ctx.notes if n["text"].startswith("hot-path-allocs over ")]
    c = text.split("C loop ", 1)[1].split(" heap allocation(s) (", 1)[1].split("), Python ", 1)[0]
    py = text.split("), Python ", 1)[1].split(" (", 1)[1].split("); tracemalloc", 1)[0]
    return {"c": ast.literal_eval(c), "py": ast.literal_eval(py)}


# ----------------------------------------------------------------- names


def test_row_names_are_the_issue_s(bench: ModuleType) -> None:
    assert bench.NAME == "slab"
    assert [f"alloc-free-{case}" for case in bench.CASES] == CASES
    assert tuple(bench.CASES.values()) == _slab.DEFAULT_SIZES  # one case per default size class
    assert sorted((*bench.C_IMPLS, *bench.PY_IMPLS)) == sorted(IMPLS)
    assert tuple(bench.LIBRARIES) == ALLOCATORS


def test_a_quick_run_emits_exactly_the_issue_s_rows(bench: ModuleType, malloc_count: ModuleType) -> None:
    """Every impl has a row per case (ns, lower is better) and the hot-path count is one row of value 0; an
    allocator library that is not installed has a skip note instead of rows (a failure under CI)."""
    ctx = _ctx()
    rows = list(bench.run(ctx))
    assert all(isinstance(r, Row) for r in rows)
    for r in rows:
        _result_row("slab", r)  # what the harness accepts into the JSON
    skipped = _skipped(ctx)
    assert set(ctx.failed) == set(skipped) <= set(ALLOCATORS), ctx.notes
    ran = [impl for impl in IMPLS if impl not in skipped]
    timed = [r for r in rows if r.case != HOT]
    assert sorted((r.case, r.impl) for r in timed) == sorted((case, impl) for case in CASES for impl in ran)
    assert all(r.metric == "ns" and r.higher_is_better is False and r.value > 0 for r in timed), timed
    assert [(r.case, r.impl, r.metric, r.value, r.higher_is_better) for r in rows if r.case == HOT] == [
        (HOT, "mcp_edge", "count", 0.0, False)]
    assert rows[-1].case == HOT
    assert any(n["text"].startswith("pool: ") for n in ctx.notes)
    _require_allocators(ctx)


# ----------------------------------------------------------------- missing allocators


@pytest.mark.parametrize("missing", ALLOCATORS)
def test_a_missing_allocator_library_is_a_note_and_its_rows_are_absent(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    """The bench pointed at a library path that does not exist: that impl is skipped with a note naming the
    path and the Debian package, it has no row, and every other impl still has all of its rows."""
    monkeypatch.setattr(bench, "hot_path_allocs", lambda ctx: iter(()))  # tested below
    soname, malloc_name, free_name, package = bench.LIBRARIES[missing]
    absent = tmp_path / soname
    monkeypatch.setitem(bench.LIBRARIES, missing, (str(absent), malloc_name, free_name, package))
    ctx = _ctx()
    rows = list(bench.run(ctx))
    text = _skipped(ctx)[missing]
    assert text.startswith(f"{missing} skipped: {absent} cannot be loaded ("), text
    assert text.endswith(f"): apt-get install {package}"), text
    assert missing in ctx.failed
    assert missing not in {r.impl for r in rows}
    other = next(impl for impl in ALLOCATORS if impl != missing)
    ran = [impl for impl in IMPLS if impl != missing and (impl != other or other not in ctx.failed)]
    assert sorted((r.case, r.impl) for r in rows) == sorted((case, impl) for case in CASES for impl in ran)
    if other in ctx.failed:
        require_or_skip(other, _skipped(ctx)[other])


def test_a_library_without_the_allocator_s_symbols_is_skipped(bench: ModuleType) -> None:
    """A library that loads but exports no such functions (libc has no mi_malloc): a skip saying so."""
    with pytest.raises(PeerSkipped, match=r"^libc\.so\.6 cannot be loaded \(libc\.so\.6 exports no "
                                          r"mi_malloc/mi_free\): apt-get install libmimalloc2\.0$"):
        bench.MallocHost(("libc.so.6", "mi_malloc", "mi_free", "libmimalloc2.0"))


def test_a_missing_allocator_fails_under_ci(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bench notes a missing allocator and goes on; this suite's check of that note (used by the quick
    run above) skips outside CI, fails under CI=true unless MCP_EDGE_TEST_MAY_SKIP names the allocator."""
    monkeypatch.setattr(bench, "hot_path_allocs", lambda ctx: iter(()))
    for impl in ALLOCATORS:
        soname, malloc_name, free_name, package = bench.LIBRARIES[impl]
        monkeypatch.setitem(bench.LIBRARIES, impl, (str(tmp_path / soname), malloc_name, free_name, package))
    ctx = _ctx()
    list(bench.run(ctx))
    assert set(_skipped(ctx)) == set(ALLOCATORS)
    monkeypatch.delenv(MAY_SKIP_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="jemalloc skipped: "):
        _require_allocators(ctx)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"jemalloc skipped: .*CI=true: a missing requirement fails"):
        _require_allocators(ctx)
    monkeypatch.setenv(MAY_SKIP_ENV, "jemalloc")
    with pytest.raises(pytest.fail.Exception, match=r"mimalloc skipped: .*CI=true"):
        _require_allocators(ctx)
    monkeypatch.setenv(MAY_SKIP_ENV, "jemalloc,mimalloc")
    with pytest.raises(pytest.skip.Exception, match="jemalloc skipped: "):
        _require_allocators(ctx)


def test_our_own_impls_failing_end_the_run(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cases that are not the pool's size classes are a BenchError, not rows under wrong names."""
    monkeypatch.setattr(bench, "CASES", {"64B": 64})
    with pytest.raises(BenchError, match=r"bench cases \(64,\) are not the pool's size classes"):
        list(bench.run(_ctx()))


# ----------------------------------------------------------------- hot-path allocations


def test_the_hot_path_makes_no_heap_allocation(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                               malloc_count: ModuleType) -> None:
    """The issue's count: 10^6 alloc+free pairs per class, from C and from Python, not one malloc call."""
    monkeypatch.setattr(bench, "HOT_OPS", 1_000_000)
    ctx = _ctx()
    rows = list(bench.hot_path_allocs(ctx))
    assert [(r.case, r.impl, r.metric, r.value, r.higher_is_better) for r in rows] == [
        (HOT, "mcp_edge", "count", 0.0, False)]
    sizes = [str(n) for n in _slab.DEFAULT_SIZES]
    assert _hot_note(ctx) == {"c": dict.fromkeys(sizes, 0), "py": dict.fromkeys(sizes, 0)}


ALLOCATING = (
    # the C loop is glibc's malloc/free; the Python one keeps making a bytearray besides the block
    "    bench = lambda _pool, n, iters: _slab._bench_malloc(None, n, iters)\n"
    "    alloc = lambda n, _alloc=pool.alloc: (bytearray(8), _alloc(n))[1]\n"
)


def test_the_hot_path_count_sees_allocations(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                             malloc_count: ModuleType) -> None:
    """The 0 above can fail: the bench's own counting child, with loops that do allocate (malloc/free in the
    C loop, a bytearray per pair in Python), counts at least one call per pair in every window."""
    line = "    bench, alloc = _slab._bench_pairs, pool.alloc\n"
    assert bench._HOT_SCRIPT.count(line) == 1
    monkeypatch.setattr(bench, "_HOT_SCRIPT", bench._HOT_SCRIPT.replace(line, ALLOCATING))
    ctx = _ctx()
    [row] = bench.hot_path_allocs(ctx)
    counts = _hot_note(ctx)
    assert set(counts["c"]) == set(counts["py"]) == {str(n) for n in _slab.DEFAULT_SIZES}
    assert all(n >= QUICK_HOT_OPS for n in (*counts["c"].values(), *counts["py"].values())), counts
    assert row.value == sum(counts["c"].values()) + sum(counts["py"].values())


def test_the_counter_counts_a_loop_that_allocates(malloc_count: ModuleType) -> None:
    """tools/malloc_count itself: a window around 1000 kept bytearrays counts at least 1000 calls, an empty
    window around nothing counts none of them."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import malloc_count as mc\n"
        "keep = []\n"
        "with mc.window() as full:\n"
        "    for _ in range(1000):\n"
        "        keep.append(bytearray(100))\n"
        "empty = mc.empty_window()\n"
        "print(full.calls, empty.calls)\n"
    )
    report = malloc_count.run([sys.executable, "-c", script, str(TOOL)], python_objects=True, timeout=60)
    assert report.returncode == 0, report.stderr
    full, empty = map(int, report.stdout.split())
    assert full >= 1000 > empty
    assert report.window.calls >= full


def test_a_failing_counting_child_is_a_bench_error(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                   malloc_count: ModuleType) -> None:
    monkeypatch.setattr(bench, "_HOT_SCRIPT", "import sys\nprint('no pool here', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(BenchError, match=r"hot-path-allocs child failed \(exit 3\): no pool here"):
        list(bench.hot_path_allocs(_ctx()))


def test_no_counter_in_the_tree_is_a_note(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    """Installed without tools/ (no checkout): the row is left out with a note saying why."""
    monkeypatch.setattr(bench, "MALLOC_COUNT_DIR", tmp_path)
    ctx = _ctx()
    assert list(bench.hot_path_allocs(ctx)) == []
    assert ctx.notes == [{"bench": "slab", "impl": "mcp_edge",
                          "text": "hot-path-allocs needs tools/malloc_count (a checkout): row left out"}]
