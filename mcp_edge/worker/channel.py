"""An asyncio message channel over a ring pair: messages out through a Producer, in through a Consumer.

Each message is written once, by its sender, into a slab block of the sender's shared-memory segment and handed
over by a 32-byte ring descriptor (type, id, END). The block starts with a wire-format frame header
(docs/wire-format.md) of the ``BLOCK`` kind and its extension TLVs (deadline, priority, principal), followed by
the body; the header's offset names the body in this very block, so the CRC covers the header and extensions and
leaves the body untouched. A message larger than one block of the ring's largest class goes as several frames of
the same type and id, END on the last; the receiver joins them (one copy, only then).

A receiver gets a :class:`Message` whose ``body`` is a view of the sender's block where it lies; ``release()`` (or
leaving its ``with``) gives the block back. Two ways to receive: ``await receive()`` (one message; the loop
watches the ring's eventfd for that wait only), or ``listen(on_message, on_closed)`` for a steady stream: the
eventfd and the producer's pidfd stay registered with the loop, and each wake-up hands every ready message to
``on_message`` in order, with no future or task per message. Backpressure: a sender whose ring or slab class is
full waits (asyncio sleeps from 20 µs up to 2 ms) until the receiver catches up or the peer goes away; nothing
blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import IpcError, McpEdgeError, PeerClosed, PeerDied, RingClosed, RingFull, SlabExhausted
from mcp_edge.native import _frame
from mcp_edge.transport.spin import LoopSelector, owed_wakes

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from mcp_edge.native._frame import Frame as WireFrame
    from mcp_edge.native._shm import Consumer, Frame, Producer

__all__ = ["Channel", "ChannelClosed", "ChannelListener", "Message", "MessageError", "connect_channel"]

log = logging.getLogger("mcp_edge.worker")

HEADER = _frame.HEADER_SIZE
LISTEN_BATCH = 64  # messages handed on per wake-up before the loop gets a turn (others wait one iteration)
_WAIT_FIRST = 20e-6
_WAIT_MAX = 2e-3


class ChannelClosed(McpEdgeError, ConnectionError):
    """The other side of the channel is gone (it died or closed its end), or this side was closed.
    ``died`` is True when the peer process died; ``pid`` is its pid when known."""

    def __init__(self, message: str, *, died: bool = False, pid: int = 0) -> None:
        super().__init__(message)
        self.died = died
        self.pid = pid


class MessageError(McpEdgeError, ValueError):
    """A message on the channel was malformed: a bad frame in its block, or chunks that do not join."""


def _closed(exc: BaseException) -> ChannelClosed:
    if isinstance(exc, PeerDied):
        return ChannelClosed(f"the peer process {exc.pid} died", died=True, pid=exc.pid)
    if isinstance(exc, PeerClosed):
        return ChannelClosed(f"the peer process {exc.pid} closed the channel", pid=exc.pid)
    return ChannelClosed(f"the channel is closed ({exc})")


class Message:
    """One message received: ``type``, ``id``, its extension TLVs (``deadline_ns``, ``priority``,
    ``extensions`` and ``tlvs()`` of ``frame``) and ``body``, a view of the sender's block (joined bytes for a
    chunked message). ``release()`` gives the block back; the body must not be used after it."""

    __slots__ = ("_frame", "_head", "_held", "_max_ext", "body", "id", "type")

    def __init__(self, type: int, id: int, head: bytes | WireFrame, body: memoryview, held: list[Frame],
                 max_extensions: int = 4096) -> None:
        self.type = type
        self.id = id
        self._head = head  # the header and extensions as checked bytes, decoded when first asked for
        self._frame: WireFrame | None = None
        self._max_ext = max_extensions
        self.body = body
        self._held = held

    @property
    def frame(self) -> WireFrame:
        """The message's (first) frame header with its extension TLVs."""
        if self._frame is None:
            head = self._head
            self._frame = (_frame.decode(head, max_extensions=self._max_ext) if isinstance(head, bytes)
                           else head)
        return self._frame

    @property
    def deadline_ns(self) -> int | None:
        return self.frame.deadline_ns

    @property
    def priority(self) -> int | None:
        return self.frame.priority

    def tlvs(self) -> list[tuple[int, memoryview]]:
        return self.frame.tlvs()

    def release(self) -> None:
        """Give the message's block(s) back to the sender (idempotent)."""
        held, self._held = self._held, []
        if held:
            self.body.release()
        for fr in held:
            fr.release()

    def __enter__(self) -> Message:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Message(type={self.type}, id={self.id}, body={len(self.body)} bytes)"


class Channel:
    """Both directions of one peer: ``send`` on ``producer``, ``receive`` on ``consumer`` (see the module)."""

    def __init__(self, producer: Producer, consumer: Consumer, *, max_extensions: int = 4096,
                 max_message: int = 64 * 1024 * 1024) -> None:
        self.producer = producer
        self.consumer = consumer
        self._max_ext = max_extensions
        self._chunk = producer.max_message
        self._closed = False
        self._max_joined = max_message
        self._partial: dict[tuple[int, int], tuple[WireFrame, bytearray]] = {}
        self._listening: tuple[asyncio.AbstractEventLoop, list[int], Callable[[Message], None],
                               Callable[[ChannelClosed], None], Callable[[MessageError], None]] | None = None
        self._holder: tuple[asyncio.AbstractEventLoop | None, LoopSelector | None] = (None, None)
        self._owing = False  # a wake-up of the peer is held back until the loop's turn ends

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_block(self) -> int:
        """The largest message that travels in one block (header and extensions included)."""
        return self._chunk

    # -- sending -------------------------------------------------------------------------------------------

    async def send(self, type: int, id: int, body: Buffer = b"", *, extensions: Buffer = b"") -> None:
        """Send one message; waits (asyncio) while the ring or the slab is full. ChannelClosed if the peer is
        gone or this side closed; ValueError if ``extensions`` cannot fit one block."""
        if self._closed:
            raise ChannelClosed("this channel was closed")
        data = memoryview(body).cast("B")
        ext = bytes(extensions)
        room = self._chunk - HEADER
        if len(ext) > min(self._max_ext, room):
            raise ValueError(f"{len(ext)} bytes of extensions do not fit a block of {self._chunk} bytes")
        if len(ext) + len(data) <= room:
            if not self._send_now(type, id, ext, data):  # the common case: room now, no coroutine step
                await self._frame(type, id, ext, data, True)
            return
        first = room - len(ext)
        await self._frame(type, id, ext, data[:first], False)
        at = first
        while at < len(data):
            end = min(len(data), at + room)
            await self._frame(type, id, b"", data[at:end], end == len(data))
            at = end

    def send_nowait(self, type: int, id: int, body: bytes | bytearray, extensions: bytes = b"") -> bool:
        """``send`` without waiting: True when the message went at once in one block; False when it must wait
        for room or go as several blocks (nothing sent: ``await send(...)`` it). ChannelClosed as ``send``."""
        if self._closed:
            raise ChannelClosed("this channel was closed")
        if len(body) + len(extensions) + HEADER > self._chunk or len(extensions) > self._max_ext:
            return False
        return self._send_now(type, id, extensions, body)

    def try_send(self, type: int, id: int, body: Buffer = b"", *, extensions: Buffer = b"") -> bool:
        """Send a message that fits one block at once if the ring and slab have room; False if not (nothing
        sent). For heartbeats and other messages that may be dropped rather than wait."""
        if self._closed:
            raise ChannelClosed("this channel was closed")
        data = memoryview(body).cast("B")
        ext = bytes(extensions)
        size = HEADER + len(ext) + len(data)
        if size > self._chunk:
            raise ValueError(f"a {size}-byte message does not fit one block of {self._chunk} bytes")
        return self._send_now(type, id, ext, data)

    def _send_now(self, type: int, id: int, ext: bytes, data: Buffer) -> bool:
        """One block, sent at once if the slab and the ring have room; False (nothing sent) if not. In a loop
        made by ``transport.spin.loop_factory`` the peer's wake-up waits for the end of the loop's turn."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        holder = self._holder
        if holder[0] is not loop:
            holder = self._holder = (loop, owed_wakes(loop))
        owed = holder[1]
        try:
            sent = self.producer.send_block(type, id, ext, data, owed is not None)
        except (PeerDied, PeerClosed, RingClosed) as exc:
            self._closed = True
            raise _closed(exc) from None
        if sent and owed is not None and not self._owing:
            self._owing = True
            owed.owe(self._pay_wake)
        return sent

    def _pay_wake(self) -> None:
        self._owing = False
        self.producer.flush_wake()

    def _fill(self, loan: Any, type: int, id: int, ext: bytes, data: memoryview, end: bool) -> None:
        start = HEADER + len(ext)
        with memoryview(loan) as view:
            _frame.encode_header_into(view, type, id, kind=_frame.BLOCK, length=len(data),
                                      segment=self.producer.segment_id, offset=loan.offset + start,
                                      extensions=ext, end=end)
            view[HEADER:start] = ext
            view[start:start + len(data)] = data

    async def _frame(self, type: int, id: int, ext: bytes, data: memoryview, end: bool) -> None:
        size = HEADER + len(ext) + len(data)
        wait = _WAIT_FIRST
        while True:
            try:
                loan = self.producer.loan_block(size, timeout=0)
                break
            except SlabExhausted:
                pass
            except (PeerDied, PeerClosed, RingClosed) as exc:
                self._closed = True
                raise _closed(exc) from None
            await asyncio.sleep(wait)
            wait = min(wait * 2, _WAIT_MAX)
            if self._closed:
                raise ChannelClosed("this channel was closed")
        try:
            self._fill(loan, type, id, ext, data, end)
        except BaseException:
            self.producer.unloan(loan)
            raise
        wait = _WAIT_FIRST
        while True:
            try:
                self.producer.publish(loan, type=type, id=id, end=end, length=size, timeout=0)
                return
            except RingFull:
                pass
            except (PeerDied, PeerClosed, RingClosed) as exc:
                self._closed = True
                raise _closed(exc) from None
            if self._closed:
                self.producer.unloan(loan)
                raise ChannelClosed("this channel was closed")
            await asyncio.sleep(wait)
            wait = min(wait * 2, _WAIT_MAX)

    # -- receiving -----------------------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Message:
        """The next whole message. ChannelClosed when the peer is gone; MessageError for a malformed one
        (its block went back; the channel stays usable); TimeoutError after ``timeout`` seconds."""
        while True:
            if self._closed:
                raise ChannelClosed("this channel was closed")
            try:
                fr = await self.consumer.areceive(timeout)
            except (PeerDied, PeerClosed, RingClosed) as exc:
                self._closed = True
                self._partial.clear()
                raise _closed(exc) from None
            except IpcError as exc:  # a malformed descriptor: its block already went back
                raise MessageError(f"a malformed frame on the channel: {exc}") from exc
            msg = self._take(fr)
            if msg is not None:
                return msg

    def listen(self, on_message: Callable[[Message], None], on_closed: Callable[[ChannelClosed], None],
               on_error: Callable[[MessageError], None] | None = None) -> None:
        """Hand every message to ``on_message`` as it arrives, from the running loop's reader callback, until
        ``unlisten``. ``on_message`` owns the message (release it) and must not block; an exception it raises
        is logged and the next message follows. ``on_closed`` is called once when the peer is gone (the
        channel stops listening first); ``on_error`` for a malformed message (default: a warning)."""
        if self._listening is not None:
            raise RuntimeError("this channel is listening already")
        if self._closed:
            raise ChannelClosed("this channel was closed")
        loop = asyncio.get_running_loop()
        c = self.consumer
        if c.wake_fd < 0:
            raise RuntimeError("this channel's consumer has no eventfd")
        pidfds = [os.dup(fd) for fd in c.peer_pidfds]
        self._listening = (loop, pidfds, on_message, on_closed, on_error or _warn)
        loop.add_reader(c.wake_fd, self._readable)
        for fd in pidfds:
            loop.add_reader(fd, self._peer_event)
        loop.call_soon(self._readable)  # what was published before the eventfd was watched

    def unlisten(self) -> None:
        """Stop listening (idempotent)."""
        state, self._listening = self._listening, None
        if state is None:
            return
        loop, pidfds = state[0], state[1]
        c = self.consumer
        with contextlib.suppress(Exception):
            c.disarm()
        if not loop.is_closed():
            if c.wake_fd >= 0:
                loop.remove_reader(c.wake_fd)
            for fd in pidfds:
                loop.remove_reader(fd)
        for fd in pidfds:
            os.close(fd)

    @property
    def listening(self) -> bool:
        return self._listening is not None

    def _lost(self, exc: BaseException) -> None:
        state = self._listening
        self._closed = True
        self._partial.clear()
        self.unlisten()
        if state is not None:
            state[3](_closed(exc))

    def _peer_event(self) -> None:
        """A producer's pidfd became readable: it exited. What it published first is read first."""
        self._readable()
        if self._listening is None:
            return
        try:
            self.consumer.check_peers()
        except (PeerDied, PeerClosed, RingClosed) as exc:
            self._lost(exc)

    def _readable(self) -> None:
        state = self._listening
        if state is None:
            return
        c = self.consumer
        with contextlib.suppress(BlockingIOError):
            os.read(c.wake_fd, 8)
        on_message, on_error = state[2], state[4]
        for _ in range(LISTEN_BATCH):
            try:
                fr = c.try_receive()
                if fr is None:
                    c.check_peers(closed_only=True)  # a producer that closed kicked us after its last frame
            except (PeerDied, PeerClosed, RingClosed) as exc:
                self._lost(exc)
                return
            except IpcError as exc:  # a malformed descriptor: its block already went back
                on_error(MessageError(f"a malformed frame on the channel: {exc}"))
                continue
            if fr is None:
                try:
                    if c.arm():  # published between the last look and the arming: read on
                        continue
                except (PeerDied, PeerClosed, RingClosed) as exc:
                    self._lost(exc)
                return
            try:
                msg = self._take(fr)
            except MessageError as exc:
                on_error(exc)
                continue
            if msg is None:
                continue
            try:
                on_message(msg)
            except Exception:
                log.exception("a channel message handler failed")
            if self._listening is not state:
                return
        state[0].call_soon(self._readable)  # more are ready: the loop gets a turn first

    def _take(self, fr: Frame) -> Message | None:
        checked = fr.block_head(self._max_ext)  # the common case, checked in one call
        if checked is not None and fr.end and not self._partial:
            head, start = checked
            block = fr.payload
            body = block[start:]
            block.release()
            return Message(fr.type, fr.id, head, body, [fr], self._max_ext)
        block = fr.payload
        try:
            # The header and extensions are copied out (32 bytes and a few TLVs): the Message keeps them
            # after its block went back.
            start = _frame.frame_size(block[:HEADER], max_extensions=self._max_ext)
            wire = _frame.decode(bytes(block[:start]), max_extensions=self._max_ext)
            if (wire.kind != _frame.BLOCK or wire.type != fr.type or wire.id != fr.id or wire.end != fr.end
                    or wire.offset != fr.offset + start or start + wire.payload_length != len(block)):
                raise MessageError(f"frame {fr.type}/{fr.id}: its header does not describe its own block")
        except (ValueError, McpEdgeError) as exc:
            block.release()
            fr.release()
            self._forget(fr.type, fr.id)
            raise exc if isinstance(exc, MessageError) else MessageError(f"frame {fr.type}/{fr.id}: {exc}") from exc
        body = block[start:]
        block.release()
        key = (fr.type, fr.id)
        partial = self._partial.get(key)
        if partial is None and fr.end:
            return Message(fr.type, fr.id, wire, body, [fr], self._max_ext)
        # A chunk: copied out at once and its block given back, so a message larger than the sender's slab
        # still crosses (the sender needs those blocks for the next chunks).
        if partial is None:
            partial = self._partial[key] = (wire, bytearray())
        partial[1].extend(body)
        body.release()
        fr.release()
        if len(partial[1]) > self._max_joined:
            del self._partial[key]
            raise MessageError(f"message {fr.type}/{fr.id} grew past {self._max_joined} bytes: dropped")
        if not fr.end:
            return None
        del self._partial[key]
        return Message(fr.type, fr.id, partial[0], memoryview(partial[1]), [], self._max_ext)

    def _forget(self, type: int, id: int) -> None:
        self._partial.pop((type, id), None)

    # -- closing ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close both ends (idempotent): blocks held by partial messages go back; the peer sees PeerClosed."""
        if self._owing:
            self._pay_wake()
        self.unlisten()
        if self._closed and self.producer.closed and self.consumer.closed:
            return
        self._closed = True
        self._partial.clear()
        for end in (self.producer, self.consumer):
            with contextlib.suppress(IpcError, OSError):
                end.close()

    def __repr__(self) -> str:
        return f"Channel(pid={os.getpid()}, block={self._chunk}, closed={self._closed})"


def _warn(exc: MessageError) -> None:
    log.warning("%s", exc)


# -- setting a channel up ------------------------------------------------------------------------------------


class ChannelListener:
    """The runtime's side of a worker's channel before the worker attaches: two ring listeners on unix sockets
    ``<base>.in`` (the runtime produces, the worker consumes) and ``<base>.out`` (the reverse). The rings and
    their segments live as long as this object, across restarts of the worker: a dead worker's blocks come
    back and the next worker attaches to the same sockets."""

    def __init__(self, base: str, *, ring_entries: int, ring_spin_us: int, slab_sizes: tuple[int, ...],
                 slab_counts: tuple[int, ...]) -> None:
        from mcp_edge import ipc

        self.base = base
        common: dict[str, Any] = {"ring_entries": ring_entries, "ring_spin_us": ring_spin_us,
                                  "slab_sizes": slab_sizes, "slab_counts": slab_counts}
        self._out = ipc.listen(base + ".in", role="producer", **common)
        try:
            self._in = ipc.listen(base + ".out", role="consumer", **common)
        except BaseException:
            self._out.close()
            raise
        self.channel = Channel(self._out.producer, self._in.consumer)

    @property
    def paths(self) -> tuple[str, str]:
        """(the socket the worker consumes from, the socket it produces to)."""
        return self.base + ".in", self.base + ".out"

    async def accept(self, timeout: float) -> int:
        """Wait (asyncio) for a worker to attach to both rings; its pid. TimeoutError after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pid = 0
        for lst in (self._out, self._in):
            ready: asyncio.Future[None] = loop.create_future()

            def wake(f: asyncio.Future[None] = ready) -> None:
                if not f.done():
                    f.set_result(None)

            loop.add_reader(lst.fileno(), wake)
            try:
                await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
            finally:
                loop.remove_reader(lst.fileno())
            peer = lst.accept(timeout=max(0.001, deadline - loop.time()))
            if pid and peer.pid != pid:
                raise IpcError(f"two processes attached to one worker's rings: {pid} and {peer.pid}")
            pid = peer.pid
        self.channel._closed = False
        return pid

    def close(self) -> None:
        self.channel.unlisten()
        self.channel._closed = True
        self.channel._partial.clear()
        for lst in (self._out, self._in):
            with contextlib.suppress(IpcError, OSError):
                lst.close()


def connect_channel(consume_path: str, produce_path: str, *, timeout: float, ring_spin_us: int) -> Channel:
    """The worker's side: attach to the runtime's two rings (blocking, within ``timeout`` seconds)."""
    from mcp_edge import ipc

    consumer = ipc.connect_consumer(consume_path, timeout=timeout, ring_spin_us=ring_spin_us)
    try:
        producer = ipc.connect_producer(produce_path, timeout=timeout, ring_spin_us=ring_spin_us)
    except BaseException:
        consumer.close()
        raise
    return Channel(producer, consumer)
