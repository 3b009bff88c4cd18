"""Slab pools and arenas: blocks, exhaustion and waits, double release, exports, stats, magazines,
arenas shared between processes (fork and spawn), dead peers' blocks, corrupt shared state."""

from __future__ import annotations

import errno
import gc
import itertools
import mmap
import multiprocessing
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from multiprocessing import shared_memory
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_edge.errors import SlabExhausted
from mcp_edge.native import _slab

SIZES = (64, 256, 4096)
COUNTS = (32, 16, 4)
HEADER_CLASS0 = 64  # offset of class 0's state in the arena header (csrc/slab/slab.c: struct header)
CLASS_STRIDE = 192


@pytest.fixture
def pool() -> Iterator[_slab.Pool]:
    p = _slab.Pool(SIZES, COUNTS, numa=False)
    try:
        yield p
    finally:
        p.close()


def shared_map(sizes: tuple[int, ...] = SIZES, counts: tuple[int, ...] = COUNTS) -> mmap.mmap:
    return mmap.mmap(-1, _slab.arena_bytes(sizes, counts), flags=mmap.MAP_SHARED)


# -- blocks


def test_block_is_a_writable_buffer(pool: _slab.Pool) -> None:
    import numpy as np

    with pool.alloc(100) as b:
        assert (len(b), b.size, b.capacity, b.node) == (100, 100, 256, 0)
        mv = memoryview(b)
        assert not mv.readonly and mv.nbytes == 100
        mv[:5] = b"hello"
        arr = np.frombuffer(b, dtype=np.uint8)  # type: ignore[call-overload]
        assert bytes(arr[:5]) == b"hello"
        arr[5] = 33
        assert mv[5] == 33
        del arr
        mv.release()
    assert b.released


@pytest.mark.parametrize(("n", "capacity"), [(0, 64), (1, 64), (64, 64), (65, 256), (256, 256), (257, 4096),
                                             (4096, 4096)])
def test_smallest_class_that_fits(pool: _slab.Pool, n: int, capacity: int) -> None:
    with pool.alloc(n) as b:
        assert b.capacity == capacity and len(b) == n


@pytest.mark.parametrize("n", [-1, 4097, 1 << 40])
def test_size_no_class_fits_is_a_value_error(pool: _slab.Pool, n: int) -> None:
    with pytest.raises((ValueError, OverflowError)):
        pool.alloc(n)


def test_blocks_do_not_overlap(pool: _slab.Pool) -> None:
    blocks = [pool.alloc(s) for s, c in zip(SIZES, COUNTS, strict=True) for _ in range(c)]
    for i, b in enumerate(blocks):
        memoryview(b)[:] = bytes([i % 251]) * len(b)
    for i, b in enumerate(blocks):
        assert bytes(b) == bytes([i % 251]) * len(b)
    spans = sorted((b.offset, b.offset + b.capacity) for b in blocks)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    for b in blocks:
        b.release()


def test_double_release_is_refused(pool: _slab.Pool) -> None:
    b = pool.alloc(10)
    b.release()
    with pytest.raises(ValueError, match="already released"):
        b.release()
    assert pool.stats()[0]["in_use"] == 0


def test_release_with_a_live_view_is_refused(pool: _slab.Pool) -> None:
    b = pool.alloc(10)
    mv = memoryview(b)
    with pytest.raises(BufferError, match="exported"):
        b.release()
    assert pool.stats()[0]["in_use"] == 1
    mv.release()
    b.release()
    assert pool.stats()[0]["in_use"] == 0


def test_use_after_release_raises(pool: _slab.Pool) -> None:
    b = pool.alloc(10)
    b.release()
    with pytest.raises(ValueError, match="released"):
        memoryview(b)
    with pytest.raises(ValueError, match="released"):
        bytes(b)


def test_with_block_releases_and_keeps_an_explicit_release(pool: _slab.Pool) -> None:
    with pool.alloc(10) as b:
        pass
    assert b.released
    with pool.alloc(10) as b:
        b.release()  # released inside: the exit does not release again
    assert pool.stats()[0]["in_use"] == 0


def test_dropped_block_goes_back(pool: _slab.Pool) -> None:
    pool.alloc(10)
    gc.collect()
    assert pool.stats()[0]["in_use"] == 0


def test_close_with_live_view_is_refused_then_blocks_are_dead(pool: _slab.Pool) -> None:
    b = pool.alloc(10)
    mv = memoryview(b)
    with pytest.raises(BufferError):
        pool.close()
    mv.release()
    pool.close()
    with pytest.raises(ValueError, match="closed"):
        memoryview(b)
    with pytest.raises(ValueError, match="closed"):
        pool.alloc(10)
    b.release()  # nothing to give back any more: no error, no crash
    pool.close()  # twice is fine


@pytest.mark.parametrize(("sizes", "counts", "match"), [
    ((), (), "1 to 16"),
    ((64, 100), (1, 1), "multiple of 64"),
    ((32,), (1,), "multiple of 64"),
    ((256, 64), (1, 1), "ascending"),
    ((64, 64), (1, 1), "ascending"),
    ((64,), (0,), "count"),
    ((64,), (1, 2), "one count per size"),
    (tuple(range(64, 64 * 18, 64)), (1,) * 17, "1 to 16"),
])
def test_bad_config_is_refused(sizes: tuple[int, ...], counts: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _slab.Pool(sizes, counts, numa=False)
    with pytest.raises(ValueError, match=match):
        _slab.arena_bytes(sizes, counts)


# -- exhaustion and waits


def test_exhaustion_is_a_clear_error_and_harmless(pool: _slab.Pool) -> None:
    held = [pool.alloc(4096) for _ in range(4)]
    with pytest.raises(SlabExhausted, match="4096 B is exhausted: all 4 blocks are in use") as info:
        pool.alloc(4000)
    assert isinstance(info.value, MemoryError)
    assert (info.value.size, info.value.count, info.value.timeout) == (4096, 4, None)
    st_ = pool.stats()[2]
    assert st_["in_use"] == 4 and st_["free"] == 0 and st_["failures"] >= 1
    assert pool.alloc(10).capacity == 64  # other classes unaffected
    held.pop().release()
    assert pool.alloc(4096).capacity == 4096


def test_wait_times_out(pool: _slab.Pool) -> None:
    held = [pool.alloc(4096) for _ in range(4)]
    with pytest.raises(SlabExhausted, match=r"within 0\.05 s") as info:
        pool.alloc(4096, timeout=0.05)
    assert info.value.timeout == 0.05
    with pytest.raises(SlabExhausted):
        pool.alloc(4096, timeout=0)
    for bad in (-1, float("nan"), float("-inf")):
        with pytest.raises(ValueError, match="timeout"):
            pool.alloc(4096, timeout=bad)
    del held


def test_wait_is_woken_by_a_release_from_another_thread(pool: _slab.Pool) -> None:
    held = [pool.alloc(4096) for _ in range(4)]
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.2)  # let the main thread go to sleep on the futex first
        held[0].release()
        released.set()

    t = threading.Thread(target=release_later)
    t.start()
    try:
        b = pool.alloc(4096, timeout=float("inf"))  # no limit: sleeps until the release
        assert released.is_set()
        assert b.offset == held[0].offset
        b.release()
    finally:
        t.join()


def _free_later(buf: Any, offset: int, delay: float) -> None:
    time.sleep(delay)
    arena = _slab.Arena(buf)
    arena.free(offset)
    arena.close()


def test_wait_is_woken_by_a_release_from_another_process_fork() -> None:
    mm = shared_map()
    arena = _slab.Arena(mm, SIZES, COUNTS)
    held = [arena.alloc(4096) for _ in range(4)]
    handed = held[2].detach()  # the child frees it by offset
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_free_later, args=(mm, handed, 0.2))
    child.start()
    try:
        b = arena.alloc(4096, timeout=30)
        assert b.offset == handed
    finally:
        child.join(30)
    assert child.exitcode == 0
    assert arena.block_state(b.offset) == ("allocated", 0)
    with pytest.raises(ValueError, match="already released"):
        held[2].release()
    for x in (b, held[0], held[1], held[3]):
        x.release()
    assert arena.stats()[2]["in_use"] == 0
    arena.close()


def _spawn_free_later(name: str, offset: int, delay: float) -> None:
    shm = shared_memory.SharedMemory(name=name)
    try:
        _free_later(shm.buf, offset, delay)
    finally:
        shm.close()


def test_wait_is_woken_by_a_release_from_another_process_spawn() -> None:
    shm = shared_memory.SharedMemory(create=True, size=_slab.arena_bytes(SIZES, COUNTS))
    try:
        assert shm.buf is not None
        arena = _slab.Arena(shm.buf, SIZES, COUNTS)
        offs = [arena.alloc(4096) for _ in range(4)]
        handed = offs[1].detach()
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_spawn_free_later, args=(shm.name, handed, 0.3))
        child.start()
        b = arena.alloc(4096, timeout=60)
        child.join(60)
        assert child.exitcode == 0
        assert b.offset == handed
        assert arena.stats()[2]["in_use"] == 4
        for x in (b, offs[0], offs[2], offs[3]):
            x.release()
        arena.close()
    finally:
        shm.close()
        shm.unlink()


# -- stats and the model


def test_stats(pool: _slab.Pool) -> None:
    assert pool.stats() == [
        {"size": s, "count": c, "in_use": 0, "free": c, "high_water": 0, "failures": 0}
        for s, c in zip(SIZES, COUNTS, strict=True)
    ]
    a = [pool.alloc(200) for _ in range(5)]
    for b in a[:3]:
        b.release()
    s = pool.stats()[1]
    assert (s["in_use"], s["free"], s["high_water"], s["failures"]) == (2, 14, 5, 0)
    with pytest.raises(SlabExhausted):
        for _ in range(20):
            a.append(pool.alloc(200))
    s = pool.stats()[1]
    assert (s["in_use"], s["free"], s["high_water"], s["failures"]) == (16, 0, 16, 1)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 4096)),
        st.tuples(st.just("release"), st.integers(0, 1 << 16)),
        st.tuples(st.just("flush"), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_random_sequences_match_a_model(seq: list[tuple[str, int]]) -> None:
    with _slab.Pool(SIZES, COUNTS, numa=False) as pool:
        held: list[tuple[_slab.Block, int, bytes]] = []
        in_use = [0] * len(SIZES)
        high = [0] * len(SIZES)
        failures = [0] * len(SIZES)
        for step, (op, arg) in enumerate(seq):
            if op == "alloc":
                cls = next(i for i, s in enumerate(SIZES) if arg <= s)
                if in_use[cls] == COUNTS[cls]:
                    with pytest.raises(SlabExhausted):
                        pool.alloc(arg)
                    failures[cls] += 1
                    continue
                b = pool.alloc(arg)
                assert b.capacity == SIZES[cls] and len(b) == arg
                stamp = struct.pack("<I", step) * (arg // 4) + b"\xa5" * (arg % 4)
                memoryview(b)[:] = stamp
                held.append((b, cls, stamp))
                in_use[cls] += 1
                high[cls] = max(high[cls], in_use[cls])
            elif op == "release" and held:
                b, cls, stamp = held.pop(arg % len(held))
                assert bytes(b) == stamp  # no other block was written over it
                b.release()
                in_use[cls] -= 1
            elif op == "flush":
                pool.flush()
            offsets = [b.offset for b, _, _ in held]
            assert len(set(offsets)) == len(offsets)
            assert [s["in_use"] for s in pool.stats()] == in_use
        assert [s["high_water"] for s in pool.stats()] == high
        assert [s["failures"] for s in pool.stats()] == failures
        for b, _, stamp in held:
            assert bytes(b) == stamp
            b.release()
        # Nothing lost: every block of every class can be had at once.
        everything = [pool.alloc(s) for s, c in zip(SIZES, COUNTS, strict=True) for _ in range(c)]
        assert len({b.offset for b in everything}) == sum(COUNTS)
        for b in everything:
            b.release()


# -- thread magazines


def test_magazines_keep_own_frees_and_send_foreign_ones_to_the_shared_list() -> None:
    mm = shared_map()
    with _slab.Arena(mm, SIZES, COUNTS, cache=True) as arena:
        a, b = arena.alloc(10), arena.alloc(10)
        assert arena.block_state(a.offset) == ("allocated", 0)
        a.release()  # this thread allocates from the arena: its magazine keeps it
        assert arena.block_state(a.offset) == ("cached", os.getpid())
        t = threading.Thread(target=b.release)  # a thread that never allocated here
        t.start()
        t.join()
        assert arena.block_state(b.offset) == ("free", 0)
        arena.flush()
        assert arena.block_state(a.offset) == ("free", 0)
        assert arena.stats()[0]["in_use"] == 0


def test_thread_exit_gives_the_magazine_back() -> None:
    mm = shared_map()
    offsets: list[int] = []
    with _slab.Arena(mm, SIZES, COUNTS, cache=True) as arena:

        def work() -> None:
            bs = [arena.alloc(10) for _ in range(3)]
            offsets.extend(b.offset for b in bs)
            for b in bs:
                b.release()
            assert {arena.block_state(o)[0] for o in offsets} == {"cached"}

        t = threading.Thread(target=work)
        t.start()
        t.join()
        # join() returns before the OS thread has finished exiting (when its
        # thread-exit destructors run): wait for that, up to a generous bound.
        deadline = time.monotonic() + 30
        while {arena.block_state(o) for o in offsets} != {("free", 0)} and time.monotonic() < deadline:
            time.sleep(0.01)
        assert {arena.block_state(o) for o in offsets} == {("free", 0)}


def test_many_threads_share_a_pool() -> None:
    errors: list[BaseException] = []
    with _slab.Pool(SIZES, COUNTS, numa=False) as pool:

        def work(seed: int) -> None:
            try:
                for i in range(2000):
                    n = (seed * 7919 + i * 104729) % 4097
                    try:
                        with pool.alloc(n, timeout=5) as b:
                            memoryview(b)[:] = bytes([seed]) * n
                            assert bytes(b) == bytes([seed]) * n
                    except SlabExhausted:
                        pass
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert [s["in_use"] for s in pool.stats()] == [0, 0, 0]


# -- arenas in shared memory


def test_arena_attach_sees_the_same_blocks() -> None:
    mm = shared_map()
    a1 = _slab.Arena(mm, SIZES, COUNTS)
    a2 = _slab.Arena(mm)
    assert a2.sizes == SIZES and a2.counts == COUNTS and a2.nbytes == len(mm)
    b = a1.alloc(300, owner=5)
    memoryview(b)[:3] = b"abc"
    assert a2.block_state(b.offset) == ("allocated", 5)
    view = a2.adopt(b.offset, 3)
    assert bytes(view) == b"abc"
    view.release()  # frees it through a2
    with pytest.raises(ValueError, match=r"already released|freed by someone else"):
        b.release()
    with pytest.raises(ValueError, match="already free"):
        a1.free(b.offset)
    with pytest.raises(ValueError, match="names no block"):
        a1.free(b.offset + 1)
    with pytest.raises(ValueError, match="not allocated"):
        a1.adopt(b.offset)
    a1.close()
    a2.close()


def test_arena_close_refuses_while_blocks_are_held() -> None:
    mm = shared_map()
    arena = _slab.Arena(mm, SIZES, COUNTS)
    b, handed = arena.alloc(10), arena.alloc(10)
    off = handed.detach()
    with pytest.raises(ValueError, match="1 block"):
        arena.close()
    b.release()
    arena.close()
    with pytest.raises(ValueError, match="closed"):
        arena.alloc(10)
    with _slab.Arena(mm) as again:
        assert again.block_state(off) == ("allocated", 0)  # the detached one is still someone's
        again.free(off)


def test_arena_owner_tags_and_reclaim() -> None:
    mm = shared_map()
    with _slab.Arena(mm, SIZES, COUNTS) as arena:
        mine = [arena.alloc(10) for _ in range(2)]
        peer = [arena.alloc(1000, owner=9) for _ in range(3)]
        arena.set_owner(mine[0].offset, 9)
        assert arena.block_state(mine[0].offset) == ("allocated", 9)
        assert arena.reclaim_owner(9) == 4
        assert arena.reclaim_owner(9) == 0
        assert [s["in_use"] for s in arena.stats()] == [1, 0, 0]
        with pytest.raises(ValueError, match="is free"):
            arena.set_owner(peer[0].offset, 1)
        mine[1].release()
        for b in (*peer, mine[0]):
            with pytest.raises(ValueError):
                b.release()


def _child_allocates(buf: Any, conn: Any, owner: int, cache: bool, die: bool) -> None:
    arena = _slab.Arena(buf, cache=cache)
    blocks = [arena.alloc(100, owner=owner) for _ in range(6)]
    for i, b in enumerate(blocks):
        memoryview(b)[:4] = struct.pack("<I", 1000 + i)
    for b in blocks[4:]:
        b.release()  # with cache=True: into this process's magazine
    conn.send([b.detach() for b in blocks[:4]])  # the parent frees these
    if die:
        time.sleep(60)  # killed here
    conn.recv()
    # Take two blocks the parent allocated and free them from this side.
    for off in conn.recv():
        arena.free(off)
    arena.close()


def test_shared_arena_between_processes_loses_nothing() -> None:
    mm = shared_map()
    arena = _slab.Arena(mm, SIZES, COUNTS)
    mine = [arena.alloc(100) for _ in range(3)]
    parent, child_end = multiprocessing.get_context("fork").Pipe()
    child = multiprocessing.get_context("fork").Process(target=_child_allocates, args=(mm, child_end, 3, False, False))
    child.start()
    offsets = parent.recv()
    for i, off in enumerate(offsets):
        assert struct.unpack("<I", bytes(mm[off:off + 4]))[0] == 1000 + i
        assert arena.block_state(off) == ("allocated", 3)
    assert not {b.offset for b in mine} & set(offsets)
    parent.send("go")
    parent.send([b.detach() for b in mine[:2]])  # the child frees these
    child.join(30)
    assert child.exitcode == 0
    for b in mine[:2]:
        assert arena.block_state(b.offset) == ("free", 0)
    for off in offsets:
        arena.free(off)
    mine[2].release()
    for b in mine[:2]:
        with pytest.raises(ValueError):
            b.release()
    assert [s["in_use"] for s in arena.stats()] == [0, 0, 0]
    every = [arena.alloc(s) for s, c in zip(SIZES, COUNTS, strict=True) for _ in range(c)]
    assert len({b.offset for b in every}) == sum(COUNTS)
    for b in every:
        b.release()
    arena.close()


def test_killed_peer_blocks_come_back() -> None:
    """SIGKILL a process holding blocks (tagged 7) and blocks in its magazine: reclaim both."""
    mm = shared_map()
    arena = _slab.Arena(mm, SIZES, COUNTS)
    parent, child_end = multiprocessing.get_context("fork").Pipe()
    child = multiprocessing.get_context("fork").Process(target=_child_allocates, args=(mm, child_end, 7, True, True))
    child.start()
    offsets = parent.recv()
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    assert {arena.block_state(o) for o in offsets} == {("allocated", 7)}
    # (its magazine's unsettled share of the in-use count died with it: reclaiming recounts)
    assert arena.reclaim_owner(7) == 4
    assert arena.reclaim_pid(child.pid) == 2  # the two it freed into its magazine
    assert arena.stats()[1]["in_use"] == 0
    assert {arena.block_state(o) for o in offsets} == {("free", 0)}
    every = [arena.alloc(256) for _ in range(COUNTS[1])]
    for b in every:
        b.release()
    arena.close()


# -- bad arenas


def test_attach_refuses_what_is_not_an_arena() -> None:
    mm = shared_map()
    with pytest.raises(ValueError, match="no usable slab arena"):
        _slab.Arena(mm)  # zeros
    _slab.Arena(mm, SIZES, COUNTS).close()
    good = bytes(mm[:4096])
    for at, value in [(0, b"X"), (8, b"\x02"), (12, b"\x00"), (16, b"\xff\xff\xff\xff"),
                      (HEADER_CLASS0 + 68, b"\xff\xff"), (HEADER_CLASS0 + 64, b"\x30"), (HEADER_CLASS0 + 72, b"\x01")]:
        mm[:4096] = good
        mm[at:at + len(value)] = value
        with pytest.raises(ValueError, match="no usable slab arena"):
            _slab.Arena(mm)
    mm[:4096] = good
    small = memoryview(mm)[: len(mm) - 4096]
    with pytest.raises(ValueError, match="no usable slab arena"):
        _slab.Arena(small)
    small.release()
    _slab.Arena(mm).close()


def test_lay_out_refuses_bad_buffers() -> None:
    mm = shared_map()
    with pytest.raises(ValueError, match="aligned"):
        _slab.Arena(memoryview(mm)[8:], (64,), (1,))
    with pytest.raises(ValueError, match="needs"):
        _slab.Arena(mm, SIZES, (32, 16, 400))
    with pytest.raises((BufferError, TypeError)):
        _slab.Arena(b"x" * 8192, (64,), (1,))  # read-only
    with pytest.raises(ValueError, match="both sizes and counts"):
        _slab.Arena(mm, SIZES)


def test_corrupt_free_list_is_an_error_not_a_crash() -> None:
    """A peer that scribbles on the shared free-list head (index out of range): EUCLEAN, nothing read out of bounds."""
    mm = shared_map()
    arena = _slab.Arena(mm, SIZES, COUNTS)
    mm[HEADER_CLASS0:HEADER_CLASS0 + 8] = struct.pack("<Q", 0x7_0000_FFF0)
    with pytest.raises(OSError) as info:
        arena.alloc(10)
    assert info.value.errno == errno.EUCLEAN
    assert arena.alloc(100).capacity == 256  # other classes go on
    arena.close()


def test_corrupt_next_index_is_an_error_not_a_crash() -> None:
    mm = shared_map()
    arena = _slab.Arena(mm, SIZES, COUNTS)
    meta0 = 4096  # class 0's metadata array follows the header page
    mm[meta0:meta0 + 4] = struct.pack("<I", 10_000)  # block 0's next: out of range
    b = arena.alloc(10)  # pops block 0 alone: fine
    with pytest.raises(OSError) as info:
        arena.alloc(10)
    assert info.value.errno == errno.EUCLEAN
    b.release()
    arena.close()


# -- no heap allocation on the hot path

_STEADY = r"""
import itertools, sys
sys.path.insert(0, sys.argv[1])
import malloc_count as mc
from mcp_edge.native import _slab

pool = _slab.Pool(numa=False)
counts = {}
for size in pool.sizes:
    alloc = pool.alloc
    for _ in itertools.repeat(None, 5000):  # warm-up: magazines, freelists
        alloc(size).release()
    few, many = itertools.repeat(None, 1000), itertools.repeat(None, 101000)
    with mc.window() as base:
        for _ in few:
            alloc(size).release()
    with mc.window() as full:
        for _ in many:
            alloc(size).release()
    counts[size] = (full - base).calls
print(counts)
"""


def test_steady_state_allocates_nothing() -> None:
    """10^5 alloc/release pairs per class, under an LD_PRELOAD malloc counter and PYTHONMALLOC=malloc
    (every Python object a malloc call): not one heap allocation. (A ``with`` block costs CPython two:
    the bound __enter__ and __exit__ it looks up, whatever the type.)"""
    import shutil
    import sys
    from pathlib import Path

    from ci_honesty import require_or_skip

    if "libasan" in os.environ.get("LD_PRELOAD", "") or os.environ.get("MCP_EDGE_SANITIZE"):
        pytest.skip("under AddressSanitizer, which owns malloc, allocations are not counted")
    tool = Path(__file__).resolve().parents[2] / "tools" / "malloc_count"
    if not (tool / "malloc_count.py").is_file():
        pytest.skip("tools/malloc_count is not in this checkout")
    if not (shutil.which("cc") or shutil.which("gcc")):
        require_or_skip("cc", "counting allocations builds tools/malloc_count with a C compiler; none found")
    sys.path.insert(0, str(tool))
    try:
        import malloc_count  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tool))
    report = malloc_count.run([sys.executable, "-c", _STEADY, str(tool)], python_objects=True, timeout=300)
    assert report.returncode == 0, report.stderr
    counts = eval(report.stdout.strip().splitlines()[-1])  # our own child's dict of ints
    assert counts == {s: 0 for s in _slab.DEFAULT_SIZES}
    assert report.total.calls > 0  # the counter did count (the interpreter's start-up allocates)
