"""An event loop that polls briefly before it sleeps, so back-to-back requests do not pay a vCPU wake-up each.

A sequential client waits for each answer and sends the next request tens of microseconds later. If the
server's loop is asleep in ``epoll_wait`` by then, the request has to wake its CPU, which in a VM costs
tens of microseconds each way (an idle vCPU halts). So after any activity the selector keeps polling with
a zero timeout for up to ``Settings.spin_us`` microseconds (default 100 when the process may run on more
than one CPU, 0 when it is confined to one, where spinning only delays the client) before it blocks.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import time
from collections.abc import Callable

__all__ = ["SpinSelector", "loop_factory", "spin_us"]



def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def spin_us(configured: int = -1) -> int:
    """Microseconds to poll before sleeping: ``configured`` when >= 0, else 100 with several usable CPUs, else 0."""
    if configured >= 0:
        return configured
    return 100 if _usable_cpus() > 1 else 0


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


def loop_factory(configured: int = -1) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner``: a spinning selector loop, or None (asyncio's default) when not spinning."""
    us = spin_us(configured)
    if us <= 0:
        return None

    def make() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(SpinSelector(us * 1000))

    return make
