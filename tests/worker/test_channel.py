"""The worker channel: messages over a ring pair, written once into the sender's block, chunked when large."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from mcp_edge.native import _frame
from mcp_edge.worker.channel import (
    LISTEN_BATCH,
    Channel,
    ChannelClosed,
    ChannelListener,
    Message,
    MessageError,
    connect_channel,
)

SIZES = (1024, 16 * 1024)
COUNTS = (16, 4)


def _pair(tmp_path: Path) -> tuple[ChannelListener, Channel]:
    """A listener (the runtime's side) and a connected channel (the worker's side), both in this process."""
    lst = ChannelListener(str(tmp_path / "w"), ring_entries=64, ring_spin_us=0, slab_sizes=SIZES, slab_counts=COUNTS)
    out: list[Channel] = []
    t = threading.Thread(target=lambda: out.append(connect_channel(*lst.paths, timeout=5, ring_spin_us=0)))
    t.start()

    async def accept() -> int:
        return await lst.accept(5)

    assert asyncio.run(accept()) == os.getpid()
    t.join()
    return lst, out[0]


def test_messages_cross_both_ways_with_their_extensions(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    runtime = lst.channel

    async def go() -> None:
        ext = _frame.encode_extensions(deadline_ns=123456789, priority=7)
        await runtime.send(10, 42, b"hello worker", extensions=ext)
        with await worker.receive(5) as msg:
            assert (msg.type, msg.id, bytes(msg.body)) == (10, 42, b"hello worker")
            assert (msg.deadline_ns, msg.priority) == (123456789, 7)
        await worker.send(11, 42, b"")
        with await runtime.receive(5) as msg:
            assert (msg.type, msg.id, bytes(msg.body), msg.deadline_ns) == (11, 42, b"", None)

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


def test_a_small_body_is_a_view_of_the_senders_block_and_goes_back_on_release(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)

    async def go() -> None:
        # More messages than the 1 KiB class has blocks: only released blocks let the sender go on.
        for i in range(3 * COUNTS[0]):
            await lst.channel.send(1, i, bytes([i % 256]) * 500)
            msg = await worker.receive(5)
            assert bytes(msg.body) == bytes([i % 256]) * 500
            msg.release()
            msg.release()  # idempotent
            with pytest.raises(ValueError, match="released"):
                bytes(msg.body)  # the view went with the block
        assert lst.channel.producer.stats()["loans"] >= 3 * COUNTS[0]

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


def test_a_message_larger_than_a_block_is_chunked_and_joined(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    body = os.urandom(5 * SIZES[-1] + 123)
    ext = _frame.encode_extensions(deadline_ns=99)

    async def go() -> None:
        send = asyncio.create_task(lst.channel.send(12, 7, body, extensions=ext))
        msg = await worker.receive(5)
        await send
        assert (msg.type, msg.id, msg.deadline_ns) == (12, 7, 99)
        assert bytes(msg.body) == body
        msg.release()

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


def test_chunked_messages_of_different_ids_interleave(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    a, b = os.urandom(3 * SIZES[-1]), os.urandom(2 * SIZES[-1] + 5)

    async def go() -> None:
        sends = asyncio.gather(lst.channel.send(5, 1, a), lst.channel.send(5, 2, b))
        got = {}
        for _ in range(2):
            msg = await worker.receive(5)
            got[msg.id] = bytes(msg.body)
            msg.release()
        await sends
        assert got == {1: a, 2: b}

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


def test_a_full_ring_makes_the_sender_wait_not_fail(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    n = 200  # more than the 64 ring entries and the 16 small blocks

    async def go() -> None:
        send = asyncio.create_task(_send_many(lst.channel, n))
        await asyncio.sleep(0.05)
        assert not send.done()  # held back: nothing is received yet
        for i in range(n):
            msg = await worker.receive(5)
            assert msg.id == i
            msg.release()
        await send

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


async def _send_many(ch: Channel, n: int) -> None:
    for i in range(n):
        await ch.send(1, i, b"x" * 100)


def test_try_send_refuses_rather_than_wait(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    try:
        sent = 0
        while lst.channel.try_send(20, 0, b"beat"):
            sent += 1
            assert sent <= 64
        assert sent == COUNTS[0]  # the small class ran out first: nothing was sent past it

        async def drain() -> None:
            for _ in range(sent):
                (await worker.receive(5)).release()

        asyncio.run(drain())
        assert lst.channel.try_send(20, 0, b"beat")
        with pytest.raises(ValueError, match="does not fit one block"):
            lst.channel.try_send(20, 0, b"x" * SIZES[-1])
    finally:
        worker.close()
        lst.close()


def test_send_nowait_sends_what_fits_a_block_now_and_leaves_the_rest_to_send(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    try:
        ext = _frame.encode_extensions(priority=3)
        assert lst.channel.send_nowait(10, 1, b"now", ext)
        big = b"z" * SIZES[-1]  # more than a block with its header: chunks, so it must go through send()
        assert not lst.channel.send_nowait(10, 2, big)
        sent = 1
        while lst.channel.send_nowait(10, 3, b"fill"):
            sent += 1
            assert sent <= 64
        assert sent == COUNTS[0]  # the small class ran out: False, nothing sent

        async def go() -> None:
            with await worker.receive(5) as msg:
                assert (msg.id, bytes(msg.body), msg.priority) == (1, b"now", 3)
            for _ in range(sent - 1):
                with await worker.receive(5) as msg:
                    assert (msg.id, bytes(msg.body)) == (3, b"fill")
            with pytest.raises(TimeoutError):
                await worker.receive(0.05)  # the refused ones were not sent

        asyncio.run(go())
        worker.close()
        lst.channel.close()
        with pytest.raises(ChannelClosed):
            lst.channel.send_nowait(10, 4, b"late")
    finally:
        worker.close()
        lst.close()


def test_in_an_mcp_edge_loop_the_peer_is_woken_once_at_the_end_of_the_turn(tmp_path: Path) -> None:
    from mcp_edge.transport.spin import loop_factory

    lst, worker = _pair(tmp_path)
    consumer = worker.consumer

    def signalled() -> bool:
        try:
            os.read(consumer.wake_fd, 8)
        except BlockingIOError:
            return False
        return True

    async def go() -> None:
        assert not consumer.arm()  # the worker's side goes to sleep on its eventfd
        for i in range(3):
            assert lst.channel.send_nowait(10, i, b"in one turn")
        assert not signalled()  # still this turn: the worker was not woken yet
        await asyncio.sleep(0)  # the turn ends: select pays the wake-up
        assert signalled()
        for i in range(3):
            with await worker.receive(5) as msg:
                assert msg.id == i
        assert not consumer.arm()
        lst.channel.producer.send_block(10, 3, b"", b"at once")  # not held: woken at once
        assert signalled()
        with await worker.receive(5) as msg:
            assert msg.id == 3

    try:
        with asyncio.Runner(loop_factory=loop_factory(0)) as runner:
            runner.run(go())
    finally:
        worker.close()
        lst.close()


def test_a_forged_block_is_refused_and_the_channel_goes_on(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)

    async def go() -> None:
        lst.channel.producer.send(b"\x00" * 40, type=3, id=1)  # not a frame: raw bytes on the ring
        with pytest.raises(MessageError, match="frame 3/1"):
            await worker.receive(5)
        header = _frame.encode_header(4, 2, kind=_frame.BLOCK, length=8, segment=0, offset=0)
        lst.channel.producer.send(header + b"12345678", type=4, id=2)  # a frame, but not of its own block
        with pytest.raises(MessageError, match="does not describe its own block"):
            await worker.receive(5)
        await lst.channel.send(5, 3, b"fine")
        with await worker.receive(5) as msg:
            assert bytes(msg.body) == b"fine"

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


def test_closing_one_side_ends_the_other(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)

    async def go() -> None:
        worker.close()
        with pytest.raises(ChannelClosed):
            await lst.channel.receive(5)
        with pytest.raises(ChannelClosed):
            await lst.channel.send(1, 1, b"x")

    try:
        asyncio.run(go())
    finally:
        lst.close()


# -- listen: a steady stream through the loop's reader callback ---------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.got: list[tuple[int, int, bytes]] = []
        self.closed: list[ChannelClosed] = []
        self.bad: list[MessageError] = []
        self.enough = asyncio.Event()
        self.want = 0

    def message(self, msg: Message) -> None:
        with msg:
            self.got.append((msg.type, msg.id, bytes(msg.body)))
        if len(self.got) >= self.want:
            self.enough.set()

    def lost(self, exc: ChannelClosed) -> None:
        self.closed.append(exc)
        self.enough.set()


def test_listen_hands_on_every_message_in_order_past_the_batch_and_the_slab(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)
    n = 3 * LISTEN_BATCH + 5  # more than one wake-up's batch, and more than the 1 KiB class has blocks

    async def go() -> None:
        col = _Collector()
        col.want = n
        worker.listen(col.message, col.lost, col.bad.append)
        assert worker.listening
        for i in range(n):
            await lst.channel.send(7, i, i.to_bytes(4, "little") * 100)
        await asyncio.wait_for(col.enough.wait(), 10)
        assert [(t, i) for t, i, _ in col.got] == [(7, i) for i in range(n)]
        assert all(body == i.to_bytes(4, "little") * 100 for _, i, body in col.got)
        assert col.closed == [] and col.bad == []
        worker.unlisten()
        assert not worker.listening
        # After unlisten the messages wait for whoever reads next.
        await lst.channel.send(8, 1, b"after")
        with await worker.receive(5) as msg:
            assert (msg.type, bytes(msg.body)) == (8, b"after")
        assert len(col.got) == n

    try:
        asyncio.run(go())
    finally:
        worker.close()
        lst.close()


def test_listen_delivers_what_came_first_then_reports_the_close_once(tmp_path: Path) -> None:
    lst, worker = _pair(tmp_path)

    async def go() -> None:
        col = _Collector()
        col.want = 10**9  # wake only for the close
        for i in range(5):
            await worker.send(1, i, b"before the close")
        worker.close()
        lst.channel.listen(col.message, col.lost)
        await asyncio.wait_for(col.enough.wait(), 10)
        await asyncio.sleep(0.05)  # a second report would come in these loop turns
        assert [i for _, i, _ in col.got] == list(range(5))
        assert len(col.closed) == 1 and isinstance(col.closed[0], ChannelClosed)
        assert not lst.channel.listening and lst.channel.closed
        with pytest.raises(ChannelClosed):
            lst.channel.listen(col.message, col.lost)

    try:
        asyncio.run(go())
    finally:
        lst.close()


def test_a_failing_handler_is_logged_and_the_next_message_follows(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    lst, worker = _pair(tmp_path)

    async def go() -> None:
        col = _Collector()
        col.want = 2

        def handler(msg: Message) -> None:
            if msg.id == 0:
                msg.release()
                raise RuntimeError("handler broke on message 0")
            col.message(msg)

        worker.listen(handler, col.lost)
        with pytest.raises(RuntimeError, match="listening already"):
            worker.listen(handler, col.lost)
        lst.channel.producer.send(b"\x00" * 40, type=3, id=9)  # malformed: reported, not delivered
        for i in range(3):
            await lst.channel.send(2, i, b"m")
        await asyncio.wait_for(col.enough.wait(), 10)
        assert [i for _, i, _ in col.got] == [1, 2]
        assert col.closed == []

    try:
        with caplog.at_level("WARNING", logger="mcp_edge.worker"):
            asyncio.run(go())
        assert "handler broke on message 0" in caplog.text
        assert "frame 3/9" in caplog.text
    finally:
        worker.close()
        lst.close()
