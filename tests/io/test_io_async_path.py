"""The asyncio path's shortcuts keep the engine API's promises: whole reads, a loop that keeps turning, batched
submissions, one wake-up for many completions, polling that rests on a slow device."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from mcp_edge.io import Engine, IoOp
from mcp_edge.io.alignment import O_DIRECT
from mcp_edge.native._dio import AlignedBuffer

KiB = 1024


async def count_turns(stop: asyncio.Event, turns: list[int]) -> None:
    """Count passes of the loop until ``stop`` is set."""
    while not stop.is_set():
        turns[0] += 1
        await asyncio.sleep(0)


async def with_ticker(work: asyncio.Future[None] | asyncio.Task[None]) -> int:
    stop = asyncio.Event()
    turns = [0]
    ticker = asyncio.create_task(count_turns(stop, turns))
    await asyncio.sleep(0)
    start = turns[0]
    try:
        await work
    finally:
        stop.set()
        await ticker
    return turns[0] - start


@pytest.mark.parametrize("direct", [False, True], ids=["cached", "direct"])
def test_a_reader_lets_the_loop_turn(engine: Engine, directdir: Path, direct: bool) -> None:
    """A coroutine reading in a loop (from the page cache, or O_DIRECT alone on an idle ring: the two cases the
    engine may serve without a pass through the loop) still lets other tasks run at least every 64 reads."""
    path = directdir / "cached"
    data = random.Random(7).randbytes(256 * KiB)
    path.write_bytes(data)
    path.read_bytes()  # in the page cache
    reads = 640

    async def main() -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (O_DIRECT if direct else 0))
        buf = AlignedBuffer(4 * KiB)

        async def reader() -> None:
            for i in range(reads):
                off = (i % 64) * 4 * KiB
                assert await engine.read(fd, buf, off) == 4 * KiB
                assert bytes(buf) == data[off:off + 4 * KiB]

        try:
            return await with_ticker(asyncio.create_task(reader()))
        finally:
            os.close(fd)

    assert asyncio.run(main()) >= reads // 64


def test_partly_cached_reads_are_whole(engine: Engine, workdir: Path) -> None:
    """A read whose range is only partly in the page cache still returns every byte up to EOF (short only
    there): what the cache holds comes at once, the rest from the disk."""
    path = workdir / "partial"
    data = random.Random(8).randbytes(256 * KiB)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, data, 0)
        os.fsync(fd)

        async def main() -> None:
            for cached in (0, 4 * KiB, 64 * KiB + 100, 200 * KiB):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages: dropped
                if cached:
                    os.pread(fd, cached, 0)
                buf = bytearray(256 * KiB)
                assert await engine.read(fd, buf, 0) == len(data)
                assert buf == data
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                if cached:
                    os.pread(fd, cached, 0)
                tail = bytearray(300 * KiB)
                assert await engine.read(fd, tail, 0) == len(data)  # short at EOF only
                assert tail[:len(data)] == data
                assert await engine.gather([IoOp.read(fd, bytearray(100 * KiB), off) for off in (0, 100 * KiB,
                                                                                              200 * KiB)]
                                           ) == [100 * KiB, 100 * KiB, 56 * KiB]

        asyncio.run(main())
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_operations_queued_together_share_enters(engine: Engine) -> None:
    """io_uring: 40 reads queued in one iteration of the loop reach the kernel in a few io_uring_enter calls, and
    one eventfd wake-up resolves completions that are all ready by then."""
    from mcp_edge.io.uring_engine import UringEngine

    assert isinstance(engine, UringEngine)
    pipes = [os.pipe() for _ in range(40)]

    async def main() -> None:
        drv = engine._async
        before = drv.stats
        tasks = [asyncio.create_task(engine.read(r, bytearray(8), 0)) for r, _ in pipes]
        for _ in range(3):
            await asyncio.sleep(0)
        assert engine.pending == 40
        queued = drv.stats
        assert 1 <= queued["enters"] - before["enters"] <= 40 // max(drv.batch, 1) + 2
        for i, (_, w) in enumerate(pipes):  # all complete before the loop looks at the eventfd again
            os.write(w, b"%8d" % i)
        assert await asyncio.gather(*tasks) == [8] * 40
        assert 1 <= drv.stats["wakeups"] - queued["wakeups"] <= 3

    try:
        asyncio.run(main())
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_polling_rests_when_it_does_not_pay(engine: Engine) -> None:
    """io_uring: a lone read the device answers later than the poll lasts (a pipe written a millisecond later)
    is polled for a few times in a row, then not for a while: a slow disk does not cost a CPU."""
    from mcp_edge.io.uring_engine import UringEngine

    assert isinstance(engine, UringEngine)
    r, w = os.pipe()

    async def main() -> None:
        drv = engine._async
        if not drv.spin_ns:
            pytest.skip("polling is off (SPIN_NS = 0)")
        loop = asyncio.get_running_loop()
        for i in range(12):
            loop.call_later(0.001, os.write, w, b"%4d" % i)
            buf = bytearray(4)
            assert await engine.read(r, buf, 0) == 4 and buf == b"%4d" % i
        stats = drv.stats
        assert stats["spin_hits"] == 0
        assert 1 <= stats["spin_misses"] <= 4

    try:
        asyncio.run(main())
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_ring_task_run_modes(kind: str, workdir: Path) -> None:
    """Ring: each task-run mode the kernel accepts serves reads, and reap() alone collects their completions
    (with DEFER_TASKRUN it runs the task work the kernel left for it)."""
    from mcp_edge.native._uring import Ring

    path = workdir / "modes"
    data = random.Random(9).randbytes(64 * KiB)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | O_DIRECT)
    try:
        for kwargs in ({}, {"defer_taskrun": True}, {"coop_taskrun": False}):
            with Ring(8, **kwargs) as ring:
                flags = ring.setup_flags
                if kwargs.get("coop_taskrun") is False:
                    assert "coop_taskrun" not in flags
                if "defer_taskrun" in flags:
                    assert "single_issuer" in flags and "coop_taskrun" not in flags
                bufs = [AlignedBuffer(4 * KiB) for _ in range(4)]
                for i, b in enumerate(bufs):
                    ring.prep_read(fd, b, i * 8 * KiB, i)
                assert ring.submit() == 4
                done: dict[int, int] = {}
                for _ in range(1_000_000):  # a liveness bound, not a timing check
                    for ud, res, _op, _payload in ring.reap():
                        done[ud] = res
                    if len(done) == 4:
                        break
                assert done == {i: 4 * KiB for i in range(4)}, kwargs
                assert all(bytes(b) == data[i * 8 * KiB:i * 8 * KiB + 4 * KiB] for i, b in enumerate(bufs))
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_info_shows_the_async_path(engine: Engine) -> None:
    info = engine.info()["async"]
    assert {"spin_us", "inline_per_turn", "nowait_reads", "submit_batch", "nowait_hits", "spin_hits", "wakeups",
            "enters"} <= set(info)


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_a_gather_goes_to_the_kernel_together(engine: Engine, directdir: Path) -> None:
    """io_uring: the operations of a gather on an idle loop are submitted together, never polled for one by one
    (which would run them one at a time)."""
    from mcp_edge.io.uring_engine import UringEngine

    assert isinstance(engine, UringEngine)
    path = directdir / "together"
    data = random.Random(10).randbytes(64 * KiB)
    path.write_bytes(data)

    async def main() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | O_DIRECT)
        try:
            drv = engine._async
            before = drv.stats
            bufs = [AlignedBuffer(4 * KiB) for _ in range(16)]
            assert await engine.gather([IoOp.read(fd, b, i * 4 * KiB) for i, b in enumerate(bufs)]) == [4 * KiB] * 16
            assert b"".join(bytes(b) for b in bufs) == data
            after = drv.stats
            assert (after["spin_hits"], after["spin_misses"]) == (before["spin_hits"], before["spin_misses"])
            assert after["enters"] - before["enters"] <= 16 // max(drv.batch, 1) + 1
        finally:
            os.close(fd)

    engine._async.eager = 0  # batches only
    asyncio.run(main())


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_an_idle_device_gets_the_first_operations_at_once(engine: Engine, directdir: Path) -> None:
    """io_uring: while fewer than ``eager`` operations are in the kernel each goes at once, then batches of
    ``batch``: a gather of 16 on an idle ring takes eager + (16 - eager) / batch enters, give or take the flush."""
    from mcp_edge.io.uring_engine import UringEngine

    assert isinstance(engine, UringEngine)
    path = directdir / "eager"
    data = random.Random(11).randbytes(64 * KiB)
    path.write_bytes(data)

    async def main() -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | O_DIRECT)
        try:
            drv = engine._async
            before = drv.stats["enters"]
            bufs = [AlignedBuffer(4 * KiB) for _ in range(16)]
            assert await engine.gather([IoOp.read(fd, b, i * 4 * KiB) for i, b in enumerate(bufs)]) == [4 * KiB] * 16
            assert b"".join(bytes(b) for b in bufs) == data
            return int(drv.stats["enters"] - before)
        finally:
            os.close(fd)

    drv = engine._async
    drv.eager, drv.batch, drv.spin_ns = 4, 4, 0
    enters = asyncio.run(main())
    # The first 4 each enter (nothing in the kernel yet, unless one completed meanwhile: then more enter at
    # once, never fewer); the other 12 go at most 4 at a time.
    assert enters >= 4 + 12 // 4
    drv.eager = 0
    assert asyncio.run(main()) <= 16 // 4 + 1
