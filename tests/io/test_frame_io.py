"""Frames over asyncio (mcp_edge.io.frames): files through both engines, sockets and pipes through the loop.

Files live under build/ (the work tree's ext4; conftest's ``workdir``), and every file test runs on the
io_uring engine and the thread-pool engine. Sockets and pipes are non-blocking; a pipe shrunk to one page
with a slow reader makes the writer stop and resume many times.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import crc32c as reference
import pytest

from mcp_edge.errors import FrameError
from mcp_edge.io import Engine
from mcp_edge.io.frames import read_frame_at, recv_frame, send_frame, write_frame_at
from mcp_edge.native._frame import BLOCK, decode, read_frame

RW = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
LAYOUT = struct.Struct("<HBBBBHQIIQ")
SIZES = [0, 1, 4095, 4096, 70_000, 1 << 20]


def raw_frame(payload: bytes, *, magic: int = 0xC54D) -> bytes:
    """An inline frame without extensions, from the byte table of docs/wire-format.md."""
    fields = [magic, 1, 4, 0, 0, 0, 9, len(payload), 0, 0]
    fields[8] = reference.crc32c(LAYOUT.pack(*fields) + payload)
    return LAYOUT.pack(*fields) + payload


def run(coro: Any) -> Any:
    """Run ``coro``, bounded so that a wait that never ends fails the test instead of hanging the suite."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 120)

    return asyncio.run(bounded())


# --- files, through each engine -------------------------------------------------------------------------------

def test_file_frames_through_the_engine(engine: Engine, workdir: Path) -> None:
    path = workdir / "frames"
    payloads = [os.urandom(n) for n in SIZES]

    async def main() -> None:
        fd = await engine.openat(path, RW, 0o600)
        try:
            offsets, at = [], 0
            for i, p in enumerate(payloads):
                offsets.append(at)
                at += await write_frame_at(engine, fd, at, 1, i, p, priority=i, end=i == len(payloads) - 1)
            at += await write_frame_at(engine, fd, at, 2, 99, kind=BLOCK, length=1 << 20, segment=1, offset=4096)
            assert os.fstat(fd).st_size == at
            buf = bytearray(1 << 20)
            pos = 0
            for i, p in enumerate(payloads):
                assert pos == offsets[i]
                frame = await read_frame_at(engine, fd, pos, buf)
                assert frame is not None and (frame.id, frame.priority) == (i, i)
                assert frame.payload is not None and frame.payload.obj is buf and frame.payload == p
                pos += frame.size
            frame = await read_frame_at(engine, fd, pos)
            assert frame is not None and (frame.kind, frame.segment, frame.offset) == (BLOCK, 1, 4096)
            assert await read_frame_at(engine, fd, pos + frame.size) is None  # the end of the file
        finally:
            await engine.close_fd(fd)

    run(main())
    with path.open("rb") as f:  # the same bytes read back by the blocking reader
        got = [read_frame(f) for _ in payloads]
    assert [bytes(fr.payload) for fr in got if fr is not None and fr.payload is not None] == payloads


def test_file_refusals_through_the_engine(engine: Engine, workdir: Path) -> None:
    path = workdir / "bad"
    good = raw_frame(b"abcdef")
    path.write_bytes(good + good[:-1] + raw_frame(b"x", magic=0x1234) + good[:20])

    async def main() -> None:
        fd = await engine.openat(path, os.O_RDONLY)
        try:
            frame = await read_frame_at(engine, fd, 0)
            assert frame is not None and frame.payload == b"abcdef"
            with pytest.raises(FrameError) as info:
                await read_frame_at(engine, fd, len(good), bytearray(5))
            assert info.value.reason == "overlong"  # refused on its header: the body was never read
            end = len(good) * 2 - 1 + 33
            with pytest.raises(FrameError, match="bad magic"):
                await read_frame_at(engine, fd, len(good) * 2 - 1)
            with pytest.raises(FrameError) as info:
                await read_frame_at(engine, fd, end)  # the file ends inside the header
            assert (info.value.reason, info.value.needed) == ("truncated", 32)
            path.write_bytes(good[:-1])
            with pytest.raises(FrameError) as info:
                await read_frame_at(engine, fd, 0)  # ... inside the payload
            assert (info.value.reason, info.value.needed) == ("truncated", len(good))
        finally:
            await engine.close_fd(fd)

    run(main())


class ShortEngine:
    """An engine that moves at most ``step`` bytes of the first buffer per call: short counts everywhere."""

    def __init__(self, engine: Engine, step: int) -> None:
        self.engine, self.step, self.calls = engine, step, 0

    async def writev(self, fd: int, buffers: Sequence[memoryview], offset: int) -> int:
        self.calls += 1
        return await self.engine.writev(fd, [buffers[0][:self.step]], offset)

    async def readv(self, fd: int, buffers: Sequence[memoryview], offset: int) -> int:
        self.calls += 1
        return await self.engine.readv(fd, [buffers[0][:self.step]], offset)


def test_short_engine_counts_are_resumed(engine: Engine, workdir: Path) -> None:
    path = workdir / "short"
    payload = os.urandom(3000)

    async def main() -> None:
        fd = await engine.openat(path, RW)
        try:
            short = ShortEngine(engine, 7)
            n = await write_frame_at(short, fd, 100, 3, 4, payload, priority=2)  # type: ignore[arg-type]
            assert n == 32 + 5 + 3000 and short.calls == -(-32 // 7) + -(-5 // 7) + -(-3000 // 7)  # never across pieces
            short.calls = 0
            frame = await read_frame_at(short, fd, 100, bytearray(3000))  # type: ignore[arg-type]
            assert frame is not None and frame.payload == payload and frame.priority == 2
            assert short.calls == -(-32 // 7) + -(-5 // 7) + -(-3000 // 7)  # the header alone, then each piece
        finally:
            await engine.close_fd(fd)

    run(main())
    assert decode(path.read_bytes()[100:]).payload == payload


# --- sockets and pipes, through the loop ----------------------------------------------------------------------

def nonblocking_pair(kind: str) -> tuple[Any, Any, list[Any]]:
    """(reader end, writer end, things to close) for "socket", "socket-fd" or "pipe" (shrunk to one page)."""
    if kind == "pipe":
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        return r, w, [r, w]
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    if kind == "socket-fd":
        return a.fileno(), b.fileno(), [a, b]
    return a, b, [a, b]


def close_all(things: list[Any]) -> None:
    for t in things:
        if isinstance(t, int):
            os.close(t)
        else:
            t.close()


@pytest.mark.parametrize("kind", ["socket", "socket-fd", "pipe"])
def test_send_recv_stream(kind: str) -> None:
    r, w, things = nonblocking_pair(kind)
    payloads = [os.urandom(n) for n in SIZES]

    async def sender() -> None:
        for i, p in enumerate(payloads):
            assert await send_frame(w, 1, i, p, deadline_ns=i, end=i == len(payloads) - 1) == 32 + 12 + len(p)

    async def receiver() -> None:
        buf = bytearray(1 << 20)
        for i, p in enumerate(payloads):
            frame = await recv_frame(r, buf)
            assert frame is not None and frame.id == i and frame.deadline_ns == i
            assert frame.payload is not None and frame.payload.obj is buf and frame.payload == p
            await asyncio.sleep(0)  # a slow reader: the sender finds the pipe full again

    async def main() -> None:
        await asyncio.gather(sender(), receiver())
        if kind == "pipe":
            os.close(w)
            things.remove(w)
        else:
            things[1].shutdown(socket.SHUT_WR)
        assert await recv_frame(r) is None  # the end of the stream

    try:
        run(main())
    finally:
        close_all(things)


def test_send_waits_for_a_slow_reader() -> None:
    """A 1 MiB frame into a one-page pipe: the writer stops on every full pipe and resumes where it was."""
    r, w, things = nonblocking_pair("pipe")
    payload = os.urandom(1 << 20)
    received = bytearray()

    async def slow_reader(total: int) -> None:
        loop = asyncio.get_running_loop()
        while len(received) < total:
            ready = loop.create_future()
            loop.add_reader(r, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(r)
            received.extend(os.read(r, 1000))

    async def main() -> None:
        total = 32 + len(payload)
        reader = asyncio.ensure_future(slow_reader(total))
        assert await send_frame(w, 1, 1, payload) == total
        await reader

    try:
        run(main())
    finally:
        close_all(things)
    assert decode(bytes(received)).payload == payload


def test_recv_into_a_callable_destination() -> None:
    r, w, things = nonblocking_pair("socket")
    asked: list[int] = []

    def alloc(n: int) -> bytearray:
        asked.append(n)
        return bytearray(4096)  # a block of the smallest class that fits

    async def main() -> None:
        await send_frame(w, 1, 1, b"q" * 100)
        frame = await recv_frame(r, alloc)
        assert frame is not None and frame.payload == b"q" * 100 and asked == [100]

    try:
        run(main())
    finally:
        close_all(things)


def test_bad_header_refused_without_waiting_for_the_rest() -> None:
    r, w, things = nonblocking_pair("socket")

    async def main() -> None:
        w.send(b"Z")  # one byte: a reader that waited for 32 would never return
        with pytest.raises(FrameError, match="bad magic"):
            await recv_frame(r)
        w.send(b"rest")
        assert r.recv(10) == b"rest"

    try:
        run(main())
    finally:
        close_all(things)


def test_blocking_descriptors_are_refused() -> None:
    a, b = socket.socketpair()
    pr, pw = os.pipe()
    try:
        for fd in (a, pr):
            with pytest.raises(ValueError, match="non-blocking"):
                run(recv_frame(fd))
        for fd in (b, pw):
            with pytest.raises(ValueError, match="non-blocking"):
                run(send_frame(fd, 1, 1, b"x"))
    finally:
        close_all([a, b, pr, pw])
