"""Process policy of a serving ``mcp-edge``: signals in, a ``StopToken`` out.

The first SIGTERM or SIGINT sets the stop token: transports stop accepting, answer what is in flight within
``Settings.drain_timeout_s``, the plugins shut down, the process exits 0. A second SIGTERM/SIGINT means "now":
one log line, then exit status 1 at once, whatever is still running. SIGHUP logs that reload is not in this
build yet (the supervisor step of issue 10 builds it).

Transports never install handlers; ``cli.py``'s serve path and ``RunningServer.serve_*`` (when the caller gave
no token of its own) go through ``Supervisor``. An embedding program that passes its own ``StopToken`` keeps its
signal handling to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import NoReturn

from mcp_edge.runtime.stop import StopToken

__all__ = ["EXIT_SECOND_SIGNAL", "Supervisor"]

log = logging.getLogger("mcp_edge.supervisor")

EXIT_SECOND_SIGNAL = 1  # the status of a process stopped at once by a second signal


def _flush_and_exit(status: int) -> NoReturn:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(status)  # at once: no drain, no atexit, no waiting on threads


class Supervisor:
    """Signal handlers on the running loop for the ``with`` block, feeding ``stop`` (a new token unless given).

    ``with Supervisor() as stop: await running.serve_stdio(stop=stop)``. ``exit`` is what a second signal calls
    (``os._exit`` after flushing stderr; tests replace it).
    """

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, stop: StopToken | None = None, *,
                 exit: Callable[[int], NoReturn] = _flush_and_exit) -> None:
        self.stop = stop if stop is not None else StopToken()
        self._exit = exit
        self._signals = 0
        self._installed: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> StopToken:
        loop = self._loop = asyncio.get_running_loop()
        for sig, handler in [*((s, self._on_stop) for s in self.STOP_SIGNALS), (signal.SIGHUP, self._on_hup)]:
            try:
                loop.add_signal_handler(sig, handler, sig)
            except (ValueError, RuntimeError, NotImplementedError) as exc:  # not the main thread, no such signal
                log.info("no handler for %s (%s): the embedding program handles signals", sig.name, exc)
                continue
            self._installed.append(sig)
        return self.stop

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._loop is not None
        for sig in self._installed:
            with contextlib.suppress(Exception):  # the loop may be closing
                self._loop.remove_signal_handler(sig)
        self._installed.clear()

    def _on_stop(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: stopping (in-flight requests get drain_timeout_s to finish; a second signal stops at "
                     "once)", sig.name)
            self.stop.set(sig.name)
            return
        self.stop.second.set()
        log.warning("second stop signal (%s): exiting now with status %d, in-flight work abandoned", sig.name,
                    EXIT_SECOND_SIGNAL)
        self._exit(EXIT_SECOND_SIGNAL)

    def _on_hup(self, sig: signal.Signals) -> None:
        log.warning("SIGHUP: reload: not in this build yet (restart the service to apply changes)")
