"""What every I/O engine offers: the operations (``IoOp``), the async API, errors that name the operation.

Two engines implement ``Engine``: ``UringEngine`` (io_uring, completions wake
the event loop through an eventfd) and ``ThreadEngine`` (a thread pool over
``os.preadv``/``os.pwritev``). Both run the same checks before submitting and
turn failures into the same errors, so callers cannot tell them apart except
by ``name`` and speed.
"""

from __future__ import annotations

import abc
import asyncio
import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from mcp_edge.errors import EngineClosedError
from mcp_edge.io.alignment import (
    alignment_error,
    alignment_problems,
    check_direct,
    file_alignment,
    is_direct,
    surely_aligned,
)

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from typing_extensions import Buffer

    from mcp_edge.native._dio import BufferPool

__all__ = ["Engine", "IoOp", "OpKind"]

OpKind = Literal["read", "write", "readv", "writev", "fsync", "openat", "close", "statx"]
_RW: frozenset[str] = frozenset({"read", "write", "readv", "writev"})
_INTO: frozenset[str] = frozenset({"read", "readv"})


def _nbytes(buf: Buffer) -> int:
    with memoryview(buf) as mv:
        return mv.nbytes


@dataclass(frozen=True, slots=True, eq=False)
class IoOp:
    """One operation for ``Engine.gather``; build it with the class methods (``IoOp.read(fd, buf, 0)``)."""

    kind: OpKind
    fd: int = -1
    buffers: tuple[Buffer, ...] = field(default=())
    offset: int = 0
    datasync: bool = False
    path: str | bytes = ""
    flags: int = 0
    mode: int = 0o644

    @classmethod
    def read(cls, fd: int, buf: Buffer, offset: int) -> IoOp:
        """Read up to len(buf) bytes at ``offset`` into the writable ``buf``; result: bytes read."""
        return cls("read", fd, (buf,), offset)

    @classmethod
    def write(cls, fd: int, data: Buffer, offset: int) -> IoOp:
        """Write ``data`` at ``offset``; result: bytes written."""
        return cls("write", fd, (data,), offset)

    @classmethod
    def readv(cls, fd: int, buffers: Sequence[Buffer], offset: int) -> IoOp:
        """Read into ``buffers`` in turn from ``offset``; result: bytes read."""
        return cls("readv", fd, tuple(buffers), offset)

    @classmethod
    def writev(cls, fd: int, buffers: Sequence[Buffer], offset: int) -> IoOp:
        """Write ``buffers`` in turn from ``offset``; result: bytes written."""
        return cls("writev", fd, tuple(buffers), offset)

    @classmethod
    def fsync(cls, fd: int, datasync: bool = False) -> IoOp:
        """fsync (fdatasync with ``datasync``); result 0."""
        return cls("fsync", fd, datasync=datasync)

    @classmethod
    def openat(cls, path: str | bytes | os.PathLike[str], flags: int, mode: int = 0o644) -> IoOp:
        """open(path, flags | O_CLOEXEC, mode); result: the new fd."""
        return cls("openat", path=os.fsencode(path), flags=flags | os.O_CLOEXEC, mode=mode)

    @classmethod
    def close(cls, fd: int) -> IoOp:
        """close(fd); result 0."""
        return cls("close", fd)

    @classmethod
    def statx(cls, path: str | bytes | os.PathLike[str]) -> IoOp:
        """statx(path); result: a dict (only through ``Engine.statx``)."""
        return cls("statx", path=os.fsencode(path))

    def describe(self) -> str:
        """The operation in words, as errors name it: "read of 4096 bytes at offset 0 on fd 7"."""
        k = self.kind
        if k in ("read", "write"):
            return f"{k} of {_nbytes(self.buffers[0])} bytes at offset {self.offset} on fd {self.fd}"
        if k in ("readv", "writev"):
            total = sum(_nbytes(b) for b in self.buffers)
            return f"{k} of {len(self.buffers)} buffers ({total} bytes) at offset {self.offset} on fd {self.fd}"
        if k == "fsync":
            return f"{'fdatasync' if self.datasync else 'fsync'} of fd {self.fd}"
        if k == "close":
            return f"close of fd {self.fd}"
        return f"{'open' if k == 'openat' else k} of {os.fsdecode(self.path)!r}"


class Engine(abc.ABC):
    """An asynchronous file I/O engine (``open_engine()`` picks one).

    Coroutines must be awaited in a running event loop. Reads and writes are
    single system calls: a short count is returned as it is (EOF, or the end
    of what the kernel moved), never an error. Failures raise ``OSError`` (the
    subclass Python picks from errno) whose message names the operation, the
    fd and the offset; with O_DIRECT a misaligned buffer address, length or
    offset raises ``DirectIOAlignmentError`` before anything is submitted.
    """

    name: str = "?"

    def __init__(self) -> None:
        self._closed = False

    # -- what subclasses provide -------------------------------------------------------------------------

    @abc.abstractmethod
    def _submit(self, ops: Sequence[IoOp]) -> list[asyncio.Future[Any]]:
        """Queue ``ops`` (already checked) and return one future per op, resolved by their completions."""

    @abc.abstractmethod
    def read_batch(self, fd: int, buffers: Sequence[Buffer], offsets: Sequence[int], depth: int = 32) -> list[int]:
        """Read len(buffers[i]) bytes at offsets[i] into each buffer, ``depth`` at a time; blocks.

        All buffers have one size. Returns the byte counts; the first failed
        read (in list order) raises OSError naming its offset.
        """

    @abc.abstractmethod
    def pool(self, count: int, size: int, align: int | None = None) -> BufferPool:
        """A BufferPool of ``count`` buffers of ``size`` bytes (registered with the ring on io_uring)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the engine: operations in flight finish or are cancelled (their awaiters get the result or
        EngineClosedError), and no buffer is left in the kernel's hands. Idempotent."""

    @property
    @abc.abstractmethod
    def pending(self) -> int:
        """Operations handed to the engine whose results were not delivered yet."""

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        """What this engine is and runs with, as plain data (for ``mcp-edge doctor``)."""

    @abc.abstractmethod
    def counters(self) -> dict[str, int]:
        """Since the engine opened: ``ops`` (operations completed through the event loop API, failed ones left
        out), ``read_bytes`` and ``written_bytes`` (what those reads and writes moved), and the engine's own
        counters (io_uring: ``enters``, ``wakeups``...). The metrics read them at each scrape."""

    # -- the API ------------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self, fd: int, buf: Buffer, offset: int) -> int:
        """Read up to len(buf) bytes of ``fd`` at ``offset`` into ``buf``; the count (0 at EOF)."""
        return cast(int, await self._one(IoOp.read(fd, buf, offset)))

    async def write(self, fd: int, data: Buffer, offset: int) -> int:
        """Write ``data`` to ``fd`` at ``offset``; the count written."""
        return cast(int, await self._one(IoOp.write(fd, data, offset)))

    async def readv(self, fd: int, buffers: Sequence[Buffer], offset: int) -> int:
        """Read into ``buffers`` in turn from ``offset``; the total count."""
        return cast(int, await self._one(IoOp.readv(fd, buffers, offset)))

    async def writev(self, fd: int, buffers: Sequence[Buffer], offset: int) -> int:
        """Write ``buffers`` in turn from ``offset``; the total count."""
        return cast(int, await self._one(IoOp.writev(fd, buffers, offset)))

    async def fsync(self, fd: int, datasync: bool = False) -> None:
        """fsync(fd), or fdatasync(fd) with ``datasync``."""
        await self._one(IoOp.fsync(fd, datasync))

    async def openat(self, path: str | bytes | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
        """open(path, flags | O_CLOEXEC, mode); the new fd."""
        return cast(int, await self._one(IoOp.openat(path, flags, mode)))

    async def close_fd(self, fd: int) -> None:
        """close(fd)."""
        await self._one(IoOp.close(fd))

    async def statx(self, path: str | bytes | os.PathLike[str]) -> dict[str, int]:
        """The basic stats of ``path`` plus its O_DIRECT alignment (0 where not reported), as a dict:
        mode, size, blocks, blksize, nlink, uid, gid, ino, mtime_ns, dio_mem_align, dio_offset_align, mask."""
        return cast("dict[str, int]", await self._one(IoOp.statx(path)))

    async def gather(self, ops: Iterable[IoOp]) -> list[int]:
        """Run ``ops`` together (one submission on io_uring); their results in order.

        Every op runs to completion even when some fail; then the first
        failure in list order is raised, with a note saying how many failed.
        Alignment problems are raised before anything is submitted. Cancelling
        the awaiting task cancels the ops not yet done.
        """
        batch = list(ops)
        if not batch:
            return []
        for op in batch:
            if op.kind == "statx":
                raise ValueError("statx has a dict result: use Engine.statx, not gather")
            self._precheck(op)
        futs = self._submit(batch)
        try:
            await asyncio.wait(futs)
        except asyncio.CancelledError:
            for f in futs:
                f.cancel()
            raise
        errors = [f.exception() for f in futs if f.exception() is not None]
        if errors:
            first = errors[0]
            assert first is not None
            if len(batch) > 1:
                first.add_note(f"{len(errors)} of the {len(batch)} operations of this gather failed; "
                               f"the others completed")
            raise first
        return [cast(int, f.result()) for f in futs]

    # -- shared machinery -----------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise EngineClosedError(errno.ECANCELED, f"the {self.name} I/O engine is closed")

    def _precheck(self, op: IoOp) -> None:
        self._ensure_open()
        if op.kind in _RW and surely_aligned(op.buffers, op.offset):
            return  # pool or aligned buffers (always writable) at an aligned offset: nothing to check
        if op.kind in _RW:
            if op.kind in _INTO:
                for b in op.buffers:
                    with memoryview(b) as mv:
                        if mv.readonly:
                            raise TypeError(f"{op.describe()}: the buffer is read-only")
            check_direct(op.describe(), op.fd, op.buffers, op.offset)

    async def _one(self, op: IoOp) -> Any:
        self._precheck(op)
        (fut,) = self._submit((op,))
        return await fut

    def _error(self, op: IoOp, err: int) -> OSError:
        """The exception for ``op`` failing with ``err``: OSError naming the operation, or, for EINVAL on an
        O_DIRECT fd, DirectIOAlignmentError saying what the alignment is and what broke it."""
        if err == errno.EINVAL and op.kind in _RW and is_direct(op.fd):
            try:
                align = file_alignment(op.fd)
                return alignment_error(op.describe(), align, alignment_problems(align, op.buffers, op.offset),
                                       certain=False)
            except OSError:
                pass
        return OSError(err, f"{op.describe()}: {os.strerror(err)}")

    def _closed_error(self, op: IoOp) -> EngineClosedError:
        return EngineClosedError(errno.ECANCELED, f"{op.describe()}: cancelled: the {self.name} engine was closed")

    async def aclose(self) -> None:
        """``close()``, then one pass of the loop so the awaiters of cut-short operations see it."""
        self.close()
        await asyncio.sleep(0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' closed' if self._closed else ''}>"
