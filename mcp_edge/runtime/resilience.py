"""The supervisor's policies, as plain logic over an injected clock: restart backoff, a circuit breaker per
plugin, a bulkhead per plugin, and the memory-pressure reading that sheds low-priority work.

Every threshold is a ``Settings`` field (section ``supervisor``); ``from_settings`` builds each policy from
them. Nothing here sleeps or starts tasks except ``Bulkhead.enter``, which waits for a slot.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mcp_edge.errors import PluginError

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["Backoff", "Breaker", "BreakerOpen", "Bulkhead", "BulkheadFull", "Shed", "memory_pressure"]

Clock = Callable[[], float]

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"


class Backoff:
    """Waits between restarts of a worker: ``base * 2**n`` for the n-th restart in a row, capped, spread by
    +-``jitter`` (a fraction). ``reset()`` after the worker has run well, so the next crash starts from base."""

    def __init__(self, base: float, cap: float, jitter: float, *, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    @classmethod
    def from_settings(cls, s: Settings, *, rng: random.Random | None = None) -> Backoff:
        return cls(s.restart_backoff_base_s, s.restart_backoff_cap_s, s.restart_backoff_jitter, rng=rng)

    def next_delay(self) -> float:
        """The wait before the next attempt (and count it)."""
        raw = min(self.cap, self.base * (2.0 ** min(self.attempts, 62)))
        self.attempts += 1
        if self.jitter <= 0 or raw <= 0:
            return raw
        spread = raw * self.jitter
        return max(0.0, min(self.cap, raw + self._rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.attempts = 0


class BreakerOpen(PluginError):
    """A plugin's circuit breaker is open: it failed too often lately, so calls are refused at once (retryable
    after ``retry_after_s``) instead of hammering it."""

    code = -32603

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Breaker:
    """A circuit breaker over a plugin's last ``window`` calls.

    closed: calls pass; when at least ``min_calls`` of the window are known and the failed share reaches
    ``failure_ratio``, it opens. open: calls are refused (BreakerOpen) for ``open_s``; then half-open: up to
    ``probes`` calls pass as probes; all of them succeeding closes it (the window starts afresh), any failing
    opens it again. Failures are what the caller says they are (a crash, a timeout, a lost worker; not a
    tool's own ``isError`` answer, which is the plugin working).
    """

    def __init__(self, plugin_id: str, *, failure_ratio: float, window: int, min_calls: int, open_s: float,
                 probes: int, clock: Clock = time.monotonic) -> None:
        self.plugin_id = plugin_id
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.open_s = open_s
        self.probes = probes
        self._clock = clock
        self._window: collections.deque[bool] = collections.deque(maxlen=window)
        self._state = CLOSED
        self._opened_at = 0.0
        self._probing = 0
        self._probe_ok = 0
        self.opened = 0  # how many times it opened (status, metrics)

    @classmethod
    def from_settings(cls, plugin_id: str, s: Settings, *, clock: Clock = time.monotonic) -> Breaker:
        return cls(plugin_id, failure_ratio=s.breaker_failure_ratio, window=s.breaker_window,
                   min_calls=s.breaker_min_calls, open_s=s.breaker_open_s, probes=s.breaker_probes, clock=clock)

    def configure(self, s: Settings) -> None:
        """Take new thresholds in place (SIGHUP): the state and the last calls stay (the newest ``window``)."""
        self.failure_ratio, self.min_calls = s.breaker_failure_ratio, s.breaker_min_calls
        self.open_s, self.probes = s.breaker_open_s, s.breaker_probes
        if self._window.maxlen != s.breaker_window:
            self._window = collections.deque(self._window, maxlen=s.breaker_window)

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.open_s:
            self._state, self._probing, self._probe_ok = HALF_OPEN, 0, 0
        return self._state

    def before_call(self) -> bool:
        """Admit a call (True: it is a probe of a half-open breaker) or raise BreakerOpen."""
        state = self.state
        if state == CLOSED:
            return False
        if state == HALF_OPEN and self._probing < self.probes:
            self._probing += 1
            return True
        wait = max(0.0, self.open_s - (self._clock() - self._opened_at)) if state == OPEN else self.open_s
        raise BreakerOpen(f"plugin {self.plugin_id} is failing (its circuit breaker is {state}): calls are "
                          f"refused for now; retry in {max(wait, 0.001):.3g} s", max(wait, 0.001))

    def record(self, ok: bool, probe: bool = False) -> None:
        """The outcome of an admitted call."""
        if probe or self._state == HALF_OPEN:
            if not ok:
                self._open()
                return
            self._probe_ok += 1
            if self._probe_ok >= self.probes:
                self._state = CLOSED
                self._window.clear()
            return
        if self._state != CLOSED:
            return
        self._window.append(ok)
        n = len(self._window)
        if n >= self.min_calls and self._window.count(False) / n >= self.failure_ratio:
            self._open()

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self._clock()
        self._probing = self._probe_ok = 0
        self.opened += 1

    def snapshot(self) -> dict[str, object]:
        n = len(self._window)
        return {"state": self.state, "calls": n, "failed": self._window.count(False), "opened": self.opened}


class BulkheadFull(PluginError):
    """A plugin already runs its limit of calls and its queue is full: refused at once, retryable."""

    code = -32603

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Bulkhead:
    """At most ``limit`` calls of one plugin run at once; up to ``queue`` more wait (in arrival order);
    past that a call is refused at once (BulkheadFull). One plugin's overload never takes another's slots."""

    def __init__(self, plugin_id: str, limit: int, queue: int, retry_after_s: float) -> None:
        self.plugin_id = plugin_id
        self.limit = limit
        self.queue = queue
        self.retry_after_s = retry_after_s
        self.running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.refused = 0

    @classmethod
    def from_settings(cls, plugin_id: str, s: Settings) -> Bulkhead:
        return cls(plugin_id, s.plugin_concurrency, s.plugin_queue, s.retry_after_s)

    def configure(self, s: Settings) -> None:
        """Take new limits in place (SIGHUP). Calls running keep their slots; a higher limit lets waiters in
        now, a lower one takes effect as calls finish; waiters past a smaller queue keep their places."""
        self.limit, self.queue, self.retry_after_s = s.plugin_concurrency, s.plugin_queue, s.retry_after_s
        while self._waiters and self.running < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.running += 1
                fut.set_result(None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> None:
        """Take a slot, waiting in the queue if need be; BulkheadFull when the queue is full too."""
        if self.running < self.limit and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.queue:
            self.refused += 1
            raise BulkheadFull(f"plugin {self.plugin_id} is busy: {self.running} calls running and {self.waiting} "
                               f"waiting (plugin_concurrency {self.limit}, plugin_queue {self.queue}); retry "
                               "shortly", self.retry_after_s)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # the slot was handed over just as we were cancelled
                self.leave()
            else:
                self._waiters.remove(fut)
            raise

    def leave(self) -> None:
        """Give a slot back: to the first waiter, else to the pool (and to nobody while more run than a lowered
        limit allows)."""
        while self._waiters and self.running <= self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on: running stays the same
                return
        self.running -= 1


class Shed(PluginError):
    """A low-priority call refused because the box is short of memory: retryable."""

    code = -32603

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def memory_pressure(path: Path = Path("/proc/pressure/memory")) -> float | None:
    """The ``some avg10`` memory pressure (% of the last 10 s some task stalled on memory), or None where the
    kernel has no PSI (or it cannot be read)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None
