"""Timing of callables for the perf suite: calibrated batches, interleaved rounds, best round.

A measurement times one :class:`Call` (a function and the arguments it is called
with) in ``rounds`` rounds of ``calls`` back-to-back calls each, where ``calls``
is calibrated so that one round takes about ``min_time / rounds`` seconds.
:func:`compare` measures several calls *interleaved* (round 1 of A, B, C, then
round 2 of A, B, C, ...) so that a noisy neighbour or a frequency change hits
every implementation alike; the figure to report is the best round
(:attr:`Timing.best_ns`), the median is kept alongside to judge the noise.

The function is called directly from a generated loop body unrolled
``UNROLL`` times (the trick :mod:`timeit` uses), so a 60 ns call is not drowned in
loop overhead; no lambda or wrapper frame stands between the loop and the
callable. The garbage collector is off while timing. Clock:
:func:`time.perf_counter_ns`.

Besides a :class:`Call`, :func:`compare` takes any :class:`Timer` (``calibrate``
and ``run``): :class:`mcp_edge.perf.isolation.RemoteTimer` times a call in a
child process with this same loop. An impl whose timer raises can be dropped
from the comparison (``on_failure``) while the others go on.
"""

from __future__ import annotations

import functools
import gc
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

__all__ = ["UNROLL", "Call", "Timer", "Timing", "calibrate", "compare", "gc_off", "measure", "run_calls"]

UNROLL = 16
"""Calls per loop iteration once a round holds at least this many calls."""

_Loop = Callable[..., int]


@dataclass(frozen=True, slots=True)
class Call:
    """A function and the positional arguments to time it with: ``fn(*args)``."""

    fn: Callable[..., object]
    args: tuple[object, ...] = ()

    def __call__(self) -> object:
        """Call it once (for checking results; timing calls ``fn`` directly, without this frame)."""
        return self.fn(*self.args)


@dataclass(frozen=True, slots=True)
class Timing:
    """Result of one measurement.

    Attributes
    ----------
    calls:
        Calls per round.
    round_ns:
        Wall time of each round, in nanoseconds, in the order they ran.
    """

    calls: int
    round_ns: tuple[int, ...]

    @property
    def best_ns(self) -> float:
        """Nanoseconds per call in the fastest round."""
        return min(self.round_ns) / self.calls

    @property
    def median_ns(self) -> float:
        """Nanoseconds per call in the median round."""
        import statistics

        return statistics.median(self.round_ns) / self.calls

    @property
    def samples_ns(self) -> tuple[float, ...]:
        """Nanoseconds per call in each round, in the order they ran (the row's ``samples``)."""
        return tuple(ns / self.calls for ns in self.round_ns)

    def per_second_samples(self, units_per_call: float = 1.0) -> tuple[float, ...]:
        """Units per second in each round (see :meth:`per_second`), in the order they ran."""
        return tuple(units_per_call * 1e9 / max(ns, 1e-9) for ns in self.samples_ns)

    def gb_per_s_samples(self, nbytes: int) -> tuple[float, ...]:
        """Decimal GB/s in each round for ``nbytes`` processed per call."""
        return tuple(v / 1e9 for v in self.per_second_samples(nbytes))

    def per_second(self, units_per_call: float = 1.0, *, best: bool = True) -> float:
        """Throughput in units per second (calls/s by default), from the best or the median round.

        ``units_per_call=nbytes`` gives bytes/s; bytes per nanosecond are GB/s
        (decimal), which is what :meth:`gb_per_s` returns.
        """
        ns = self.best_ns if best else self.median_ns
        return units_per_call * 1e9 / max(ns, 1e-9)

    def gb_per_s(self, nbytes: int, *, best: bool = True) -> float:
        """Decimal GB/s for ``nbytes`` processed per call."""
        return self.per_second(nbytes, best=best) / 1e9


@functools.lru_cache(maxsize=64)
def _loop(nargs: int, unroll: int) -> _Loop:
    """A compiled ``loop(it, timer, fn, a0, a1, ...)`` that calls ``fn(a0, ...)`` ``unroll`` times per step."""
    params = "".join(f", _a{i}" for i in range(nargs))
    call = "_f(" + ", ".join(f"_a{i}" for i in range(nargs)) + ")"
    body = "".join(f"        {call}\n" for _ in range(unroll))
    source = (
        f"def _timed(_it, _timer, _f{params}):\n"
        "    _t0 = _timer()\n"
        "    for _ in _it:\n"
        f"{body}"
        "    return _timer() - _t0\n"
    )
    namespace: dict[str, object] = {}
    exec(compile(source, f"<mcp_edge.perf loop x{unroll}>", "exec"), namespace)
    timed = namespace["_timed"]
    assert callable(timed)
    return timed


def run_calls(call: Call, n: int) -> tuple[int, int]:
    """Call ``call`` about ``n`` times back to back; return (calls made, elapsed ns)."""
    unroll = UNROLL if n >= UNROLL else 1
    steps = max(1, n // unroll)
    elapsed: int = _loop(len(call.args), unroll)(
        itertools.repeat(None, steps), time.perf_counter_ns, call.fn, *call.args
    )
    return steps * unroll, elapsed


def calibrate(call: Call, round_ns: float) -> int:
    """Calls per round so that one round takes about ``round_ns``; the first call warms up."""
    run_calls(call, 1)
    n = 1
    while True:
        calls, elapsed = run_calls(call, n)
        if elapsed >= round_ns / 4 or calls >= 1 << 40:
            break
        per_call = max(elapsed, 1) / calls
        n = int(min(max(round_ns / 2 / per_call, calls * 2), calls * 100))
    per_call = max(elapsed, 1) / calls
    calls_per_round = max(1, round(round_ns / per_call))
    if calls_per_round >= UNROLL:
        calls_per_round -= calls_per_round % UNROLL
    return calls_per_round


class Timer(Protocol):
    """What :func:`compare` times besides a :class:`Call`: a call made elsewhere (a child process)."""

    def calibrate(self, round_ns: float) -> int:
        """Calls per round so that one round takes about ``round_ns`` (warm-up included)."""
        ...

    def run(self, n: int) -> tuple[int, int]:
        """About ``n`` calls back to back: (calls made, elapsed ns)."""
        ...


class _LocalTimer:
    def __init__(self, call: Call) -> None:
        self._call = call

    def calibrate(self, round_ns: float) -> int:
        return calibrate(self._call, round_ns)

    def run(self, n: int) -> tuple[int, int]:
        return run_calls(self._call, n)


@contextmanager
def gc_off() -> Iterator[None]:
    """The garbage collector off for the block (as it was before, afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compare(
    calls: Mapping[str, Call | Timer],
    *,
    min_time: float,
    rounds: int,
    on_step: Callable[[str], None] | None = None,
    on_failure: Callable[[str, Exception], None] | None = None,
) -> dict[str, Timing]:
    """Time every call in ``calls`` in interleaved rounds; return a :class:`Timing` per key.

    Parameters
    ----------
    calls:
        Name -> :class:`Call` (timed here) or :class:`Timer` (timed wherever it
        runs); the rounds run in this order (A B C A B C ...).
    min_time:
        Seconds each call is timed for, all rounds together (calibration and
        the warm-up call come on top).
    rounds:
        Rounds per call, at least 1.
    on_step:
        Called with the name after each round of each call (progress hook).
    on_failure:
        Called with the name and the exception when calibrating or timing an
        impl raises; that impl is dropped (no Timing) and the others go on. It
        may raise to end the comparison. Without it the exception propagates.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, not {rounds}")
    if min_time <= 0:
        raise ValueError(f"min_time must be > 0, not {min_time}")
    round_ns = min_time * 1e9 / rounds
    timers: dict[str, Timer] = {
        name: _LocalTimer(call) if isinstance(call, Call) else call for name, call in calls.items()
    }
    sizes: dict[str, int] = {}
    elapsed: dict[str, list[int]] = {name: [] for name in timers}

    def failed(name: str, exc: Exception) -> None:
        if on_failure is None:
            raise exc
        on_failure(name, exc)
        timers.pop(name, None)

    with gc_off():
        for name, timer in list(timers.items()):
            try:
                sizes[name] = timer.calibrate(round_ns)
            except Exception as exc:
                failed(name, exc)
        for _ in range(rounds):
            for name, timer in list(timers.items()):
                try:
                    made, ns = timer.run(sizes[name])
                except Exception as exc:
                    failed(name, exc)
                    continue
                sizes[name] = made
                elapsed[name].append(ns)
                if on_step is not None:
                    on_step(name)
    return {name: Timing(sizes[name], tuple(elapsed[name])) for name in timers}


def measure(
    call: Call | Timer, *, min_time: float, rounds: int, on_step: Callable[[str], None] | None = None
) -> Timing:
    """Time one call (see :func:`compare`)."""
    return compare({"": call}, min_time=min_time, rounds=rounds, on_step=on_step)[""]
