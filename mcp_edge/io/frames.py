"""Frames of the wire format (docs/wire-format.md) over asyncio: sockets and pipes, and files through an Engine.

Sockets and pipes (``send_frame``, ``recv_frame``) go through the event loop:
the descriptor is non-blocking, each try is one ``writev`` (``sendmsg`` for a
socket object) of the header, extensions and payload as three iovecs, or one
``readv``/``recvmsg`` straight into the destination buffers, and when the
descriptor is full or empty the coroutine waits on ``loop.add_writer`` /
``loop.add_reader`` and resumes where it stopped. No thread, no copy, no
syscall per piece.

Files (``write_frame_at``, ``read_frame_at``) go through an ``Engine``'s
``writev``/``readv`` at an offset: io_uring's IORING_OP_WRITEV/READV, or the
thread pool's ``pwritev``/``preadv``; a short count is resumed.

A frame cut short by cancellation or an error leaves a stream out of step:
close it (docs/wire-format.md says what a receiver does with each refusal).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import TYPE_CHECKING, Any

from mcp_edge.native._frame import (
    DEFAULT_MAX_EXTENSIONS,
    DEFAULT_MAX_PAYLOAD,
    Frame,
    FrameReader,
    FrameWriter,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from mcp_edge.io.engine import Engine
    from mcp_edge.native._frame import Destination, _HasFileno

__all__ = ["read_frame_at", "recv_frame", "send_frame", "write_frame_at"]


def _nonblocking_fd(fd: int | _HasFileno) -> int:
    """The fd number of ``fd``; ValueError when it blocks (a blocking call would stall the event loop)."""
    if isinstance(fd, socket.socket):
        if fd.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking (sock.setblocking(False))")
        return fd.fileno()
    n = fd if isinstance(fd, int) else fd.fileno()
    if os.get_blocking(n):
        raise ValueError(f"fd {n} must be non-blocking (os.set_blocking({n}, False))")
    return n


async def _ready(n: int, write: bool) -> None:
    """Wait until fd ``n`` is writable (``write``) or readable, through the running loop's selector."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(n, wake)
    else:
        loop.add_reader(n, wake)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(n)
        else:
            loop.remove_reader(n)


async def send_frame(fd: int | _HasFileno, type: int, id: int, payload: Buffer = b"", **fields: Any) -> int:
    """Write one frame to the non-blocking socket or pipe ``fd``; the bytes written.

    ``fields`` are ``write_frame``'s (``kind``, ``length``, ``segment``,
    ``offset``, ``end``, ``payload_crc``, ``deadline_ns``, ``priority``,
    ``trace``, ``extensions``). Each try is one vectored write of what is
    left; a full descriptor is waited for with ``loop.add_writer``.
    ValueError for a blocking ``fd``; OSError from the write
    (BrokenPipeError when the reader is gone).
    """
    n = _nonblocking_fd(fd)
    writer = FrameWriter(type, id, payload, **fields)
    while not writer.write_to(fd):
        await _ready(n, write=True)
    return writer.total


async def recv_frame(
    fd: int | _HasFileno,
    payload: Destination = None,
    extensions: Destination = None,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    max_extensions: int = DEFAULT_MAX_EXTENSIONS,
) -> Frame | None:
    """Read one frame from the non-blocking socket or pipe ``fd``; None at a clean end of stream.

    ``read_frame``'s destinations and limits: the header is read and checked
    first, then the extensions and payload go straight into ``payload`` /
    ``extensions`` (buffers, callables given the byte count, or None).
    FrameError as ``read_frame`` (a bad header refused before any byte after
    it is read); ValueError for a blocking ``fd``.
    """
    n = _nonblocking_fd(fd)
    reader = FrameReader(payload, extensions, max_payload=max_payload, max_extensions=max_extensions)
    while not reader.read_from(fd):
        await _ready(n, write=False)
    return reader.frame()


async def write_frame_at(
    engine: Engine, fd: int, at: int, type: int, id: int, payload: Buffer = b"", **fields: Any
) -> int:
    """Write one frame to file ``fd`` at file offset ``at`` with ``engine.writev``; the bytes written (the
    next frame goes at ``at`` plus that). ``fields`` are ``send_frame``'s (``offset`` among them is the
    header's block/file offset). Short writes are resumed; OSError from the engine, naming the operation
    (EIO when the file takes no byte)."""
    writer = FrameWriter(type, id, payload, **fields)
    while not writer.done:
        n = await engine.writev(fd, writer.buffers(), at + writer.written)
        if n == 0:
            raise OSError(errno.EIO, f"writev of a {writer.total}-byte frame at offset {at} on fd {fd}: "
                                     f"no byte written after {writer.written}")
        writer.advance(n)
    return writer.total


async def read_frame_at(
    engine: Engine,
    fd: int,
    at: int,
    payload: Destination = None,
    extensions: Destination = None,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    max_extensions: int = DEFAULT_MAX_EXTENSIONS,
) -> Frame | None:
    """Read the frame of file ``fd`` at file offset ``at`` with ``engine.readv``; None when the file ends there.

    The header first (32 bytes, checked), then one ``readv`` of the extensions
    and inline payload into their destinations (``read_frame``'s); never a
    byte past the frame's end. The next frame is at ``at + frame.size``.
    FrameError as ``read_frame`` (``truncated`` when the file ends inside it).
    """
    reader = FrameReader(payload, extensions, max_payload=max_payload, max_extensions=max_extensions)
    while views := reader.buffers():
        reader.advance(await engine.readv(fd, views, at + reader.read))
    return reader.frame()
