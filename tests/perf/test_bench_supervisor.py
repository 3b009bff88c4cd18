"""perf/bench_supervisor.py: its answer checks, its row names, and a quick run against real servers.

Nothing here looks at a figure: what is checked is that answers are checked (and a wrong one fails the
bench), that the rows are the issue's and that the supervisor cases ran to their end.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import mcp_edge
from mcp_edge.perf import BenchContext, Row
from mcp_edge.perf.harness import _result_row, load_bench

CHECKOUT = Path(mcp_edge.__file__).resolve().parents[1]
BENCH = CHECKOUT / "perf" / "bench_supervisor.py"
PAYLOAD = CHECKOUT / "perf" / "plugins" / "payload"

pytestmark = [
    pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_supervisor.py is not in this checkout"),
    pytest.mark.skipif(sys.platform != "linux", reason="the supervisor bench needs Linux (pidfds, /proc)"),
]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("supervisor", BENCH)


def _answer(req_id: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "result": {"content": [{"type": "text", "text": text}], **extra}}


# -- names ------------------------------------------------------------------------------------------------


def test_row_names_are_the_issue_s(bench: ModuleType) -> None:
    assert bench.NAME == "supervisor"
    assert bench.IMPLS == ("mcp_edge[inproc]", "mcp_edge[process]", "stdio-proxy")
    assert bench.CALL_CASES == ("calls-small", "calls-1MiB")
    assert bench.EVENT_CASES == ("restart-after-sigkill", "reload-swap", "drain-under-load")
    assert bench.BIG == 1 << 20


def test_isolation_env_names_every_bench_plugin(bench: ModuleType) -> None:
    assert bench.isolation_env("process") == "echo=process,payload=process"
    from mcp_edge.board.settings import _isolation_from_text

    assert _isolation_from_text(bench.isolation_env("inproc"), "test") == {"echo": "inproc", "payload": "inproc"}


def test_board_profile_loads(bench: ModuleType, tmp_path: Path) -> None:
    from mcp_edge.board.profiles import load

    path = tmp_path / "b.toml"
    plugins = tmp_path / "a dir" / "plugins"
    path.write_text(bench.board_profile(plugins, tmp_path / "data", "x86_64"))
    board = load(path)
    assert board.id == bench.BOARD_ID
    assert board.plugin_dirs == (plugins,)


# -- the payload plugin and the blob checks ---------------------------------------------------------------


def _payload_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("perf_payload_plugin_under_test", PAYLOAD / "plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_checks_blobs_against_the_plugin_s_pattern(bench: ModuleType) -> None:
    payload = _payload_module()
    assert payload.PATTERN == bench.PATTERN and len(set(bench.PATTERN)) == 64
    plugin = payload.Payload()
    for size in (0, 1, 63, 64, 65, 1000, bench.BIG):
        text = plugin.blob(size)
        assert len(text) == size
        assert bench.check_blob(_answer(3, text), 3, size) is None
        for off in bench.sample_offsets(size):
            n = min(bench.SAMPLE_LEN, size - off)
            assert text[off:off + n] == bench.blob_text(off, n)
    assert plugin.blob(bench.BIG) is plugin.blob(bench.BIG)  # made once per size
    with pytest.raises(ValueError):
        plugin.blob(-1)


def test_sample_offsets_cover_start_and_end(bench: ModuleType) -> None:
    offsets = bench.sample_offsets(bench.BIG)
    assert offsets[0] == 0 and offsets[-1] == bench.BIG - bench.SAMPLE_LEN
    assert len(offsets) == bench.SAMPLES
    assert bench.sample_offsets(10) == [0]


@pytest.mark.parametrize(("make", "needle"), [
    (lambda t: {"jsonrpc": "2.0", "id": 4, "result": {}}, "id 4"),
    (lambda t: {"jsonrpc": "2.0", "id": 5, "error": {"code": -32603, "message": "x"}}, "JSON-RPC error"),
    (lambda t: _answer(5, t[:-1]), "blob of"),
    (lambda t: _answer(5, "X" + t[1:]), "differs at offset 0"),
    (lambda t: _answer(5, t[:-1] + "X"), "differs at offset"),
    (lambda t: _answer(5, t, isError=True), "tool error"),
    (lambda t: [], "not a JSON object"),
])
def test_check_blob_names_the_problem(bench: ModuleType, make: Any, needle: str) -> None:
    text = bench.blob_text(0, 4096)
    problem = bench.check_blob(make(text), 5, 4096)
    assert problem is not None and needle in problem


def test_check_text(bench: ModuleType) -> None:
    assert bench.check_text(_answer(1, "slept 100"), 1, "slept 100") is None
    assert "expected 'slept 100'" in bench.check_text(_answer(1, "slept 10"), 1, "slept 100")


def test_plugin_rows(bench: ModuleType) -> None:
    rows = [{"id": "runtime", "pid": 1}, {"id": "echo", "pid": 7, "restarts": 0, "state": "active"}]
    msg = {"jsonrpc": "2.0", "id": 2, "result": {"contents": [
        {"uri": bench.STATUS_URI, "text": json.dumps({"plugins": rows})}]}}
    assert bench.plugin_rows(msg) == rows
    assert bench.plugin_row(rows, "echo")["pid"] == 7
    with pytest.raises(ValueError, match="not in"):
        bench.plugin_row(rows, "payload")
    with pytest.raises(ValueError):
        bench.plugin_rows({"jsonrpc": "2.0", "id": 2, "error": {}})


# -- the load generator against real processes ------------------------------------------------------------

WRONG_SERVER = """
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" in msg:
        text = "hello" if msg["method"] == "initialize" else "not what was sent"
        out = {"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [{"type": "text", "text": text}]}}
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
"""


def test_a_wrong_answer_fails_the_round(bench: ModuleType, tmp_path: Path) -> None:
    srv = bench.Server("fake", [sys.executable, "-c", WRONG_SERVER], {}, tmp_path / "fake.log")
    try:
        srv.handshake()
        load = bench.Workload("small")
        with pytest.raises(bench.ServerFailed, match="not what was sent"):
            srv.seq_round(load.req, load.check, 0.01)
        with pytest.raises(bench.ServerFailed, match="not what was sent"):
            srv.pipelined_round(load.req, load.check, 0.01, 4)
        assert srv.checked == 0
    finally:
        srv.kill()


def test_a_quick_run_emits_the_issue_s_rows(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every impl has every calls case, the supervisor cases ran (reload-swap is either a row or a note
    saying why not), every answer of every round was checked, and the harness accepts every row."""
    monkeypatch.setattr(bench, "ROUND_S", {True: 0.05, False: 0.05})
    monkeypatch.setattr(bench, "WARMUP", {"small": 5, "1MiB": 2})
    monkeypatch.setattr(bench, "EVENTS", {True: 1, False: 1})
    monkeypatch.setattr(bench, "DRAIN_CALLS", 10)
    monkeypatch.setattr(bench, "RELOAD_LIMIT_S", 2.0)
    ctx = BenchContext("supervisor", quick=True)
    rows = list(bench.run(ctx))
    assert all(isinstance(r, Row) for r in rows)
    for r in rows:
        _result_row("supervisor", r)
        assert r.value > 0, r
        assert r.higher_is_better == (r.metric == "calls/s"), r
    got = {(r.case, r.impl, r.metric) for r in rows}
    expected = {(case, impl, "calls/s") for case in (*bench.CALL_CASES, *bench.PIPELINED_CASES)
                for impl in bench.IMPLS}
    expected |= {("restart-after-sigkill", "mcp_edge", "ms"), ("drain-under-load", "mcp_edge", "ms")}
    texts = [n["text"] for n in ctx.notes]
    if not any(t.startswith("reload-swap: not measured") for t in texts):
        expected.add(("reload-swap", "mcp_edge", "ms"))
    assert got == expected
    assert len(rows) == len(got)
    for case in (*bench.CALL_CASES, *bench.PIPELINED_CASES):
        (note,) = [t for t in texts if t.startswith(f"{case}: ")]
        counts = dict(part.rsplit(" ", 1) for part in note.split("answers checked: ")[1].split(", "))
        assert set(counts) == set(bench.IMPLS), note
        assert all(int(n.replace(",", "")) > 0 for n in counts.values()), note
    assert any("every one answered, exit status 0" in t for t in texts)
    assert any(t.startswith("ratios (targets:") for t in texts)
    for impl in bench.IMPLS:
        assert any(n["impl"] == impl for n in ctx.notes), impl
