"""Peers in child processes (mcp_edge.perf.isolation) and a harness that survives them.

A peer that kills itself with SIGILL (as the PyPI liburing 2026.3.30 wheel does on CPUs without an
instruction it uses), one that hangs and one that raises: on any CPU, the run completes, the other rows
are there, and the notes name each peer and the reason. No timing assertions: the budgets are tiny.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mcp_edge.errors import BenchError
from mcp_edge.perf import BenchContext, Call, Child, PeerFailed, PeerSkipped, compare, format_table, run
from mcp_edge.perf.isolation import signal_name

PEERS = '''
import os, signal, time
from mcp_edge.perf import Call, PeerSkipped


def fail(how):
    if how == "sigill":
        os.kill(os.getpid(), signal.SIGILL)
    elif how == "hang":
        time.sleep(3600)
    elif how == "raise":
        raise ValueError("peer is broken")
    elif how == "skip":
        raise PeerSkipped("not installed here")
    elif how == "exit":
        os._exit(3)


class Peer:
    """Fails as ``how`` says at ``when``: start (the constructor), call (echo) or timed (the timed call)."""

    def __init__(self, how="none", when="call"):
        self.how, self.when = how, when
        self.pid = os.getpid()
        if when == "start":
            fail(how)

    def echo(self, value):
        if self.when == "call":
            fail(self.how)
        return value

    def getpid(self):
        return self.pid

    def timed_call(self, key):
        if self.when == "timed":
            return Call(fail, (self.how,))
        return Call(len, (b"abc",))
'''

REASONS = {
    "sigill": "killed by SIGILL",
    "hang": "timed out after 1 s",
    "raise": "raised ValueError: peer is broken",
    "exit": "exited with status 3",
}
TIMEOUT = 1.0


@pytest.fixture
def peers(tmp_path: Path) -> str:
    path = tmp_path / "fake_peers.py"
    path.write_text(PEERS)
    return f"{path}:Peer"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ----------------------------------------------------------------- Child


def test_child_answers_calls_and_times(peers: str) -> None:
    with Child("good", peers, ("none", "never"), timeout=30) as child:
        assert child.call("echo", {"a": [1, b"x"]}) == {"a": [1, b"x"]}
        pid = child.call("getpid")
        assert pid != os.getpid()
        timings = compare({"local": Call(len, (b"x",)), "remote": child.timer("key")}, min_time=0.004, rounds=2)
        assert set(timings) == {"local", "remote"}
        assert len(timings["remote"].round_ns) == 2 and timings["remote"].calls >= 1
    assert _gone(pid)
    child.close()  # idempotent


@pytest.mark.parametrize("how", sorted(REASONS))
@pytest.mark.parametrize("when", ["start", "call", "timed"])
def test_a_failing_peer_is_a_peer_failed_naming_it(peers: str, how: str, when: str) -> None:
    def go() -> None:
        child = Child("bad-peer", peers, (how, when), timeout=TIMEOUT)
        try:
            if when == "call":
                child.call("echo", 1)
            else:
                timer = child.timer("key")
                timer.run(timer.calibrate(1e5))
        finally:
            child.close()

    with pytest.raises(PeerFailed) as info:
        go()
    assert info.value.peer == "bad-peer"
    assert REASONS[how] in info.value.reason
    assert str(info.value).startswith("bad-peer: ")


def test_a_failed_child_is_gone_and_says_so(peers: str) -> None:
    child = Child("p", peers, ("hang", "call"), timeout=TIMEOUT)
    pid = child.call("getpid", timeout=30)
    with pytest.raises(PeerFailed, match=r"timed out after 0\.5 s in echo"):
        child.call("echo", 1, timeout=0.5)
    assert _gone(pid)
    with pytest.raises(PeerFailed, match="gone"):
        child.call("getpid")


def test_a_peer_that_cannot_run_is_a_skip(peers: str) -> None:
    with pytest.raises(PeerSkipped, match="not installed here"):
        Child("p", peers, ("skip", "start"), timeout=30)


def test_signal_names() -> None:
    assert signal_name(4) == "SIGILL"
    assert signal_name(11) == "SIGSEGV"
    assert signal_name(200) == "signal 200"


# ----------------------------------------------------------------- the harness


BENCH = '''
from mcp_edge.perf import Call, Row

NAME = {name!r}
PEERS = {peers!r}


def run(ctx):
    ctx.peer_timeout = {timeout}
    timers = {{"mcp_edge": Call(len, (b"abc",))}}
    for peer, how, when in [("sigill-peer", "sigill", "start"), ("hang-peer", "hang", "timed"),
                            ("raise-peer", "raise", "timed"), ("skip-peer", "skip", "start"),
                            ("good-peer", "none", "never")]:
        child = ctx.child(peer, PEERS, how, when)
        if child is not None:
            timers[peer] = child.timer("key")
    for case in ("one", "two"):
        for impl, t in ctx.compare(timers, label=case, min_time=0.004, rounds=2).items():
            yield Row(case, impl, "calls/s", t.per_second())
    yield Row("sum", "raise-peer", "calls/s", 1.0)  # rows of a failed peer are left out wherever they come from
'''


def _write_bench(directory: Path, name: str, peers: str, source: str = BENCH) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"bench_{name}.py").write_text(
        textwrap.dedent(source.format(name=name, peers=peers, timeout=TIMEOUT))
    )


def test_the_run_survives_crashing_hanging_and_raising_peers(peers: str, tmp_path: Path) -> None:
    benches = tmp_path / "benches"
    _write_bench(benches, "peers", peers)
    out = tmp_path / "r.json"
    result = run(None, True, out, benches, False)
    assert json.loads(out.read_text()) == result
    impls = {(r["case"], r["impl"]) for r in result["results"]}
    assert impls == {("one", "mcp_edge"), ("one", "good-peer"), ("two", "mcp_edge"), ("two", "good-peer")}
    notes = {n["impl"]: n["text"] for n in result["notes"]}
    assert all(n["bench"] == "peers" for n in result["notes"])
    assert notes["sigill-peer"].startswith("sigill-peer failed: killed by SIGILL while starting")
    assert notes["hang-peer"].startswith("hang-peer failed: timed out after 1 s")
    assert notes["raise-peer"].startswith("raise-peer failed: raised ValueError: peer is broken")
    assert notes["skip-peer"] == "skip-peer skipped: not installed here"
    assert "its rows are left out" in notes["sigill-peer"]
    table = format_table(result)
    assert "notes:" in table and "sigill-peer failed: killed by SIGILL" in table
    assert "good-peer" in table and "hang-peer" not in table.split("notes:")[0]


def test_a_failing_mcp_edge_row_ends_the_run(peers: str, tmp_path: Path) -> None:
    source = '''
    from mcp_edge.perf import Row

    def run(ctx):
        ctx.peer_timeout = 30
        child = ctx.child("mcp_edge[kernel]", {peers!r}, "sigill", "timed")
        ctx.compare({{"mcp_edge[kernel]": child.timer("key")}}, min_time=0.004, rounds=2)
        yield Row("x", "mcp_edge", "calls/s", 1.0)
    '''
    _write_bench(tmp_path / "b", "ours", peers, source)
    with pytest.raises(BenchError, match=r"mcp_edge\[kernel\] failed: killed by SIGILL"):
        run(None, True, tmp_path / "r.json", tmp_path / "b", False)
    assert not (tmp_path / "r.json").exists()


def test_an_in_process_peer_that_raises_is_a_note(tmp_path: Path) -> None:
    source = '''
    from mcp_edge.perf import Call, Row

    def broken(x):
        raise KeyError("gone")

    def run(ctx):
        calls = {{"mcp_edge": Call(len, (b"a",)), "peer": Call(broken, (1,)), "other": Call(abs, (-1,))}}
        for impl, t in ctx.compare(calls, min_time=0.004, rounds=2).items():
            yield Row("x", impl, "calls/s", t.per_second())
    '''
    _write_bench(tmp_path / "b", "inproc", "", source)
    result = run(None, True, tmp_path / "r.json", tmp_path / "b", False)
    assert {r["impl"] for r in result["results"]} == {"mcp_edge", "other"}
    assert result["notes"] == [{"bench": "inproc", "impl": "peer", "text": "peer failed: raised KeyError: 'gone'; "
                                                                              "its rows are left out"}]


def test_a_peer_failed_escaping_a_bench_keeps_the_rows_before(tmp_path: Path) -> None:
    source = '''
    from mcp_edge.perf import PeerFailed, Row

    def run(ctx):
        yield Row("x", "mcp_edge", "calls/s", 1.0)
        yield Row("x", "peer", "calls/s", 1.0)
        raise PeerFailed("peer", "killed by SIGSEGV")
    '''
    _write_bench(tmp_path / "b", "escape", "", source)
    _write_bench(tmp_path / "b", "later", "", '''
    from mcp_edge.perf import Row

    def run(ctx):
        yield Row("y", "mcp_edge", "calls/s", 2.0)
    ''')
    result = run(None, True, tmp_path / "r.json", tmp_path / "b", False)
    assert [(r["bench"], r["impl"]) for r in result["results"]] == [("escape", "mcp_edge"), ("later", "mcp_edge")]
    assert result["notes"][0]["text"] == "peer failed: killed by SIGSEGV; its rows are left out"


def test_cli_takes_a_comma_list_and_shows_notes(peers: str, tmp_path: Path) -> None:
    from mcp_edge.commands import cli

    benches = tmp_path / "benches"
    _write_bench(benches, "peers", peers)
    _write_bench(benches, "quiet", peers, '''
    from mcp_edge.perf import Row

    def run(ctx):
        ctx.note("a caveat")
        yield Row("y", "mcp_edge", "ms", 2.0, higher_is_better=False)
    ''')
    _write_bench(benches, "unselected", peers, "raise RuntimeError('never imported')\n")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["perf", "run", "--only", "peers,quiet", "--quick", "--json", str(out),
                                   "--bench-dir", str(benches)])
    assert res.exit_code == 0, res.output
    assert "== peers" in res.output and "== quiet" in res.output
    assert "killed by SIGILL" in res.output and "   - a caveat" in res.output
    written: dict[str, Any] = json.loads(out.read_text())
    assert {r["bench"] for r in written["results"]} == {"peers", "quiet"}
    assert {"bench": "quiet", "impl": None, "text": "a caveat"} in written["notes"]


def test_context_peer_failed_policy() -> None:
    ctx = BenchContext("x", quick=True)
    ctx.peer_failed("peer", PeerFailed("peer", "killed by SIGBUS"))
    ctx.peer_failed("gone", PeerSkipped("not here"))
    assert ctx.failed == {"peer": "killed by SIGBUS", "gone": "not here"}
    assert [n["text"] for n in ctx.notes] == ["peer failed: killed by SIGBUS; its rows are left out",
                                             "gone skipped: not here"]
    with pytest.raises(BenchError, match="mcp_edge failed: raised ValueError: bad"):
        ctx.peer_failed("mcp_edge", ValueError("bad"))
