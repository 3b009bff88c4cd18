"""Unix socket transport: the stdio framing (newline-delimited JSON-RPC) for local clients.

Each connection is a session of its own (``StreamSession``, as on stdio). The
socket file is created with mode 0600, so only this user (and root) may
connect, and removed on exit. A path that exists is reused only when it is a
stale socket (nobody answers on it); a live socket or any other file stops
the start with a ``ConfigError``.
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
from mcp_edge.runtime.router import Router
from mcp_edge.transport.signals import stop_on_signals
from mcp_edge.transport.stream import StreamSession

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


def _guarded_write(transport: asyncio.WriteTransport, limit: int) -> Callable[[bytes], None]:
    """A write that drops the client when it lets more than ``limit`` bytes pile up unread."""

    def write(data: bytes) -> None:
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > limit:
            log.warning("unix socket client is not reading its responses; closing its connection")
            transport.abort()
            return
        transport.write(data)

    return write


async def serve_unix(
    router: Router,
    settings: Settings,
    path: Path | str,
    *,
    on_ready: Callable[[str], None] | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve newline-delimited JSON-RPC on a unix socket at ``path`` until cancelled or signalled."""
    path = Path(path)
    _claim(path)
    sessions: set[StreamSession] = set()
    tasks: set[asyncio.Task[None]] = set()
    backlog = max(4 * settings.max_frame, 16 * 1024 * 1024)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        stream = StreamSession(router, _guarded_write(writer.transport, backlog), settings.max_frame)
        sessions.add(stream)
        try:
            await stream.run(reader)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sessions.discard(stream)
            tasks.discard(task)
            writer.close()

    old_umask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
    try:
        server = await asyncio.start_unix_server(client, str(path), limit=settings.max_frame + 2)
    finally:
        os.umask(old_umask)
    ino = path.stat().st_ino
    os.chmod(path, SOCKET_MODE)
    if on_ready is not None:
        on_ready(str(path))

    stop = asyncio.Event()
    try:
        with stop_on_signals(stop, handle_signals):
            await stop.wait()
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(list(tasks), timeout=1.0)
        with contextlib.suppress(OSError):
            if path.lstat().st_ino == ino:  # ours still, not a successor's
                path.unlink()
