"""stdio transport: newline-delimited JSON-RPC on stdin/stdout.

stdout carries protocol messages only: Python's ``sys.stdout`` is pointed at
stderr while serving, so a stray print in a plugin cannot corrupt the stream.
The server exits promptly on stdin EOF, on the first SIGINT or SIGTERM, and
when its parent process dies (PR_SET_PDEATHSIG, plus a parent-pid check).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys

from mcp_edge.runtime.router import Router
from mcp_edge.runtime.settings import Settings
from mcp_edge.transport.stream import StreamSession

__all__ = ["serve_stdio"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        await asyncio.sleep(1.0)


async def serve_stdio(router: Router, settings: Settings) -> None:
    """Serve one client on this process's stdin and stdout."""
    loop = asyncio.get_running_loop()
    out_fd = os.dup(1)
    os.dup2(2, 1)  # fd 1 now goes to stderr; the protocol keeps its own copy of the pipe
    sys.stdout = sys.stderr
    out = os.fdopen(out_fd, "wb", buffering=0)
    w_transport, _ = await loop.connect_write_pipe(asyncio.Protocol, out)
    reader = asyncio.StreamReader(limit=settings.max_frame + 2)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)

    stream = StreamSession(router, w_transport.write, settings.max_frame)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _die_with_parent()
    reading = asyncio.create_task(stream.run(reader))
    stopping = asyncio.create_task(stop.wait())
    watching = asyncio.create_task(_watch_parent(os.getppid(), stop))
    try:
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reading, stopping, watching):
            task.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stream.close()
        w_transport.close()
