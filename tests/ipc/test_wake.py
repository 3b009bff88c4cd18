"""Wake-ups of a producer held back by its consumer: no spin, one wake per batch, none lost.

A producer whose slab class is empty (or whose ring is full) sleeps at once and says, in its wait word in the
segment, how much it waits for: half its class's blocks, half the ring. The consumer enters the kernel
only when that much is back, or when it has nothing more to give (it found the ring empty: it is about to wait
itself). The waker clears the sleeper's bit as it wakes it.

Most tests here stand in for the sleeper: they write its bit and its need into the wait word, as
csrc/shm/ring.c's sleep_on does, and watch what the consumer does with one thread and no timing. The layout
(csrc/shm/shm_internal.h): a ring's header is five 64-byte lines; the reader's wait word is the third
(waiting u64, futex seq u32, need u32), the writers' the fourth. The real sleepers (threads, processes) then
show the need they write, and that nothing is lost when they do sleep.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_edge import ipc
from mcp_edge.errors import PeerClosed, RingFull, SlabExhausted
from mcp_edge.native._crc import crc32c
from mcp_edge.native._shm import Consumer, Frame, Loan, Segment

from .test_processes import WAIT, payload
from .test_ring import pair

READER_WORD = 2 * 64  # after the tail and head lines
WRITERS_WORD = 3 * 64


class WaitWord:
    """A wait word of a ring in the segment: its sleeper bits, futex sequence and need."""

    def __init__(self, seg: Segment, ring: str, word: int) -> None:
        self.raw = memoryview(seg)
        self.at = int(seg.info[f"{ring}_offset"]) + word

    @property
    def waiting(self) -> int:
        return int(struct.unpack_from("<Q", self.raw, self.at)[0])

    @property
    def seq(self) -> int:
        return int(struct.unpack_from("<I", self.raw, self.at + 8)[0])

    @property
    def need(self) -> int:
        return int(struct.unpack_from("<I", self.raw, self.at + 12)[0])

    def announce(self, need: int, bit: int = 1) -> None:
        """What a sleeper does before it sleeps: its need, then its bit."""
        struct.pack_into("<I", self.raw, self.at + 12, need)
        struct.pack_into("<Q", self.raw, self.at, self.waiting | bit)

    def leave(self, bit: int = 1) -> None:
        """A sleeper that woke by itself (its timeout) takes its bit back."""
        struct.pack_into("<Q", self.raw, self.at, self.waiting & ~bit)


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (a hang guard, not a measurement) until predicate() holds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.001)


def wakes(consumer: Consumer) -> tuple[int, int]:
    stats = consumer.stats()
    return int(stats["wakes"]), int(stats["wakes_held"])


# ------------------------------------------------------------------ the consumer's side, one thread


def test_a_producer_out_of_blocks_is_woken_once_half_of_them_is_back() -> None:
    seg, producer, consumer = pair(entries=16, sizes=(64,), counts=(16,))
    for i in range(16):
        producer.send(b"x", id=i)
    frames = [consumer.receive(timeout=5) for _ in range(16)]
    with pytest.raises(SlabExhausted):
        producer.loan(8, timeout=0)
    word = WaitWord(seg, "completion", READER_WORD)
    seq = word.seq
    word.announce(need=8)  # what me_chan_wait_blocks asks for a class of 16 blocks
    for k in range(7):
        frames[k].release()
        assert wakes(consumer) == (0, k + 1)  # held back: no kernel entry
        assert (word.waiting, word.seq) == (1, seq)
    frames[7].release()
    assert wakes(consumer) == (1, 7)
    assert (word.waiting, word.seq) == (0, seq + 1)  # woken once, its bit cleared by the waker
    frames[8].release()  # nobody asleep now: nothing to do
    assert wakes(consumer) == (1, 7)
    assert producer.reap() == 9
    for frame in frames[9:]:
        frame.release()


def test_a_consumer_with_nothing_left_to_read_pays_the_wake_it_held_back() -> None:
    seg, producer, consumer = pair(entries=16, sizes=(64,), counts=(16,))
    for i in range(16):
        producer.send(b"y", id=i)
    frames = [consumer.receive(timeout=5) for _ in range(16)]
    word = WaitWord(seg, "completion", READER_WORD)
    seq = word.seq
    word.announce(need=4)
    frames[0].release()
    assert wakes(consumer) == (0, 1)
    assert consumer.try_receive() is None  # the ring is empty: it would wait now, so it wakes the producer
    assert wakes(consumer) == (1, 1) and (word.waiting, word.seq) == (0, seq + 1)
    assert producer.reap() == 1

    word.announce(need=4)  # asleep again with nothing back: an empty ring wakes nobody for nothing
    assert consumer.try_receive() is None
    assert wakes(consumer) == (1, 1) and word.waiting == 1
    frames[1].release()  # held back ...
    assert producer.reap() == 1  # ... and taken by the producer itself (its periodic look), still "asleep"
    assert consumer.try_receive() is None
    assert wakes(consumer) == (1, 2) and word.seq == seq + 1  # the owed wake had nothing left to give
    word.leave()
    for frame in frames[2:]:
        frame.release()


def test_a_producer_facing_a_full_ring_is_woken_once_half_of_it_is_free() -> None:
    seg, producer, consumer = pair(entries=128, sizes=(64,), counts=(256,))
    for i in range(128):
        producer.send(b"z", id=i)
    with pytest.raises(RingFull):
        producer.send(b"z", timeout=0)
    word = WaitWord(seg, "data", WRITERS_WORD)
    seq = word.seq
    word.announce(need=64)  # what me_chan_wait_space asks for a ring of 128
    consumer.receive(timeout=5).release()  # the consumer took a batch of 32: a quarter free
    assert word.waiting == 1 and word.seq == seq
    held = wakes(consumer)[1]
    assert held >= 1
    for _ in range(31):
        consumer.receive(timeout=5).release()
    assert word.waiting == 1
    consumer.receive(timeout=5).release()  # the second batch: half the ring free
    assert (word.waiting, word.seq) == (0, seq + 1)
    assert wakes(consumer)[0] == 1


@settings(max_examples=60, deadline=None)
@given(blocks=st.sampled_from([1, 2, 5, 16]),
       ops=st.lists(st.tuples(st.sampled_from(["publish", "receive", "release", "reap", "sleep", "timeout"]),
                              st.integers(0, 15)), min_size=1, max_size=80))
def test_no_wake_up_is_lost_and_none_is_spent_early(blocks: int, ops: list[tuple[str, int]]) -> None:
    """A model of the rule against the ring: with a producer asleep (bit set, need n) and p completions not
    yet reaped, a release wakes it when p reaches n; a receive that finds the ring empty wakes it when p >= 1;
    nothing else does. After such a receive a sleeper never stays asleep with blocks waiting for it."""
    seg, producer, consumer = pair(entries=32, sizes=(64,), counts=(blocks,))
    word = WaitWord(seg, "completion", READER_WORD)
    seq = word.seq
    held: list[Frame] = []
    asleep, need, woken = False, 1, 0

    def pending() -> int:
        return int(consumer.stats()["released"]) - int(producer.stats()["reaped"])

    for op, arg in ops:
        if op == "publish" and not asleep:  # a sleeping producer publishes nothing
            out = int(producer.stats()["published"]) - int(consumer.stats()["received"]) + len(held)
            if out < blocks:  # a block is free, or waits to be reaped (a loan reaps)
                producer.send(b"m", id=arg)
        elif op == "receive":
            frame = consumer.try_receive()
            if frame is not None:
                held.append(frame)
            else:
                if asleep and pending() >= 1:
                    asleep, woken = False, woken + 1
                assert not (word.waiting and pending() >= 1), "the consumer would wait with the producer asleep"
        elif op == "release" and held:
            held.pop(arg % len(held)).release()
            if asleep and pending() >= max(need, 1):
                asleep, woken = False, woken + 1
        elif op == "reap" and not asleep:
            producer.reap()
        elif op == "sleep" and not asleep and pending() == 0:  # a real sleeper looks first
            need = arg % 6
            word.announce(need=need)
            asleep = True
        elif op == "timeout" and asleep:  # it woke by itself and took its bit back
            word.leave()
            asleep = False
        assert word.seq == seq + woken
        assert bool(word.waiting) == asleep
        assert wakes(consumer)[0] == woken
    if asleep:
        word.leave()
    for frame in held:
        frame.release()


# ------------------------------------------------------------------ real sleepers


def test_a_producer_out_of_its_only_block_sleeps_and_the_release_wakes_it() -> None:
    seg, producer, consumer = pair(entries=8, sizes=(64,), counts=(1,))
    producer.send(b"only", id=1)
    frame = consumer.receive(timeout=5)
    got: list[Loan | BaseException] = []

    def loan() -> None:
        try:
            got.append(producer.loan_block(8, timeout=WAIT))
        except BaseException as exc:  # reported by the assertion below
            got.append(exc)

    word = WaitWord(seg, "completion", READER_WORD)
    thread = threading.Thread(target=loan)
    thread.start()
    try:
        until(lambda: word.waiting == 1 and producer.stats()["sleeps_blocks"] >= 1, "the producer sleeps")
        assert word.need == 1  # a class of one block: the first release wakes it
        offset = frame.offset
        frame.release()
    finally:
        thread.join(WAIT)
    assert not thread.is_alive()
    assert len(got) == 1 and isinstance(got[0], Loan), got
    assert got[0].offset == offset  # the block that came back
    producer.unloan(got[0])


def test_real_sleepers_ask_for_half_the_blocks_and_half_the_ring() -> None:
    seg, producer, consumer = pair(entries=4, sizes=(64,), counts=(16,))
    results: list[object] = []

    def run(work: Callable[[], object]) -> threading.Thread:
        def body() -> None:
            try:
                results.append(work())
            except BaseException as exc:
                results.append(exc)
        thread = threading.Thread(target=body)
        thread.start()
        return thread

    for i in range(4):
        producer.send(b"a", id=i)
    space = WaitWord(seg, "data", WRITERS_WORD)
    thread = run(lambda: producer.send(b"b", id=4, timeout=WAIT))
    try:
        until(lambda: space.waiting != 0, "the producer sleeps for room in the ring")
        assert space.need == 2
        frames = [consumer.receive(timeout=5)]
    finally:
        thread.join(WAIT)
    assert results == [None]
    frames += [consumer.receive(timeout=5) for _ in range(4)]
    for i in range(11):  # 16 blocks out in all, 5 of them held here
        producer.send(b"c", id=5 + i)
        frames.append(consumer.receive(timeout=5))
    blocks = WaitWord(seg, "completion", READER_WORD)
    thread = run(lambda: producer.loan_block(8, timeout=WAIT))
    try:
        until(lambda: blocks.waiting != 0, "the producer sleeps for blocks")
        assert blocks.need == 8
        assert producer.spin_ns == 0
        for frame in frames:
            frame.release()
    finally:
        thread.join(WAIT)
    assert len(results) == 2 and isinstance(results[1], Loan), results
    producer.unloan(results[1])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.sampled_from([1, 2, 3, 8, 16]),
       producers=st.sampled_from([1, 3]),
       entries=st.sampled_from([2, 8, 64]),
       sizes=st.lists(st.integers(1, 4096), min_size=1, max_size=40),
       batches=st.lists(st.integers(0, 6), min_size=1, max_size=12),
       seed=st.integers(0, 2**31))
def test_producers_held_back_by_a_batching_consumer_lose_nothing(
        sock_path: str, spawn: Callable[..., Any], blocks: int, producers: int, entries: int, sizes: list[int],
        batches: list[int], seed: int) -> None:
    """Producer processes (SPSC, or three on an MPSC ring) with few blocks against a consumer that holds
    frames and gives them back in batches (never all of a producer's blocks): they sleep for blocks and for
    room, and every frame arrives, in each producer's order, intact."""
    with ipc.listen(sock_path, producers=producers, ring_entries=entries, slab_sizes=(4096,),
                    slab_counts=(blocks,)) as lst:
        peers = [spawn(mode="produce", path=sock_path, sizes=sizes, seed=seed + k, type=k + 1)
                 for k in range(producers)]
        for _ in peers:
            lst.accept(timeout=WAIT)
        ring = lst.consumer
        held: list[Frame] = []
        next_id = dict.fromkeys(range(1, producers + 1), 0)
        got = 0
        while got < producers * len(sizes):
            try:
                frame = ring.receive(timeout=WAIT)
            except PeerClosed:  # MPSC: one finished while the others go on
                continue
            k = frame.type
            assert frame.id == next_id[k]
            assert crc32c(frame.payload) == crc32c(payload(seed + k - 1, frame.id, sizes[frame.id]))
            next_id[k] += 1
            got += 1
            held.append(frame)
            give = batches[got % len(batches)]
            if len(held) >= blocks:
                give = max(give, len(held) - blocks + 1)
            for _ in range(min(give, len(held))):
                held.pop(0).release()
        for frame in held:
            frame.release()
        assert next_id == dict.fromkeys(range(1, producers + 1), len(sizes))
        for peer in peers:
            peer.event("ready")
            peer.event("done")
            peer.wait_ok()
        assert ring.stats()["dropped"] == 0


def test_a_producer_paces_itself_to_a_slow_consumer_and_asks_to_be_woken_when_it_stops() -> None:
    """A producer out of blocks that has seen them come back at a steady pace sleeps on a timer for its
    batch (sleeps_paced), asking nobody to wake it; when a timed sleep finds nothing back (the consumer
    stopped), it announces itself in the wait word and sleeps until the consumer's releases wake it."""
    seg, producer, consumer = pair(entries=64, sizes=(64,), counts=(16,))
    word = WaitWord(seg, "completion", READER_WORD)
    total, paused_at = 160, 96
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for i in range(total):
                loan = producer.loan_block(8, timeout=WAIT)
                loan[:8] = i.to_bytes(8, "little")
                producer.publish(loan, id=i)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        for i in range(total):
            frame = consumer.receive(timeout=WAIT)
            assert frame.id == i and bytes(frame.payload[:8]) == i.to_bytes(8, "little")
            if i == paused_at:
                paced = producer.stats()["sleeps_paced"]
                assert paced > 0, producer.stats()  # it had been pacing itself
                # The consumer stops (holding this frame): the producer's next timed sleep finds nothing
                # back, and it asks to be woken instead.
                until(lambda: word.waiting == 1, "the producer announces itself")
                assert word.need == 8
            time.sleep(0.001)  # a consumer slower than its producer
            frame.release()
    finally:
        thread.join(WAIT)
    assert not errors and not thread.is_alive()
    stats = producer.stats()
    assert stats["published"] == total and stats["sleeps_blocks"] >= 1
    assert consumer.stats()["wakes"] >= 1  # the announced sleep was ended by a release
