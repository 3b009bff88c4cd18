"""perf/bench_crc32c.py's cross-check: a wrong CRC32C, however fast, stops the bench before it is timed.

The impls are wrapped so that one of them is wrong in a chosen way; nothing is
timed here (the check runs before any timing, and a failing one ends the run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from ci_honesty import require_or_skip

import mcp_edge
from mcp_edge.errors import BenchError
from mcp_edge.native import crc32c
from mcp_edge.perf import BenchContext, PeerSkipped
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


# ----------------------------------------------------------------- peers in child processes


def _fake_packages(root: Path, monkeypatch: pytest.MonkeyPatch, packages: dict[str, str]) -> None:
    """Modules that shadow the real peers in the bench's child processes (PYTHONPATH); this process never
    imports them."""
    root.mkdir()
    for name, source in packages.items():
        (root / f"{name}.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", str(root))


def test_crashing_hanging_and_raising_peers_are_notes(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """crc32c dies of SIGILL on its first CRC, google-crc32c hangs on import, a third peer raises: the bench
    completes with every other row, and a note per peer says why."""
    _fake_packages(tmp_path / "fake", monkeypatch, {
        "crc32c": "import os, signal\ndef crc32c(data):\n    os.kill(os.getpid(), signal.SIGILL)\n",
        "google_crc32c": "import time\ntime.sleep(3600)\n",
    })
    monkeypatch.setattr(bench, "PEERS", (*bench.PEERS, "no-such-peer"))
    monkeypatch.setattr(bench, "SIZES", {"64B": 64, "1MiB+7": (1 << 20) + 7})
    ctx = BenchContext("crc32c", quick=True)
    ctx.min_time, ctx.peer_timeout = 0.002, 2.0
    rows = list(bench.run(ctx))
    impls = {r.impl for r in rows}
    assert {"mcp_edge", "mcp_edge[scalar]"} <= impls
    assert not impls & {"crc32c", "google-crc32c", "no-such-peer"}
    assert {(r.case, r.metric) for r in rows if r.impl == "mcp_edge"} == {
        ("64B", "GB/s"), ("64B", "calls/s"), ("1MiB+7", "GB/s")}
    notes = {n["impl"]: n["text"] for n in ctx.notes}
    assert notes["crc32c"].startswith("crc32c failed: killed by SIGILL in crc()")
    assert notes["google-crc32c"].startswith("google-crc32c failed: timed out after 2 s while starting")
    assert notes["no-such-peer"].startswith("no-such-peer failed: raised ValueError: no CRC32C impl named")
    assert set(ctx.failed) >= {"crc32c", "google-crc32c", "no-such-peer"}


def test_a_missing_peer_is_a_skip(bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_packages(tmp_path / "fake", monkeypatch, {"google_crc32c": "raise ImportError('not here')\n"})
    monkeypatch.setattr(bench, "PEERS", ("google-crc32c",))
    monkeypatch.setattr(bench, "SIZES", {"64B": 64})
    ctx = BenchContext("crc32c", quick=True)
    ctx.min_time = 0.002
    rows = list(bench.run(ctx))
    assert "google-crc32c" not in {r.impl for r in rows}
    assert {"bench": "crc32c", "impl": "google-crc32c",
            "text": "google-crc32c skipped: not installed (pip install google-crc32c)"} in ctx.notes


def test_every_kernel_and_level_has_a_row_or_a_note_and_the_dispatched_kernel_is_named(bench: ModuleType) -> None:
    from mcp_edge.native import _crc, cpu

    ctx = BenchContext("crc32c", quick=True)
    names = bench._mcp_edge_impls(ctx)
    noted = {n["impl"] for n in ctx.notes if "skipped: this CPU cannot run it" in n["text"]}
    assert names[0] == "mcp_edge" and len(set(names)) == len(names)
    assert {f"mcp_edge[{level}]" for level in cpu.levels()} <= set(names)
    assert set(names[1:]) | noted == {f"mcp_edge[{k}]" for k in [*_crc.kernels(), *cpu.levels()]}
    assert noted == {f"mcp_edge[{k}]" for k in _crc.kernels() if k not in _crc.runnable_kernels()}
    dispatched = [n["text"] for n in ctx.notes if n["impl"] == "mcp_edge"]
    assert len(dispatched) == 1
    assert dispatched[0].startswith(f"mcp_edge (dispatched) ran the {_crc.kernel_name()} kernel: "
                                    f"{_crc.kernel_level()}")


def test_isal_01_is_isa_l_s_sse42_pclmul_kernel_called_directly() -> None:
    """isa-l[01] is a peer row of its own, and crc32_iscsi_01 gives CRC-32C (where this CPU and libisal have it)."""
    bench = load_bench("crc32c", BENCH)
    assert {"isa-l", "isa-l[01]"} <= set(bench.PEERS)
    try:
        impl = bench.build_impl("isa-l[01]")
    except PeerSkipped as exc:
        require_or_skip("isa-l", f"isa-l[01] cannot run here: {exc}")  # libisal2 is installed by make: CI fails
    assert impl.fn.__name__ == "crc32_iscsi_01"
    assert impl.crc(bench.CHECK_VALUE[0]) == bench.CHECK_VALUE[1]
    data = bytes(range(256)) * 41 + b"tail"
    assert impl.crc(data) == crc32c(data)
