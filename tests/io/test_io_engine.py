"""The engine API, run against both engines: integrity, short reads, errors, backpressure, cancellation, close."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import random
import threading
import weakref
from pathlib import Path

import pytest

from mcp_edge.errors import EngineClosedError, EngineThreadError
from mcp_edge.io import Engine, IoOp, open_engine
from mcp_edge.io.alignment import O_DIRECT
from mcp_edge.native import crc32c
from mcp_edge.native._dio import AlignedBuffer

RW = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
BAD_FD = 999_999  # never open: above any fd limit this suite runs with


class Buf(bytearray):
    """A bytearray that can be weakly referenced (to see when the engine lets go of it)."""


def make_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def drain(engine: Engine) -> None:
    """Let the loop run until the engine has nothing outstanding (bounded, not timed)."""
    for _ in range(10_000):
        if not engine.pending:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{engine.pending} operations never completed")


# -- basic operations -----------------------------------------------------------------------------------------

def test_read_write_roundtrip(engine: Engine, workdir: Path) -> None:
    path = workdir / "f"

    async def main() -> None:
        fd = await engine.openat(path, RW, 0o600)
        try:
            assert await engine.write(fd, b"hello world", 0) == 11
            assert await engine.write(fd, memoryview(b"XXWORLD")[2:], 6) == 5
            buf = bytearray(11)
            assert await engine.read(fd, buf, 0) == 11
            assert buf == b"hello WORLD"
            await engine.fsync(fd)
            await engine.fsync(fd, datasync=True)
        finally:
            await engine.close_fd(fd)

    asyncio.run(main())
    assert path.read_bytes() == b"hello WORLD"
    assert (path.stat().st_mode & 0o777) == 0o600


def test_readv_writev(engine: Engine, workdir: Path) -> None:
    path = workdir / "v"

    async def main() -> None:
        fd = await engine.openat(path, RW)
        try:
            assert await engine.writev(fd, [b"abc", bytearray(b"defg"), memoryview(b"hi")], 10) == 9
            a, b = bytearray(4), bytearray(100)
            assert await engine.readv(fd, [a, b], 9) == 10
            assert (bytes(a), bytes(b[:6])) == (b"\0abc", b"defghi")
        finally:
            await engine.close_fd(fd)

    asyncio.run(main())


def test_counters_add_up_what_the_operations_moved(engine: Engine, workdir: Path) -> None:
    path = workdir / "c"
    before = engine.counters()

    async def main() -> None:
        fd = await engine.openat(path, RW)
        try:
            assert await engine.write(fd, b"x" * 5000, 0) == 5000
            assert await engine.writev(fd, [b"ab", b"cd"], 5000) == 4
            assert await engine.read(fd, bytearray(100), 0) == 100
            assert await engine.readv(fd, [bytearray(3), bytearray(10)], 4998) == 6  # short: the file ends
        finally:
            await engine.close_fd(fd)
        ro = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(OSError):
                await engine.write(ro, b"no", 0)  # a failed operation is not counted
        finally:
            os.close(ro)

    asyncio.run(main())
    after = engine.counters()
    assert after["written_bytes"] - before["written_bytes"] == 5004
    assert after["read_bytes"] - before["read_bytes"] == 106
    assert after["ops"] - before["ops"] == 6  # openat, 2 writes, 2 reads, close


def test_statx_matches_stat(engine: Engine, workdir: Path) -> None:
    path = workdir / "s"
    make_file(path, b"x" * 12345)

    async def main() -> dict[str, int]:
        return await engine.statx(path)

    st, ref = asyncio.run(main()), os.stat(path)
    assert (st["size"], st["mode"], st["ino"], st["nlink"], st["mtime_ns"]) == (
        ref.st_size, ref.st_mode, ref.st_ino, ref.st_nlink, ref.st_mtime_ns)
    assert st["dio_mem_align"] >= 0 and st["dio_offset_align"] >= 0


def test_errors_name_the_operation(engine: Engine, workdir: Path) -> None:
    missing = workdir / "missing"
    r = BAD_FD

    async def main() -> None:
        with pytest.raises(OSError) as exc:
            await engine.read(r, bytearray(4096), 100)
        assert exc.value.errno == errno.EBADF
        assert str(exc.value) == f"[Errno 9] read of 4096 bytes at offset 100 on fd {r}: Bad file descriptor"
        with pytest.raises(FileNotFoundError, match=r"open of '.*missing': No such file"):
            await engine.openat(missing, os.O_RDONLY)
        with pytest.raises(FileNotFoundError, match=r"statx of '.*missing'"):
            await engine.statx(missing)
        with pytest.raises(OSError, match=rf"fdatasync of fd {r}: Bad file descriptor"):
            await engine.fsync(r, datasync=True)
        with pytest.raises(TypeError, match="read-only"):
            await engine.read(BAD_FD, b"immutable", 0)

    asyncio.run(main())


def test_short_reads_and_eof(engine: Engine, workdir: Path) -> None:
    path = workdir / "short"
    data = random.Random(1).randbytes(10_000)
    make_file(path, data)

    async def main() -> None:
        for flags in (os.O_RDONLY, os.O_RDONLY | O_DIRECT):
            fd = os.open(path, flags | os.O_CLOEXEC)
            try:
                buf = AlignedBuffer(4096)
                assert await engine.read(fd, buf, 8192) == 10_000 - 8192  # short: the file ends
                assert bytes(memoryview(buf)[:1808]) == data[8192:]
                assert await engine.read(fd, buf, 10_240) == 0  # at and past EOF: 0, not an error
                assert await engine.read(fd, buf, 1 << 30) == 0
                assert await engine.readv(fd, [AlignedBuffer(8192), AlignedBuffer(4096)], 0) == 10_000
                assert await engine.gather([IoOp.read(fd, AlignedBuffer(4096), off) for off in (0, 4096, 8192, 12288)]
                                           ) == [4096, 4096, 1808, 0]
            finally:
                os.close(fd)

    asyncio.run(main())


# -- integrity ------------------------------------------------------------------------------------------------

def test_integrity_random_sizes_and_offsets(engine: Engine, workdir: Path, rng: random.Random) -> None:
    """Random writes (O_DIRECT aligned and buffered at any offset) against a model; reads checked by CRC32C."""
    size = 1 << 20
    path = workdir / "data"
    model = bytearray(rng.randbytes(size))
    make_file(path, bytes(model))

    async def main() -> None:
        bfd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        dfd = os.open(path, os.O_RDWR | os.O_CLOEXEC | O_DIRECT)
        try:
            for _round in range(6):
                # A batch of writes on ranges that do not overlap, half direct and half buffered.
                ops: list[IoOp] = []
                taken: list[tuple[int, int]] = []
                for _ in range(rng.randrange(1, 40)):
                    direct = rng.random() < 0.5
                    if direct:
                        n = rng.randrange(1, 17) * 4096
                        off = rng.randrange(0, (size - n) // 4096 + 1) * 4096
                    else:
                        n = rng.randrange(1, 20_000)
                        off = rng.randrange(0, size - n + 1)
                    if any(off < e and s < off + n for s, e in taken):
                        continue
                    taken.append((off, off + n))
                    chunk = rng.randbytes(n)
                    model[off:off + n] = chunk
                    if direct:
                        buf = AlignedBuffer(n)
                        memoryview(buf)[:] = chunk
                        ops.append(IoOp.write(dfd, buf, off))
                    else:
                        ops.append(IoOp.write(bfd, chunk, off))
                counts = await engine.gather(ops)
                assert counts == [len(memoryview(op.buffers[0])) for op in ops]
                # Reads of random ranges, some past the end, each compared by CRC.
                reads = []
                for _ in range(rng.randrange(1, 60)):
                    if rng.random() < 0.5:
                        n = rng.randrange(1, 33) * 4096
                        off = rng.randrange(0, size // 4096 + 2) * 4096
                        reads.append((IoOp.read(dfd, AlignedBuffer(n), off), off, n))
                    else:
                        n = rng.randrange(1, 50_000)
                        off = rng.randrange(0, size + 100)
                        reads.append((IoOp.read(bfd, bytearray(n), off), off, n))
                got = await engine.gather([op for op, _, _ in reads])
                for (op, off, n), count in zip(reads, got, strict=True):
                    want = bytes(model[off:off + n])
                    assert count == len(want), (off, n)
                    assert crc32c(memoryview(op.buffers[0])[:count]) == crc32c(want), (off, n)
        finally:
            os.close(bfd)
            os.close(dfd)

    asyncio.run(main())
    assert crc32c(path.read_bytes()) == crc32c(model)


# -- backpressure ----------------------------------------------------------------------------------------------

def test_many_operations_beyond_the_ring(engine: Engine, workdir: Path, rng: random.Random) -> None:
    """2,000 concurrent tasks and a 2,000-op gather on a 16-entry completion queue: nothing lost."""
    n, rec = 2000, 512
    path = workdir / "many"
    records = [rng.randbytes(rec) for _ in range(n)]

    async def main() -> None:
        fd = os.open(path, RW)
        try:
            counts = await asyncio.gather(*(engine.write(fd, records[i], i * rec) for i in range(n)))
            assert counts == [rec] * n
            bufs = [bytearray(rec) for _ in range(n)]
            order = list(range(n))
            rng.shuffle(order)
            got = await engine.gather([IoOp.read(fd, bufs[i], i * rec) for i in order])
            assert got == [rec] * n
            assert all(bufs[i] == records[i] for i in range(n))
            await drain(engine)
        finally:
            os.close(fd)

    asyncio.run(main())
    assert path.read_bytes() == b"".join(records)


def test_gather_raises_first_error_after_all_completed(engine: Engine, workdir: Path) -> None:
    path = workdir / "g"
    r = w = BAD_FD

    async def main() -> None:
        fd = os.open(path, RW)
        try:
            ops = [IoOp.write(fd, b"a" * 10, 0), IoOp.read(r, bytearray(5), 7), IoOp.write(fd, b"b" * 10, 10),
                   IoOp.read(w, bytearray(5), 9), IoOp.write(fd, b"c" * 10, 20)]
            with pytest.raises(OSError) as exc:
                await engine.gather(ops)
            assert exc.value.errno == errno.EBADF
            assert f"read of 5 bytes at offset 7 on fd {r}" in str(exc.value)  # the first in list order
            assert any("2 of the 5 operations" in note for note in exc.value.__notes__)
            assert await engine.gather([]) == []
        finally:
            os.close(fd)

    asyncio.run(main())
    assert path.read_bytes() == b"a" * 10 + b"b" * 10 + b"c" * 10  # the others all ran


# -- cancellation ----------------------------------------------------------------------------------------------

def test_cancelled_awaiters_lose_nothing(engine: Engine, workdir: Path, rng: random.Random) -> None:
    """Cancel half of 300 awaiting reads: the rest complete correctly and the engine stays usable."""
    data = rng.randbytes(300 * 4096)
    path = workdir / "c"
    make_file(path, data)

    async def main() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | O_DIRECT)
        try:
            bufs = [AlignedBuffer(4096) for _ in range(300)]
            tasks = [asyncio.create_task(engine.read(fd, bufs[i], i * 4096)) for i in range(300)]
            await asyncio.sleep(0)  # every task has submitted (or queued) its read
            for t in tasks[::2]:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for i, res in enumerate(results):
                if i % 2:
                    assert res == 4096 and bytes(bufs[i]) == data[i * 4096:(i + 1) * 4096]
                else:
                    assert isinstance(res, asyncio.CancelledError) or res == 4096
            await drain(engine)
            buf = AlignedBuffer(4096)
            assert await engine.read(fd, buf, 4096) == 4096 and bytes(buf) == data[4096:8192]
            # Cancelling a gather cancels its operations and leaves the engine usable.
            ops = [IoOp.read(fd, AlignedBuffer(4096), 0) for _ in range(100)]
            gathering = asyncio.ensure_future(engine.gather(ops))
            await asyncio.sleep(0)
            gathering.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gathering
            await drain(engine)
            assert await engine.read(fd, buf, 0) == 4096
        finally:
            os.close(fd)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_cancelled_read_keeps_its_buffer_until_completion(engine: Engine) -> None:
    """io_uring: a read stays in flight after its awaiter is cancelled; the engine keeps its buffer alive
    until the kernel completes it, then lets go."""
    r, w = os.pipe()

    async def main() -> None:
        buf = Buf(16)
        ref = weakref.ref(buf)
        task = asyncio.create_task(engine.read(r, buf, 0))
        del buf
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert engine.pending == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
        assert ref() is not None, "the buffer of an in-flight read was freed"
        os.write(w, b"late data")  # the kernel completes the read into the still-alive buffer
        await drain(engine)
        gc.collect()
        assert ref() is None, "the engine kept the buffer after the completion"

    try:
        asyncio.run(main())
    finally:
        os.close(r)
        os.close(w)


def test_cancelled_queued_op_never_runs(workdir: Path) -> None:
    """Threads: an operation whose awaiter is cancelled before a worker takes it never runs."""
    fifo = workdir / "fifo"
    os.mkfifo(fifo)
    path = workdir / "t"
    make_file(path, b"old!")
    engine = open_engine("threads", entries=1)  # one worker, which the FIFO open blocks

    async def main() -> None:
        opener = asyncio.create_task(engine.openat(fifo, os.O_RDONLY))
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            writer = asyncio.create_task(engine.write(fd, b"new!", 0))
            await asyncio.sleep(0)
            writer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writer
            wfd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)  # unblocks the worker
            os.close(wfd)
            await engine.close_fd(await opener)
            await drain(engine)
        finally:
            os.close(fd)

    try:
        asyncio.run(main())
    finally:
        engine.close()
    assert path.read_bytes() == b"old!"


# -- close -----------------------------------------------------------------------------------------------------

def test_close_with_operations_in_flight(engine: Engine, workdir: Path, rng: random.Random) -> None:
    """close() while 300 reads are outstanding: each awaiter gets its data or EngineClosedError, nothing else."""
    data = rng.randbytes(300 * 4096)
    path = workdir / "cl"
    make_file(path, data)

    async def main() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | O_DIRECT)
        try:
            bufs = [AlignedBuffer(4096) for _ in range(300)]
            tasks = [asyncio.create_task(engine.read(fd, bufs[i], i * 4096)) for i in range(300)]
            await asyncio.sleep(0)
            engine.close()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for i, res in enumerate(results):
                if isinstance(res, BaseException):
                    assert isinstance(res, EngineClosedError) and res.errno == errno.ECANCELED, repr(res)
                else:
                    assert res == 4096 and bytes(bufs[i]) == data[i * 4096:(i + 1) * 4096]
            with pytest.raises(EngineClosedError):
                await engine.read(fd, bufs[0], 0)
            engine.close()  # idempotent
            await engine.aclose()
        finally:
            os.close(fd)

    asyncio.run(main())
    assert engine.closed


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_close_cancels_reads_that_would_never_complete(engine: Engine) -> None:
    """io_uring: reads of an empty pipe are in flight for good; close() cancels them and fails their awaiters."""
    r, w = os.pipe()

    async def main() -> None:
        bufs = [Buf(8) for _ in range(5)]
        tasks = [asyncio.create_task(engine.read(r, b, 0)) for b in bufs]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert engine.pending == 5
        engine.close()
        for res in await asyncio.gather(*tasks, return_exceptions=True):
            assert isinstance(res, EngineClosedError) and res.errno == errno.ECANCELED
            assert "the uring engine was closed" in str(res)

    try:
        asyncio.run(main())
    finally:
        os.close(r)
        os.close(w)


def test_close_waits_for_running_operations(workdir: Path) -> None:
    """Threads: close() drops what no worker has taken and returns once the running operation is done."""
    fifo = workdir / "fifo"
    os.mkfifo(fifo)
    engine = open_engine("threads", entries=1)

    def unblock_when_closed() -> None:
        while not engine.closed:
            threading.Event().wait(0.005)
        os.close(os.open(fifo, os.O_WRONLY | os.O_CLOEXEC))

    helper = threading.Thread(target=unblock_when_closed)

    async def main() -> None:
        opener = asyncio.create_task(engine.openat(fifo, os.O_RDONLY))
        queued = [asyncio.create_task(engine.statx(fifo)) for _ in range(5)]
        await asyncio.sleep(0)
        helper.start()
        engine.close()
        for res in await asyncio.gather(*queued, return_exceptions=True):
            assert isinstance(res, EngineClosedError)
        os.close(await opener)  # it was running: it completed

    asyncio.run(main())
    helper.join()


# -- threads, loops, batches, pools ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_uring_engine_belongs_to_its_thread(engine: Engine, workdir: Path) -> None:
    path = workdir / "th"
    make_file(path, b"z" * 8192)
    errors: list[BaseException] = []
    counts: list[list[int]] = []

    def other() -> None:
        try:
            asyncio.run(engine.read(BAD_FD, bytearray(1), 0))
        except BaseException as exc:
            errors.append(exc)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:  # the synchronous batch works anywhere: off the owner thread it uses a private ring
            counts.append(engine.read_batch(fd, [bytearray(4096), bytearray(4096)], [0, 4096]))
        finally:
            os.close(fd)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert isinstance(errors[0], EngineThreadError)
    assert "single-issuer" in str(errors[0])
    assert counts == [[4096, 4096]]


def test_engine_follows_the_running_loop(engine: Engine, workdir: Path) -> None:
    """One engine used by two asyncio.run() calls in turn (a new loop each time)."""
    path = workdir / "loops"
    make_file(path, b"abcdefgh")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(2):
            buf = bytearray(8)
            assert asyncio.run(engine.read(fd, buf, 0)) == 8 and buf == b"abcdefgh"
    finally:
        os.close(fd)


def test_read_batch(engine: Engine, workdir: Path, rng: random.Random) -> None:
    data = rng.randbytes(64 * 4096 + 100)
    path = workdir / "batch"
    make_file(path, data)
    offsets = [rng.randrange(0, 66) * 4096 for _ in range(200)]
    for flags in (os.O_RDONLY, os.O_RDONLY | O_DIRECT):
        fd = os.open(path, flags | os.O_CLOEXEC)
        try:
            bufs = [AlignedBuffer(4096) for _ in offsets]
            counts = engine.read_batch(fd, bufs, offsets, depth=16)
            for b, off, n in zip(bufs, offsets, counts, strict=True):
                assert n == len(data[off:off + 4096])
                assert bytes(memoryview(b)[:n]) == data[off:off + n]
            assert engine.read_batch(fd, [], []) == []
            with pytest.raises(ValueError, match="offsets"):
                engine.read_batch(fd, bufs[:2], [0])
        finally:
            os.close(fd)
    with pytest.raises(OSError, match=rf"read of 4096 bytes at offset 0 on fd {BAD_FD}: Bad file descriptor"):
        engine.read_batch(BAD_FD, [bytearray(4096)], [0])


def test_pool_buffers_with_direct_io(engine: Engine, workdir: Path, rng: random.Random) -> None:
    """A pool from the engine (registered with the ring on io_uring) serves O_DIRECT reads and writes."""
    pool = engine.pool(8, 8192)
    assert pool.pages_used in ("4k", "thp", "hugetlb")
    path = workdir / "pool"
    data = rng.randbytes(16 * 8192)
    make_file(path, bytes(len(data)))

    async def main() -> None:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | O_DIRECT)
        try:
            bufs = [pool.acquire() for _ in range(8)]
            for half in (0, 8):
                for i, b in enumerate(bufs):
                    memoryview(b)[:] = data[(half + i) * 8192:(half + i + 1) * 8192]
                assert await engine.gather([IoOp.write(fd, b, (half + i) * 8192) for i, b in enumerate(bufs)]
                                           ) == [8192] * 8
            for b in bufs:
                memoryview(b)[:] = bytes(8192)
            counts = engine.read_batch(fd, bufs, [i * 8192 for i in range(8, 16)], depth=4)
            assert counts == [8192] * 8
            assert b"".join(bytes(b) for b in bufs) == data[8 * 8192:]
            assert await engine.read(fd, bufs[0], 0) == 8192 and bytes(bufs[0]) == data[:8192]
            for b in bufs:
                pool.release(b)
        finally:
            os.close(fd)

    asyncio.run(main())
    engine.pool(4, 4096)  # a second pool replaces the first's registration


def test_context_managers(kind: str, workdir: Path) -> None:
    path = workdir / "cm"
    make_file(path, b"0123")
    with open_engine(kind, entries=4) as eng:
        assert eng.name == kind and not eng.closed
    assert eng.closed

    async def main() -> bytes:
        async with open_engine(kind, entries=4) as eng2:
            fd = await eng2.openat(path, os.O_RDONLY)
            buf = bytearray(4)
            await eng2.read(fd, buf, 0)
            await eng2.close_fd(fd)
        assert eng2.closed
        return bytes(buf)

    assert asyncio.run(main()) == b"0123"


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_close_off_thread_needs_an_idle_engine(engine: Engine) -> None:
    """Only the engine's own thread can cancel its operations (single-issuer ring): closing a busy engine from
    another thread is refused with a reason; an idle one closes from anywhere."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def close_elsewhere() -> None:
        try:
            engine.close()
        except BaseException as exc:
            errors.append(exc)

    async def main() -> None:
        task = asyncio.create_task(engine.read(r, Buf(4), 0))
        await asyncio.sleep(0)
        await asyncio.to_thread(close_elsewhere)
        assert isinstance(errors[0], EngineThreadError) and "operations outstanding" in str(errors[0])
        assert not engine.closed
        os.write(w, b"done")
        assert await task == 4
        await drain(engine)
        await asyncio.to_thread(close_elsewhere)
        assert len(errors) == 1 and engine.closed

    try:
        asyncio.run(main())
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_ring_close_and_dealloc_never_hang(kind: str) -> None:
    """Ring.close() from a thread that cannot submit (single issuer) with entries still queued returns at once
    (they never reached the kernel); a Ring dropped with a read in flight cancels and waits for it first."""
    from mcp_edge.native._uring import Ring

    r, w = os.pipe()
    try:
        ring = Ring(4)
        ring.prep_read(r, bytearray(8), 0, 1)
        done: list[object] = []
        t = threading.Thread(target=lambda: done.append(ring.close()))
        t.start()
        t.join(timeout=30)  # a liveness guard, not a timing check: it used to spin for ever
        assert not t.is_alive() and done == [[]] and ring.closed
        busy = Ring(4)
        buf = Buf(8)
        ref = weakref.ref(buf)
        busy.prep_read(r, buf, 0, 2)
        assert busy.submit() == 1 and busy.in_flight == 1
        del buf, busy  # __dealloc__ cancels the pipe read and waits for its completion before freeing
        gc.collect()
        assert ref() is None
    finally:
        os.close(r)
        os.close(w)
