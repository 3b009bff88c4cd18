"""Restart backoff, the circuit breaker, the bulkhead and the PSI reading, over an injected clock."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from mcp_edge.board import Settings
from mcp_edge.runtime.resilience import Backoff, Breaker, BreakerOpen, Bulkhead, BulkheadFull, memory_pressure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_to_its_cap_and_starts_over_after_reset() -> None:
    b = Backoff(0.1, 2.0, 0.0)
    assert [b.next_delay() for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    b.reset()
    assert b.next_delay() == 0.1


def test_backoff_jitter_stays_within_its_fraction_and_the_cap() -> None:
    b = Backoff(1.0, 4.0, 0.25, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(6)]
    for raw, got in zip([1.0, 2.0, 4.0, 4.0, 4.0, 4.0], delays, strict=True):
        assert raw * 0.75 <= got <= min(4.0, raw * 1.25)
    assert len(set(delays)) > 1  # spread, not one value


def test_backoff_from_settings_uses_the_supervisor_fields() -> None:
    s = Settings.load(environ={}, restart_backoff_base_s=0.5, restart_backoff_cap_s=3.0, restart_backoff_jitter=0.0)
    b = Backoff.from_settings(s)
    assert [b.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]


def _breaker(clock: Clock, **kw: float) -> Breaker:
    opts = {"failure_ratio": 0.5, "window": 10, "min_calls": 4, "open_s": 5.0, "probes": 2, **kw}
    return Breaker("p", clock=clock, **opts)  # type: ignore[arg-type]


def test_breaker_opens_on_the_failed_share_of_its_window_only_after_min_calls() -> None:
    clock = Clock()
    br = _breaker(clock)
    for ok in (False, False, False):  # 3 failures, but fewer than min_calls known
        assert br.before_call() is False
        br.record(ok)
    assert br.state == "closed"
    br.before_call()
    br.record(True)  # 4 calls, 3 failed: 75% >= 50%
    assert br.state == "open" and br.opened == 1
    with pytest.raises(BreakerOpen, match=r"plugin p is failing .* retry in 5 s") as err:
        br.before_call()
    assert err.value.retry_after_s == pytest.approx(5.0)


def test_breaker_stays_closed_below_the_ratio() -> None:
    clock = Clock()
    br = _breaker(clock)
    for i in range(30):
        br.before_call()
        br.record(i % 4 != 3)  # every fourth fails: at most 3 of any 10, under 50%
    assert br.state == "closed"


def test_half_open_lets_probes_through_and_closes_when_they_all_succeed() -> None:
    clock = Clock()
    br = _breaker(clock)
    for _ in range(4):
        br.before_call()
        br.record(False)
    assert br.state == "open"
    clock.now += 4.9
    with pytest.raises(BreakerOpen):
        br.before_call()
    clock.now += 0.2
    assert br.state == "half-open"
    assert br.before_call() is True and br.before_call() is True
    with pytest.raises(BreakerOpen, match="half-open"):
        br.before_call()  # only `probes` at once
    br.record(True, probe=True)
    assert br.state == "half-open"
    br.record(True, probe=True)
    assert br.state == "closed" and br.snapshot()["calls"] == 0  # a fresh window


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    br = _breaker(clock, probes=1)
    for _ in range(4):
        br.before_call()
        br.record(False)
    clock.now += 5.0
    assert br.before_call() is True
    br.record(False, probe=True)
    assert br.state == "open" and br.opened == 2
    clock.now += 5.0
    assert br.state == "half-open"


def test_bulkhead_runs_its_limit_queues_the_next_and_refuses_past_the_queue() -> None:
    async def go() -> None:
        bh = Bulkhead("p", limit=2, queue=1, retry_after_s=0.5)
        await bh.enter()
        await bh.enter()
        queued = asyncio.create_task(bh.enter())
        await asyncio.sleep(0)
        assert (bh.running, bh.waiting) == (2, 1) and not queued.done()
        with pytest.raises(BulkheadFull, match="2 calls running and 1 waiting") as err:
            await bh.enter()
        assert err.value.retry_after_s == 0.5 and bh.refused == 1
        bh.leave()  # the slot passes to the queued call
        await queued
        assert (bh.running, bh.waiting) == (2, 0)
        bh.leave()
        bh.leave()
        assert bh.running == 0

    asyncio.run(go())


def test_a_cancelled_waiter_leaves_the_queue_and_loses_no_slot() -> None:
    async def go() -> None:
        bh = Bulkhead("p", limit=1, queue=2, retry_after_s=1.0)
        await bh.enter()
        a = asyncio.create_task(bh.enter())
        b = asyncio.create_task(bh.enter())
        await asyncio.sleep(0)
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await a
        assert bh.waiting == 1
        bh.leave()
        await b  # b got the slot a gave up
        assert bh.running == 1
        bh.leave()
        assert bh.running == 0

    asyncio.run(go())


@pytest.mark.parametrize(("text", "want"), [
    ("some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=1.00 avg60=0 avg300=0 total=1\n", 12.5),
    ("full avg10=1.00 avg60=0 avg300=0 total=1\n", None),
    ("some avg10=oops\n", None),
    ("", None),
])
def test_memory_pressure_reads_some_avg10(tmp_path: Path, text: str, want: float | None) -> None:
    f = tmp_path / "memory"
    f.write_text(text)
    assert memory_pressure(f) == want


def test_memory_pressure_is_none_without_psi(tmp_path: Path) -> None:
    assert memory_pressure(tmp_path / "absent") is None


@pytest.mark.parametrize(("meta", "want"), [
    ({"io.mcp-edge/priority": 7}, 7), ({"io.mcp-edge/priority": 255}, 255), ({"io.mcp-edge/priority": 256}, 128),
    ({"io.mcp-edge/priority": -1}, 128), ({"io.mcp-edge/priority": "9"}, 128), ({"io.mcp-edge/priority": True}, 128),
    (None, 128),
])
def test_a_requests_priority_comes_from_its_meta(meta: dict[str, object] | None, want: int) -> None:
    from mcp_edge.mcp.connection import Request, ServerConnection, ServerInfo
    from mcp_edge.runtime.router import RequestContextImpl, Session

    req = Request(1, "tools/call", {}, "2025-11-25", False, meta)
    session = Session(ServerConnection(ServerInfo(name="t", version="1", capabilities={})))
    assert RequestContextImpl(req, session, None).priority == want


def _limits(**values: object) -> Settings:
    return Settings.load(environ={}, plugin_dirs=(), entry_points=False, **values)


def test_a_bulkhead_takes_new_limits_in_place() -> None:
    async def go() -> None:
        bh = Bulkhead("p", limit=1, queue=4, retry_after_s=0.5)
        await bh.enter()
        waiting = [asyncio.create_task(bh.enter()) for _ in range(3)]
        await asyncio.sleep(0)
        assert (bh.running, bh.waiting) == (1, 3)
        bh.configure(_limits(plugin_concurrency=3, plugin_queue=4))  # raised: two waiters go in now
        await asyncio.sleep(0)
        assert (bh.running, bh.waiting) == (3, 1) and sum(t.done() for t in waiting) == 2
        bh.configure(_limits(plugin_concurrency=1, plugin_queue=0))  # lowered: nobody loses a slot ...
        assert (bh.running, bh.waiting) == (3, 1)
        with pytest.raises(BulkheadFull, match="plugin_concurrency 1, plugin_queue 0"):
            await bh.enter()
        bh.leave()  # ... and a finished call's slot is not passed on while more run than the limit
        bh.leave()
        assert (bh.running, bh.waiting) == (1, 1)
        bh.leave()  # back at the limit: the last waiter gets the slot
        await asyncio.gather(*waiting)
        assert (bh.running, bh.waiting) == (1, 0)
        bh.leave()
        assert bh.running == 0

    asyncio.run(go())


def test_a_breaker_takes_new_thresholds_and_keeps_its_state() -> None:
    clock = Clock()
    br = Breaker("p", failure_ratio=0.5, window=10, min_calls=4, open_s=5.0, probes=1, clock=clock)
    for ok in (True, False, True):
        br.record(ok)
    assert br.state == "closed"
    br.configure(_limits(breaker_failure_ratio=0.3, breaker_window=2, breaker_min_calls=2, breaker_open_s=1.0,
                         breaker_probes=2))
    assert (br.failure_ratio, br.min_calls, br.open_s, br.probes) == (0.3, 2, 1.0, 2)
    assert br.state == "closed"  # the window kept its newest two calls (False, True): 1 of 2 failed ...
    br.record(False)  # ... and now (True, False): half failed, over 0.3 with 2 known: open
    assert br.state == "open"
    with pytest.raises(BreakerOpen):
        br.before_call()
    clock.now += 1.5  # the new open_s
    assert br.state == "half-open"
