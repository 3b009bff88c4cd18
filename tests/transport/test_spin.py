"""The polling selector behind ``Settings.spin_us``."""

from __future__ import annotations

import asyncio
import os

import pytest

from mcp_edge.transport import spin


def test_spin_us_configured_or_by_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert spin.spin_us(0) == 0
    assert spin.spin_us(250) == 250
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert spin.spin_us() == 0  # the machine has 8 CPUs, but this process may use one
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3})
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert spin.spin_us() > 0


def test_pinned_to_one_cpu_does_not_spin() -> None:
    """A real process pinned to one CPU (taskset-like) picks no spin, whatever the machine's CPU count."""
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from mcp_edge.transport import spin; print(spin.spin_us())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0"]


def test_selector_returns_ready_fds_and_still_blocks() -> None:
    sel = spin.LoopSelector(200_000)
    r, w = os.pipe()
    try:
        sel.register(r, 1)  # EVENT_READ
        assert sel.select(0.05) == []  # nothing ready: spins 0.2 ms, then waits out the timeout
        os.write(w, b"x")
        ready = sel.select(None)
        assert [key.fd for key, _ in ready] == [r]
    finally:
        sel.close()
        os.close(r)
        os.close(w)


def test_owed_wake_ups_are_paid_once_at_the_next_select_each_even_when_one_fails(
        caplog: pytest.LogCaptureFixture) -> None:
    sel = spin.LoopSelector()
    paid: list[str] = []

    def broken() -> None:
        paid.append("broken")
        raise OSError("gone")

    try:
        sel.owe(lambda: paid.append("a"))
        sel.owe(broken)
        sel.owe(lambda: paid.append("b"))
        assert paid == []
        assert sel.select(0) == []
        assert paid == ["a", "broken", "b"] and "held-back wake-up failed" in caplog.text
        sel.select(0)
        assert paid == ["a", "broken", "b"]  # once
        sel.owe(lambda: paid.append("at close"))
    finally:
        sel.close()
    assert paid[-1] == "at close"


def test_owed_wakes_finds_the_selector_of_our_loops_only() -> None:
    async def mine() -> spin.LoopSelector | None:
        return spin.owed_wakes(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=spin.loop_factory(0)) as runner:
        assert isinstance(runner.run(mine()), spin.LoopSelector)
    assert asyncio.run(mine()) is None  # asyncio's own loop: senders wake at once
    assert spin.owed_wakes(None) is None


def test_loop_runs_coroutines() -> None:
    factory = spin.loop_factory(50)

    async def main() -> int:
        await asyncio.sleep(0.01)
        return 7

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) == 7
