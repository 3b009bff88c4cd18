"""The systemd notify protocol, spoken directly: one AF_UNIX datagram of ``KEY=VALUE`` lines per message.

A ``Type=notify`` service tells the service manager it is ready (``READY=1``), alive (``WATCHDOG=1``), stopping
(``STOPPING=1``) or reloading (``RELOADING=1`` with ``MONOTONIC_USEC``), and what it is doing (``STATUS=``).
No systemd-python (it has no wheels): the protocol is a few lines over a datagram socket. Without
``NOTIFY_SOCKET`` (not under systemd) every call is a no-op that returns False.

A failed send never raises: the service manager going away must not take the service with it. The first failure
is logged; later ones return False quietly until a send succeeds again.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mcp_edge.board.environ import process_environ

if TYPE_CHECKING:
    import asyncio

__all__ = ["NOTIFY_SOCKET_ENV", "WATCHDOG_PID_ENV", "WATCHDOG_USEC_ENV", "Notifier", "Watchdog"]

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"

log = logging.getLogger("mcp_edge.system")


def _address(value: str) -> str | bytes:
    """The sendto() address of a NOTIFY_SOCKET value: a path, or an abstract name ('@' becomes the NUL byte)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    raise ValueError(f"{NOTIFY_SOCKET_ENV}={value!r} is neither a socket path nor an abstract '@name' "
                     "(vsock addresses are not supported)")


class Notifier:
    """A client of the service manager's notify socket (or a no-op when there is none)."""

    __slots__ = ("_failing", "_sock", "address", "reason")

    def __init__(self, address: str | None) -> None:
        """``address``: the NOTIFY_SOCKET value (a path or '@abstract'); None for a no-op notifier."""
        self.address: str | bytes | None = None
        self.reason = "not under a service manager (NOTIFY_SOCKET unset)"
        self._sock: socket.socket | None = None
        self._failing = False
        if address:
            try:
                self.address = _address(address)
                self.reason = ""
            except ValueError as exc:
                self.reason = str(exc)
                log.warning("systemd notify disabled: %s", exc)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier for this process: ``NOTIFY_SOCKET`` from ``environ`` (default: the process environment)."""
        env = process_environ() if environ is None else environ
        return cls(env.get(NOTIFY_SOCKET_ENV) or None)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere."""
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one message of ``KEY=VALUE`` lines; True when the service manager got it."""
        if self.address is None:
            return False
        if any("\n" in line for line in lines):
            raise ValueError("a notify field cannot contain a newline")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block: a full queue at the manager's end loses this one message, not the service's loop.
            self._sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._failing:
                log.warning("systemd notify: cannot send to %r: %s", self.address, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up is over (and a reload, after :meth:`reloading`)."""
        return self.send("READY=1", *self._status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.send("STOPPING=1", *self._status(status))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (what ``Type=notify-reload`` needs); :meth:`ready` ends it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *self._status(status))

    def status(self, text: str) -> bool:
        """``STATUS=``: one line shown by ``systemctl status``."""
        return self.send(*self._status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive."""
        return self.send("WATCHDOG=1")

    def watchdog_trigger(self) -> bool:
        """``WATCHDOG=trigger``: ask the manager to act as if the watchdog had expired (a self-diagnosed hang)."""
        return self.send("WATCHDOG=trigger")

    def main_pid(self, pid: int) -> bool:
        """``MAINPID=``: the service's main process is ``pid`` (when another process sends its READY=1)."""
        return self.send(f"MAINPID={int(pid)}")

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC=``: the current start, stop or reload needs ``seconds`` more."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")

    def close(self) -> None:
        """Close the socket (sends after this reopen it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        return ("STATUS=" + " ".join(text.splitlines()),)


class Watchdog:
    """Pings ``WATCHDOG=1`` at half the manager's watchdog timeout from an asyncio task.

    The task runs on the event loop, so a loop that stops turning stops the pings, and the manager restarts the
    service: that is the point. ``healthy`` (optional) is asked before each ping; when it says False the ping is
    skipped, so a service that knows it is stuck is restarted too.
    """

    __slots__ = ("_task", "healthy", "interval_s", "notifier", "pings", "timeout_s")

    def __init__(self, notifier: Notifier, timeout_s: float | None,
                 healthy: Callable[[], bool] | None = None) -> None:
        """``timeout_s``: the manager's watchdog timeout (None or 0: no watchdog)."""
        self.notifier = notifier
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 and notifier.enabled else None
        self.interval_s = self.timeout_s / 2 if self.timeout_s else None
        self.healthy = healthy
        self.pings = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environ(cls, notifier: Notifier, environ: Mapping[str, str] | None = None, *,
                     pid: int | None = None, healthy: Callable[[], bool] | None = None) -> Watchdog:
        """The watchdog the manager asked for: ``WATCHDOG_USEC``, unless ``WATCHDOG_PID`` names another process
        (then the watchdog is someone else's and this one stays off)."""
        env = process_environ() if environ is None else environ
        timeout: float | None = None
        raw = env.get(WATCHDOG_USEC_ENV, "")
        owner = env.get(WATCHDOG_PID_ENV, "")
        mine = not owner or owner.strip() == str(os.getpid() if pid is None else pid)
        if raw and mine:
            try:
                usec = int(raw)
            except ValueError:
                log.warning("systemd watchdog off: %s=%r is not a number of microseconds", WATCHDOG_USEC_ENV, raw)
            else:
                timeout = usec / 1_000_000 if usec > 0 else None
        return cls(notifier, timeout, healthy)

    @property
    def enabled(self) -> bool:
        """Whether pings will be sent."""
        return self.interval_s is not None

    def ping(self) -> bool:
        """Send one ping now if healthy; True when it went out."""
        if not self.enabled or (self.healthy is not None and not self.healthy()):
            return False
        sent = self.notifier.watchdog()
        self.pings += sent
        return sent

    def start(self) -> asyncio.Task[None] | None:
        """Start pinging on the running loop (a first ping at once); None when there is no watchdog."""
        if not self.enabled:
            return None
        import asyncio  # the runtime has it loaded by now; a script that only notifies does not pay for it

        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="systemd-watchdog")
        return self._task

    async def stop(self) -> None:
        """Stop pinging."""
        task, self._task = self._task, None
        if task is not None:
            import asyncio

            task.cancel()
            await asyncio.wait([task])  # waits for it to end without re-raising its cancellation here

    async def _run(self) -> None:
        import asyncio

        assert self.interval_s is not None
        while True:
            self.ping()
            await asyncio.sleep(self.interval_s)
