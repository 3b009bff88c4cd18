"""Process policy of a serving ``mcp-edge``: signals in, a ``StopToken`` out, systemd and health told.

The shutdown sequence, the same on every transport: the first SIGTERM or SIGINT sets the stop token; transports
stop accepting (HTTP answers 503 with ``Retry-After``, streams answer new requests with the shutting-down
JSON-RPC error) and give what is in flight ``Settings.shutdown_timeout_s`` to finish; each request still running
then is cancelled and answered with an error; the plugins stop (the registry's stop, reverse dependency order);
output is flushed; the process exits 0. A second SIGTERM/SIGINT means "now": one log line, then exit status 1 at
once, whatever is still running. SIGHUP reads the board profile and the plugin folders again (``on_reload``:
the server's ``reload``): limits change in place, plugins through hot reload, and what needs a restart is
logged as such.

systemd (``Type=notify``, when ``NOTIFY_SOCKET`` is set): ``READY=1`` with a ``STATUS=`` line once serving,
``WATCHDOG=1`` at half of ``WATCHDOG_USEC`` from a task on the event loop (a loop that stops turning stops the
pings), ``STOPPING=1`` at the first signal, ``STATUS=`` lines as the phase changes. The same phases feed
``Health`` (``/healthz/*``).

Transports never install handlers; ``cli.py``'s serve path and ``RunningServer.serve_*`` (when the caller gave
no token of its own) go through ``Supervisor``. An embedding program that passes its own ``StopToken`` keeps its
signal handling to itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from mcp_edge.errors import McpEdgeError
from mcp_edge.health import Health
from mcp_edge.runtime.stop import StopToken

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mcp_edge.system.notify import Notifier

__all__ = ["EXIT_SECOND_SIGNAL", "Supervisor"]

log = logging.getLogger("mcp_edge.supervisor")

EXIT_SECOND_SIGNAL = 1  # the status of a process stopped at once by a second signal


def _flush_and_exit(status: int) -> NoReturn:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(status)  # at once: no drain, no atexit, no waiting on threads


def _ignore(signals: list[signal.Signals]) -> None:
    """The last moments of a stopping process: a late signal finds it done (exit 0), not killed by the signal."""
    for sig in signals:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)


class Supervisor:
    """Signal handlers on the running loop for the ``with`` block, feeding ``stop`` (a new token unless given).

    ``with Supervisor() as stop: await running.serve_stdio(stop=stop)``. ``exit`` is what a second signal calls
    (``os._exit`` after flushing stderr; tests replace it). ``notifier``: the systemd notify client (default: from
    ``NOTIFY_SOCKET``, a no-op without it); ``health``: the phases ``/healthz/*`` report; ``budget_s``: the
    shutdown budget named in the log and STATUS lines (``Settings.shutdown_timeout_s``).
    """

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, stop: StopToken | None = None, *,
                 exit: Callable[[int], NoReturn] = _flush_and_exit, notifier: Notifier | None = None,
                 health: Health | None = None, budget_s: float | None = None) -> None:
        self.stop = stop if stop is not None else StopToken()
        self.health = health if health is not None else Health()
        self.budget_s = budget_s
        self._exit = exit
        self._signals = 0
        self._installed: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notifier = notifier
        self._watchdog: asyncio.Task[None] | None = None
        self.on_reload: Callable[[], Coroutine[Any, Any, object]] | None = None  # SIGHUP: the server's reload
        self._reloads: set[asyncio.Task[object]] = set()

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            from mcp_edge.system.notify import Notifier

            self._notifier = Notifier.from_environ()
        return self._notifier

    def serving(self, rows: Callable[[], Iterable[Mapping[str, Any]]], transport: str) -> None:
        """Plugins started and the transport listens: ready (health and ``READY=1``), watchdog on."""
        self.health.serving(rows, transport)
        if self.stop.is_set():  # a signal came during start: never say READY after STOPPING
            return
        from mcp_edge.plugin.registry import RUNTIME_PLUGIN_ID  # loaded by now: the registry exists

        plugins = [r for r in rows() if r.get("state") in ("active", "reloading") and r.get("id") != RUNTIME_PLUGIN_ID]
        status = f"serving {len(plugins)} plugin{'s' if len(plugins) != 1 else ''} over {transport}"
        notifier = self.notifier
        if notifier.enabled:
            notifier.ready(status)
            from mcp_edge.system.notify import Watchdog

            self._watchdog = Watchdog.from_environ(notifier, healthy=self._healthy).start()

    def _healthy(self) -> bool:
        """Whether the watchdog may ping: asked on the loop, so a stalled loop never gets here."""
        loop = self._loop
        return loop is not None and loop.is_running() and not loop.is_closed()

    def status(self, text: str) -> None:
        """A ``STATUS=`` line for ``systemctl status`` (no-op without systemd)."""
        if self.notifier.enabled:
            self.notifier.status(text)

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
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._notifier is not None and self._notifier.enabled:
            self._notifier.status("stopped" if exc is None else f"stopped: {type(exc).__name__}")
        # Stopping already: a second signal while the process winds down (plugins stopped, loop closing) still
        # means "exit 1 now", never death by signal. The swap from the loop's handler to a plain one happens with
        # the signals blocked, so one arriving in between waits for the new handler instead of the default.
        late = [s for s in self._installed if s in self.STOP_SIGNALS] if self._signals == 1 else []
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, late) if late else None
        try:
            for sig in self._installed:
                with contextlib.suppress(Exception):  # the loop may be closing
                    self._loop.remove_signal_handler(sig)
                if sig in late:
                    with contextlib.suppress(ValueError, OSError):
                        signal.signal(sig, self._late_signal)
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if late:  # at interpreter exit Python puts SIG_DFL back (death by signal); ignoring is what it keeps
            atexit.register(_ignore, late)
        self._installed.clear()

    def _on_stop(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            budget = "shutdown_timeout_s" if self.budget_s is None else f"{self.budget_s:g} s (shutdown_timeout_s)"
            log.info("%s: stopping (in-flight requests get %s to finish, then are cancelled with an error; a "
                     "second signal stops at once)", sig.name, budget)
            self.health.stopping()
            notifier = self.notifier
            if notifier.enabled:
                notifier.stopping(f"stopping on {sig.name}: finishing in-flight requests within {budget}")
            self.stop.set(sig.name)
            return
        with contextlib.suppress(RuntimeError):  # (a late signal: the loop may be closed)
            self.stop.second.set()
        log.warning("second stop signal (%s): exiting now with status %d, in-flight work abandoned", sig.name,
                    EXIT_SECOND_SIGNAL)
        self._exit(EXIT_SECOND_SIGNAL)

    def _late_signal(self, signum: int, frame: object) -> None:
        self._on_stop(signal.Signals(signum))

    def _on_hup(self, sig: signal.Signals) -> None:
        if self.on_reload is None:
            log.warning("SIGHUP: nothing to reload here")
            return
        log.warning("SIGHUP: reading the board profile and the plugin folders again")
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._reload(self.on_reload))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    @staticmethod
    async def _reload(reload: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """One SIGHUP's reload; a profile that does not load changes nothing and says why."""
        try:
            await reload()
        except McpEdgeError as exc:
            log.error("SIGHUP: nothing changed: %s", exc)
        except Exception:
            log.exception("SIGHUP: the reload failed; the server goes on as it was")
