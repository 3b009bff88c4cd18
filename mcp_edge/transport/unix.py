"""Unix socket transport: the stdio framing (newline-delimited JSON-RPC) for local clients.

Each connection is a session of its own (``StreamSession``, as on stdio), whose
principal is the peer's ``SO_PEERCRED`` credentials (``uid:<uid>``). The
socket file is created with mode 0600, so only this user (and root) may
connect, and removed on exit. A path that exists is reused only when it is a
stale socket (nobody answers on it); a live socket or any other file stops
the start with a ``ConfigError``.

A client that stops reading is not dropped: once its unsent output passes
``Settings.output_backlog`` the server stops reading from it (stream.py), so
what it costs stays bounded, and it is served again as soon as it reads. At
shutdown (the stop token set, or the serving task cancelled) the socket stops accepting connections, and every
session refuses new requests with the shutting-down error, gives what it runs ``Settings.shutdown_timeout_s``
to finish and answers what is cut then with an error (stream.py). No signal handlers here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError
from mcp_edge.runtime.principal import Principal
from mcp_edge.runtime.router import Router
from mcp_edge.runtime.stop import StopToken
from mcp_edge.transport.stream import READ_CHUNK, Output, StreamSession

__all__ = ["serve_unix"]

log = logging.getLogger("mcp_edge.transport.unix")

SOCKET_MODE: Final = 0o600


def _claim(path: Path) -> None:
    """Make ``path`` free for a new socket: remove a stale socket; refuse anything else."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(f"{path} exists and is not a socket: remove it or choose another --unix path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ConfigError(f"{path}: cannot tell whether the socket is in use ({exc.strerror})") from None
        log.info("removing stale socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise ConfigError(f"{path} is in use by a running server: stop it or choose another --unix path")


class _SocketOutput(Output):
    """One client connection's output, with the socket transport's flow control as the back-pressure."""

    def __init__(self, writer: asyncio.StreamWriter, bound: int) -> None:
        self._writer = writer
        writer.transport.set_write_buffer_limits(high=bound, low=bound // 2)

    def write(self, data: bytes) -> None:
        if not self._writer.transport.is_closing():
            self._writer.write(data)

    def backlog(self) -> int:
        return self._writer.transport.get_write_buffer_size()

    async def writable(self) -> None:
        with contextlib.suppress(ConnectionError):  # a lost connection never drains: reading ends anyway
            await self._writer.drain()

    async def close(self, timeout: float) -> None:
        self._writer.close()  # closes the socket once the buffer is written
        try:
            await asyncio.wait_for(self._writer.wait_closed(), timeout)
        except (TimeoutError, ConnectionError):
            if self.backlog():
                log.warning("a unix socket client did not read its last %d bytes in time: dropped", self.backlog())
            self._writer.transport.abort()


async def serve_unix(
    router: Router,
    settings: Settings,
    path: Path | str,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: StopToken | None = None,
) -> None:
    """Serve newline-delimited JSON-RPC on a unix socket at ``path`` until ``stop`` is set or the task is
    cancelled; then every session drains."""
    path = Path(path)
    _claim(path)
    tasks: set[asyncio.Task[None]] = set()
    stop = stop if stop is not None else StopToken()  # set when serve_unix ends too: every session drains

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            principal = Principal.from_peer(writer.get_extra_info("socket"))
        except (OSError, ValueError, AttributeError) as exc:  # the kernel always tells on AF_UNIX: not expected
            log.warning("a unix socket client's credentials are unknown (%s): connection closed", exc)
            writer.close()
            return
        tasks.add(task)
        stream = StreamSession(router, _SocketOutput(writer, settings.output_backlog), settings,
                               principal=principal)
        try:
            await stream.run(reader.read, stop)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            tasks.discard(task)
            writer.close()

    old_umask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
    try:
        # The reader pauses the socket by itself once it holds 2 * limit bytes that nobody read.
        server = await asyncio.start_unix_server(client, str(path), limit=READ_CHUNK)
    finally:
        os.umask(old_umask)
    ino = path.stat().st_ino
    os.chmod(path, SOCKET_MODE)
    if on_ready is not None:
        on_ready(str(path))

    try:
        await stop.wait()
    finally:
        server.close()
        # each session refuses what is new, answers what it runs (shutdown_timeout_s), flushes and closes
        stop.set("the unix socket server is stopping")
        if tasks:
            await asyncio.wait(list(tasks), timeout=settings.shutdown_timeout_s + settings.drain_timeout_s + 2.0)
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(list(tasks), timeout=1.0)
        with contextlib.suppress(OSError):
            if path.lstat().st_ino == ino:  # ours still, not a successor's
                path.unlink()
