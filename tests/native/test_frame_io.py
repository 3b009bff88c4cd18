"""Frames to and from descriptors: csrc/frame/frame_io.c, FrameWriter/FrameReader, write_frame/read_frame.

Pipes, socketpairs (raw fds and socket objects) and regular files on the work tree's filesystem (build/, not
/tmp); short writes on a non-blocking pipe with a slow reader, short reads, every malformed header class over
a stream (refused on the bytes that show it, nothing after the header read), destinations chosen once the
header is in, and the system calls themselves under strace: three iovecs out, the header alone then one readv
into the caller's buffers in.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import crc32c as reference
import pytest
from ci_honesty import require_or_skip

from mcp_edge.native._frame import (
    BLOCK,
    FILE,
    INLINE,
    FrameError,
    FrameReader,
    FrameWriter,
    decode,
    encode_extensions,
    read_frame,
    write_frame,
)

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = struct.Struct("<HBBBBHQIIQ")  # magic, version, type, kind, flags, ext_len, id, payload_len, crc, locator
TRACE = (bytes(range(16)), bytes(range(100, 108)), 1)
SENTINEL = b"NEXT-FRAME-BYTES"


def raw_frame(payload: bytes = b"", ext: bytes = b"", *, magic: int = 0xC54D, version: int = 1, kind: int = INLINE,
              flags: int = 0, payload_len: int | None = None, crc: int | None = None, id_: int = 9) -> bytes:
    """A frame built from the byte table of docs/wire-format.md (independently of the C encoder)."""
    plen = len(payload) if payload_len is None else payload_len
    fields = [magic, version, 4, kind, flags, len(ext), id_, plen, 0, 0]
    fields[8] = reference.crc32c(LAYOUT.pack(*fields) + ext + payload) if crc is None else crc
    return LAYOUT.pack(*fields) + ext + payload


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh folder under the repository's build/ (the work tree's filesystem; /tmp may be tmpfs)."""
    parent = ROOT / "build"
    parent.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-frame-io-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Stream:
    """A pipe, a socketpair as raw fds, or a socketpair as socket objects: ``r`` and ``w`` are what the frame
    functions get; ``end()`` ends the stream on the writing side, ``close()`` closes everything."""

    def __init__(self, kind: str) -> None:
        self.socks: tuple[socket.socket, ...] = ()
        if kind == "pipe":
            self.r, self.w = os.pipe()
            self.fds = [self.r, self.w]
            return
        self.fds = []
        a, b = self.socks = socket.socketpair()
        self.r, self.w = (a.fileno(), b.fileno()) if kind == "socket-fd" else (a, b)  # type: ignore[assignment]

    @property
    def rfd(self) -> int:
        return self.r if isinstance(self.r, int) else self.r.fileno()

    @property
    def wfd(self) -> int:
        return self.w if isinstance(self.w, int) else self.w.fileno()

    def end(self) -> None:
        if self.socks:
            self.socks[1].shutdown(socket.SHUT_WR)
        else:
            os.close(self.fds.pop())

    def close(self) -> None:
        for s in self.socks:
            s.close()
        for fd in self.fds:
            os.close(fd)


def in_thread(fn: Callable[[], object]) -> Callable[[], None]:
    """Start ``fn`` in a thread; the returned join() re-raises what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> None:
        thread.join()
        if errors:
            raise errors[0]

    return join


PAYLOADS = [b"", b"x", os.urandom(4096), os.urandom(65536 + 7), os.urandom(1 << 20)]


@pytest.mark.parametrize("kind", ["pipe", "socket-fd", "socket"])
def test_stream_round_trip(kind: str) -> None:
    st = Stream(kind)
    r, w = st.r, st.w

    def writer() -> None:
        try:
            for i, p in enumerate(PAYLOADS):
                n = write_frame(w, 1, i, p, priority=i, trace=TRACE, end=i == len(PAYLOADS) - 1)
                assert n == 32 + 34 + len(p)
            write_frame(w, 2, 99, kind=BLOCK, length=1 << 20, segment=3, offset=1 << 30)
            write_frame(w, 3, 100, b"0123456789", kind=FILE, length=10, segment=1, offset=5, payload_crc=True)
        finally:  # the end of the stream, also when this thread fails (the reader must not wait forever)
            st.end()

    join = in_thread(writer)
    try:
        buf, ext = bytearray(1 << 20), bytearray(64)
        for i, p in enumerate(PAYLOADS):
            frame = read_frame(r, buf, ext)
            assert frame is not None and (frame.id, frame.priority, frame.trace) == (i, i, TRACE)
            assert frame.payload is not None and frame.payload.obj is buf and frame.payload == p
            assert frame.extensions.obj is ext and frame.end == (i == len(PAYLOADS) - 1)
        frame = read_frame(r, buf)
        assert frame is not None and frame.payload is None
        assert (frame.kind, frame.segment, frame.offset) == (BLOCK, 3, 1 << 30)
        frame = read_frame(r)
        assert frame is not None and frame.kind == FILE and not frame.crc_checked
        frame.verify_payload(b"0123456789")
        assert read_frame(r) is None  # a clean end of stream
    finally:
        join()
        st.close()


def test_regular_file_at_its_position_and_at_offsets(workdir: Path) -> None:
    path = workdir / "frames"
    payloads = [os.urandom(n) for n in (0, 100, 70_000)]
    with path.open("wb") as f:
        for i, p in enumerate(payloads):
            write_frame(f, 1, i, p, deadline_ns=i)
    sizes = [32 + 12 + len(p) for p in payloads]
    assert path.stat().st_size == sum(sizes)
    with path.open("rb") as f:
        for i, p in enumerate(payloads):
            frame = read_frame(f)
            assert frame is not None and frame.payload == p and frame.deadline_ns == i
        assert read_frame(f) is None
    # At offsets (pwritev/preadv): the fd's position is neither used nor moved.
    fd = os.open(path, os.O_RDWR)
    try:
        at = sum(sizes)
        assert write_frame(fd, 7, 70, b"appended", at=at) == 40
        assert write_frame(fd, 7, 71, b"overwrite", at=sizes[0] + sizes[1]) == 32 + 9
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        frame = read_frame(fd, at=at)
        assert frame is not None and (frame.id, frame.payload) == (70, b"appended")
        frame = read_frame(fd, at=sizes[0] + sizes[1])
        assert frame is not None and frame.payload == b"overwrite"
        assert read_frame(fd, at=at + 40) is None
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        with pytest.raises(ValueError, match="negative"):
            read_frame(fd, at=-1)
    finally:
        os.close(fd)


def test_writer_pieces_are_the_callers_buffers() -> None:
    payload = bytearray(os.urandom(5000))
    ext = encode_extensions(trace=TRACE)
    w = FrameWriter(5, 6, payload, extensions=ext)
    parts = w.buffers()
    assert [len(p) for p in parts] == [32, 29, 5000] and w.total == 5061
    assert parts[1].obj is ext and parts[2].obj is payload and bytes(parts[0]) == w.header
    w.advance(40)
    parts = w.buffers()
    assert [len(p) for p in parts] == [21, 5000] and parts[0] == ext[8:] and parts[1].obj is payload
    w.advance(21 + 1000)
    (rest,) = w.buffers()
    assert rest.obj is payload and rest == payload[1000:]
    with pytest.raises(ValueError, match="only 4000 were left"):
        w.advance(4001)
    w.advance(4000)
    assert w.done and w.buffers() == [] and w.written == w.total
    # A block frame writes its header (and extensions) only; the bytes given for payload_crc stay out.
    w = FrameWriter(1, 2, b"block bytes", kind=BLOCK, length=11, segment=1, payload_crc=True)
    assert [len(p) for p in w.buffers()] == [32]


def set_pipe_size(fd: int, size: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def test_partial_writes_on_a_nonblocking_pipe_with_a_slow_reader() -> None:
    r, w = os.pipe()
    try:
        capacity = set_pipe_size(w, 4096)
        os.set_blocking(w, False)
        payload = bytearray(os.urandom(300_000))
        writer = FrameWriter(1, 1, payload, priority=9)
        assert writer.write_to(w) is False  # the pipe is full: a short write, kept
        assert 37 < writer.written <= capacity < writer.total
        (rest,) = writer.buffers()  # what is left: the rest of the caller's payload, not a copy
        assert rest.obj is payload and len(rest) == writer.total - writer.written
        written = writer.written
        assert writer.write_to(w) is False and writer.written == written  # still full: no progress, no error
        received = bytearray(os.read(r, capacity))

        def slow_reader() -> None:
            while len(received) < writer.total:
                received.extend(os.read(r, 1000))  # a reader slower than the writer: many short writes

        join = in_thread(slow_reader)
        tries = 1
        poll = select.poll()
        poll.register(w, select.POLLOUT)
        while not writer.write_to(w):
            tries += 1
            poll.poll()
        join()
        assert writer.done and tries > 1
        frame = decode(bytes(received))
        assert frame.payload == payload and frame.priority == 9 and frame.size == len(received)
        # write_frame on a non-blocking fd waits (poll) instead of failing with EAGAIN.
        received.clear()
        join = in_thread(lambda: received.extend(read_all(r, 32 + 200_000)))
        assert write_frame(w, 2, 2, payload[:200_000]) == 32 + 200_000
        join()
        assert decode(bytes(received)).payload == payload[:200_000]
    finally:
        os.close(r)
        os.close(w)


def read_all(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, min(4096, n - len(out)))
        assert chunk
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_short_reads_resume_on_a_nonblocking_reader(kind: str) -> None:
    st = Stream(kind)
    try:
        os.set_blocking(st.rfd, False)
        data = raw_frame(b"payload-bytes" * 100, bytes.fromhex("0380 0100 07"))
        buf = bytearray(2000)
        reader = FrameReader(buf)
        assert reader.read_from(st.r) is False and reader.read == 0  # nothing there yet
        prev = 0
        for cut in [1, 2, 31, 32, 33, 36, 37, 500, len(data)]:
            os.write(st.wfd, data[prev:cut])
            prev = cut
            finished = reader.read_from(st.r)
            assert reader.read == cut and finished == (cut == len(data))
        frame = reader.frame()
        assert frame is not None and frame.payload == b"payload-bytes" * 100 and frame.payload.obj is buf
        assert [(t, bytes(v)) for t, v in frame.tlvs()] == [(0x8003, b"\x07")]
    finally:
        st.close()


def test_destinations_picked_once_the_header_is_in() -> None:
    r, w = os.pipe()
    try:
        asked: list[int] = []
        blocks: list[bytearray] = []

        def alloc(n: int) -> bytearray:
            asked.append(n)
            blocks.append(bytearray(n + 3))  # a slab block: rounded up to its class
            return blocks[-1]

        write_frame(w, 1, 1, b"A" * 1000, priority=1)
        frame = read_frame(r, alloc, alloc)
        assert asked == [5, 1000] and frame is not None
        assert frame.payload is not None and frame.payload.obj is blocks[1] and len(frame.payload) == 1000
        assert frame.extensions.obj is blocks[0] and frame.priority == 1

        write_frame(w, 1, 2, b"B" * 10)
        with pytest.raises(FrameError, match=r"overlong: .*10 of payload; the buffers hold 0 and 9"):
            read_frame(r, lambda n: bytearray(n - 1))
        assert os.read(r, 100) == b"B" * 10  # refused before the body was read: it is still in the pipe

        def exhausted(n: int) -> bytearray:
            raise MemoryError(f"no block of {n} bytes")

        write_frame(w, 1, 3, b"C" * 10)
        with pytest.raises(MemoryError, match="no block of 10"):
            read_frame(r, exhausted)
        assert os.read(r, 100) == b"C" * 10
        write_frame(w, 1, 4, b"D")
        with pytest.raises(BufferError, match="writable"):
            read_frame(r, lambda n: b"read-only")
    finally:
        os.close(r)
        os.close(w)


# --- malformed headers over a stream -------------------------------------------------------------------------

GOOD = raw_frame(b"x" * 10, bytes.fromhex("0300 0100 05"))


def header_with(**changes: int) -> bytes:
    fields = dict(zip(("magic", "version", "type", "kind", "flags", "ext_len", "id", "payload_len", "crc", "loc"),
                      LAYOUT.unpack(GOOD[:32]), strict=True))
    fields.update(changes)
    return LAYOUT.pack(*fields.values())


# (bytes sent, reason, how many of them the reader takes before refusing)
HEADER_CLASSES = {
    "bad magic, first byte": (b"Z", "bad magic", 1),
    "bad magic, second byte": (b"M\x00", "bad magic", 2),
    "bad version": (b"M\xc5\x02", "bad version", 3),
    "bad version in a full header": (header_with(version=0), "bad version", 32),
    "bad field: kind": (header_with(kind=3), "bad field", 32),
    "bad field: flag": (header_with(flags=0x80), "bad field", 32),
    "bad field: inline locator": (header_with(loc=1 << 16), "bad field", 32),
    "overlong payload": (header_with(payload_len=(16 << 20) + 1), "overlong", 32),
    "overlong extensions": (header_with(ext_len=4097), "overlong", 32),
}


@pytest.mark.parametrize("case", HEADER_CLASSES)
def test_malformed_header_refused_before_the_rest_is_read(case: str) -> None:
    sent, why, taken = HEADER_CLASSES[case]
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.sendall(sent)
        reader = FrameReader(bytearray(1 << 16))
        with pytest.raises(FrameError) as info:
            reader.read_from(a)  # refused on the bytes that show it: no wait for the rest of the header
        assert info.value.reason == why and reader.read == taken and not reader.finished
        b.sendall(SENTINEL)
        assert a.recv(1000) == sent[taken:] + SENTINEL  # nothing after the refused bytes was read
        with pytest.raises(ValueError, match="refused"):
            reader.buffers()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("data", "why", "needed"), [
    (GOOD[:1], "truncated", 32),
    (GOOD[:31], "truncated", 32),
    (GOOD[:32], "truncated", len(GOOD)),
    (GOOD[:-1], "truncated", len(GOOD)),
])
def test_stream_ending_inside_a_frame(data: bytes, why: str, needed: int) -> None:
    a, b = socket.socketpair()
    try:
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(FrameError) as info:
            read_frame(a, bytearray(100))
        assert (info.value.reason, info.value.needed) == (why, needed)
        assert f"{len(data)} are there" in str(info.value)
    finally:
        a.close()
        b.close()


def test_frame_refusals_read_to_the_declared_end_and_no_further() -> None:
    bad_crc = GOOD[:20] + bytes([GOOD[20] ^ 1]) + GOOD[21:]
    bad_tlv = raw_frame(b"y", bytes.fromhex("4200 0000"))  # an unknown required TLV type
    overlong_for_buffer = GOOD
    a, b = socket.socketpair()
    try:
        b.sendall(bad_crc + bad_tlv + overlong_for_buffer + SENTINEL)
        with pytest.raises(FrameError, match="bad CRC"):
            read_frame(a, bytearray(100))
        with pytest.raises(FrameError, match="bad TLV"):
            read_frame(a, bytearray(100))  # the stream is still in step: this is the next frame
        with pytest.raises(FrameError, match=r"overlong: .* the buffers hold 5 and 9"):
            read_frame(a, bytearray(9))
        assert a.recv(100) == GOOD[32:] + SENTINEL  # its body is still there
        b.sendall(GOOD)
        frame = read_frame(a, bytearray(100), max_payload=10, max_extensions=5)
        assert frame is not None and frame.priority == 5 and frame.payload == b"x" * 10
        b.sendall(GOOD)
        with pytest.raises(FrameError, match="overlong"):
            read_frame(a, bytearray(100), max_payload=9)
        assert a.recv(100) == GOOD[32:]
    finally:
        a.close()
        b.close()


def test_reader_pieces_for_another_engine() -> None:
    """buffers()/advance(): the header alone, then the body into the destinations; every length checked."""
    ext, pay = bytearray(8), bytearray(20)
    data = raw_frame(b"z" * 10, bytes.fromhex("0300 0100 05"))
    reader = FrameReader(pay, ext)
    (head,) = reader.buffers()
    assert len(head) == 32 and head.obj is reader and not head.readonly
    with pytest.raises(ValueError, match="more than"):
        reader.advance(33)
    head[:10] = data[:10]
    reader.advance(10)
    (head,) = reader.buffers()
    assert len(head) == 22
    head[:] = data[10:32]
    reader.advance(22)
    body = reader.buffers()
    assert [len(v) for v in body] == [5, 10] and body[0].obj is ext and body[1].obj is pay
    body[0][:] = data[32:37]
    body[1][:3] = data[37:40]
    reader.advance(8)
    (rest,) = reader.buffers()
    assert len(rest) == 7 and rest.obj is pay
    rest[:] = data[40:]
    reader.advance(7)
    assert reader.done and reader.buffers() == []
    frame = reader.frame()
    assert frame is not None and frame.payload == b"z" * 10
    with pytest.raises(ValueError):
        reader.advance(1)
    eof = FrameReader()
    eof.advance(0)
    assert eof.eof and eof.frame() is None
    cut = FrameReader()
    memoryview(cut)[:5] = data[:5]
    cut.advance(5)
    with pytest.raises(FrameError, match="truncated"):
        cut.advance(0)
    with pytest.raises(ValueError, match="not read yet"):
        FrameReader().frame()


@pytest.mark.parametrize("kind", ["socket", "socket-fd", "pipe"])
def test_a_gone_reader_is_an_error_not_a_signal(kind: str) -> None:
    st = Stream(kind)
    try:
        if st.socks:
            st.socks[0].close()
        else:
            os.close(st.fds.pop(0))
        with pytest.raises(BrokenPipeError):
            write_frame(st.w, 1, 1, b"nobody reads this")
    finally:
        st.close()


def test_bad_descriptor() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        write_frame(w, 1, 1, b"x")
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        read_frame(r)
    assert info.value.errno == errno.EBADF


# --- the system calls themselves ------------------------------------------------------------------------------

STRACED = textwrap.dedent("""
    import os, socket
    from mcp_edge.native._frame import read_frame, write_frame
    r, w = os.pipe()
    payload = b"P" * 5000
    write_frame(w, 1, 2, payload, priority=3)
    buf, ext = bytearray(8192), bytearray(16)
    frame = read_frame(r, buf, ext)
    assert frame.payload.obj is buf and frame.payload == payload and frame.extensions.obj is ext
    a, b = socket.socketpair()
    write_frame(b, 1, 3, payload, priority=3)
    frame = read_frame(a, buf, ext)
    assert frame.payload.obj is buf and frame.payload == payload
    print("ok")
""")


def test_syscalls_under_strace() -> None:
    """Out: one writev/sendmsg with three iovecs (header 32, extensions 5, payload 5000), nothing joined.
    In: the 32 header bytes alone, then one readv/recvmsg of extensions and payload into their buffers."""
    strace = shutil.which("strace")
    if strace is None:
        require_or_skip("strace", "strace is not installed: the system-call check needs it (apt-get install strace)")
    proc = subprocess.run(
        [strace, "-f", "-qq", "-s", "8", "-e", "trace=writev,readv,sendmsg,recvmsg", sys.executable, "-c", STRACED],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        require_or_skip("strace", f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
    calls = [m for line in proc.stderr.splitlines()
             if (m := re.match(r"(?:\[pid +\d+\] )?(writev|readv|sendmsg|recvmsg)\((.*)", line))]
    lens = [(m.group(1), [int(n) for n in re.findall(r"iov_len=(\d+)", m.group(2))]) for m in calls]
    assert lens == [
        ("writev", [32, 5, 5000]), ("readv", [32]), ("readv", [5, 5000]),
        ("sendmsg", [32, 5, 5000]), ("recvmsg", [32]), ("recvmsg", [5, 5000]),
    ], proc.stderr
