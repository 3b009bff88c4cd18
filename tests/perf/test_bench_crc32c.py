"""perf/bench_crc32c.py's cross-check: a wrong CRC32C, however fast, stops the bench before it is timed.

The impls are wrapped so that one of them is wrong in a chosen way; nothing is
timed here (the check runs before any timing, and a failing one ends the run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import mcp_edge
from mcp_edge.errors import BenchError
from mcp_edge.native import crc32c
from mcp_edge.perf import BenchContext
from mcp_edge.perf.harness import load_bench

BENCH = Path(mcp_edge.__file__).resolve().parents[1] / "perf" / "bench_crc32c.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_crc32c.py is not in this checkout")

SMALL = 2 << 20  # cases up to this size: every shipped one but the 64 MiB


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_bench("crc32c", BENCH)
    monkeypatch.setattr(module, "SIZES", {k: v for k, v in module.SIZES.items() if v <= SMALL})
    return module


def _with_wrong_impl(bench: ModuleType, monkeypatch: pytest.MonkeyPatch, wrong: Callable[[bytes], int]) -> None:
    real = bench._impls

    def impls(ctx: BenchContext) -> dict[str, object]:
        return {**real(ctx), "wrong": bench.Impl(wrong)}

    monkeypatch.setattr(bench, "_impls", impls)


def _run(bench: ModuleType) -> list[object]:
    ctx = BenchContext("crc32c", quick=True)
    ctx.min_time, ctx.rounds = 0.001, 1
    return list(bench.run(ctx))


def test_an_impl_wrong_on_data_stops_the_bench(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right on the check value, wrong on every case: the run raises naming it, and yields no row."""
    _with_wrong_impl(bench, monkeypatch, lambda b: crc32c(b) if bytes(b) == b"123456789" else crc32c(b) ^ 1)
    with pytest.raises(BenchError, match=r"CRC32C mismatch at 64B: wrong gives 0x[0-9a-f]{8}, mcp_edge gives"):
        _run(bench)


def test_an_impl_failing_the_check_value_stops_the_bench(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_wrong_impl(bench, monkeypatch, lambda b: crc32c(b) ^ 0x80000000)
    with pytest.raises(BenchError, match="wrong fails the CRC-32C check value"):
        _run(bench)


def test_a_tail_bug_is_caught_by_an_odd_size(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel wrong only on inputs whose length is not 16 mod 24 (the class of 64, 4 KiB, 1 MiB, 64 MiB) past
    its short-input path: the shipped sizes must include one that shows it."""

    def tail_bug(b: bytes) -> int:
        n = len(b)
        return crc32c(b) ^ (1 if n > 64 and n % 24 != 16 else 0)

    _with_wrong_impl(bench, monkeypatch, tail_bug)
    with pytest.raises(BenchError, match=r"mismatch at 1MiB\+7: wrong gives"):
        _run(bench)


def test_shipped_sizes_include_an_odd_tail() -> None:
    sizes = load_bench("crc32c", BENCH).SIZES
    assert any(n % 8 for n in sizes.values()), sizes
    assert len({n % 24 for n in sizes.values()}) > 1, sizes
