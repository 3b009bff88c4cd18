"""mcp_edge's event loop: a selector loop whose ``select`` first pays the ring wake-ups held back during the
loop's last turn, and may poll briefly before it sleeps.

Held wake-ups: a channel that publishes to a worker's (or the runtime's) ring during a turn of the loop does not
wake its peer at once (``LoopSelector.owe``); the next ``select``, at the end of the turn, does it once for all
that was sent. A peer sharing this CPU then does not preempt the sender half way through its turn, and several
calls or answers sent in one turn cost the peer one wake-up, not one each.

Polling: a sequential client waits for each answer and sends the next request tens of microseconds later. If
the server's loop is asleep in ``epoll_wait`` by then, the request has to wake its CPU, which in a VM costs
tens of microseconds each way (an idle vCPU halts). So after any activity the selector keeps polling with a
zero timeout for up to ``Settings.spin_us`` microseconds (default 100 when the process may run on more than one
CPU, 0 when it is confined to one, where spinning only delays the client) before it blocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import selectors
import time
from collections.abc import Callable

__all__ = ["LoopSelector", "loop_factory", "owed_wakes", "spin_us"]

log = logging.getLogger("mcp_edge.transport")



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


class LoopSelector(selectors.EpollSelector):
    """``select(timeout)`` that first pays the wake-ups owed (``owe``), then, with ``spin_ns``, polls with timeout
    0 for up to ``spin_ns`` when it would block."""

    def __init__(self, spin_ns: int = 0) -> None:
        super().__init__()
        self._spin_ns = spin_ns
        self._owed: list[Callable[[], object]] = []

    def owe(self, pay: Callable[[], object]) -> None:
        """Call ``pay`` at the start of the next ``select`` (the end of the loop's turn), once."""
        self._owed.append(pay)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._owed:
            self.pay()
        if self._spin_ns and (timeout is None or timeout > 0):
            end = time.perf_counter_ns() + self._spin_ns
            poll = super().select
            while True:
                ready = poll(0)
                if ready:
                    return ready
                if time.perf_counter_ns() >= end:
                    break
        return super().select(timeout)

    def pay(self) -> None:
        """Pay every wake-up owed now (a failing one is logged; the others are paid all the same)."""
        owed, self._owed = self._owed, []
        for pay in owed:
            try:
                pay()
            except Exception:
                log.exception("a held-back wake-up failed")

    def close(self) -> None:
        self.pay()
        super().close()


def loop_factory(configured: int = -1) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for ``asyncio.Runner``: a selector loop with a ``LoopSelector`` (spinning ``spin_us(configured)``
    microseconds before it sleeps; 0: not at all)."""
    us = spin_us(configured)

    def make() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(LoopSelector(max(0, us) * 1000))

    return make


def owed_wakes(loop: asyncio.AbstractEventLoop | None) -> LoopSelector | None:
    """The ``LoopSelector`` of ``loop`` when it has one (a loop made by ``loop_factory``), else None: then a
    sender wakes its peer at once."""
    sel = getattr(loop, "_selector", None)  # asyncio's selector loops keep theirs there
    return sel if isinstance(sel, LoopSelector) else None
