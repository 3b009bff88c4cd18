"""The polling selector behind ``MCP_EDGE_SPIN_US``."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from mcp_edge.transport import spin


def test_spin_us_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spin.SPIN_ENV, "0")
    assert spin.spin_us() == 0 and spin.loop_factory() is None
    monkeypatch.setenv(spin.SPIN_ENV, "250")
    assert spin.spin_us() == 250
    monkeypatch.delenv(spin.SPIN_ENV)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert spin.spin_us() == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert spin.spin_us() > 0


def test_selector_returns_ready_fds_and_still_blocks() -> None:
    sel = spin.SpinSelector(200_000)
    r, w = os.pipe()
    try:
        sel.register(r, 1)  # EVENT_READ
        t0 = time.perf_counter()
        assert sel.select(0.05) == []  # nothing ready: spins 0.2 ms, then waits out the timeout
        assert time.perf_counter() - t0 >= 0.04
        os.write(w, b"x")
        ready = sel.select(None)
        assert [key.fd for key, _ in ready] == [r]
    finally:
        sel.close()
        os.close(r)
        os.close(w)


def test_loop_runs_coroutines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spin.SPIN_ENV, "50")
    factory = spin.loop_factory()
    assert factory is not None

    async def main() -> int:
        await asyncio.sleep(0.01)
        return 7

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) == 7
