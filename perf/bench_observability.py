"""Observability's cost: what metrics and tracing add to each request and to the idle server's memory,
against the same runtime with them off, in the same run. Authentication comes with its own impl
(``mcp_edge[auth]``) once the runtime has it; until then a note says it is absent.

Impls: ``mcp_edge[off]`` (``Settings.metrics`` and ``tracing`` false, the defaults), ``mcp_edge[metrics]``
(metrics on) and ``mcp_edge[tracing]`` (tracing on, every request sampled, spans exported as JSON lines to a
file in the bench's temporary folder by the SDK's batch processor, whose thread's work counts too).

- ``per-request`` (``us``, lower is better): in this process, two running servers on the bench's ``echo``
  plugin (``perf/plugins/echo``, in process), one per impl; each round drives ``ROUND_CALLS`` ``tools/call``
  requests through its router (``Router.handle``: the dispatch, the plugin's bulkhead and breaker, the call,
  the response's encoding) with no transport around it, so the difference between the two rows is what the
  feature adds to a request and nothing else moves it; rounds alternate between the impls, best round each.
  Every answer is checked (the echoed text).
- ``idle-rss`` (``MiB``, lower is better): ``VmRSS`` of ``mcp-edge serve --stdio -q`` (and any workers) after
  the handshake, median of ``SPAWNS`` spawns a impl; with metrics on, serving on stdio loads prometheus-client
  at start for the metrics file, which is what this row shows.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_edge.perf import BenchContext, BenchError, Row
from mcp_edge.perf.harness import load_bench

NAME = "observability"

PERF_DIR = Path(__file__).resolve().parent
OFF, METRICS, TRACING = "mcp_edge[off]", "mcp_edge[metrics]", "mcp_edge[tracing]"
IMPLS = (OFF, METRICS, TRACING)
ROUND_CALLS = {True: 5_000, False: 20_000}
SPAWNS = {True: 3, False: 5}
WARMUP = 500
TEXT = "hello from the observability bench"
IO_TIMEOUT_S = 30.0


def _mcp_bench() -> ModuleType:
    """bench_mcp.py: its board profile, clean environment, JSON-RPC requests and RSS reading."""
    return load_bench("mcp", PERF_DIR / "bench_mcp.py")


_mcp = _mcp_bench()


def per_call_us(ns: int, calls: int) -> float:
    """Microseconds a call from a round of ``calls`` that took ``ns``."""
    if calls <= 0:
        raise ValueError("a round needs at least one call")
    return ns / calls / 1000


class Routers:
    """The two running servers of the per-request case and one request each to drive them with."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.servers: dict[str, Any] = {}

    async def start(self) -> None:
        from mcp_edge.board.settings import Settings
        from mcp_edge.server import Server

        for impl in IMPLS:
            data = self.work / impl.replace("[", "-").rstrip("]")
            data.mkdir()
            settings = Settings.load(data_dir=data, plugin_dirs=(PERF_DIR / "plugins",), entry_points=False,
                                     enabled_plugins=frozenset({"echo"}), reload_watch=False,
                                     plugin_isolation={"echo": "inproc"}, metrics=impl == METRICS,
                                     tracing=impl == TRACING, tracing_exporter="jsonl",
                                     tracing_file=str(data / "spans.jsonl"))
            self.servers[impl] = await Server.configure(settings).start()

    async def stop(self) -> None:
        for running in self.servers.values():
            await running.stop()

    async def round(self, impl: str, calls: int) -> int:
        """``calls`` checked requests through ``impl``'s router; the nanoseconds they took."""
        from mcp_edge.mcp.connection import Request, ServerConnection
        from mcp_edge.runtime.outcome import Result
        from mcp_edge.runtime.principal import EMBEDDED
        from mcp_edge.runtime.router import Session

        router = self.servers[impl].router
        session = Session(ServerConnection(router.info), principal=EMBEDDED)
        req = Request(1, "tools/call", {"name": "echo", "arguments": {"text": TEXT}}, "2025-11-25", False)
        handle = router.handle
        start = time.perf_counter_ns()
        for _ in range(calls):
            outcome = await handle(req, session, None)
        took = time.perf_counter_ns() - start
        if not isinstance(outcome, Result):
            raise BenchError(f"{impl}: tools/call echo answered {outcome!r:.300}")
        if outcome.encoded is None or f'"text":"{TEXT}"'.encode() not in outcome.encoded:
            raise BenchError(f"{impl}: echo answered {outcome.encoded!r:.300}, expected the text {TEXT!r}")
        return took


def per_request_rows(ctx: BenchContext, work: Path) -> Iterator[Row]:
    calls = ROUND_CALLS[ctx.quick]
    routers = Routers(work)

    async def measure() -> dict[str, float]:
        await routers.start()
        best: dict[str, float] = {}
        try:
            for impl in IMPLS:
                await routers.round(impl, WARMUP)
            for r in range(ctx.rounds):
                for impl in _mcp.rotate(list(IMPLS), r):
                    us = per_call_us(await routers.round(impl, calls), calls)
                    best[impl] = min(best.get(impl, us), us)
                    ctx.advance(0)
            metrics = routers.servers[METRICS].registry.metrics
            counted = sum(row[0] for _, row in metrics.rows()) if metrics is not None else 0
            if counted != WARMUP + ctx.rounds * calls:
                raise BenchError(f"{METRICS}: the meter counted {counted} calls of "
                                 f"{WARMUP + ctx.rounds * calls} made")
        finally:
            await routers.stop()
        return best

    best = asyncio.run(measure())
    ctx.note(f"per-request: {calls} tools/call echo a round through Router.handle (no transport), "
             f"{ctx.rounds} rounds alternating, best round each; "
             + "; ".join(f"{impl} adds {best[impl] - best[OFF]:+.3f} us a request ({best[impl] / best[OFF]:.3f}x "
                         "of off)" for impl in (METRICS, TRACING)))
    for impl in IMPLS:
        yield Row("per-request", impl, "us", best[impl], higher_is_better=False)
    ctx.advance(len(IMPLS))


def idle_rss_kib(env: dict[str, str], log: Path) -> int:
    """VmRSS (KiB) of a stdio server and its workers once it answered the handshake."""
    argv = [sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"]
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                bufsize=0)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_mcp.initialize_request(0) + b"\n")
        line = _read_line(proc, IO_TIMEOUT_S)
        if b'"result"' not in line:
            raise BenchError(f"the server answered initialize with {line[:300]!r}; see {log}")
        proc.stdin.write(_mcp.INITIALIZED + b"\n")
        time.sleep(0.2)  # the notification handled, the metrics file written once: idle now
        return int(_mcp.tree_rss_kib(proc.pid))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    import select

    assert proc.stdout is not None
    fd, buf = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise BenchError(f"no answer to initialize within {timeout:.0f} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise BenchError(f"the server exited (status {proc.poll()}) before answering initialize")
        buf += chunk
    return buf.split(b"\n", 1)[0]


def idle_rss_rows(ctx: BenchContext, work: Path) -> Iterator[Row]:
    boards, data, logs = work / "boards", work / "data", work / "logs"
    for d in (boards, data, logs):
        d.mkdir(exist_ok=True)
    board = "perf-observability"
    (boards / f"{board}.toml").write_text(
        _mcp.board_profile(PERF_DIR / "plugins", data, platform.machine()).replace('"perf-mcp"', f'"{board}"'))
    base = _mcp._clean_env({"MCP_EDGE_BOARDS_DIR": str(boards), "MCP_EDGE_BOARD": board,
                            "MCP_EDGE_DATA_DIR": str(data), "MCP_EDGE_RELOAD_WATCH": "0",
                            "PYTHONPYCACHEPREFIX": str(_mcp._cache_dir() / "pycache")})
    got: dict[str, list[int]] = {impl: [] for impl in IMPLS}
    idle_rss_kib(dict(base), logs / "warm.log")  # bytecode cached, files in the page cache
    for r in range(SPAWNS[ctx.quick]):
        for impl in _mcp.rotate(list(IMPLS), r):
            env = dict(base, MCP_EDGE_METRICS="1" if impl == METRICS else "0",
                       MCP_EDGE_TRACING="1" if impl == TRACING else "0", MCP_EDGE_TRACING_EXPORTER="jsonl",
                       MCP_EDGE_TRACING_FILE=str(data / "spans.jsonl"))
            got[impl].append(idle_rss_kib(env, logs / f"{impl.replace('[', '-').rstrip(']')}.log"))
    ctx.note(f"idle-rss: VmRSS of `mcp-edge serve --stdio -q` with perf/plugins after the handshake, median of "
             f"{SPAWNS[ctx.quick]} spawns each, alternating")
    for impl in IMPLS:
        yield Row("idle-rss", impl, "MiB", statistics.median(got[impl]) / 1024, higher_is_better=False)
    ctx.advance(len(IMPLS))


def run(ctx: BenchContext) -> Iterator[Row]:
    if sys.platform != "linux":
        ctx.note("the observability bench reads /proc: Linux only; skipped")
        return
    ctx.plan(2 * len(IMPLS))
    ctx.note("mcp_edge[auth]: not measured, the runtime has no authentication yet (issue 11 builds it); its rows "
             "come with it")
    with tempfile.TemporaryDirectory(prefix="mcp-edge-bench-observability-") as tmp:
        work = Path(tmp)
        yield from per_request_rows(ctx, work)
        yield from idle_rss_rows(ctx, work)
