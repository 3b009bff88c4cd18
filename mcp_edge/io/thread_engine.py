"""The fallback engine: a thread pool over os.preadv/os.pwritev, with the io_uring engine's API.

Used where io_uring cannot be set up (``kernel.io_uring_disabled``, ENOSYS, a
seccomp filter returning EPERM in containers) or when ``MCP_EDGE_IO=threads``.
Each operation is one system call in a worker thread; the result comes back to
the event loop with ``call_soon_threadsafe``. An operation whose awaiter is
cancelled before a worker picks it up never runs; one already running finishes
(its buffers are referenced by the running call until then).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import threading
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from mcp_edge.io.alignment import check_direct_batch
from mcp_edge.io.engine import Engine, IoOp
from mcp_edge.native._dio import BufferPool, dio_alignment

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["ThreadEngine"]

_O_PATH: int = getattr(os, "O_PATH", os.O_RDONLY)
# statx mask bits, as the io_uring engine reports them (not imported from _uring: this engine runs without it)
STATX_BASIC_STATS = 0x7FF
STATX_DIOALIGN = 0x2000


def _statx(path: bytes) -> dict[str, int]:
    st = os.stat(path)
    mem = off = 0
    mask = STATX_BASIC_STATS
    try:
        fd = os.open(path, _O_PATH | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            got = dio_alignment(fd)
        except OSError:
            got = None
        finally:
            os.close(fd)
        if got is not None:
            mem, off = got
            mask |= STATX_DIOALIGN
    return {
        "mask": mask, "mode": st.st_mode, "size": st.st_size, "blocks": st.st_blocks, "blksize": st.st_blksize,
        "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns,
        "dio_mem_align": mem, "dio_offset_align": off,
    }


def _run(op: IoOp) -> Any:
    """One operation, in a worker thread."""
    k = op.kind
    if k == "read" or k == "readv":
        return os.preadv(op.fd, op.buffers, op.offset)
    if k == "write" or k == "writev":
        return os.pwritev(op.fd, op.buffers, op.offset)
    if k == "fsync":
        (os.fdatasync if op.datasync else os.fsync)(op.fd)
        return None
    if k == "openat":
        return os.open(op.path, op.flags, op.mode)
    if k == "close":
        os.close(op.fd)
        return None
    return _statx(os.fsencode(op.path))


class ThreadEngine(Engine):
    """Engine over a pool of ``workers`` threads (default 32: the queue depth where this box's disk peaks)."""

    name = "threads"

    def __init__(self, workers: int = 32) -> None:
        super().__init__()
        self._workers = max(1, workers)
        self._executor = concurrent.futures.ThreadPoolExecutor(self._workers, thread_name_prefix="mcp-edge-io")
        self._inflight: dict[concurrent.futures.Future[Any], tuple[IoOp, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._batch: concurrent.futures.ThreadPoolExecutor | None = None
        self._batch_workers = 0
        self._counts = {"ops": 0, "read_bytes": 0, "written_bytes": 0}  # (on the loop's thread: _deliver)

    @property
    def pending(self) -> int:
        """Operations handed to the pool whose results were not delivered yet."""
        return len(self._inflight)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self._workers}

    def counters(self) -> dict[str, int]:
        return dict(self._counts)

    # -- submission and completion --------------------------------------------------------------------

    def _submit(self, ops: Sequence[IoOp]) -> list[asyncio.Future[Any]]:
        self._ensure_open()
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[Any]] = []
        for op in ops:
            fut: asyncio.Future[Any] = loop.create_future()
            cf = self._executor.submit(_run, op)
            with self._lock:
                self._inflight[cf] = (op, fut)
            fut.add_done_callback(partial(self._on_cancel, cf))
            cf.add_done_callback(partial(self._on_done, loop))
            futs.append(fut)
        return futs

    @staticmethod
    def _on_cancel(cf: concurrent.futures.Future[Any], fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            cf.cancel()  # not started yet: it never runs; running: it finishes, holding its buffers

    def _on_done(self, loop: asyncio.AbstractEventLoop, cf: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            entry = self._inflight.pop(cf, None)
        if entry is None:
            return
        op, fut = entry
        try:
            loop.call_soon_threadsafe(self._deliver, op, fut, cf)
        except RuntimeError:  # the loop is closed: nobody awaits this any more
            if op.kind == "openat" and not cf.cancelled() and cf.exception() is None:
                os.close(cf.result())

    def _deliver(self, op: IoOp, fut: asyncio.Future[Any], cf: concurrent.futures.Future[Any]) -> None:
        if cf.cancelled():
            if not fut.done():
                fut.set_exception(self._closed_error(op))
            return
        exc = cf.exception()
        if fut.done():
            if op.kind == "openat" and exc is None:
                os.close(cf.result())  # its awaiter is gone: nobody else will close this fd
            return
        if isinstance(exc, OSError) and exc.errno is not None:
            fut.set_exception(self._error(op, exc.errno))
        elif exc is not None:
            fut.set_exception(exc)
        else:
            result = cf.result()
            counts = self._counts
            counts["ops"] += 1
            if op.kind in ("read", "readv"):
                counts["read_bytes"] += result
            elif op.kind in ("write", "writev"):
                counts["written_bytes"] += result
            fut.set_result(result)

    # -- synchronous batch, pool, close -----------------------------------------------------------------

    def _batch_pool(self, depth: int) -> concurrent.futures.ThreadPoolExecutor:
        if self._batch is None or self._batch_workers != depth:
            if self._batch is not None:
                self._batch.shutdown(wait=True)
            self._batch = concurrent.futures.ThreadPoolExecutor(depth, thread_name_prefix="mcp-edge-batch")
            self._batch_workers = depth
        return self._batch

    def read_batch(self, fd: int, buffers: Sequence[Buffer], offsets: Sequence[int], depth: int = 32) -> list[int]:
        self._ensure_open()
        bufs = list(buffers)
        offs = [int(o) for o in offsets]
        n = len(bufs)
        if n != len(offs):
            raise ValueError(f"{n} buffers but {len(offs)} offsets")
        if not n:
            return []
        sizes = {memoryview(b).nbytes for b in bufs}
        if len(sizes) != 1:
            raise ValueError(f"read_batch buffers must all have one size; got sizes {sorted(sizes)}")
        check_direct_batch(fd, bufs, offs, lambda i: IoOp.read(fd, bufs[i], offs[i]).describe())
        lanes = max(1, min(depth, n))
        results: list[int] = [0] * n
        errors: list[int] = [0] * n

        def lane(start: int) -> None:
            for i in range(start, n, lanes):
                try:
                    results[i] = os.preadv(fd, (bufs[i],), offs[i])
                except OSError as exc:
                    errors[i] = exc.errno or errno.EIO

        with self._batch_lock:
            executor = self._batch_pool(lanes)
            for f in [executor.submit(lane, s) for s in range(lanes)]:
                f.result()
        for i in range(n):
            if errors[i]:
                raise self._error(IoOp.read(fd, bufs[i], offs[i]), errors[i])
        return results

    def pool(self, count: int, size: int, align: int | None = None) -> BufferPool:
        """A BufferPool (nothing to register: the threads engine has no ring)."""
        self._ensure_open()
        return BufferPool(count, size, align)

    def close(self) -> None:
        """Operations not started are dropped (EngineClosedError); running ones finish before this returns."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            waiting = list(self._inflight)
        for cf in waiting:
            cf.cancel()  # the done callback hands EngineClosedError to the awaiter
        self._executor.shutdown(wait=True)
        with self._batch_lock:
            if self._batch is not None:
                self._batch.shutdown(wait=True)
                self._batch = None
