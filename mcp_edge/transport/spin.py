"""An event loop that polls briefly before it sleeps, so back-to-back requests do not pay a vCPU wake-up each.

A sequential client waits for each answer and sends the next request tens of microseconds later. If the
server's loop is asleep in ``epoll_wait`` by then, the request has to wake its CPU, which in a VM costs
tens of microseconds each way (an idle vCPU halts). So after any activity the selector keeps polling with
a zero timeout for up to ``MCP_EDGE_SPIN_US`` microseconds (default 100 on a machine with more than one
CPU, 0 on one CPU, where spinning only delays the client) before it blocks.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import time
from collections.abc import Callable

__all__ = ["SpinSelector", "loop_factory", "spin_us"]

SPIN_ENV = "MCP_EDGE_SPIN_US"


def spin_us() -> int:
    """Microseconds to poll before sleeping: ``$MCP_EDGE_SPIN_US``, else 100 with several CPUs, else 0."""
    raw = os.environ.get(SPIN_ENV, "")
    if raw.isdigit():
        return int(raw)
    return 100 if (os.cpu_count() or 1) > 1 else 0


class SpinSelector(selectors.EpollSelector):
    """``select(timeout)`` that first polls with timeout 0 for up to ``spin_ns`` when it would block."""

    def __init__(self, spin_ns: int) -> None:
        super().__init__()
        self._spin_ns = spin_ns

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:
            end = time.perf_counter_ns() + self._spin_ns
            poll = super().select
            while True:
                ready = poll(0)
                if ready:
                    return ready
                if time.perf_counter_ns() >= end:
                    break
        return super().select(timeout)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner``: a spinning selector loop, or None (asyncio's default) when not spinning."""
    us = spin_us()
    if us <= 0:
        return None

    def make() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(SpinSelector(us * 1000))

    return make
