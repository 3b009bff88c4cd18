"""The io_uring engine: one Ring driven from the event loop, woken by an eventfd, no polling thread.

How an operation travels:

1. ``_submit`` gives it a user_data number and a future, and preps it into the
   ring when fewer operations are outstanding than the completion queue holds;
   otherwise it waits in the backlog (a deque), in order.
2. One ``loop.call_soon`` flush per loop iteration submits everything prepped
   during that iteration with one ``io_uring_enter``.
3. The kernel posts each completion and signals the eventfd, which the loop
   watches (``add_reader``); the reader drains the eventfd, reaps every ready
   completion straight from the ring, resolves the futures, refills the ring
   from the backlog and submits again.

A future whose awaiter was cancelled is just dropped: the Ring keeps the
operation's buffers alive until its completion is reaped, so the kernel never
writes into freed memory. ``close()`` cancels what is in flight, waits for it,
and fails the awaiters with EngineClosedError.

The ring is single-issuer (IORING_SETUP_SINGLE_ISSUER where the kernel has it):
only the thread that created the engine may submit. ``read_batch`` called from
another thread, or while async operations are outstanding, runs on a private
temporary ring instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import EngineThreadError
from mcp_edge.io.alignment import alignment_error, check_direct_batch, file_alignment, is_direct
from mcp_edge.io.engine import Engine, IoOp
from mcp_edge.native._dio import BufferPool, PoolBuffer
from mcp_edge.native._uring import STATX_BASIC_STATS, STATX_DIOALIGN, Ring

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["UringEngine"]

log = logging.getLogger("mcp_edge.io")
_REAP = 256
_DIRECT_KINDS = frozenset({"read", "write", "readv", "writev"})


class _Pending:
    __slots__ = ("fut", "op", "ud")

    def __init__(self, op: IoOp, fut: asyncio.Future[Any], ud: int) -> None:
        self.op = op
        self.fut = fut
        self.ud = ud


def _deliver(fut: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    if fut.done():
        return
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except RuntimeError:  # its loop is closed: nobody can await it any more
        pass


class UringEngine(Engine):
    """Engine over io_uring. ``UringEngine(entries=256)``; OSError when io_uring cannot be set up."""

    name = "uring"

    def __init__(self, entries: int = 256) -> None:
        super().__init__()
        self._owner = threading.get_ident()
        self._ring = Ring(entries)
        try:
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except BaseException:
            self._ring.close()
            raise
        try:
            self._ring.register_eventfd(self._efd)
        except BaseException:
            self._ring.close()
            os.close(self._efd)
            raise
        self._capacity = self._ring.cq_entries  # never more outstanding than the CQ holds: nothing overflows
        self._ops: dict[int, _Pending] = {}  # prepped into the ring, completion not yet reaped
        self._backlog: collections.deque[_Pending] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._next_ud = 1
        self._pool: BufferPool | None = None

    # -- state ----------------------------------------------------------------------------------------

    @property
    def ring(self) -> Ring:
        """The underlying Ring (for inspection: entries, setup_flags, supported_ops)."""
        return self._ring

    @property
    def pending(self) -> int:
        """Operations submitted or waiting in the backlog whose completions were not reaped yet."""
        return len(self._ops) + len(self._backlog)

    def info(self) -> dict[str, Any]:
        ring = self._ring
        return {
            "name": self.name,
            "entries": ring.entries if not ring.closed else 0,
            "cq_entries": ring.cq_entries if not ring.closed else 0,
            "setup_flags": ring.setup_flags if not ring.closed else [],
            "features": ring.features if not ring.closed else [],
            "supported_ops": ring.supported_ops if not ring.closed else {},
            "registered_pool": None if self._pool is None else {
                "count": self._pool.count, "buffer_size": self._pool.buffer_size, "pages": self._pool.pages_used},
        }

    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise EngineThreadError(
                f"this io_uring engine belongs to thread {self._owner} (its ring is single-issuer) and was used "
                f"from thread {threading.get_ident()}: open an engine in the thread that runs the event loop")

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            old = self._loop
            if old is not None and not old.is_closed():
                old.remove_reader(self._efd)
            loop.add_reader(self._efd, self._on_ready)
            self._loop = loop
        return loop

    # -- submission -----------------------------------------------------------------------------------

    def _submit(self, ops: Sequence[IoOp]) -> list[asyncio.Future[Any]]:
        self._ensure_open()
        self._check_thread()
        loop = self._bind()
        futs: list[asyncio.Future[Any]] = []
        for op in ops:
            fut: asyncio.Future[Any] = loop.create_future()
            p = _Pending(op, fut, self._next_ud)
            self._next_ud += 1
            if len(self._ops) < self._capacity and not self._backlog:
                self._prep(p)
            else:
                self._backlog.append(p)
            futs.append(fut)
        if any(op.kind in _DIRECT_KINDS and is_direct(op.fd) for op in ops):
            # O_DIRECT: into the kernel now, so the device starts at once. Batching a loop iteration's reads
            # into one io_uring_enter costs 15-20% of random 4 KiB IOPS on virtio-blk here; page-cache reads
            # complete inside the enter, so they stay batched (one enter per iteration is 20% faster there).
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return futs

    def _fixed_index(self, buf: Buffer) -> int:
        pool = self._pool
        if pool is not None and isinstance(buf, PoolBuffer):
            bufs = pool.buffers
            i = buf.index
            if i < len(bufs) and bufs[i] is buf:
                return i
        return -1

    def _all_fixed(self, bufs: Sequence[Buffer]) -> bool:
        seen: set[int] = set()
        for b in bufs:
            if id(b) not in seen:
                seen.add(id(b))
                if self._fixed_index(b) < 0:
                    return False
        return True

    def _prep(self, p: _Pending) -> None:
        op, ring, ud = p.op, self._ring, p.ud
        try:
            k = op.kind
            if k == "read":
                ring.prep_read(op.fd, op.buffers[0], op.offset, ud, self._fixed_index(op.buffers[0]))
            elif k == "write":
                ring.prep_write(op.fd, op.buffers[0], op.offset, ud, self._fixed_index(op.buffers[0]))
            elif k == "readv":
                ring.prep_readv(op.fd, op.buffers, op.offset, ud)
            elif k == "writev":
                ring.prep_writev(op.fd, op.buffers, op.offset, ud)
            elif k == "fsync":
                ring.prep_fsync(op.fd, ud, op.datasync)
            elif k == "openat":
                ring.prep_openat(op.path, op.flags, op.mode, ud)
            elif k == "close":
                ring.prep_close(op.fd, ud)
            else:
                ring.prep_statx(op.path, ud, 0, STATX_BASIC_STATS | STATX_DIOALIGN)
        except Exception as exc:  # bad buffer, or the ring refused it: this op fails alone
            _deliver(p.fut, exc=exc)
            return
        self._ops[ud] = p

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed or not self._ring.queued:
            return
        try:
            self._ring.submit()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR, errno.ENOMEM) and self._loop is not None:
                self._flush_scheduled = True  # the kernel is short of memory for a moment: try again shortly
                self._loop.call_later(0.001, self._flush)
                return
            log.error("io_uring submit failed, closing the engine: %s", exc)
            self.close()

    def _refill(self) -> None:
        while self._backlog and len(self._ops) < self._capacity:
            p = self._backlog.popleft()
            if p.fut.done():  # cancelled while waiting: it never reaches the kernel
                continue
            self._prep(p)

    # -- completion -----------------------------------------------------------------------------------

    def _on_ready(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)
        if self._closed:
            return
        while True:
            done = self._ring.reap(_REAP)
            for ud, res, _op, payload in done:
                p = self._ops.pop(ud, None)
                if p is not None:
                    self._complete(p, res, payload)
            if len(done) < _REAP:
                break
        self._refill()
        self._flush()

    def _complete(self, p: _Pending, res: int, payload: Any) -> None:
        if p.fut.done():
            if p.op.kind == "openat" and res >= 0:
                os.close(res)  # its awaiter is gone: nobody else will close this fd
            return
        if res < 0:
            _deliver(p.fut, exc=self._error(p.op, -res))
        elif p.op.kind == "statx":
            _deliver(p.fut, payload)
        elif p.op.kind in ("fsync", "close"):
            _deliver(p.fut, None)
        else:
            _deliver(p.fut, res)

    # -- synchronous batch, pool, close -----------------------------------------------------------------

    def read_batch(self, fd: int, buffers: Sequence[Buffer], offsets: Sequence[int], depth: int = 32) -> list[int]:
        self._ensure_open()
        bufs = list(buffers)
        offs = [int(o) for o in offsets]
        if len(bufs) != len(offs):
            raise ValueError(f"{len(bufs)} buffers but {len(offs)} offsets")
        if not bufs:
            return []
        direct = check_direct_batch(fd, bufs, offs, lambda i: IoOp.read(fd, bufs[i], offs[i]).describe())
        # O_DIRECT reads go to the kernel one by one as they are queued (the device starts on each at
        # once); page-cache reads complete inline, so they go all together, one io_uring_enter per wait.
        submit_batch = 1 if direct else 0
        own = threading.get_ident() == self._owner and not self._ops and not self._ring.queued
        registered = own and self._all_fixed(bufs)
        try:
            if own:
                return self._ring.read_batch(fd, bufs, offs, max(depth, 1), registered=registered,
                                             submit_batch=submit_batch)
            with Ring(max(min(depth, 4096), 1)) as ring:
                return ring.read_batch(fd, bufs, offs, max(depth, 1), submit_batch=submit_batch)
        except OSError as exc:
            if exc.errno == errno.EINVAL and is_direct(fd):
                raise alignment_error(f"batch read on fd {fd}", file_alignment(fd), [], certain=False) from exc
            if exc.errno is not None and exc.strerror and f"on fd {fd}" not in exc.strerror:
                raise OSError(exc.errno, f"{exc.strerror.rsplit(':', 1)[0]} on fd {fd}: "
                                         f"{os.strerror(exc.errno)}") from exc
            raise

    def pool(self, count: int, size: int, align: int | None = None) -> BufferPool:
        """A BufferPool registered with the ring, in place of an earlier one (one registered pool per ring).

        Reads and writes of its whole buffers then use the fixed-buffer
        operations; an earlier pool's buffers keep working, unregistered.
        OSError ENOMEM with a message naming RLIMIT_MEMLOCK when locked
        memory runs out; BlockingIOError while operations are in flight.
        """
        self._ensure_open()
        self._check_thread()
        if self._pool is not None and (self._ops or self._ring.queued):
            raise BlockingIOError(f"{len(self._ops)} operations in flight may use the registered pool")
        pool = BufferPool(count, size, align)
        if self._pool is not None:
            self._ring.unregister_buffers()
            self._pool = None
        self._ring.register_pool(pool)
        self._pool = pool
        return pool

    def close(self) -> None:
        """Cancel what is in flight, wait for it, fail its awaiters with EngineClosedError; idempotent.

        With operations outstanding this must run on the engine's thread (only it
        can submit the cancellation to a single-issuer ring): EngineThreadError
        elsewhere. An idle engine can be closed from any thread.
        """
        if self._closed:
            return
        on_loop_thread = threading.get_ident() == self._owner
        if not on_loop_thread and (self._ops or self._backlog or self._ring.in_flight or self._ring.queued):
            raise EngineThreadError(
                f"this io_uring engine has {self.pending} operations outstanding: close it on its own thread "
                f"{self._owner}, the only one that can cancel them (its ring is single-issuer)")
        self._closed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            if on_loop_thread:
                loop.remove_reader(self._efd)
            else:
                loop.call_soon_threadsafe(loop.remove_reader, self._efd)
        completions = self._ring.close()  # cancels what is in flight and waits for every completion
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        for ud, res, _op, _payload in completions:
            p = self._ops.pop(ud, None)
            if p is None:
                continue
            if p.fut.done():
                if p.op.kind == "openat" and res >= 0:
                    os.close(res)
            elif res == -errno.ECANCELED or p.op.kind == "statx":
                outcomes.append((p.fut, None, self._closed_error(p.op)))
            elif res < 0:
                outcomes.append((p.fut, None, self._error(p.op, -res)))
            else:
                outcomes.append((p.fut, None if p.op.kind in ("fsync", "close") else res, None))
        for p in [*self._ops.values(), *self._backlog]:
            outcomes.append((p.fut, None, self._closed_error(p.op)))
        self._ops.clear()
        self._backlog.clear()
        self._pool = None
        with contextlib.suppress(OSError):
            os.close(self._efd)
        for fut, result, exc in outcomes:
            _deliver(fut, result, exc)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()
