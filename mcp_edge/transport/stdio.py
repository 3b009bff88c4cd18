"""stdio transport: newline-delimited JSON-RPC on stdin/stdout.

stdout carries protocol messages only: Python's ``sys.stdout`` is pointed at
stderr while serving, so a stray print in a plugin cannot corrupt the stream.
The server exits promptly on stdin EOF, on the first SIGINT or SIGTERM, and
when its parent process dies (PR_SET_PDEATHSIG, plus a parent-pid check).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from collections.abc import Callable

from mcp_edge.board.settings import Settings
from mcp_edge.runtime.router import Router
from mcp_edge.transport.signals import stop_on_signals
from mcp_edge.transport.stream import StreamSession

__all__ = ["claim_stdout", "serve_stdio"]

def _die_with_parent() -> None:
    from mcp_edge.native._sys import set_parent_death_signal

    with contextlib.suppress(OSError):
        set_parent_death_signal(signal.SIGTERM)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        await asyncio.sleep(1.0)


def _pollable(fd: int) -> bool:
    """Whether epoll can watch ``fd``: pipes, sockets and terminals, not regular files or /dev/null."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


async def _feed_from_file(fd: int, reader: asyncio.StreamReader) -> None:
    """stdin redirected from a regular file, which the event loop cannot poll: read it in a thread."""
    loop = asyncio.get_running_loop()
    while data := await loop.run_in_executor(None, os.read, fd, 1 << 16):
        reader.feed_data(data)
    reader.feed_eof()


_protocol_fd: list[int] = []


def claim_stdout() -> int:
    """Keep the real stdout for the protocol and point fd 1 and ``sys.stdout`` at stderr; idempotent.

    Call it before plugins load, so that nothing they print reaches the protocol stream.
    """
    if not _protocol_fd:
        _protocol_fd.append(os.dup(1))
        os.dup2(2, 1)  # fd 1 now goes to stderr; the protocol keeps its own copy of the pipe
        sys.stdout = sys.stderr
    return _protocol_fd[0]


async def serve_stdio(router: Router, settings: Settings) -> None:
    """Serve one client on this process's stdin and stdout."""
    loop = asyncio.get_running_loop()
    out_fd = claim_stdout()
    _protocol_fd.clear()  # the pipe below owns the descriptor now
    out = os.fdopen(out_fd, "wb", buffering=0)
    w_transport: asyncio.WriteTransport | None = None
    write: Callable[[bytes], None]
    if _pollable(out_fd):
        w_transport, _ = await loop.connect_write_pipe(asyncio.Protocol, out)
        write = w_transport.write
    else:  # a regular file (or /dev/null): the event loop cannot poll it, and writes to it never wait

        def write(data: bytes) -> None:
            out.write(data)

    reader = asyncio.StreamReader(limit=settings.max_frame + 2)
    feeding: asyncio.Task[None] | None = None
    if _pollable(sys.stdin.fileno()):
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    else:
        feeding = asyncio.create_task(_feed_from_file(sys.stdin.fileno(), reader))

    stream = StreamSession(router, write, settings.max_frame)
    stop = asyncio.Event()
    _die_with_parent()
    reading = asyncio.create_task(stream.run(reader))
    stopping = asyncio.create_task(stop.wait())
    watching = asyncio.create_task(_watch_parent(os.getppid(), stop))
    try:
        with stop_on_signals(stop):
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reading, stopping, watching, feeding):
            if task is not None:
                task.cancel()
        stream.close()
        if w_transport is not None:
            w_transport.close()
        else:
            out.close()
