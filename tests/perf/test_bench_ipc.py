"""perf/bench_ipc.py: the row names, each impl's pair really carrying the bytes, and peers that fail as notes.

Pairs of processes are started for real (each in a child process of the harness, as the bench runs them);
budgets are tiny and nothing here looks at a figure: what is checked is content, names and notes.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ci_honesty import importorskip, require_or_skip

import mcp_edge
from mcp_edge.errors import BenchError
from mcp_edge.perf import BenchContext, Child, PeerSkipped, Row
from mcp_edge.perf.harness import load_bench

ROOT = Path(mcp_edge.__file__).resolve().parents[1]
BENCH = ROOT / "perf" / "bench_ipc.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_ipc.py is not in this checkout")

X86_64 = platform.machine() in ("x86_64", "AMD64")
TWO_CPUS = len(os.sched_getaffinity(0)) >= 2


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_bench("ipc", BENCH)
    monkeypatch.setattr(module, "ROUND_TRIPS", {True: 50, False: 50})
    monkeypatch.setattr(module, "WARM_TRIPS", {True: 5, False: 5})
    monkeypatch.setattr(module, "PROBE_BYTES", {True: 1 << 20, False: 1 << 20})
    monkeypatch.setattr(module, "ALLOC_WARM", {True: 100, False: 100})
    monkeypatch.setattr(module, "ALLOC_MESSAGES", {True: 2000, False: 2000})
    monkeypatch.setattr(module, "ALLOC_TRACED", {True: 200, False: 200})
    return module


def _ctx() -> BenchContext:
    ctx = BenchContext("ipc", quick=True)
    ctx.min_time, ctx.rounds, ctx.peer_timeout = 0.01, 2, 60.0
    return ctx


def _cpus() -> tuple[int, int]:
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) > 1 else (allowed[0], allowed[0])


def _skipped(ctx: BenchContext) -> dict[str, str]:
    return {n["impl"]: n["text"] for n in ctx.notes if n["impl"] and " skipped: " in n["text"]}


def _require_peers(ctx: BenchContext) -> None:
    """A peer package missing is a skip here, a failure under CI (iceoryx2 only where PyPI has wheels)."""
    skipped = _skipped(ctx)
    if "posix_ipc.MessageQueue" in skipped:
        require_or_skip("posix_ipc", skipped["posix_ipc.MessageQueue"])
    if "iceoryx2" in skipped and X86_64:
        require_or_skip("iceoryx2", skipped["iceoryx2"])


def _fake_packages(root: Path, monkeypatch: pytest.MonkeyPatch, packages: dict[str, str]) -> None:
    """Modules that shadow the real peers in the bench's child processes (PYTHONPATH); this process never
    imports them."""
    root.mkdir()
    for name, source in packages.items():
        (root / f"{name}.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", str(root))


# ----------------------------------------------------------------- names


def test_row_names_are_the_issue_s(bench: ModuleType) -> None:
    assert bench.NAME == "ipc"
    assert bench.RTT_CASES == {"cross": "rtt-64B-cross", "same": "rtt-64B-same"}
    assert list(bench.STREAM_CASES) == ["stream-4KiB-cross", "stream-64KiB-cross", "stream-1MiB-cross"]
    assert list(bench.STREAM_CASES.values()) == [4096, 65536, 1 << 20]
    assert (bench.CONSUME_CASE, bench.CONSUME_SIZE) == ("stream-1MiB-cross-consume", 1 << 20)
    assert bench.RING_IMPLS == ("mcp_edge[ring-copy]", "mcp_edge[ring-zerocopy]")
    assert bench.PEERS == ("multiprocessing.Pipe", "multiprocessing.Queue", "posix_ipc.MessageQueue",
                           "shared_memory+pipe", "iceoryx2")
    assert bench.MEMCPY == "memcpy"
    assert (bench.ALLOCS_CASE, bench.ALLOC_IMPLS) == ("hot-path-allocs", ("mcp_edge[ring-c]", "mcp_edge[ring-py]"))


def _expected_rows(bench: ModuleType, impls: list[str], cross: bool) -> set[tuple[str, str, str]]:
    rows = set()
    for impl in impls:
        cases = [bench.RTT_CASES["same"]] + ([bench.RTT_CASES["cross"]] if cross else [])
        rows |= {(case, impl, metric) for case in cases for metric in ("p50_us", "p99_us")}
        if cross:
            rows |= {(case, impl, metric) for case in [*bench.STREAM_CASES, bench.CONSUME_CASE]
                     for metric in ("GB/s", "msgs/s")}
    if cross:
        rows |= {(case, "memcpy", metric) for case in bench.STREAM_CASES for metric in ("GB/s", "msgs/s")}
        rows |= {(bench.CONSUME_CASE, "mcp_edge[crc32c-in-process]", metric) for metric in ("GB/s", "msgs/s")}
    return rows


def test_a_quick_run_emits_exactly_the_issue_s_rows(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every impl that runs here has every row of every case, named as the issue names them, and nothing else;
    a peer that does not run has a note saying why."""
    ctx = _ctx()
    rows = list(bench.run(ctx))
    assert all(isinstance(r, Row) for r in rows)
    ran = [impl for impl in (*bench.RING_IMPLS, *bench.PEERS) if impl not in ctx.failed]
    got = {(r.case, r.impl, r.metric) for r in rows if r.impl not in ctx.failed and r.case != bench.ALLOCS_CASE}
    assert got == _expected_rows(bench, ran, TWO_CPUS)
    for r in rows:
        assert r.higher_is_better == (r.metric in ("GB/s", "msgs/s")), r
        assert r.value > 0 or r.case == bench.ALLOCS_CASE, r
    for impl in set(bench.PEERS) - set(ran):
        assert any(n["impl"] == impl for n in ctx.notes), impl
    assert {*bench.RING_IMPLS, "multiprocessing.Pipe", "multiprocessing.Queue", "shared_memory+pipe"} <= set(ran)
    allocs = {(r.impl, r.metric) for r in rows if r.case == bench.ALLOCS_CASE}
    if not any("the allocation counter (tools/malloc_count) cannot run here" in n["text"] for n in ctx.notes):
        assert allocs == {("mcp_edge[ring-c]", "count"), ("mcp_edge[ring-py]", "count")}
    if TWO_CPUS:
        one_hot = [n["text"] for n in ctx.notes if "on one cache-hot buffer" in n["text"]]
        assert len(one_hot) == len(bench.STREAM_CASES) + 1, one_hot
        wakes = {(n["impl"], n["text"].split(":")[0]) for n in ctx.notes if "wake-ups over" in n["text"]}
        assert wakes == {(impl, case) for impl in bench.RING_IMPLS for case in [*bench.STREAM_CASES,
                                                                                bench.CONSUME_CASE]}, wakes
    _require_peers(ctx)
    if not TWO_CPUS:
        assert any("-cross cases need two" in n["text"] for n in ctx.notes)


# ----------------------------------------------------------------- the bytes travel


ALL_IMPLS = ("mcp_edge[ring-copy]", "mcp_edge[ring-zerocopy]", "multiprocessing.Pipe", "multiprocessing.Queue",
             "posix_ipc.MessageQueue", "shared_memory+pipe", "iceoryx2")


def _pair(bench: ModuleType, impl: str, cpus: tuple[int, int]) -> Child:
    try:
        return Child(impl, f"{bench.TRANSPORTS_FILE}:Pair", (impl, cpus), timeout=60)
    except PeerSkipped as exc:
        if impl == "iceoryx2" and not X86_64:
            pytest.skip(f"iceoryx2 has no wheel for {platform.machine()}: {exc}")
        require_or_skip(impl.split(".")[0], f"{impl} cannot run here: {exc}")


@pytest.mark.parametrize("placement", ["cross", "same"])
@pytest.mark.parametrize("impl", ALL_IMPLS)
def test_each_impl_s_round_trip_carries_the_bytes(bench: ModuleType, impl: str, placement: str) -> None:
    if placement == "cross" and not TWO_CPUS:
        pytest.skip("one CPU in the affinity mask: no cross placement")
    cpus = _cpus() if placement == "cross" else (_cpus()[0],) * 2
    payloads = [os.urandom(64), b"\x00" * 64, os.urandom(1), os.urandom(63), bytes(range(64))]
    with _pair(bench, impl, cpus) as child:
        assert child.call("verify_rtt", payloads) == payloads
        p50, p99 = child.call("rtt", 2, 20)
        assert 0 < p50 <= p99


@pytest.mark.parametrize("impl", ALL_IMPLS)
def test_each_impl_s_stream_carries_every_message_in_order(bench: ModuleType, impl: str) -> None:
    """More messages than the transport holds in flight, at every stream size: the consumer's CRC-32 of each
    message is the producer's, in order (posix_ipc reassembles its chunks)."""
    if not TWO_CPUS:
        pytest.skip("one CPU in the affinity mask: no cross placement")
    with _pair(bench, impl, _cpus()) as child:
        for size in [*bench.STREAM_CASES.values(), 8192 + 1]:
            sent, got = child.call("verify_stream", size, 19, size)
            assert len(set(sent)) == 19
            assert got == sent, size
        assert child.call("stream", 4096, 50, "drop", 5) > 0
        assert child.call("stream", 1 << 20, 20, "crc", 0) > 0
        wakes = child.call("wake_stats")
        if impl.startswith("mcp_edge"):  # the forward ring's ends: the driver's producer, the partner's consumer
            assert wakes["driver"]["tx"]["published"] >= 70 + 19 * 4
            assert wakes["partner"]["rx"]["received"] == wakes["driver"]["tx"]["published"]
            assert {"sleeps_blocks", "sleeps_space", "wakes"} <= wakes["driver"]["tx"].keys()
            assert {"sleeps", "wakes", "wakes_held"} <= wakes["partner"]["rx"].keys()
        else:
            assert wakes is None


def test_verify_fails_a_peer_whose_bytes_differ(bench: ModuleType) -> None:
    """The bench's check before timing: a peer that echoes wrong bytes, loses, reorders or corrupts stream
    messages is failed with a note saying which; one that is right stays."""

    class FakePairs:
        def __init__(self) -> None:
            self.children = dict.fromkeys(("echo", "lose", "reorder", "corrupt", "good"))
            self.failed: dict[str, str] = {}

        def call(self, impl: str, method: str, *args: Any) -> Any:
            if method == "verify_rtt":
                payloads = args[0]
                return [p[:-1] + b"?" for p in payloads] if impl == "echo" else list(payloads)
            sent = list(range(args[1]))
            got = {"lose": sent[:-1], "reorder": [sent[1], sent[0], *sent[2:]],
                   "corrupt": [*sent[:3], 99, *sent[4:]]}.get(impl, sent)
            return sent, got

        def fail(self, impl: str, reason: str) -> None:
            self.failed[impl] = reason

    pairs = FakePairs()
    bench.verify(pairs, list(pairs.children), streams=True)
    assert pairs.failed.keys() == {"echo", "lose", "reorder", "corrupt"}
    assert pairs.failed["echo"] == "echoed wrong bytes (round trip 0 of 7 differs)"
    assert pairs.failed["lose"] == "stream-4KiB-cross: the consumer got 18 messages of 19 sent"
    assert pairs.failed["reorder"] == "stream-4KiB-cross: messages reordered (message 0 of 19 is another one)"
    assert pairs.failed["corrupt"] == "stream-4KiB-cross: message 3 of 19 arrived with wrong bytes"


def test_memcpy_and_crc_yardsticks_run(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    t = bench.transports()
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: None)  # this pytest process stays unpinned
    memcpy = t.Local("memcpy", 0)
    assert memcpy.stream(4096, 10, "drop", 2) > 0
    assert memcpy.stream(4096, 7, "drop", 2, 3) > 0
    assert all(bytes(b) == bytes(memcpy._src[:4096]) for b in memcpy._buffers(4096, 3))  # every one copied into
    crc = t.Local("mcp_edge[crc32c-in-process]", 0)
    assert crc.stream(1 << 20, 5, "drop", 1, 4) > 0
    # the ring's work: as many buffers in turn as its slab class for that size has blocks
    ring = t.Local("memcpy", 0, {4096: 5})
    assert ring.stream(4096, 7) > 0
    assert len(ring._sets[4096]) == 5 and all(b == ring._src[:4096] for b in ring._sets[4096])
    assert ring.stream(8192, 3) > 0 and len(ring._sets[8192]) == 1  # a size it was not told: one buffer
    assert ring.stream(4096, 3, "drop", 0, 1) > 0  # one cache-hot buffer, asked for


def test_the_yardsticks_rotate_through_the_ring_s_blocks(bench: ModuleType) -> None:
    t = bench.transports()
    options = t.ring_options()
    assert options["slab_sizes"][-1] >= 1 << 20
    assert t.ring_blocks(options, 1 << 20) == dict(zip(options["slab_sizes"], options["slab_counts"],
                                                       strict=True))[options["slab_sizes"][-1]]
    made = {"slab_sizes": (64, 4096, 65536, 1 << 20), "slab_counts": (1024, 128, 16, 16)}
    assert [t.ring_blocks(made, n) for n in (1, 4096, 4097, 65536, 1 << 20, (1 << 20) + 1)] == [1024, 128, 16, 16,
                                                                                               16, 1]
    assert 8 <= t.RING_1MIB_BLOCKS <= 16
    assert t.payload_for(100) == t.payload_for(100) != t.payload_for(101)[:100]  # seeded: the same everywhere


def test_the_ring_s_c_hot_path_makes_no_heap_allocation(bench: ModuleType) -> None:
    """The issue's rule, counted by the LD_PRELOAD counter: loan, write, publish, receive, release of 64-byte
    messages in steady state make no malloc/calloc/realloc call in either process; the Python-object count
    is a row too (not asserted: the Python API's objects are the ring's own business)."""
    ctx = _ctx()
    rows = {r.impl: r for r in bench._hot_path_allocs(ctx, _cpus(), bench.transports().ring_options())}
    unable = [n["text"] for n in ctx.notes if "cannot run here" in n["text"]]
    if unable:
        require_or_skip("malloc_count", unable[0])
    assert set(rows) == {"mcp_edge[ring-c]", "mcp_edge[ring-py]"}
    assert rows["mcp_edge[ring-c]"].value == 0, ctx.notes
    assert rows["mcp_edge[ring-py]"].value >= 0
    assert all(r.metric == "count" and not r.higher_is_better for r in rows.values())
    assert any("tracemalloc after 200 more messages" in n["text"] for n in ctx.notes)


# ----------------------------------------------------------------- failing and missing peers


CRASHING_MQ = '''
import os, signal, time
MESSAGE_QUEUES_SUPPORTED = True
QUEUE_MESSAGE_SIZE_MAX_DEFAULT = 8192
QUEUE_MESSAGES_MAX_DEFAULT = 10
O_CREX = 0
class MessageQueue:
    """Made by the driver before it forks; crashes on its first send (driver) or receive (partner)."""
    def __init__(self, *args, **kwargs):
        self.driver = os.getpid()
    def unlink(self):
        pass
    def close(self):
        pass
    def send(self, data):
        if "{who}" == "driver" and os.getpid() == self.driver:
            os.kill(os.getpid(), signal.SIGSEGV)
    def receive(self):
        if "{who}" == "partner" and os.getpid() != self.driver:
            os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(3600)  # no answer comes
'''


@pytest.mark.parametrize(("who", "reason"), [
    ("driver", "posix_ipc.MessageQueue failed: killed by SIGSEGV in verify_rtt()"),
    ("partner", "posix_ipc.MessageQueue failed: raised PartnerDied: the partner process killed by SIGSEGV"),
])
def test_a_crashing_peer_is_a_note_and_the_others_run(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, who: str, reason: str
) -> None:
    """posix_ipc dies of SIGSEGV in the driver's process or in its partner: the bench completes with the other
    peers' rows, none of posix_ipc's, and a note saying what happened."""
    _fake_packages(tmp_path / "fake", monkeypatch, {"posix_ipc": CRASHING_MQ.replace("{who}", who)})
    monkeypatch.setattr(bench, "RING_IMPLS", ())
    monkeypatch.setattr(bench, "PEERS", ("multiprocessing.Pipe", "posix_ipc.MessageQueue"))
    ctx = _ctx()
    rows = [r for r in bench.run(ctx) if r.impl not in ctx.failed]
    impls = {r.impl for r in rows}
    assert "multiprocessing.Pipe" in impls and "posix_ipc.MessageQueue" not in impls
    notes = [n["text"] for n in ctx.notes if n["impl"] == "posix_ipc.MessageQueue"]
    assert any(text.startswith(reason) for text in notes), notes
    assert "posix_ipc.MessageQueue" in ctx.failed


def test_a_missing_peer_package_is_a_skip_note(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_packages(tmp_path / "fake", monkeypatch, {"posix_ipc": "raise ImportError('not here')\n",
                                                    "iceoryx2": "raise ImportError('not here')\n"})
    monkeypatch.setattr(bench, "RING_IMPLS", ())
    monkeypatch.setattr(bench, "PEERS", ("posix_ipc.MessageQueue", "iceoryx2"))
    monkeypatch.setattr(bench, "STREAM_CASES", {})
    ctx = _ctx()
    rows = [r for r in bench.run(ctx) if r.impl not in ctx.failed]
    assert {r.impl for r in rows} <= {"mcp_edge[crc32c-in-process]", "memcpy", *bench.ALLOC_IMPLS}
    skipped = _skipped(ctx)
    assert skipped["posix_ipc.MessageQueue"] == "posix_ipc.MessageQueue skipped: not installed (pip install posix_ipc)"
    assert skipped["iceoryx2"].startswith("iceoryx2 skipped: not installed")
    if not X86_64:
        assert "x86_64 wheels only" in skipped["iceoryx2"]


def test_peer_packages_are_installed() -> None:
    """posix_ipc (any platform) and iceoryx2 (x86_64, where PyPI has wheels): a skip here, a failure under CI."""
    importorskip("posix_ipc", "posix_ipc", "posix_ipc is not installed (pip install posix_ipc)")
    if not X86_64:
        pytest.skip(f"iceoryx2 has x86_64 wheels only; this is {platform.machine()}")
    importorskip("iceoryx2", "iceoryx2", "iceoryx2 is not installed (pip install iceoryx2)")


def test_an_mcp_edge_impl_failing_ends_the_run(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own rows are never dropped quietly: an mcp_edge impl that cannot start is a BenchError."""
    monkeypatch.setattr(bench, "RING_IMPLS", ("mcp_edge[no-such-ring]",))
    monkeypatch.setattr(bench, "PEERS", ())
    with pytest.raises(BenchError, match=r"mcp_edge\[no-such-ring\] failed: raised ValueError: no IPC impl named"):
        list(bench.run(_ctx()))


# ----------------------------------------------------------------- helpers


def test_percentiles_are_nearest_rank(bench: ModuleType) -> None:
    t = bench.transports()
    values = list(range(1, 101))
    assert (t.percentile(values, 0.5), t.percentile(values, 0.99), t.percentile(values, 1.0)) == (50, 99, 100)
    assert t.percentile([7], 0.99) == 7
    assert t.percentile(list(range(1, 20_001)), 0.99) == 19_800
    with pytest.raises(ValueError):
        t.percentile([], 0.5)


def test_one_cpu_leaves_the_cross_cases_out_with_a_note(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    ctx = _ctx()
    assert bench.placements(ctx) == {"same": (3, 3)}
    assert "the -cross cases need two" in ctx.notes[-1]["text"]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 1, 9})
    assert bench.placements(_ctx()) == {"cross": (1, 5), "same": (1, 1)}
