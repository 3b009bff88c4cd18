"""The processes behind perf/bench_ipc.py: one producer/consumer pair per IPC impl, and the in-process yardsticks.

Each impl runs as a **pair** of processes. The driver is the object a
:class:`mcp_edge.perf.Child` hosts (``Pair(impl, cpus)``, built in a fresh
interpreter, so a peer that crashes costs only its own rows); it forks its
partner, and each pins itself with ``os.sched_setaffinity``: the driver to
``cpus[0]``, the partner to ``cpus[1]`` (the same CPU for the "same" placement).
The driver is the pinger and the producer, the partner the echo and the
consumer. Between measurements the partner sleeps on a control pipe (so a
transport that busy-polls, iceoryx2 across CPUs, burns no CPU between rounds);
a measurement tells it how many messages to echo or consume, and it answers
``done`` on a result pipe once it has.

What the driver answers (``Child.call``):

- ``rtt(warm, n)``: ``warm + n`` round trips of the 64-byte message; (p50, p99)
  in ns of the last ``n``, each timed with ``perf_counter_ns`` around one send
  and the matching receive;
- ``stream(size, n, mode, warm)``: ns from the first send of ``n`` messages of
  ``size`` bytes to the partner's ``done`` after the last (``warm`` untimed
  messages first); ``mode`` is what the consumer does with each payload:
  ``drop`` (receive and release, touch nothing), ``crc`` (CRC32C of the payload
  in place with ``mcp_edge.native.crc32c``);
- ``verify_rtt(payloads)``: each payload's echo, as bytes;
- ``verify_stream(size, count, seed)``: (the zlib CRC-32 of each of ``count``
  distinct payloads sent, the CRC-32 the consumer computed of each it got, in
  order): the bytes really travel, nothing lost, duplicated or reordered;
- ``count_allocs(size, warm, n, how)``: per side, the heap allocations of ``n``
  messages (``how="count"``: the LD_PRELOAD counter of tools/malloc_count, which
  the driver must have been started under) or the Python blocks tracemalloc saw
  kept (``how="trace"``).

A partner that dies (a crash in the peer's library, an exception) ends the
measurement under way with :class:`PartnerDied` naming how (the driver watches
SIGCHLD), which the parent's Child reports as a failure of that peer. The
partner dies with its driver (``PR_SET_PDEATHSIG``) and closes the descriptors
its driver had before the pair was built (the harness's pipes among them), so
the harness sees its driver's death at once.

:class:`Local` runs the in-process yardsticks (``memcpy``, ``crc32c``) in one
process pinned like a driver.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import itertools
import os
import pickle
import platform
import random
import signal
import struct
import sys
import time
import traceback
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_edge.perf import PeerSkipped

MAX_MESSAGE = 1 << 20
"""The largest message a pair carries (the 1 MiB stream)."""
STREAM_SLOTS = 8
"""Messages in flight, for the transports where the bench chooses: slots of shared_memory+pipe, the
subscriber buffer of iceoryx2, the bound of multiprocessing.Queue."""
RTT_REPLY_MAX = 4096
"""The largest echo (iceoryx2's reply service is sized for it)."""
MQ_PROC = "/proc/sys/fs/mqueue"

RING_COPY = "mcp_edge[ring-copy]"
RING_ZEROCOPY = "mcp_edge[ring-zerocopy]"
RING_C = "mcp_edge[ring-c]"
RING_PY = "mcp_edge[ring-py]"
PIPE = "multiprocessing.Pipe"
QUEUE = "multiprocessing.Queue"
MQUEUE = "posix_ipc.MessageQueue"
SHM_PIPE = "shared_memory+pipe"
ICEORYX2 = "iceoryx2"
MEMCPY = "memcpy"
CRC_IN_PROCESS = "mcp_edge[crc32c-in-process]"

_FRAME = struct.Struct("<I")
_SEQ = struct.Struct("<Q")
MARK = b"mcpedge\x01"
"""What a zero-copy producer writes into each block of a timed stream (8 bytes: the payload is assumed
written in place by whoever fills it; writing a constant keeps the loop free of allocations)."""


class PartnerDied(RuntimeError):
    """The partner process of a pair is gone; the message says how."""


# --------------------------------------------------------------------------- helpers


def describe_status(status: int) -> str:
    """``killed by SIGSEGV`` / ``exited with status 1`` for a waitpid status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of already sorted values (``q`` in (0, 1])."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-int(q * len(sorted_values) * 1000) // 1000))  # ceil(q * n) without float drift
    return sorted_values[min(rank, len(sorted_values)) - 1]


def payload_for(size: int, seed: int = 0x1BC) -> bytes:
    """``size`` seeded random bytes (the same in every process and run)."""
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def distinct_payloads(size: int, count: int, seed: int) -> list[bytes]:
    """``count`` payloads of ``size`` bytes that all differ (a sequence number first, when there is room)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        body = bytearray(rng.randbytes(size))
        if size >= _SEQ.size:
            _SEQ.pack_into(body, 0, i)
        out.append(bytes(body))
    return out


def _send_msg(fd: int, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_FRAME.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _recv_msg(fd: int) -> Any:
    head = _read_exact(fd, _FRAME.size)
    if head is None:
        return None
    body = _read_exact(fd, _FRAME.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _open_fds() -> set[int]:
    """The descriptors open now (less the one the listing itself used, closed again by the time it is checked)."""
    listed = {int(name) for name in os.listdir("/proc/self/fd")}
    open_now = set()
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:
            continue
        open_now.add(fd)
    return open_now


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent (the driver) dies; exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _crc32c() -> Callable[[Any], int]:
    from mcp_edge.native import crc32c

    return crc32c


MALLOC_COUNT_FILE = Path(__file__).resolve().parents[2] / "tools" / "malloc_count" / "malloc_count.py"


def malloc_count() -> ModuleType:
    """tools/malloc_count/malloc_count.py (the LD_PRELOAD allocation counter's Python side)."""
    name = "mcp_edge_perf_malloc_count"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, MALLOC_COUNT_FILE)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {MALLOC_COUNT_FILE}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def _counted(work: Callable[[int], object], n: int) -> tuple[int, int]:
    """(heap allocations, frees) the process made while ``work(n)`` ran (``n`` messages), less (at least 0)
    what the same call with no message costs (``work(0)``: the counting window, the call and its loop's
    set-up), so that what is left is what the messages cost."""
    mc = malloc_count()
    for _ in range(2):  # the second is the one kept: the first may fill a cache
        with mc.window() as empty:
            work(0)
    with mc.window() as counts:
        work(n)
    return counts.calls - empty.calls, max(0, counts.free - empty.free)


def _traced(work: Callable[[], object]) -> tuple[int, int]:
    """(Python memory blocks, bytes) still allocated after ``work`` that were not before, per tracemalloc
    (its own bookkeeping left out)."""
    import tracemalloc

    own = tracemalloc.Filter(False, tracemalloc.__file__)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces([own])
        work()
        after = tracemalloc.take_snapshot().filter_traces([own])
    finally:
        tracemalloc.stop()
    diff = after.compare_to(before, "lineno")
    return sum(d.count_diff for d in diff), sum(d.size_diff for d in diff)


def _mq_limit(name: str, default: int) -> int:
    try:
        with open(f"{MQ_PROC}/{name}") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return default


# --------------------------------------------------------------------------- transports


class Transport:
    """One IPC mechanism, both halves. Built in the driver before the fork; ``driver_start`` and
    ``partner_start`` run after it, each in its own process. The loops are written out per transport,
    with their callables bound to locals, so that every impl pays only for its own calls."""

    note = ""

    def __init__(self, same_cpu: bool) -> None:
        self.same_cpu = same_cpu

    def driver_start(self) -> None:
        pass

    def partner_start(self) -> None:
        pass

    def accept(self) -> None:
        """In the driver, while the partner starts (it may connect to what ``driver_start`` set up)."""

    def connected(self) -> None:
        """In the driver, once the partner has started."""

    # driver side
    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        raise NotImplementedError

    def roundtrip(self, msg: bytes) -> bytes:
        raise NotImplementedError

    def produce(self, payload: bytes, n: int) -> None:
        raise NotImplementedError

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        raise NotImplementedError

    def drain(self) -> None:
        """After a stream: take back what the consumer returned (slots), so the next measurement starts clean."""

    # partner side
    def echo(self, n: int) -> None:
        raise NotImplementedError

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        raise NotImplementedError

    def wake_stats(self) -> dict[str, dict[str, int]] | None:
        """This process's wake-up counters of its ends (the rings only): ``tx`` its producer's, ``rx`` its
        consumer's."""
        return None

    def close(self) -> None:
        pass


def _consumer_work(mode: str) -> Callable[[Any], int] | None:
    if mode == "drop":
        return None
    if mode == "crc":
        return _crc32c()
    if mode == "check":
        return zlib.crc32
    raise ValueError(f"unknown consume mode {mode!r}")


class PipeTransport(Transport):
    """``multiprocessing.Pipe()`` (duplex: a socketpair) with ``send_bytes`` and ``recv_bytes_into`` a
    preallocated buffer: no pickling, no allocation per message on the receiving side."""

    note = ("multiprocessing.Pipe: one duplex Pipe (a socketpair), send_bytes / recv_bytes_into a preallocated "
            "buffer (its fastest use: no pickling); the socket buffer bounds what is in flight")

    def __init__(self, same_cpu: bool) -> None:
        super().__init__(same_cpu)
        import multiprocessing

        self._a, self._b = multiprocessing.get_context("fork").Pipe(duplex=True)
        self._buf = bytearray(MAX_MESSAGE + 64)

    def driver_start(self) -> None:
        self._b.close()

    def partner_start(self) -> None:
        self._a.close()

    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        send, recv, buf, clock = self._a.send_bytes, self._a.recv_bytes_into, self._buf, time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            send(msg)
            recv(buf)
            samples[i] = clock() - t0

    def roundtrip(self, msg: bytes) -> bytes:
        self._a.send_bytes(msg)
        return bytes(memoryview(self._buf)[: self._a.recv_bytes_into(self._buf)])

    def produce(self, payload: bytes, n: int) -> None:
        send = self._a.send_bytes
        for _ in range(n):
            send(payload)

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        for p in payloads:
            self._a.send_bytes(p)

    def echo(self, n: int) -> None:
        recv, send, buf = self._b.recv_bytes_into, self._b.send_bytes, self._buf
        for _ in range(n):
            send(buf, 0, recv(buf))

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        recv, buf = self._b.recv_bytes_into, self._buf
        work = _consumer_work(mode)
        if work is None:
            for _ in range(n):
                recv(buf)
            return None
        view = memoryview(buf)
        if mode == "crc":
            payload = view[:size]
            for _ in range(n):
                recv(buf)
                work(payload)
            return None
        return [work(view[: recv(buf)]) for _ in range(n)]


class QueueTransport(Transport):
    """Two ``multiprocessing.Queue``s (one each way), ``put`` and ``get``: every message pickled, sent by
    the queue's feeder thread."""

    note = (f"multiprocessing.Queue: one queue each way, put/get (pickled; a feeder thread writes the pipe), "
            f"maxsize {STREAM_SLOTS}")

    def __init__(self, same_cpu: bool) -> None:
        super().__init__(same_cpu)
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._fwd = ctx.Queue(maxsize=STREAM_SLOTS)
        self._back = ctx.Queue(maxsize=STREAM_SLOTS)

    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        put, get, clock = self._fwd.put, self._back.get, time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            put(msg)
            get()
            samples[i] = clock() - t0

    def roundtrip(self, msg: bytes) -> bytes:
        self._fwd.put(msg)
        reply = self._back.get()
        assert isinstance(reply, bytes)
        return reply

    def produce(self, payload: bytes, n: int) -> None:
        put = self._fwd.put
        for _ in range(n):
            put(payload)

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        for p in payloads:
            self._fwd.put(p)

    def echo(self, n: int) -> None:
        get, put = self._fwd.get, self._back.put
        for _ in range(n):
            put(get())

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        get = self._fwd.get
        work = _consumer_work(mode)
        if work is None:
            for _ in range(n):
                get()
            return None
        if mode == "crc":
            for _ in range(n):
                work(get())
            return None
        return [work(get()) for _ in range(n)]

    def close(self) -> None:
        for q in (self._fwd, self._back):
            q.cancel_join_thread()
            q.close()


class MessageQueueTransport(Transport):
    """Two POSIX message queues (``posix_ipc.MessageQueue``), one each way, at the largest message size the
    system allows without privileges (``/proc/sys/fs/mqueue/msgsize_max``); a larger payload travels as
    chunks of that size. The queues are unlinked as soon as both processes hold them."""

    def __init__(self, same_cpu: bool) -> None:
        super().__init__(same_cpu)
        try:
            import posix_ipc
        except ImportError:
            raise PeerSkipped("not installed (pip install posix_ipc)") from None
        if not posix_ipc.MESSAGE_QUEUES_SUPPORTED:
            raise PeerSkipped("posix_ipc built without message queue support on this platform")
        self.chunk = min(_mq_limit("msgsize_max", posix_ipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT), MAX_MESSAGE)
        self.depth = _mq_limit("msg_max", posix_ipc.QUEUE_MESSAGES_MAX_DEFAULT)
        self.note = (f"posix_ipc.MessageQueue: one queue each way, {self.depth} messages of at most {self.chunk} B "
                     f"({MQ_PROC}/msg_max and msgsize_max here); larger payloads go as {self.chunk} B chunks "
                     "(a message per chunk: exceeding msgsize_max needs CAP_SYS_RESOURCE or a system-wide sysctl, "
                     "which the bench does not change)")
        base = f"/mcp-edge-perf-ipc-{os.getpid()}-{id(self):x}"
        self._fwd = posix_ipc.MessageQueue(base + "-fwd", posix_ipc.O_CREX, max_messages=self.depth,
                                           max_message_size=self.chunk)
        try:
            self._back = posix_ipc.MessageQueue(base + "-back", posix_ipc.O_CREX, max_messages=self.depth,
                                                max_message_size=self.chunk)
        except BaseException:
            self._fwd.unlink()
            raise
        for q in (self._fwd, self._back):  # the descriptors survive the fork; the names are not needed
            q.unlink()

    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        send, receive, clock = self._fwd.send, self._back.receive, time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            send(msg)
            receive()
            samples[i] = clock() - t0

    def roundtrip(self, msg: bytes) -> bytes:
        self._fwd.send(msg)
        reply, _ = self._back.receive()
        return bytes(reply)

    def produce(self, payload: bytes, n: int) -> None:
        send, chunk = self._fwd.send, self.chunk
        if len(payload) <= chunk:
            for _ in range(n):
                send(payload)
            return
        view = memoryview(payload)
        pieces = [view[i : i + chunk] for i in range(0, len(payload), chunk)]
        for _ in range(n):
            for piece in pieces:
                send(piece)

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        for p in payloads:
            self.produce(p, 1)

    def echo(self, n: int) -> None:
        receive, send = self._fwd.receive, self._back.send
        for _ in range(n):
            send(receive()[0])

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        receive, chunk = self._fwd.receive, self.chunk
        work = _consumer_work(mode)
        pieces = max(1, -(-size // chunk))
        if work is None:
            for _ in range(n * pieces):
                receive()
            return None
        crcs = []
        for _ in range(n):
            value = 0
            for _ in range(pieces):
                value = work(receive()[0], value)  # type: ignore[call-arg]
            crcs.append(value)
        return crcs if mode == "check" else None

    def close(self) -> None:
        for q in (self._fwd, self._back):
            with contextlib.suppress(Exception):
                q.close()


class SharedMemoryPipeTransport(Transport):
    """``multiprocessing.shared_memory.SharedMemory`` for the payloads, a pipe for the doorbell.

    The producer copies each payload into a free slot of the segment and writes a 16-byte doorbell
    (offset, length) on a pipe; the consumer reads the doorbells that are there (several at once when
    they queued), views each payload in place (no copy out) and hands the slots back with one write of
    their offsets on a second pipe. ``STREAM_SLOTS`` slots of ``MAX_MESSAGE`` bytes; the echo of a round
    trip goes into a slot of its own and is announced the same way."""

    note = (f"shared_memory+pipe: multiprocessing.shared_memory segment of {STREAM_SLOTS} slots of "
            f"{MAX_MESSAGE >> 20} MiB; the producer copies each payload into a free slot and writes a 16-byte "
            "doorbell (offset, length) on a pipe; the consumer views it in place (no copy out) and returns the "
            "slots it took with one write per batch of doorbells on a second pipe")

    _BELL = struct.Struct("<QQ")

    def __init__(self, same_cpu: bool) -> None:
        super().__init__(same_cpu)
        from multiprocessing import shared_memory

        self._shm = shared_memory.SharedMemory(create=True, size=(STREAM_SLOTS + 1) * MAX_MESSAGE)
        self._shm.unlink()  # the mapping is inherited by the fork; nothing left behind on a crash
        buf = self._shm.buf
        assert buf is not None
        self._buf: memoryview = buf
        self._fwd_r, self._fwd_w = os.pipe()
        self._back_r, self._back_w = os.pipe()
        self._reply = STREAM_SLOTS * MAX_MESSAGE
        self._free = [i * MAX_MESSAGE for i in range(STREAM_SLOTS)]

    def driver_start(self) -> None:
        os.close(self._fwd_r)
        os.close(self._back_w)

    def partner_start(self) -> None:
        os.close(self._fwd_w)
        os.close(self._back_r)

    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        buf, write, read, unpack, clock = self._buf, os.write, os.read, self._BELL.unpack, time.perf_counter_ns
        fwd, back, size = self._fwd_w, self._back_r, len(msg)
        bell = self._BELL.pack(0, size)
        for i in range(n):
            t0 = clock()
            buf[0:size] = msg
            write(fwd, bell)
            off, length = unpack(read(back, 16))
            buf[off : off + length]  # the reply, viewed in place
            samples[i] = clock() - t0

    def roundtrip(self, msg: bytes) -> bytes:
        buf = self._buf
        buf[0 : len(msg)] = msg
        os.write(self._fwd_w, self._BELL.pack(0, len(msg)))
        off, length = self._BELL.unpack(os.read(self._back_r, 16))
        return bytes(buf[off : off + length])

    def _take_returned(self) -> None:
        data = os.read(self._back_r, 8 * STREAM_SLOTS)
        if not data:
            raise EOFError("the consumer closed its return pipe")
        self._free.extend(array("Q", data))

    def produce(self, payload: bytes, n: int) -> None:
        buf, write, pack, free, take = self._buf, os.write, self._BELL.pack, self._free, self._take_returned
        fwd, size = self._fwd_w, len(payload)
        for _ in range(n):
            if not free:
                take()
            off = free.pop()
            buf[off : off + size] = payload
            write(fwd, pack(off, size))

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        for p in payloads:
            self.produce(p, 1)

    def drain(self) -> None:
        while len(self._free) < STREAM_SLOTS:
            self._take_returned()

    def echo(self, n: int) -> None:
        buf, read, write, unpack, pack = self._buf, os.read, os.write, self._BELL.unpack, self._BELL.pack
        fwd, back, reply = self._fwd_r, self._back_w, self._reply
        for _ in range(n):
            off, length = unpack(read(fwd, 16))
            buf[reply : reply + length] = buf[off : off + length]
            write(back, pack(reply, length))

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        buf, read, write, fwd, back = self._buf, os.read, os.write, self._fwd_r, self._back_w
        work = _consumer_work(mode)
        crcs: list[int] = []
        got = 0
        while got < n:
            bells = read(fwd, 16 * STREAM_SLOTS)
            if not bells:
                raise EOFError("the producer closed its doorbell pipe")
            fields = array("Q", bells)  # offset, length, offset, length, ...
            if work is not None:
                for j in range(0, len(fields), 2):
                    value = work(buf[fields[j] : fields[j] + fields[j + 1]])
                    if mode == "check":
                        crcs.append(value)
            write(back, fields[0::2].tobytes())
            got += len(fields) // 2
        return crcs if mode == "check" else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._shm.close()


class Iceoryx2Transport(Transport):
    """iceoryx2 publish-subscribe (``Slice[c_uint8]``), one service each way, loan / send / receive.

    Zero-copy like ``mcp_edge[ring-zerocopy]``: in a stream the producer loans a sample and writes only
    an 8-byte marker (the payload is assumed written in place), the consumer receives and
    releases it; an echo copies the 64 bytes into a sample of its own. Lossless: safe overflow off,
    publisher ``RetryUntilDelivered``. Waiting: across CPUs both sides poll ``receive()``, iceoryx2's
    lowest-latency use; on one CPU a poll would spin until preempted, so each send is followed by a
    notify on an event service and the receiver blocks on its listener when nothing is there."""

    def __init__(self, same_cpu: bool) -> None:
        super().__init__(same_cpu)
        try:
            import iceoryx2  # noqa: F401 - the import is the check; ports are made after the fork
        except ImportError as exc:
            machine = platform.machine()
            where = "" if machine in ("x86_64", "AMD64") else f" (PyPI has x86_64 wheels only; this is {machine})"
            raise PeerSkipped(f"not installed{where}: pip install iceoryx2 ({exc})") from None
        wait = ("the receiver blocks on an event listener, the sender notifies after each send"
                if same_cpu else "both sides poll receive() (busy wait)")
        self.note = (f"iceoryx2: publish-subscribe of Slice[c_uint8], one service each way, subscriber buffer "
                     f"{STREAM_SLOTS}, lossless (safe overflow off, RetryUntilDelivered); zero-copy: in streams the "
                     f"producer loans a sample and writes only an 8-byte marker; waiting: {wait}")
        self._base = f"mcp-edge-perf-ipc-{os.getpid()}-{id(self):x}"
        self._ports: dict[str, Any] = {}

    def _open(self, driver: bool) -> None:
        import iceoryx2 as iox2

        with contextlib.suppress(Exception):
            iox2.set_log_level(iox2.LogLevel.Error)
        node = iox2.NodeBuilder.new().signal_handling_mode(iox2.SignalHandlingMode.Disabled).create(
            iox2.ServiceType.Ipc)

        def service(direction: str, max_len: int) -> Any:
            return (node.service_builder(iox2.ServiceName.new(f"{self._base}-{direction}"))
                    .publish_subscribe(iox2.Slice[ctypes.c_uint8])
                    .subscriber_max_buffer_size(STREAM_SLOTS)
                    .enable_safe_overflow(False)
                    .max_publishers(1).max_subscribers(1)
                    .open_or_create())

        def events(direction: str) -> Any:
            return node.service_builder(iox2.ServiceName.new(f"{self._base}-{direction}-ev")).event().open_or_create()

        out, inp = ("fwd", "back") if driver else ("back", "fwd")
        out_svc = service(out, MAX_MESSAGE)
        in_svc = service(inp, MAX_MESSAGE)
        self._ports = {
            "node": node,
            "services": (out_svc, in_svc),
            "pub": out_svc.publisher_builder()
            .initial_max_slice_len(MAX_MESSAGE if driver else RTT_REPLY_MAX)
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .create(),
            "sub": in_svc.subscriber_builder().create(),
        }
        if self.same_cpu:
            out_ev, in_ev = events(out), events(inp)
            self._ports["events"] = (out_ev, in_ev)
            self._ports["notifier"] = out_ev.notifier_builder().create()
            self._ports["listener"] = in_ev.listener_builder().create()

    def driver_start(self) -> None:
        self._open(driver=True)

    def connected(self) -> None:
        self._ports["pub"].update_connections()

    def partner_start(self) -> None:
        self._open(driver=False)

    def _receiver(self) -> Callable[[], Any]:
        receive = self._ports["sub"].receive
        if not self.same_cpu:
            def poll() -> Any:
                while True:
                    sample = receive()
                    if sample is not None:
                        return sample
            return poll
        wait = self._ports["listener"].blocking_wait

        def blocking() -> Any:
            while True:
                sample = receive()
                if sample is not None:
                    return sample
                wait()
        return blocking

    def _sender(self) -> Callable[[Any], None]:
        notifier = self._ports.get("notifier")
        if notifier is None:
            def send(sample: Any) -> None:
                sample.send()
            return send
        notify = notifier.notify

        def send_and_notify(sample: Any) -> None:
            sample.send()
            notify()
        return send_and_notify

    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        loan, memmove, send, receive = self._ports["pub"].loan_slice_uninit, ctypes.memmove, self._sender(), \
            self._receiver()
        size, clock = len(msg), time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            sample = loan(size)
            memmove(sample.payload_ptr, msg, size)
            send(sample.assume_init())
            receive().delete()
            samples[i] = clock() - t0

    def roundtrip(self, msg: bytes) -> bytes:
        sample = self._ports["pub"].loan_slice_uninit(len(msg))
        ctypes.memmove(sample.payload_ptr, msg, len(msg))
        self._sender()(sample.assume_init())
        reply = self._receiver()()
        data = ctypes.string_at(reply.payload_ptr, reply.payload().len())
        reply.delete()
        return data

    def produce(self, payload: bytes, n: int) -> None:
        loan, memmove, send = self._ports["pub"].loan_slice_uninit, ctypes.memmove, self._sender()
        size = len(payload)
        for _ in itertools.repeat(None, n):
            sample = loan(size)
            memmove(sample.payload_ptr, MARK, 8)
            send(sample.assume_init())

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        loan, send = self._ports["pub"].loan_slice_uninit, self._sender()
        for p in payloads:
            sample = loan(len(p))
            ctypes.memmove(sample.payload_ptr, p, len(p))
            send(sample.assume_init())

    def echo(self, n: int) -> None:
        loan, memmove, send, receive = self._ports["pub"].loan_slice_uninit, ctypes.memmove, self._sender(), \
            self._receiver()
        for _ in range(n):
            got = receive()
            size = got.payload().len()
            reply = loan(size)
            memmove(reply.payload_ptr, got.payload_ptr, size)
            got.delete()
            send(reply.assume_init())

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        receive = self._receiver()
        work = _consumer_work(mode)
        if work is None:
            for _ in range(n):
                receive().delete()
            return None
        view_type = ctypes.c_uint8 * size
        crcs = []
        for _ in range(n):
            sample = receive()
            length = sample.payload().len() if mode == "check" else size
            view = memoryview(view_type.from_address(sample.payload_ptr) if length == size
                              else (ctypes.c_uint8 * length).from_address(sample.payload_ptr))
            value = work(view)
            del view
            sample.delete()
            if mode == "check":
                crcs.append(value)
        return crcs if mode == "check" else None

    def close(self) -> None:
        ports, self._ports = self._ports, {}
        for key in ("listener", "notifier", "sub", "pub"):
            port = ports.pop(key, None)
            if port is not None:
                with contextlib.suppress(Exception):
                    port.delete()
        ports.clear()


class RingTransport(Transport):
    """mcp_edge's shared-memory rings (``mcp_edge.ipc``), one ring each way.

    The driver listens (``ipc.listen``: it creates the segments, producer end of the forward ring, consumer
    end of the backward one) and the partner connects over the unix sockets, as two unrelated processes
    would. ``zerocopy``: the producer loans a block and writes in place (a stream writes an 8-byte marker,
    an echo its 64 bytes), then publishes; otherwise ``send(bytes)`` copies the payload into a block. The
    consumer receives a frame (a view of the block where it lies) and releases it. Ring settings are the
    board's (``Settings.load()``: ``ring_entries``, ``ring_spin_us``, ``ring_payload_crc``, ``slab_sizes``,
    ``slab_counts``), with a 1 MiB slab class added when the largest is smaller (the 1 MiB streams need it).
    """

    def __init__(self, same_cpu: bool, *, zerocopy: bool, options: dict[str, Any]) -> None:
        super().__init__(same_cpu)
        import tempfile

        from mcp_edge import ipc  # noqa: F401 - ImportError here says the ring is not built

        self.zerocopy = zerocopy
        self._options = dict(options)
        self._dir = tempfile.mkdtemp(prefix="mcp-edge-perf-ipc-")
        self._paths = (os.path.join(self._dir, "fwd.sock"), os.path.join(self._dir, "back.sock"))
        self._listeners: list[Any] = []
        self._tx: Any = None
        self._rx: Any = None
        o = self._options
        classes = ", ".join(f"{size} B x{count}" for size, count in zip(o["slab_sizes"], o["slab_counts"],
                                                                         strict=True))
        self.note = (f"{RING_ZEROCOPY if zerocopy else RING_COPY}: mcp_edge.ipc, one ring each way (listen/"
                     f"connect over unix sockets), {o['ring_entries']} entries, spin {o['ring_spin_us']} us when "
                     f"the two processes can run apart (none on one CPU), payload CRC "
                     f"{'on' if o['ring_payload_crc'] else 'off'}, slab classes {classes}; "
                     + ("loan_block + write in place (8-byte marker in streams) + publish" if zerocopy
                        else "send(bytes): the payload copied into a block")
                     + "; the consumer receives and releases each frame")

    def driver_start(self) -> None:
        from mcp_edge import ipc

        o = self._options
        kw = {"ring_entries": o["ring_entries"], "ring_spin_us": o["ring_spin_us"],
              "ring_payload_crc": o["ring_payload_crc"], "slab_sizes": o["slab_sizes"],
              "slab_counts": o["slab_counts"]}
        fwd = ipc.listen(self._paths[0], role="producer", **kw)
        self._listeners.append(fwd)
        back = ipc.listen(self._paths[1], role="consumer", **kw)
        self._listeners.append(back)
        self._tx, self._rx = fwd.producer, back.consumer

    def accept(self) -> None:
        for listener in self._listeners:
            listener.accept(timeout=60)

    def partner_start(self) -> None:
        from mcp_edge import ipc

        spin = self._options["ring_spin_us"]
        self._rx = ipc.connect_consumer(self._paths[0], timeout=60, ring_spin_us=spin)
        self._tx = ipc.connect_producer(self._paths[1], timeout=60, ring_spin_us=spin)

    def ping(self, msg: bytes, n: int, samples: list[int]) -> None:
        receive, clock = self._rx.receive, time.perf_counter_ns
        if self.zerocopy:
            loan, publish, size = self._tx.loan_block, self._tx.publish, len(msg)
            for i in range(n):
                t0 = clock()
                block = loan(size)
                block[:] = msg
                publish(block)
                receive().release()
                samples[i] = clock() - t0
            return
        send = self._tx.send
        for i in range(n):
            t0 = clock()
            send(msg)
            receive().release()
            samples[i] = clock() - t0

    def _put(self, data: bytes) -> None:
        if self.zerocopy:
            block = self._tx.loan_block(len(data))
            block[:] = data
            self._tx.publish(block)
        else:
            self._tx.send(data)

    def roundtrip(self, msg: bytes) -> bytes:
        self._put(msg)
        with self._rx.receive() as frame:
            return bytes(frame.payload)

    def produce(self, payload: bytes, n: int) -> None:
        if self.zerocopy:
            loan, publish, size = self._tx.loan_block, self._tx.publish, len(payload)
            for _ in itertools.repeat(None, n):
                block = loan(size)
                block[:8] = MARK
                publish(block)
            return
        send = self._tx.send
        for _ in itertools.repeat(None, n):
            send(payload)

    def produce_each(self, payloads: Sequence[bytes]) -> None:
        for p in payloads:
            self._put(p)

    def echo(self, n: int) -> None:
        receive = self._rx.receive
        if self.zerocopy:
            loan, publish = self._tx.loan_block, self._tx.publish
            for _ in itertools.repeat(None, n):
                frame = receive()
                block = loan(len(frame))
                block[:] = frame
                publish(block)
                frame.release()
            return
        send = self._tx.send
        for _ in itertools.repeat(None, n):
            frame = receive()
            send(frame)
            frame.release()

    def consume(self, size: int, n: int, mode: str) -> list[int] | None:
        receive = self._rx.receive
        work = _consumer_work(mode)
        if work is None:
            for _ in itertools.repeat(None, n):
                receive().release()
            return None
        crcs = []
        for _ in itertools.repeat(None, n):
            frame = receive()
            value = work(frame)  # the Frame itself is the buffer: no memoryview per message
            frame.release()
            if mode == "check":
                crcs.append(value)
        return crcs if mode == "check" else None

    def wake_stats(self) -> dict[str, dict[str, int]] | None:
        out: dict[str, dict[str, int]] = {}
        if self._tx is not None:
            st = self._tx.stats()
            out["tx"] = {k: int(st[k]) for k in ("published", "sleeps_blocks", "sleeps_space", "sleeps_paced",
                                                 "wakes")}
        if self._rx is not None:
            st = self._rx.stats()
            out["rx"] = {k: int(st[k]) for k in ("received", "sleeps", "wakes", "wakes_held")}
        return out

    def close(self) -> None:
        import shutil

        for end in (self._tx, self._rx):
            if end is not None:
                with contextlib.suppress(Exception):
                    end.close()
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener.close()
        self._listeners.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


TRANSPORTS: dict[str, Callable[[bool], Transport]] = {
    PIPE: PipeTransport,
    QUEUE: QueueTransport,
    MQUEUE: MessageQueueTransport,
    SHM_PIPE: SharedMemoryPipeTransport,
    ICEORYX2: Iceoryx2Transport,
}


def make_transport(impl: str, same_cpu: bool, options: dict[str, Any] | None = None) -> Transport:
    """The transport named ``impl``; PeerSkipped when it cannot run here. ``options``: the ring settings
    (:func:`ring_options`), for the mcp_edge impls."""
    if impl in (RING_COPY, RING_ZEROCOPY, RING_C, RING_PY):
        return RingTransport(same_cpu, zerocopy=impl != RING_COPY, options=options or ring_options())
    try:
        factory = TRANSPORTS[impl]
    except KeyError:
        raise ValueError(f"no IPC impl named {impl!r}") from None
    return factory(same_cpu)


RING_1MIB_BLOCKS = 16
"""Blocks of the 1 MiB slab class the bench adds when the board's largest class is smaller: 16 MiB in
flight at most. A producer out of them is woken once half (8) are back, while the consumer still has 8 to
work on (at 20-40 us of CRC32C each, far longer than a wake-up takes); fewer would leave it little to work on
while the producer wakes, more only grow the memory both sides go through in turn."""


def ring_options() -> dict[str, Any]:
    """The ring settings of this board (``Settings.load()``), with a 1 MiB slab class added when the largest
    is smaller, and ``RING_1MIB_BLOCKS`` blocks of it."""
    from mcp_edge.board.settings import Settings

    settings = Settings.load()
    sizes, counts = list(settings.slab_sizes), list(settings.slab_counts)
    if sizes[-1] < MAX_MESSAGE:
        sizes.append(MAX_MESSAGE)
        counts.append(RING_1MIB_BLOCKS)
    return {"ring_entries": settings.ring_entries, "ring_spin_us": settings.ring_spin_us,
            "ring_payload_crc": settings.ring_payload_crc, "slab_sizes": tuple(sizes), "slab_counts": tuple(counts)}


def ring_blocks(options: dict[str, Any], size: int) -> int:
    """Blocks of the ring's slab class that messages of ``size`` bytes come from (the smallest that holds
    them): how many distinct buffers a stream of them goes through in turn. 1 when no class holds them."""
    for cls, count in zip(options["slab_sizes"], options["slab_counts"], strict=True):
        if cls >= size:
            return int(count)
    return 1


# --------------------------------------------------------------------------- the pair


class Pair:
    """The driver of one impl's pair of processes (see the module docstring)."""

    def __init__(self, impl: str, cpus: tuple[int, int], options: dict[str, Any] | None = None) -> None:
        self.impl = impl
        self.cpus = (int(cpus[0]), int(cpus[1]))
        inherited = _open_fds() - {0, 1, 2}
        self.transport = make_transport(impl, self.cpus[0] == self.cpus[1], options)
        self._payloads: dict[int, bytes] = {}
        self._msg = payload_for(64)
        ctl_r, self._ctl = os.pipe()
        self._res, res_w = os.pipe()
        self._died: str | None = None
        self._active = False
        driver = os.getpid()
        pid = os.fork()
        if pid == 0:  # the partner
            try:
                self._partner_main(driver, inherited, ctl_r, res_w)
            finally:
                os._exit(70)  # not reached: _partner_main exits
        self._partner = pid
        os.close(ctl_r)
        os.close(res_w)
        self._old_sigchld = signal.signal(signal.SIGCHLD, self._on_sigchld)
        os.sched_setaffinity(0, {self.cpus[0]})
        with self._measuring():
            # The driver's half first (iceoryx2: it creates the services the partner then opens), then the
            # partner's, then the driver learns of the partner's ports.
            self.transport.driver_start()
            self._command("start")
            self.transport.accept()
            self._wait_done("while starting")
            self.transport.connected()
        import atexit

        atexit.register(self.close)

    def note(self) -> str:
        """What this impl does, for the bench's notes."""
        return self.transport.note

    # -- the partner

    def _partner_main(self, driver: int, inherited: set[int], ctl: int, res: int) -> None:
        status = 0
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in inherited | {self._ctl, self._res}:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _die_with_parent(driver)
            os.sched_setaffinity(0, {self.cpus[1]})
            if _recv_msg(ctl) != ("start",):
                raise RuntimeError("the driver did not start the pair")
            self.transport.partner_start()
            _send_msg(res, ("done", None))
            while True:
                command = _recv_msg(ctl)
                if command is None or command[0] == "exit":
                    break
                op, *args = command
                result: object = None
                if op == "echo":
                    self.transport.echo(*args)
                elif op == "consume":
                    result = self.transport.consume(*args)
                elif op == "count":  # heap allocations while consuming (the LD_PRELOAD counter)
                    result = _counted(functools.partial(self._consume_drop, args[0]), args[1])
                elif op == "stats":  # the partner's wake-up counters (rings)
                    result = self.transport.wake_stats()
                elif op == "trace":  # Python blocks left allocated after consuming (tracemalloc)
                    result = _traced(functools.partial(self._consume_drop, *args))
                else:
                    raise ValueError(f"unknown partner command {op!r}")
                _send_msg(res, ("done", result))
        except BaseException as exc:  # the driver reports it (PartnerDied), with this text
            traceback.print_exc()
            with contextlib.suppress(Exception):
                _send_msg(res, ("error", f"{type(exc).__name__}: {exc}"))
            status = 1
        finally:
            with contextlib.suppress(Exception):
                self.transport.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    # -- the driver

    def _reap(self) -> str | None:
        """If the partner has died: why (kept in ``_died``), else None."""
        if not self._partner or self._died:
            return self._died
        try:
            pid, status = os.waitpid(self._partner, os.WNOHANG)
        except ChildProcessError:
            pid, status = self._partner, 0
        if not pid:
            return None
        self._partner = 0
        why = f"the partner process {describe_status(status)}"
        last = self._last_error()
        self._died = f"{why} ({last})" if last else why
        return self._died

    def _on_sigchld(self, signum: int, frame: object) -> None:
        died = self._reap()
        if died and self._active:
            raise PartnerDied(died)

    def _last_error(self) -> str:
        """The error the partner sent before it died, if any (read without blocking)."""
        os.set_blocking(self._res, False)
        try:
            data = b""
            with contextlib.suppress(OSError):
                while chunk := os.read(self._res, 65536):
                    data += chunk
        finally:
            os.set_blocking(self._res, True)
        last = ""
        while len(data) >= _FRAME.size:
            (size,) = _FRAME.unpack_from(data)
            body, data = data[_FRAME.size : _FRAME.size + size], data[_FRAME.size + size :]
            with contextlib.suppress(Exception):
                message = pickle.loads(body)
                if message[0] == "error":
                    last = str(message[1])
        return last

    @contextlib.contextmanager
    def _measuring(self) -> Iterator[None]:
        """Around each exchange with the partner: its death ends the exchange with PartnerDied, whether the
        SIGCHLD handler raised it or a peer library turned the interrupted wait into an error of its own
        (posix_ipc's SignalError, a closed pipe)."""
        if self._died:
            raise PartnerDied(self._died)
        self._active = True
        try:
            yield
        except PartnerDied:
            raise
        except Exception as exc:
            self._active = False
            died = self._reap()
            if died:
                raise PartnerDied(died) from exc
            raise
        finally:
            self._active = False

    def _wait_done(self, during: str) -> Any:
        reply = _recv_msg(self._res)
        if reply is None:
            raise PartnerDied(self._died or f"the partner process closed its result pipe {during}")
        if reply[0] == "error":
            raise PartnerDied(f"the partner process raised {reply[1]} {during}")
        return reply[1]

    def _command(self, *command: object) -> None:
        _send_msg(self._ctl, command)

    def rtt(self, warm: int, n: int) -> tuple[int, int]:
        """(p50, p99) ns of ``n`` round trips of 64 bytes after ``warm`` untimed ones."""
        total = warm + n
        samples = [0] * total
        with self._measuring():
            self._command("echo", total)
            self.transport.ping(self._msg, total, samples)
            self._wait_done("after the round trips")
        timed = sorted(samples[warm:])
        return percentile(timed, 0.50), percentile(timed, 0.99)

    def _payload(self, size: int) -> bytes:
        if size not in self._payloads:
            self._payloads[size] = payload_for(size)
        return self._payloads[size]

    def stream(self, size: int, n: int, mode: str, warm: int = 0) -> int:
        """ns to hand ``n`` messages of ``size`` bytes to the consumer (which does ``mode`` with each)."""
        payload = self._payload(size)
        with self._measuring():
            if warm:
                self._command("consume", size, warm, mode)
                self.transport.produce(payload, warm)
                self._wait_done("after the warm-up")
                self.transport.drain()
            self._command("consume", size, n, mode)
            t0 = time.perf_counter_ns()
            self.transport.produce(payload, n)
            self._wait_done("after the stream")
            elapsed = time.perf_counter_ns() - t0
            self.transport.drain()
        return elapsed

    def verify_rtt(self, payloads: list[bytes]) -> list[bytes]:
        """The echo of each payload."""
        with self._measuring():
            self._command("echo", len(payloads))
            replies = [self.transport.roundtrip(p) for p in payloads]
            self._wait_done("after the round trips")
        return replies

    def verify_stream(self, size: int, count: int, seed: int) -> tuple[list[int], list[int]]:
        """(CRC-32 of each payload sent, CRC-32 of each payload the consumer got), in order."""
        payloads = distinct_payloads(size, count, seed)
        with self._measuring():
            self._command("consume", size, count, "check")
            self.transport.produce_each(payloads)
            got = self._wait_done("after the stream")
            self.transport.drain()
        return [zlib.crc32(p) for p in payloads], list(got)

    def count_allocs(self, size: int, warm: int, n: int, how: str) -> dict[str, tuple[int, int]]:
        """Per side, what ``n`` messages of ``size`` bytes cost after ``warm`` untimed ones: ``how`` is
        ``count`` ((heap allocations, frees) from the LD_PRELOAD counter, which this process must have been
        started under) or ``trace`` ((blocks, bytes) tracemalloc saw left allocated)."""
        if how not in ("count", "trace"):
            raise ValueError(f"how must be 'count' or 'trace', not {how!r}")
        payload = self._payload(size)
        with self._measuring():
            if warm:
                self._command("consume", size, warm, "drop")
                self.transport.produce(payload, warm)
                self._wait_done("after the warm-up")
                self.transport.drain()
            self._command(how, size, n)
            if how == "count":
                producer = _counted(lambda k: self.transport.produce(payload, k), n)
            else:
                producer = _traced(functools.partial(self.transport.produce, payload, n))
            consumer = self._wait_done("after the counted messages")
            self.transport.drain()
        return {"producer": producer, "consumer": tuple(consumer)}

    def wake_stats(self) -> dict[str, Any] | None:
        """The ring ends' wake-up counters in both processes: {"driver": {...}, "partner": {...}}, each with
        ``tx`` (its producer: published, sleeps_blocks, sleeps_space, sleeps_paced, wakes) and ``rx`` (its consumer:
        received, sleeps, wakes, wakes_held); None for the other transports."""
        driver = self.transport.wake_stats()
        if driver is None:
            return None
        with self._measuring():
            self._command("stats")
            partner = self._wait_done("for its counters")
        return {"driver": driver, "partner": partner}

    def _consume_drop(self, size: int, n: int) -> None:
        self.transport.consume(size, n, "drop")

    def partner_pid(self) -> int:
        return self._partner

    def close(self) -> None:
        """Stop the partner and release the transport. Idempotent."""
        if self._partner:
            pid, self._partner = self._partner, 0
            with contextlib.suppress(OSError):
                self._command("exit")
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                    time.sleep(0.01)
                    continue
                break
            else:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            if self._old_sigchld is not None:
                signal.signal(signal.SIGCHLD, self._old_sigchld)
                self._old_sigchld = None
        self.transport.close()


class Local:
    """The in-process yardsticks, pinned to ``cpu``: ``memcpy`` (a memoryview slice assignment from one source
    buffer into a destination: one C memcpy per message) and ``mcp_edge[crc32c-in-process]`` (``crc32c`` of a
    buffer, as in the crc32c bench).

    ``rotations`` (size -> count) makes them do the ring's work: a ring's copying path writes each message
    into the next free block of its slab class, and its consumer reads each where it lies, so over a stream
    they go through all the class's blocks in turn; the yardstick then copies into (or CRCs) that many
    buffers in turn. A size not in it, or ``rotate=1``, is one cache-hot buffer."""

    def __init__(self, impl: str, cpu: int, rotations: dict[int, int] | None = None) -> None:
        if impl not in (MEMCPY, CRC_IN_PROCESS):
            raise ValueError(f"no in-process impl named {impl!r}")
        self.impl = impl
        self.rotations = {int(k): max(1, int(v)) for k, v in (rotations or {}).items()}
        os.sched_setaffinity(0, {int(cpu)})
        self._src = bytearray(payload_for(MAX_MESSAGE))
        self._sets: dict[int, list[bytearray]] = {}

    def note(self) -> str:
        return ""

    def _buffers(self, size: int, rotate: int) -> list[memoryview]:
        """``rotate`` buffers of ``size`` bytes, each filled once (its pages faulted in)."""
        have = self._sets.setdefault(size, [])
        while len(have) < rotate:
            have.append(bytearray(self._src[:size]))
        return [memoryview(b) for b in have[:rotate]]

    def stream(self, size: int, n: int, mode: str = "drop", warm: int = 0, rotate: int | None = None) -> int:
        """ns for ``n`` copies (memcpy: from one source into ``rotate`` destinations in turn) or CRCs (of
        ``rotate`` buffers in turn) of ``size`` bytes, after one untimed pass over them (``warm`` is taken
        for the pairs' signature). ``rotate`` None: the ring's block count for ``size`` (``rotations``),
        else 1."""
        if rotate is None:
            rotate = self.rotations.get(size, 1)
        src = memoryview(self._src)[:size]
        others = self._buffers(size, max(1, rotate))
        rounds, rest = divmod(n, len(others))
        clock = time.perf_counter_ns
        if self.impl == MEMCPY:
            for dst in others:  # steady state, as the ring's blocks are: each written once before
                dst[:] = src
            t0 = clock()
            for _ in itertools.repeat(None, rounds):
                for dst in others:
                    dst[:] = src
            for dst in others[:rest]:
                dst[:] = src
            elapsed = clock() - t0
            if others[0] != src:
                raise RuntimeError(f"memcpy copied {size} bytes wrongly")
            return elapsed
        crc = _crc32c()
        for buf in others:
            crc(buf)
        t0 = clock()
        for _ in itertools.repeat(None, rounds):
            for buf in others:
                crc(buf)
        for buf in others[:rest]:
            crc(buf)
        return clock() - t0
