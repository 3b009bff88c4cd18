"""Both ends of a ring in one process: zero-copy payloads, release, back-pressure, refused descriptors and views,
segment checks, the spin decision, and no per-message allocation in steady state.

The process tests (test_processes.py) run the same ring between processes; these pin down each behaviour with
no scheduling in the way.
"""

from __future__ import annotations

import contextlib
import os
import tracemalloc
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from mcp_edge.errors import FrameError, PeerClosed, RingClosed, RingFull, SegmentError, SlabExhausted
from mcp_edge.native import _shm
from mcp_edge.native._crc import crc32c
from mcp_edge.native._frame import BLOCK, encode_header
from mcp_edge.native._shm import Consumer, Producer, Segment

SIZES = (64, 256, 4096)
COUNTS = (16, 8, 4)


def pair(*, entries: int = 8, sizes: tuple[int, ...] = SIZES, counts: tuple[int, ...] = COUNTS,
         payload_crc: bool = False, spin_us: int = 0) -> tuple[Segment, Producer, Consumer]:
    """An SPSC segment and both its ends in this process (each end's peer is this process)."""
    seg = _shm.create_segment(data="spsc", entries=entries, slab_sizes=sizes, slab_counts=counts,
                              payload_crc=payload_crc)
    producer = Producer(seg, seg, spin_us=spin_us)
    consumer = Consumer(seg, spin_us=spin_us)
    consumer._add_producer(0, seg, os.getpid(), -1)
    producer._attach_peer(os.getpid(), -1)
    seg.set_peer(0, os.getpid(), "attached")
    seg.set_peer(1, os.getpid(), "attached")
    return seg, producer, consumer


def in_use(producer: Producer) -> int:
    producer.reap()
    return int(producer.stats()["arena"]["in_use"])


def entry_offset(seg: Segment, i: int) -> int:
    """Where descriptor i of an SPSC data ring lies in the segment."""
    return int(seg.info["data_offset"]) + _shm.RING_HEADER_BYTES + (i % int(seg.info["entries"])) * 32


def test_payload_is_the_block_in_the_segment() -> None:
    seg, producer, consumer = pair()
    view = producer.loan(100)
    view[:] = bytes(range(100))
    producer.publish(view, type=7, id=0x1122334455, end=True)
    frame = consumer.receive(timeout=5)
    assert (frame.type, frame.id, frame.end, frame.is_signal, len(frame)) == (7, 0x1122334455, True, False, 100)
    assert bytes(frame.payload) == bytes(range(100))
    # zero copy: the payload is the segment's bytes at the descriptor's offset, both ways
    raw = memoryview(seg)
    assert raw[frame.offset:frame.offset + 100] == frame.payload
    arr = np.frombuffer(frame.payload, dtype=np.uint8)
    assert int(arr.sum()) == sum(range(100))
    frame.payload[0] = 0xEE
    assert raw[frame.offset] == 0xEE
    del arr, raw
    frame.release()


def test_send_copies_and_signal_has_no_payload() -> None:
    _, producer, consumer = pair()
    producer.send(b"hello", type=2, id=1)
    producer.signal(type=3, id=2, end=True)
    first = consumer.receive(timeout=5)
    assert bytes(first.payload) == b"hello" and not first.is_signal
    second = consumer.receive(timeout=5)
    assert second.is_signal and second.end and bytes(second.payload) == b"" and (second.type, second.id) == (3, 2)
    first.release()
    second.release()
    assert in_use(producer) == 0


def test_release_returns_the_block_and_ends_the_payload() -> None:
    _, producer, consumer = pair()
    producer.send(b"x" * 300)
    with consumer.receive(timeout=5) as frame:
        assert in_use(producer) == 1
    assert frame.released
    assert in_use(producer) == 0
    frame.release()  # idempotent
    assert in_use(producer) == 0
    with pytest.raises(ValueError, match="released"):
        memoryview(frame)


def test_release_with_a_live_view_waits_for_the_view() -> None:
    _, producer, consumer = pair()
    producer.send(b"y" * 1000)
    frame = consumer.receive(timeout=5)
    arr = np.frombuffer(frame.payload, dtype=np.uint8)
    frame.release()
    assert in_use(producer) == 1  # the array still reads the block
    assert int(arr[0]) == ord("y")
    del arr
    assert in_use(producer) == 0


def test_a_held_frame_is_never_reused_for_another_descriptor() -> None:
    _, producer, consumer = pair(entries=4, counts=(64, 8, 4))
    producer.send(b"first")
    kept = consumer.receive(timeout=5)
    for i in range(300):
        producer.send(i.to_bytes(4, "little"), id=i + 1)
        with consumer.receive(timeout=5) as frame:
            assert frame.id == i + 1 and bytes(frame.payload) == i.to_bytes(4, "little")
            assert frame is not kept
    assert kept.id == 0 and bytes(kept.payload) == b"first"
    kept.release()


def test_full_ring_raises_at_once_or_after_waiting_and_the_loan_survives() -> None:
    _, producer, consumer = pair(entries=4)
    for i in range(4):
        producer.send(b"a", id=i)
    view = producer.loan(10)
    view[:] = b"0123456789"
    with pytest.raises(RingFull) as full:
        producer.publish(view, id=4, timeout=0)
    with pytest.raises(RingFull) as waited:
        producer.publish(full.value.view, id=4, timeout=0.02)
    assert producer.stats()["full"] >= 2
    consumer.receive(timeout=5).release()
    producer.publish(waited.value.view, id=4, timeout=0)
    ids = [consumer.receive(timeout=5) for _ in range(4)]
    assert [f.id for f in ids] == [1, 2, 3, 4]
    assert bytes(ids[-1].payload) == b"0123456789"


def test_exhausted_arena_raises_and_a_release_makes_room() -> None:
    _, producer, consumer = pair(sizes=(64,), counts=(3,))
    for i in range(3):
        producer.send(b"b", id=i)
    with pytest.raises(SlabExhausted) as exc:
        producer.loan(10, timeout=0)
    assert exc.value.size == 64 and exc.value.count == 3
    with pytest.raises(SlabExhausted):
        producer.loan(10, timeout=0.02)
    assert producer.stats()["exhausted"] >= 2
    consumer.receive(timeout=5).release()
    view = producer.loan(10, timeout=0)  # the release came back through the completion ring
    producer.unloan(view)


def test_loan_larger_than_every_class_is_refused() -> None:
    _, producer, _ = pair()
    with pytest.raises(ValueError, match="largest slab class"):
        producer.loan(4097)
    assert producer.max_message == 4096


def test_publish_takes_only_its_own_loan_views() -> None:
    _, producer, consumer = pair()
    with pytest.raises(TypeError):
        producer.publish(b"not a view")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a loan"):
        producer.publish(memoryview(bytearray(10)))
    view = producer.loan(32)
    with pytest.raises(ValueError, match="slice"):
        producer.publish(view[4:])
    part = view[:8]
    with pytest.raises(BufferError, match="another view"):
        producer.publish(view)
    del part
    arr = np.frombuffer(view, dtype=np.uint8)
    with pytest.raises(BufferError, match="still alive"):
        producer.publish(view)
    del arr
    with pytest.raises(ValueError, match="outside"):
        producer.publish(view, length=33)
    producer.publish(view, length=5)
    with pytest.raises(ValueError):  # released by publish: the bytes are the consumer's
        view[0] = 1
    assert len(consumer.receive(timeout=5)) == 5
    with pytest.raises(ValueError, match="type"):
        producer.send(b"z", type=256)


def test_loan_block_is_a_buffer_that_refuses_writes_once_published() -> None:
    seg, producer, consumer = pair()
    loan = producer.loan_block(10)
    assert len(loan) == loan.nbytes == 10 and loan.capacity == 64 and not loan.released
    loan[:] = b"abcdefghij"
    loan[0] = ord("A")
    loan[-1] = ord("J")
    loan[2:4] = b"CD"
    assert bytes(loan[:4]) == b"AbCD"
    with pytest.raises(ValueError, match="fit"):
        loan[0:3] = b"toolong"
    with pytest.raises(IndexError):
        loan[10] = 0
    arr = np.frombuffer(loan, dtype=np.uint8)
    with pytest.raises(BufferError, match="still alive"):
        producer.publish(loan)
    del arr
    producer.publish(loan, type=4, id=9)
    assert loan.released
    with pytest.raises(ValueError, match="published"):
        loan[0] = 1
    with pytest.raises(ValueError):
        memoryview(loan)
    with consumer.receive(timeout=5) as frame:
        assert (frame.type, frame.id, bytes(frame.payload)) == (4, 9, b"AbCDefghiJ")
        assert memoryview(seg)[frame.offset:frame.offset + 10] == b"AbCDefghiJ"
    with pytest.raises(ValueError, match="already"):
        producer.publish(loan)


def test_loans_dropped_unpublished_come_back() -> None:
    _, producer, _ = pair(sizes=(64,), counts=(3,))
    for _ in range(20):  # three blocks in all: each dropped loan must have gone back
        producer.loan_block(8)
        view = producer.loan(8)
        del view
    assert in_use(producer) <= 2
    kept = producer.loan_block(8)
    producer.unloan(kept)
    assert kept.released


def test_payload_crc_finds_a_payload_changed_after_publish() -> None:
    seg, producer, consumer = pair(payload_crc=True)
    producer.send(b"intact")
    with consumer.receive(timeout=5) as frame:
        assert bytes(frame.payload) == b"intact"
    view = producer.loan(6)
    view[:] = b"before"
    obj = view.obj
    assert isinstance(obj, _shm.Loan)
    off = obj.offset
    producer.publish(view)
    memoryview(seg)[off:off + 6] = b"after!"  # a writer that kept writing after publishing
    with pytest.raises(FrameError) as exc:
        consumer.receive(timeout=5)
    assert exc.value.reason == "bad CRC"
    assert consumer.stats()["dropped"] == 1
    assert in_use(producer) == 0  # the refused block went back


@pytest.mark.parametrize(("what", "reason"), [("crc", "bad CRC"), ("offset", "bad field"), ("magic", "bad magic"),
                                              ("kind", "bad field"), ("version", "bad version")])
def test_malformed_descriptor_is_refused_and_the_stream_goes_on(what: str, reason: str) -> None:
    seg, producer, consumer = pair()
    producer.send(b"one", id=1)
    raw = memoryview(seg)
    at = entry_offset(seg, 0)
    entry = bytearray(raw[at:at + 32])
    if what == "crc":
        entry[20] ^= 0xFF
    elif what == "offset":  # a block locator far past the arena, with a valid CRC
        entry[:] = encode_header(1, 1, kind=BLOCK, length=3, segment=0, offset=seg.size + 4096)
    elif what == "magic":
        entry[0] ^= 0xFF
    elif what == "kind":
        entry[:] = encode_header(1, 1, kind=2, length=3, segment=0, offset=0)
    else:
        entry[2] = 9
    raw[at:at + 32] = entry
    producer.send(b"two", id=2)
    with pytest.raises(FrameError) as exc:
        consumer.receive(timeout=5)
    assert exc.value.reason == reason
    with consumer.receive(timeout=5) as frame:
        assert (frame.id, bytes(frame.payload)) == (2, b"two")
    assert consumer.stats()["dropped"] == 1
    del raw


@pytest.mark.parametrize("ring_crc", [False, True])
def test_a_descriptor_that_opts_out_of_or_into_the_rings_payload_crc_is_refused(ring_crc: bool) -> None:
    """The ring's ring_payload_crc option decides for every descriptor: one re-encoded with the other choice
    (a valid CRC of its own) is refused as a bad field, its block goes back, and the stream goes on."""
    seg, producer, consumer = pair(payload_crc=ring_crc)
    view = producer.loan(3)
    view[:] = b"one"
    loan = view.obj
    assert isinstance(loan, _shm.Loan)
    off = loan.offset
    producer.publish(view, id=1)
    raw = memoryview(seg)
    at = entry_offset(seg, 0)
    raw[at:at + 32] = encode_header(1, 1, b"one", kind=BLOCK, length=3, segment=0, offset=off,
                                    payload_crc=not ring_crc)
    producer.send(b"two", id=2)
    with pytest.raises(FrameError) as exc:
        consumer.receive(timeout=5)
    assert exc.value.reason == "bad field"
    with consumer.receive(timeout=5) as frame:
        assert (frame.id, bytes(frame.payload)) == (2, b"two")
    assert consumer.stats()["dropped"] == 1
    assert in_use(producer) == 0  # the refused block went back
    del raw


def test_closed_producer_is_seen_after_what_it_published() -> None:
    _, producer, consumer = pair()
    producer.send(b"last words", end=True)
    kept = producer.loan(10)
    producer.close()
    assert kept.obj is not None
    with consumer.receive(timeout=5) as frame:
        assert bytes(frame.payload) == b"last words"
    with pytest.raises(PeerClosed):
        consumer.receive(timeout=5)
    with pytest.raises(RingClosed):
        producer.send(b"more")


def test_closed_consumer_gives_every_block_back() -> None:
    _, producer, consumer = pair()
    for i in range(3):
        producer.send(b"held", id=i)
    held = [consumer.receive(timeout=5) for _ in range(2)]
    consumer.close()
    with pytest.raises(RingClosed):
        consumer.receive(timeout=0)
    with pytest.raises(PeerClosed) as exc:
        producer.check_peer()
    assert exc.value.reclaimed == 3  # two held, one unread
    assert in_use(producer) == 0
    assert all(f.released for f in held)


def test_timeouts_are_checked() -> None:
    _, producer, consumer = pair()
    with pytest.raises(TimeoutError):
        consumer.receive(timeout=0)
    with pytest.raises(TimeoutError):
        consumer.receive(timeout=0.01)
    assert consumer.try_receive() is None
    with pytest.raises(ValueError):
        consumer.receive(timeout=-1)
    with pytest.raises(ValueError):
        producer.loan(1, timeout=float("nan"))


def test_steady_state_allocates_nothing_per_message() -> None:
    """loan/publish/receive/payload/release cycles: the traced Python heap does not grow with the count."""
    _, producer, consumer = pair(entries=64, counts=(64, 8, 4))

    def cycle(n: int) -> None:
        for i in range(n):
            view = producer.loan(64)
            view[:8] = b"12345678"
            producer.publish(view, id=i)
            frame = consumer.receive()
            _ = frame.payload[0]
            frame.release()
            block = producer.loan_block(64)
            block[:8] = b"abcdefgh"
            producer.publish(block, id=i)
            with consumer.receive() as frame:
                crc32c(frame)

    cycle(2000)  # warm-up: the Frame/Loan pools fill
    tracemalloc.start()
    try:
        cycle(100)
        before, _ = tracemalloc.get_traced_memory()
        cycle(20_000)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 2048, f"the traced heap grew by {after - before} bytes over 20000 messages"


@contextlib.contextmanager
def pinned(cpus: set[int]) -> Iterator[None]:
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def test_no_spin_when_both_ends_share_one_cpu() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    apart = len(cpus) >= 2 and (os.cpu_count() or 1) >= 2
    assert _shm.can_run_apart(0, os.getpid()) == apart
    _, producer, consumer = pair(spin_us=50)
    assert consumer.spin_ns == (50_000 if apart else 0)
    assert producer.spin_ns == 0  # a producer waits only for its consumer: never spins
    with pinned({cpus[0]}):
        assert not _shm.can_run_apart(0, os.getpid())
        _, producer, consumer = pair(spin_us=50)
        assert consumer.spin_ns == 0 and producer.spin_ns == 0
    _, producer, consumer = pair(spin_us=0)
    assert consumer.spin_ns == 0 and producer.spin_ns == 0


# ------------------------------------------------------------------ segments


@pytest.mark.parametrize(("mutation", "reason"), [
    ("magic", "bad magic"),
    ("version", "bad version"),
    ("short", "too small"),
    ("empty", "too small"),
    ("total", "too small"),
    ("data_off", "malformed"),
    ("ring_entries", "malformed"),
    ("arena", "malformed"),
])
def test_bad_segments_are_refused_with_their_reason(segment_fd: Callable[[str], int], mutation: str,
                                                     reason: str) -> None:
    fd = segment_fd(mutation)
    with pytest.raises(SegmentError) as exc:
        _shm.attach_segment(fd)
    assert exc.value.reason == reason


def test_a_good_segment_attaches_and_a_named_one_opens_by_name(segment_fd: Callable[[str], int]) -> None:
    seg = _shm.attach_segment(segment_fd("none"))
    assert seg.info["data"] == "spsc" and seg.info["slab_sizes"] == SIZES
    name = f"/mcp-edge-test-{os.getpid()}"
    made = _shm.create_segment(data="spsc", entries=4, slab_sizes=SIZES, slab_counts=COUNTS, name=name)
    try:
        opened = _shm.open_segment(name)
        assert opened.info == made.info and opened.name == name
        made.set_peer(3, 1234, "closed")
        assert opened.peer(3) == ("closed", 1234)
    finally:
        _shm.unlink_segment(name)
    with pytest.raises(FileNotFoundError):
        _shm.open_segment(name)


def test_segment_layout_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="power of two"):
        _shm.create_segment(data="spsc", entries=12, slab_sizes=SIZES, slab_counts=COUNTS)
    with pytest.raises(ValueError, match="ascending"):
        _shm.create_segment(data="spsc", slab_sizes=(256, 64), slab_counts=(1, 1))
    with pytest.raises(ValueError, match="multiple of 64"):
        _shm.create_segment(data="spsc", slab_sizes=(100,), slab_counts=(1,))
    with pytest.raises(ValueError, match="together"):
        _shm.create_segment(data="spsc", slab_sizes=(64,))
    with pytest.raises(ValueError, match="data"):
        _shm.create_segment(data="fifo")
    assert _shm.completion_entries((64, 128), (1000, 24)) == 1024
    assert crc32c(b"") == 0


# -- send_block / block_head: one message in one block, its own frame header first ----------------------------


def test_send_block_writes_a_header_that_block_head_finds_describing_its_block() -> None:
    from mcp_edge.native import _frame

    _, producer, consumer = pair()
    ext = _frame.encode_extensions(deadline_ns=123, priority=9)
    assert producer.send_block(11, 77, ext, b"the body")
    with consumer.receive(timeout=5) as fr:
        assert (fr.type, fr.id, fr.end) == (11, 77, True)
        checked = fr.block_head(4096)
        assert checked is not None
        head, start = checked
        assert start == _frame.HEADER_SIZE + len(ext) and bytes(fr.payload[start:]) == b"the body"
        wire = _frame.decode(head)
        assert (wire.kind, wire.type, wire.id, wire.end) == (BLOCK, 11, 77, True)
        assert (wire.deadline_ns, wire.priority, wire.payload_length) == (123, 9, 8)
        assert wire.segment == producer.segment_id and wire.offset == fr.offset + start
    assert in_use(producer) == 0


def test_send_block_says_false_when_there_is_no_room_and_sends_nothing() -> None:
    _, producer, consumer = pair(entries=2, sizes=(64, 256), counts=(2, 1))
    assert producer.send_block(1, 1, b"", b"a" * 200)
    assert not producer.send_block(1, 2, b"", b"b" * 200)  # the 256-byte class's one block is out
    assert producer.send_block(1, 3, b"", b"c")
    assert not producer.send_block(1, 4, b"", b"d")  # two descriptors unread: the ring is full
    assert in_use(producer) == 2  # the refused ones gave their blocks back
    got = []
    for _ in range(2):
        with consumer.receive(timeout=5) as fr:
            got.append(fr.id)
    assert got == [1, 3] and consumer.try_receive() is None


def test_send_block_refuses_what_cannot_be_sent() -> None:
    _, producer, _ = pair()
    with pytest.raises(ValueError, match="largest slab class"):
        producer.send_block(1, 1, b"", bytes(5000))
    with pytest.raises(ValueError, match="type 256"):
        producer.send_block(256, 1, b"", b"x")
    with pytest.raises(ValueError, match="65535"):
        producer.send_block(1, 1, bytes(70000), b"")
    assert in_use(producer) == 0


def test_block_head_is_none_for_a_block_that_does_not_describe_itself() -> None:
    from mcp_edge.native import _frame

    _, producer, consumer = pair()
    producer.send(b"no header here at all, just bytes", type=3, id=4)
    producer.send(b"short", type=3, id=4)
    ok = producer.loan_block(64)  # a valid header, but of another id than the descriptor's
    _frame.encode_header_into(ok, 3, 99, kind=BLOCK, length=32, segment=producer.segment_id,
                              offset=ok.offset + 32, end=True)
    producer.publish(ok, type=3, id=4, end=True, length=64)
    bad_crc = producer.loan_block(64)
    _frame.encode_header_into(bad_crc, 3, 4, kind=BLOCK, length=32, segment=producer.segment_id,
                              offset=bad_crc.offset + 32, end=True)
    bad_crc[20] ^= 0xFF
    producer.publish(bad_crc, type=3, id=4, end=True, length=64)
    assert producer.send_block(3, 4, b"", b"")  # and the real thing, with an empty body
    heads = []
    for _ in range(5):
        with consumer.receive(timeout=5) as fr:
            heads.append(fr.block_head(4096))
    assert heads[:4] == [None, None, None, None]
    assert heads[4] is not None and heads[4][1] == _frame.HEADER_SIZE
