"""stdio transport: newline-delimited JSON-RPC on stdin/stdout.

stdout carries protocol messages only: Python's ``sys.stdout`` is pointed at
stderr while serving, so a stray print in a plugin cannot corrupt the stream.
On stdin EOF the server answers the requests in flight (within
``Settings.drain_timeout_s``; the last line is served even without its
newline), flushes stdout and returns. When its stop token is set (by the
supervisor on a signal, or by the embedding program), when its parent process
dies (PR_SET_PDEATHSIG, plus a parent-pid check) or when the client closes
stdout, it refuses new requests with the shutting-down error, gives those in
flight ``Settings.shutdown_timeout_s`` and answers what it cuts then with an
error (stream.py). It installs no signal handlers. The
session's principal is the parent process. Back-pressure, the in-flight cap and the
handling of failures are ``StreamSession``'s (stream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from mcp_edge.board.settings import Settings
from mcp_edge.runtime.principal import Principal
from mcp_edge.runtime.router import Router
from mcp_edge.runtime.stop import StopToken
from mcp_edge.transport.stream import READ_CHUNK, Output, StreamSession, log

__all__ = ["claim_stdout", "grow_pipe", "serve_stdio"]

def _die_with_parent() -> None:
    from mcp_edge.native._sys import set_parent_death_signal

    with contextlib.suppress(OSError):
        set_parent_death_signal(signal.SIGTERM)


async def _watch_parent(parent: int, stop: StopToken) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set("the parent process died")
            return
        await asyncio.sleep(1.0)


def _pollable(fd: int) -> bool:
    """Whether epoll can watch ``fd``: pipes, sockets and terminals, not regular files or /dev/null."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


class _PipeProtocol(asyncio.Protocol):
    """Flow control of the stdout pipe: paused above the high-water mark, resumed below the low one."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = asyncio.Event()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()  # nothing will drain any more: never leave a writer waiting
        self.closed.set()


class _PipeOutput(Output):
    """stdout as a pipe (or socket, or terminal): asyncio writes it; its backlog is the transport's buffer."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: _PipeProtocol, bound: int) -> None:
        self._transport = transport
        self._protocol = protocol
        transport.set_write_buffer_limits(high=bound, low=bound // 2)

    @property
    def lost(self) -> asyncio.Event:
        return self._protocol.closed

    def write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    def backlog(self) -> int:
        return self._transport.get_write_buffer_size()

    async def writable(self) -> None:
        await self._protocol.writable.wait()

    async def close(self, timeout: float) -> None:
        if self._transport.is_closing():
            return
        self._transport.close()  # closes the pipe once the buffer is written
        if self.backlog():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._protocol.closed.wait(), timeout)
        if not self._protocol.closed.is_set() and self.backlog():
            log.warning("the client did not read the last %d bytes of output in time: dropped", self.backlog())
            self._transport.abort()


class _FileOutput(Output):
    """stdout redirected to a regular file or /dev/null: the loop cannot poll it, and writing it never waits."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._out.write(view) or 0:]

    async def close(self, timeout: float) -> None:
        self._out.close()


_protocol_fd: list[int] = []


def grow_pipe(fd: int, size: int) -> int:
    """Ask for a ``size``-byte buffer on the pipe ``fd`` (fewer wake-ups per large message); what it has now.
    Not a pipe, or more than this user may ask for: the pipe stays as it is (0 when ``fd`` is no pipe)."""
    import fcntl

    if size <= 0:
        return 0
    try:
        have: int = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except OSError:
        return 0  # not a pipe
    if have >= size:
        return have
    for ask in (size, min(size, _pipe_max())):
        try:
            got: int = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, ask)
            return got
        except OSError:
            continue
    return have


def _pipe_max() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def claim_stdout() -> int:
    """Keep the real stdout for the protocol and point fd 1 and ``sys.stdout`` at stderr; idempotent.

    Call it before plugins load, so that nothing they print reaches the protocol stream.
    """
    if not _protocol_fd:
        _protocol_fd.append(os.dup(1))
        os.dup2(2, 1)  # fd 1 now goes to stderr; the protocol keeps its own copy of the pipe
        sys.stdout = sys.stderr
    return _protocol_fd[0]


async def serve_stdio(router: Router, settings: Settings, *, stop: StopToken | None = None) -> None:
    """Serve one client on this process's stdin and stdout until EOF or ``stop`` is set (then drain)."""
    loop = asyncio.get_running_loop()
    out_fd = claim_stdout()
    _protocol_fd.clear()  # the output below owns the descriptor now
    for fd in (out_fd, sys.stdin.fileno()):
        grow_pipe(fd, settings.stdio_pipe_size)
    out = os.fdopen(out_fd, "wb", buffering=0)
    stop = stop if stop is not None else StopToken()
    output: Output
    if _pollable(out_fd):
        transport, protocol = await loop.connect_write_pipe(_PipeProtocol, out)
        output = _PipeOutput(transport, protocol, settings.output_backlog)
    else:
        output = _FileOutput(out)

    read: Callable[[int], Awaitable[bytes]]
    if _pollable(sys.stdin.fileno()):
        # The reader pauses the pipe by itself once it holds 2 * limit bytes that nobody read.
        reader = asyncio.StreamReader(limit=READ_CHUNK)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        read = reader.read
    else:  # a regular file, which the event loop cannot poll: read it in a thread, a chunk when asked
        fd = sys.stdin.fileno()

        async def read(size: int) -> bytes:
            return await loop.run_in_executor(None, os.read, fd, size)

    stream = StreamSession(router, output, settings, principal=Principal.parent_process())
    _die_with_parent()
    watchers = [asyncio.create_task(_watch_parent(os.getppid(), stop))]
    if isinstance(output, _PipeOutput):
        watchers.append(asyncio.create_task(_stop_when(output.lost, stop)))  # the client stopped reading us
    try:
        await stream.run(read, stop)
    finally:
        for task in watchers:
            task.cancel()
        await output.close(0.0)


async def _stop_when(event: asyncio.Event, stop: StopToken) -> None:
    await event.wait()
    stop.set("the client closed stdout")
