"""Whole-file helpers for plugins: ``read_file`` and ``write_file`` with a CRC32C of the content.

Both use O_DIRECT for the aligned body of the file and buffered I/O for the
unaligned tail (O_DIRECT is switched off on the same open file with
``F_SETFL`` so body and tail come from one inode, never from two versions).
Where the filesystem refuses O_DIRECT the whole file is buffered, and
``FileData.direct`` says so.

``write_file`` replaces the target atomically: the content goes to a hidden
temporary file in the same folder (``.<name>.<random>.tmp``), which is
fdatasync'ed, renamed over the target, and the folder is fsync'ed. A crash at
any moment (power loss included, with ``durable=True``) leaves the target with
either its old or its new content, never a mix. A process killed mid-write can
leave its temporary file behind; it is never the target. The writer holds an
exclusive ``flock`` on its temporary file until the rename, so a cleaner can
tell a live writer's file (locked) from one left by a dead process (see
``is_temp_name`` and ``stale_temp``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_edge.io.alignment import O_DIRECT, Alignment, buffer_address, file_alignment, open_direct
from mcp_edge.io.engine import Engine, IoOp
from mcp_edge.io.engines import get_engine
from mcp_edge.native._crc import crc32c
from mcp_edge.native._dio import AlignedBuffer

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["CHUNK", "FileData", "is_temp_name", "read_file", "stale_temp", "temp_name", "write_file"]

CHUNK = 1 << 20  # bytes per operation; a multiple of every O_DIRECT alignment
_WINDOW = 8  # staging buffers in flight when the caller's data is not aligned in memory
_BUF_ALIGN = 4096
_NAME_MAX = 255  # bytes in one file name (Linux, every filesystem the runtime supports)
_TEMP_TAIL = 1 + 12 + 4  # "." + 12 hex digits + ".tmp"


@dataclass(frozen=True, slots=True)
class FileData:
    """A file's content: ``data`` (exactly ``size`` bytes), its CRC32C, and whether O_DIRECT was used."""

    data: memoryview
    crc32c: int
    size: int
    direct: bool
    path: str


def temp_name(base: str) -> str:
    """The name of a temporary file for ``base``: ``.<base>.<12 hex>.tmp``, ``base`` cut (by bytes, at a UTF-8
    character boundary) so that the whole name fits NAME_MAX bytes."""
    raw = os.fsencode(base)
    cut = _NAME_MAX - 1 - _TEMP_TAIL
    if len(raw) > cut:
        while cut > 0 and raw[cut] & 0xC0 == 0x80:  # do not split a UTF-8 character
            cut -= 1
        raw = raw[:cut]
    return f".{os.fsdecode(raw)}.{os.urandom(6).hex()}.tmp"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` has the form of ``temp_name``'s names."""
    if not (name.startswith(".") and name.endswith(".tmp") and len(name) > 1 + _TEMP_TAIL):
        return False
    tag = name[-_TEMP_TAIL:-4]
    return tag[0] == "." and all(c in "0123456789abcdef" for c in tag[1:])


def stale_temp(name: str, dir_fd: int, min_age_s: float) -> bool:
    """Whether the temporary file ``name`` in ``dir_fd`` was left by a dead writer: no process holds its lock
    and it is at least ``min_age_s`` old (a writer takes the lock just after creating it)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns / 1e9 > time.time() - min_age_s:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        return True
    finally:
        os.close(fd)


def _set_direct(fd: int, on: bool) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, (flags | O_DIRECT) if on else (flags & ~O_DIRECT))


def _spans(start: int, end: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, end)) for a in range(start, end, CHUNK)]


async def _read_span(engine: Engine, fd: int, mv: memoryview, start: int, end: int) -> int:
    """Read [start, end) in chunks submitted together; the end of what was read without a gap."""
    spans = _spans(start, end)
    counts = await engine.gather([IoOp.read(fd, mv[a:b], a) for a, b in spans])
    pos = start
    for (a, b), n in zip(spans, counts, strict=True):
        pos = a + n
        if n < b - a:
            break
    return pos


async def read_file(path: str | os.PathLike[str], direct: bool = True, engine: Engine | None = None) -> FileData:
    """The content of ``path`` and its CRC32C.

    ``data`` is a memoryview of an aligned buffer holding exactly the bytes
    read (the file's size when it was opened; less if it shrank meanwhile).
    With ``direct`` the aligned body is read with O_DIRECT, the tail buffered.
    """
    eng = engine if engine is not None else get_engine()
    name = os.fspath(path)
    if direct:
        fd, used = open_direct(name, os.O_RDONLY)
    else:
        fd, used = os.open(name, os.O_RDONLY | os.O_CLOEXEC), False
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return FileData(memoryview(b""), crc32c(b""), 0, used, name)
        align = file_alignment(fd) if used else Alignment(1, 1, "buffered")
        buf = AlignedBuffer(-(-size // align.offset) * align.offset, max(_BUF_ALIGN, align.mem))
        mv = memoryview(buf)
        pos = 0
        body = size // align.offset * align.offset if used else 0
        if body:
            pos = await _read_span(eng, fd, mv, 0, body)
        if pos < size:
            if used:
                _set_direct(fd, False)
            if pos == body:
                pos = await _read_span(eng, fd, mv, pos, size)
            while pos < size:  # after a short read: one at a time until EOF
                n = await eng.read(fd, mv[pos:size], pos)
                if n == 0:
                    break
                pos += n
        data = mv[:pos]
        return FileData(data, crc32c(data), pos, used, name)
    finally:
        os.close(fd)


async def _write_span(engine: Engine, fd: int, src: memoryview, start: int, end: int) -> int:
    """Write src[start:end] at the same offsets in chunks submitted together; the end written without a gap."""
    spans = _spans(start, end)
    counts = await engine.gather([IoOp.write(fd, src[a:b], a) for a, b in spans])
    for (a, b), n in zip(spans, counts, strict=True):
        if n < b - a:
            return a + n
    return end


async def _write_rest(engine: Engine, fd: int, src: memoryview, pos: int, end: int) -> None:
    while pos < end:
        n = await engine.write(fd, src[pos:end], pos)
        if n == 0:
            raise OSError(errno.ENOSPC, f"write of {end - pos} bytes at offset {pos} on fd {fd} wrote nothing")
        pos += n


async def _write_direct(engine: Engine, fd: int, src: memoryview, body: int, align: Alignment) -> int:
    """Write src[:body] with O_DIRECT, straight from ``src`` when it is aligned in memory, else through
    aligned staging buffers; the end written without a gap."""
    if buffer_address(src) % align.mem == 0:
        return await _write_span(engine, fd, src, 0, body)
    count = min(_WINDOW, -(-body // CHUNK))
    staging = [AlignedBuffer(min(CHUNK, body), max(_BUF_ALIGN, align.mem)) for _ in range(count)]
    views = [memoryview(s) for s in staging]
    spans = _spans(0, body)
    for w in range(0, len(spans), len(views)):
        window = spans[w:w + len(views)]
        ops = []
        for v, (a, b) in zip(views, window, strict=False):
            v[:b - a] = src[a:b]
            ops.append(IoOp.write(fd, v[:b - a], a))
        counts = await engine.gather(ops)
        for (a, b), n in zip(window, counts, strict=True):
            if n < b - a:
                return a + n
    return body


async def write_file(
    path: str | os.PathLike[str],
    data: Buffer,
    direct: bool = True,
    durable: bool = True,
    engine: Engine | None = None,
    mode: int | None = None,
) -> FileData:
    """Replace ``path`` atomically with ``data``; returns its FileData (``data`` is a view of the input).

    ``durable``: fdatasync the content before the rename and fsync the folder
    after it, so the new content survives power loss once this returns;
    without it the replace is still atomic for readers and for a process crash.
    ``mode``: permissions of a new file (default 0o644, less the umask); an
    existing target keeps its own.
    """
    eng = engine if engine is not None else get_engine()
    name = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(name))
    src = memoryview(data).cast("B")
    size = src.nbytes
    crc = crc32c(src)
    try:
        keep: int | None = stat.S_IMODE(os.stat(name).st_mode)
    except FileNotFoundError:
        keep = None
    tmp = os.path.join(folder, temp_name(base))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    create_mode = keep if keep is not None else (0o644 if mode is None else mode)
    if direct:
        fd, used = open_direct(tmp, flags, create_mode)
    else:
        fd, used = os.open(tmp, flags | os.O_CLOEXEC, create_mode), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until close: a cleaner leaves a live writer's file alone
            if keep is not None:
                os.fchmod(fd, keep)
            pos = 0
            if used:
                align = file_alignment(fd)
                body = size // align.offset * align.offset
                if body:
                    pos = await _write_direct(eng, fd, src, body, align)
                if pos < size:
                    _set_direct(fd, False)  # the tail (or what a short write left) goes buffered
            elif size:
                pos = await _write_span(eng, fd, src, 0, size)
            await _write_rest(eng, fd, src, pos, size)
            if durable:
                await eng.fsync(fd, datasync=True)
        finally:
            os.close(fd)
        os.replace(tmp, name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            await eng.fsync(dfd)
        finally:
            os.close(dfd)
    return FileData(src, crc, size, used, name)
