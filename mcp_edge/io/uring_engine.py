"""The io_uring engine: one Ring driven from the event loop, woken by an eventfd, no polling thread.

The asyncio side lives in C and Cython (``AsyncRing`` in ``_uring``); this
module wires it to the loop and to the engine API. How an operation travels:

1. ``read``/``write``/``_submit`` hand it to AsyncRing, which checks it (the
   slow checks call back into ``Engine._precheck``), pins its buffers in a slot
   of a C table whose number is the user_data, and preps it into the ring when
   fewer operations are outstanding than the completion queue holds; otherwise
   it waits in the backlog, in order. Its future is the only Python object.
2. What is queued in one loop iteration goes to the kernel in one
   ``io_uring_enter`` (a flush scheduled once per iteration, after the tasks
   that completions woke), or every ``SUBMIT_BATCH`` operations, whichever
   comes first; while fewer than ``SUBMIT_EAGER`` operations are in the
   kernel, each goes at once (the device has nothing else to work on).
3. The kernel signals the eventfd, which the loop watches; one wake-up reaps
   every ready completion, resolves the futures in one pass (errors built by
   ``_op_error``), refills the ring from the backlog and submits again.

Two shortcuts skip the loop, within ``INLINE_PER_TURN`` completions between
two passes of the loop (past it the awaiter lets the loop run once, so a
coroutine reading a cached file cannot starve the others):

- a read of a buffered file first tries ``preadv2(RWF_NOWAIT)``: what the page
  cache holds comes back at once, and the ring reads the rest, if any;
- an operation that finds the ring idle and nothing else ready in the loop is
  submitted at once and the completion queue polled for up to ``SPIN_NS``
  (only while it keeps paying: after a few misses in a row, polling rests).

A future whose awaiter was cancelled is just dropped: its slot keeps the
buffers pinned until the kernel's completion is reaped, so the kernel never
writes into freed memory. ``close()`` cancels what is in flight, waits for it,
and fails the awaiters with EngineClosedError.

The ring is single-issuer (IORING_SETUP_SINGLE_ISSUER, and DEFER_TASKRUN where
the kernel has them): only the thread that created the engine may submit.
``read_batch`` called from another thread, or while async operations are
outstanding, runs on a private temporary ring instead.

The parameters below were chosen on a 2-vCPU Zen 3 VM with virtio-blk (see
``mcp-edge perf run --only io``; medians of interleaved rounds on a shared,
noisy machine): polling an idle ring for up to 150 us makes a lone O_DIRECT
read as fast as a blocking ``os.preadv`` (0.9-1.1x) where waiting on the
eventfd gives 0.55-0.6x; DEFER_TASKRUN signals the eventfd straight from the
completion (coop task run wakes the loop through a signal-like detour: 10-40%
slower to wake here); submitting every 8 operations keeps the device busy
while a burst of woken tasks runs (1.3x the IOPS of one enter per iteration at
depth 32, and per-operation enters lose 10-20%). On a Zen 4 VM with the same
disk, completions at depth 32 arrive in bursts of ~30 (fio sees the same), so
the device idles while the woken tasks run in Python: submitting at once while
fewer than 4 operations are in the kernel, and every 4 after that, gave 0.87x
fio's IOPS against 0.78x for batches of 8 alone (medians of 7 interleaved
rounds: 4/4 0.87, 8/8 0.85, eager 32 0.83, batch 4 alone 0.80); RWF_NOWAIT doubles cached
random 4 KiB reads (190-200k vs 104k IOPS); an inline budget of 16 costs 5%
against an unbounded one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import threading
import types
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import EngineThreadError
from mcp_edge.io import alignment
from mcp_edge.io.alignment import alignment_error, check_direct_batch, file_alignment, is_direct
from mcp_edge.io.engine import Engine, IoOp
from mcp_edge.native._dio import BufferPool, PoolBuffer
from mcp_edge.native._uring import AsyncRing, Ring, op_name

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["UringEngine"]

log = logging.getLogger("mcp_edge.io")

# The asyncio path's parameters, in one place (how they were chosen: the module docstring).
SPIN_NS = 150_000  # poll an idle ring this long for a lone operation's completion (0: never poll)
INLINE_PER_TURN = 16  # completions served without a pass through the loop, between two passes
NOWAIT_READS = True  # try preadv2(RWF_NOWAIT) before the ring for reads of buffered files
DEFER_TASKRUN = True  # prefer IORING_SETUP_DEFER_TASKRUN (kernel 6.1+; probed, else cooperative task run)
SUBMIT_BATCH = 4  # io_uring_enter once this many operations are queued, without waiting for the flush
SUBMIT_EAGER = 4  # ... and at once while fewer than this many are in the kernel (the device would idle)

_KIND_NAMES = {i: op_name(i) for i in range(8)}


@types.coroutine
def _one_pass() -> Generator[None, None, None]:
    """Let the event loop run one iteration (asyncio.sleep(0) without its checks)."""
    yield


class UringEngine(Engine):
    """Engine over io_uring. ``UringEngine(entries=256)``; OSError when io_uring cannot be set up."""

    name = "uring"

    def __init__(self, entries: int = 256) -> None:
        super().__init__()
        self._owner = threading.get_ident()
        self._ring = Ring(entries, defer_taskrun=DEFER_TASKRUN)
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
        self._async = AsyncRing(self._ring, self._efd, self._op_error, self._op_precheck, self._refuse, self._fatal,
                                alignment)
        self._async.spin_ns = SPIN_NS
        self._async.inline = INLINE_PER_TURN
        self._async.nowait = NOWAIT_READS
        self._async.batch = SUBMIT_BATCH
        self._async.eager = SUBMIT_EAGER
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: BufferPool | None = None

    # -- state ----------------------------------------------------------------------------------------

    @property
    def ring(self) -> Ring:
        """The underlying Ring (for inspection: entries, setup_flags, supported_ops)."""
        return self._ring

    @property
    def pending(self) -> int:
        """Operations submitted or waiting in the backlog whose completions were not reaped yet."""
        return self._async.pending

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
            "async": {"spin_us": self._async.spin_ns / 1000, "inline_per_turn": self._async.inline,
                      "nowait_reads": self._async.nowait, "submit_batch": self._async.batch,
                      "submit_eager": self._async.eager, **self._async.stats},
        }

    def counters(self) -> dict[str, int]:
        return dict(self._async.stats)

    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise EngineThreadError(
                f"this io_uring engine belongs to thread {self._owner} (its ring is single-issuer) and was used "
                f"from thread {threading.get_ident()}: open an engine in the thread that runs the event loop")

    def _refuse(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """AsyncRing's way out of its fast path: raise why it cannot take operations, or move to ``loop``."""
        self._ensure_open()
        self._check_thread()
        if loop is None:
            asyncio.get_running_loop()  # raises: no running event loop
            return
        if loop is not self._loop:
            old = self._loop
            if old is not None and not old.is_closed():
                old.remove_reader(self._efd)
            loop.add_reader(self._efd, self._async.on_ready)
            self._loop = loop
            self._async.bind(loop)

    def _op_error(self, kind: int, fd: int, buffers: tuple[Buffer, ...], offset: int, path: bytes, datasync: int,
                  err: int, closed: bool) -> BaseException:
        """AsyncRing's error factory: the exception for an operation that failed with ``err``, or was cut short
        by close()."""
        op = IoOp(_KIND_NAMES[kind], fd, buffers, offset, bool(datasync), path)  # type: ignore[arg-type]
        return self._closed_error(op) if closed else self._error(op, err)

    def _fatal(self, exc: OSError) -> None:
        """AsyncRing's word that the kernel refused a submission for good: every awaiter must hear of it."""
        if not self._closed:
            log.error("io_uring submit failed, closing the engine: %s", exc)
            self.close()

    def _op_precheck(self, kind: int, fd: int, buf: Buffer, offset: int) -> None:
        """AsyncRing's slow path for the checks: what the engine raises for this read or write, if anything."""
        self._precheck(IoOp(_KIND_NAMES[kind], fd, (buf,), offset))  # type: ignore[arg-type]

    # -- operations -----------------------------------------------------------------------------------

    async def read(self, fd: int, buf: Buffer, offset: int) -> int:
        """Read up to len(buf) bytes of ``fd`` at ``offset`` into ``buf``; the count (0 at EOF)."""
        got = self._async.read(fd, buf, offset)
        if isinstance(got, int):
            return got
        if got.done():
            await _one_pass()  # served at once, past the inline budget: let the loop run before going on
        return await got

    async def write(self, fd: int, data: Buffer, offset: int) -> int:
        """Write ``data`` to ``fd`` at ``offset``; the count written."""
        got = self._async.write(fd, data, offset)
        if isinstance(got, int):
            return got
        if got.done():
            await _one_pass()
        return await got

    def _submit(self, ops: Sequence[IoOp]) -> list[asyncio.Future[Any]]:
        submit = self._async.submit
        return [submit(op) for op in ops]

    def _all_fixed(self, bufs: Sequence[Buffer]) -> bool:
        pool = self._pool
        if pool is None:
            return False
        registered = pool.buffers
        for b in bufs:
            if not isinstance(b, PoolBuffer) or b.index >= len(registered) or registered[b.index] is not b:
                return False
        return True

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
        own = threading.get_ident() == self._owner and not self._async.pending and not self._ring.queued
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
        if self._pool is not None and (self._async.pending or self._ring.queued):
            raise BlockingIOError(f"{self._async.pending} operations in flight may use the registered pool")
        pool = BufferPool(count, size, align)
        if self._pool is not None:
            self._ring.unregister_buffers()
            self._pool = None
            self._async.set_pool(None)
        self._ring.register_pool(pool)
        self._pool = pool
        self._async.set_pool(pool)
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
        if not on_loop_thread and (self._async.pending or self._ring.in_flight or self._ring.queued):
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
        self._pool = None
        try:
            self._async.close()  # cancels what is in flight, waits for every completion, resolves every future
        finally:
            with contextlib.suppress(OSError):
                os.close(self._efd)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()
