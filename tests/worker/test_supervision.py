"""A process plugin under the registry: SIGKILL under load, restart with backoff, the breaker, bulkheads."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mcp_edge.board import Settings
from mcp_edge.errors import PluginError
from mcp_edge.plugin import NullRequestContext, PluginState, Registry
from mcp_edge.runtime.resilience import BreakerOpen, BulkheadFull
from mcp_edge.worker.host import WorkerLost

HERE = Path(__file__).parent
CRASHY = HERE / "plugins" / "crashy"
ECHO = HERE.parents[1] / "perf" / "plugins" / "echo"
RCTX = NullRequestContext()


def _registry(**overrides: Any) -> Registry:
    values: dict[str, Any] = {"restart_backoff_base_s": 0.05, "restart_backoff_jitter": 0.0, **overrides}
    s = Settings.load(environ={}, plugin_dirs=(CRASHY, ECHO), entry_points=False,
                      plugin_isolation={"crashy": "process"}, **values)
    return Registry.from_settings(s)


def _text(result: Any) -> str:
    data = msgspec.json.decode(result) if isinstance(result, msgspec.Raw) else msgspec.to_builtins(result)
    text: str = data["content"][0]["text"]
    return text


async def _until(check: Any, what: str, limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


def test_sigkill_under_load_fails_only_that_plugins_calls_and_it_comes_back() -> None:
    async def go() -> None:
        reg = _registry(breaker_min_calls=10)  # five failed calls stay under the breaker's bar here
        await reg.start()
        try:
            rec = reg.get("crashy")
            assert rec is not None and rec.state is PluginState.ACTIVE and rec.isolation == "process", rec.reason
            first = rec.host.pid  # type: ignore[union-attr]
            assert first != os.getpid()
            slow = [asyncio.create_task(reg.call_tool("sleep", {"seconds": 30}, RCTX)) for _ in range(5)]
            echoes = [asyncio.create_task(reg.call_tool("echo", {"text": f"e{i}"}, RCTX)) for i in range(50)]
            await asyncio.sleep(0.2)
            os.kill(first, signal.SIGKILL)
            for task in slow:  # the dead worker's callers get errors, not hangs
                with pytest.raises(WorkerLost, match="was killed by SIGKILL"):
                    await task
            assert [_text(await t) for t in echoes] == [f"e{i}" for i in range(50)]  # the other plugin: no errors
            await _until(lambda: rec.state is PluginState.ACTIVE and rec.restarts == 1, "crashy restarted")
            assert rec.host.pid not in (first, 0)  # type: ignore[union-attr]
            assert _text(await reg.call_tool("echo", {"text": "x"}, RCTX)) == "x"
            assert _text(await reg.call_tool("say", {"text": "again"}, RCTX)) == "again"
            assert next(r for r in reg.status() if r["id"] == "crashy")["restarts"] == 1
        finally:
            await reg.stop()

    asyncio.run(go())


def test_a_crash_loop_opens_the_breaker_and_a_later_probe_closes_it() -> None:
    async def go() -> None:
        reg = _registry(breaker_window=4, breaker_min_calls=2, breaker_failure_ratio=0.5, breaker_open_s=0.5,
                        breaker_probes=1)
        await reg.start()
        rec = reg.get("crashy")
        assert rec is not None
        try:
            for _ in range(2):
                await _until(lambda: rec.state is PluginState.ACTIVE, "crashy active")
                with pytest.raises(WorkerLost):
                    await reg.call_tool("crash", {}, RCTX)
            with pytest.raises(BreakerOpen, match="plugin crashy is failing") as err:
                await reg.call_tool("whoami", {}, RCTX)
            assert err.value.retry_after_s > 0
            assert _text(await reg.call_tool("echo", {"text": "fine"}, RCTX)) == "fine"  # others not disturbed
            await asyncio.sleep(0.6)
            await _until(lambda: rec.state is PluginState.ACTIVE, "crashy back")
            await reg.call_tool("whoami", {}, RCTX)  # the probe succeeds: closed
            assert next(r for r in reg.status() if r["id"] == "crashy")["breaker"] == "closed"
        finally:
            await reg.stop()

    asyncio.run(go())


def test_a_hung_worker_is_killed_and_restarted() -> None:
    async def go() -> None:
        reg = _registry(heartbeat_interval_s=0.05, heartbeat_misses=2)
        await reg.start()
        rec = reg.get("crashy")
        assert rec is not None
        try:
            with pytest.raises(WorkerLost, match="hung: no heartbeat"):
                await reg.call_tool("spin", {"seconds": 60}, RCTX)
            await _until(lambda: rec.state is PluginState.ACTIVE and rec.restarts == 1, "crashy restarted")
        finally:
            await reg.stop()

    asyncio.run(go())


def test_a_full_bulkhead_refuses_at_once_and_retryably() -> None:
    async def go() -> None:
        reg = _registry(plugin_concurrency=2, plugin_queue=1)
        await reg.start()
        try:
            running = [asyncio.create_task(reg.call_tool("sleep", {"seconds": 0.5}, RCTX)) for _ in range(3)]
            await asyncio.sleep(0.1)
            with pytest.raises(BulkheadFull, match="plugin crashy is busy: 2 calls running and 1 waiting"):
                await reg.call_tool("sleep", {"seconds": 0.5}, RCTX)
            assert _text(await reg.call_tool("echo", {"text": "own slots"}, RCTX)) == "own slots"
            assert [_text(await t) for t in running] == ["slept"] * 3
        finally:
            await reg.stop()

    asyncio.run(go())


def test_a_call_past_its_deadline_is_cancelled_with_an_error() -> None:
    async def go() -> None:
        reg = _registry(tool_timeout_s=0.2)
        await reg.start()
        try:
            with pytest.raises(PluginError, match="passed its deadline"):
                await reg.call_tool("sleep", {"seconds": 30}, RCTX)
            assert _text(await reg.call_tool("sleep", {"seconds": 0.01}, RCTX)) == "slept"
        finally:
            await reg.stop()

    asyncio.run(go())


def test_an_open_breaker_reaches_the_client_as_a_retryable_busy_error() -> None:
    from mcp_edge.board import Settings as S
    from mcp_edge.mcp import jsonrpc
    from mcp_edge.mcp.connection import Request, ServerConnection, ServerInfo
    from mcp_edge.mcp.refusals import BUSY
    from mcp_edge.runtime.router import Router, Session

    async def go() -> None:
        reg = _registry(breaker_window=2, breaker_min_calls=1, breaker_failure_ratio=0.5, breaker_open_s=30.0)
        await reg.start()
        try:
            with pytest.raises(WorkerLost):
                await reg.call_tool("crash", {}, RCTX)
            info = ServerInfo(name="t", version="1", capabilities=Router.capabilities(reg))
            router = Router(reg, info, S.load(environ={}))
            req = Request(7, "tools/call", {"name": "say", "arguments": {"text": "x"}}, "2025-11-25", False)
            answer = msgspec.json.decode(jsonrpc.encode_outcome(
                await router.handle(req, Session(ServerConnection(info)), None)))
            assert answer["error"]["code"] == BUSY and "circuit breaker is open" in answer["error"]["message"]
            assert answer["error"]["data"]["retryAfterMs"] > 20_000
        finally:
            await reg.stop()

    asyncio.run(go())


def test_calls_during_a_restart_are_refused_not_sent_to_the_starting_worker() -> None:
    async def go() -> None:
        reg = _registry(restart_backoff_base_s=0.2, breaker_min_calls=1000, breaker_window=1000)
        await reg.start()
        rec = reg.get("crashy")
        assert rec is not None
        try:
            os.kill(rec.host.pid, signal.SIGKILL)  # type: ignore[union-attr]
            await _until(lambda: rec.state is PluginState.RESTARTING, "crashy restarting")
            refused = 0
            while rec.state is not PluginState.ACTIVE:  # hammer it all through the restart
                try:
                    await reg.call_tool("say", {"text": "x"}, RCTX)
                except WorkerLost as exc:
                    assert "not running" in str(exc)
                    refused += 1
                await asyncio.sleep(0.0005)
            assert refused > 0 and rec.restarts == 1
            assert _text(await reg.call_tool("say", {"text": "after"}, RCTX)) == "after"
        finally:
            await reg.stop()

    asyncio.run(go())


class _Prio:
    def __init__(self, priority: int) -> None:
        self.priority = priority
        self.deadline_ns = None


def test_memory_pressure_sheds_low_priority_calls_first(tmp_path: Path) -> None:
    from mcp_edge.runtime.resilience import Shed

    psi = tmp_path / "memory"
    psi.write_text("some avg10=75.00 avg60=10.00 avg300=2.00 total=1\nfull avg10=1.00 avg60=0 avg300=0 total=1\n")

    async def go() -> None:
        reg = _registry(memory_pressure_shed=40.0)
        reg.psi_path = psi
        await reg.start()
        try:
            with pytest.raises(Shed, match=r"short of memory \(pressure 75.0% > memory_pressure_shed 40%\)"):
                await reg.call_tool("echo", {"text": "low"}, _Prio(10))  # type: ignore[arg-type]
            assert _text(await reg.call_tool("echo", {"text": "high"}, _Prio(200))) == "high"  # type: ignore[arg-type]
            assert _text(await reg.call_tool("echo", {"text": "plain"}, RCTX)) == "plain"  # no priority: 128
            psi.write_text("some avg10=5.00 avg60=1.00 avg300=0.50 total=1\n")
            reg._psi_at = -1e9  # the next call reads PSI again (it is sampled once a second)
            assert _text(await reg.call_tool("echo", {"text": "low"}, _Prio(10))) == "low"  # type: ignore[arg-type]
        finally:
            await reg.stop()

    asyncio.run(go())
