"""Rings between processes (the peer is tests/ipc/peer.py): streams with generated sizes and interleavings, peers
killed with SIGKILL mid-stream, several producers on one ring, asyncio, and handshakes refused.

Nothing here measures time; timeouts only keep a broken run from hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_edge import ipc
from mcp_edge.errors import HandshakeError, PeerClosed, PeerDied, SegmentError
from mcp_edge.ipc import _wire
from mcp_edge.native._crc import crc32c

SIZES = (64, 256, 4096, 65536)
COUNTS = (64, 32, 16, 8)
WAIT = 60.0  # a hang guard, never a measurement

Spawn = Callable[..., Any]


def payload(seed: int, i: int, size: int) -> bytes:
    """What peer.py writes as payload i (the same formula, kept apart on purpose)."""
    return random.Random(seed * 1_000_003 + i).randbytes(size)


def listen(path: str, **kw: Any) -> ipc.Listener:
    kw.setdefault("slab_sizes", SIZES)
    kw.setdefault("slab_counts", COUNTS)
    kw.setdefault("ring_entries", 16)
    return ipc.listen(path, **kw)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(0, SIZES[-1]), min_size=1, max_size=60),
    entries=st.sampled_from([2, 4, 16, 256]),
    hold=st.integers(0, 6),
    copy=st.booleans(),
    payload_crc=st.booleans(),
    pause_every=st.integers(0, 7),
    seed=st.integers(0, 2**31),
)
def test_stream_between_processes_loses_duplicates_and_reorders_nothing(
        sock_path: str, spawn: Spawn, sizes: list[int], entries: int, hold: int, copy: bool, payload_crc: bool,
        pause_every: int, seed: int) -> None:
    """The consumer holds up to `hold` frames before releasing the oldest, the producer pauses every
    `pause_every` messages: both sides take turns waiting on a full ring, an exhausted class, an empty ring."""
    with listen(sock_path, ring_entries=entries, ring_payload_crc=payload_crc) as lst:
        peer = spawn(mode="produce", path=sock_path, sizes=sizes, seed=seed, copy=copy, pause_every=pause_every)
        lst.accept(timeout=WAIT)
        peer.event("ready")
        ring = lst.consumer
        held: list[ipc.Frame] = []
        ids, crcs = [], []
        for _ in sizes:
            frame = ring.receive(timeout=WAIT)
            ids.append(frame.id)
            crcs.append(crc32c(frame.payload))
            assert frame.end == (frame.id == len(sizes) - 1)
            held.append(frame)
            if len(held) > hold:
                held.pop(0).release()
        for frame in held:
            frame.release()
        done = peer.event("done")
        assert ids == list(range(len(sizes)))
        assert crcs == done["crcs"] == [crc32c(payload(seed, i, n)) for i, n in enumerate(sizes)]
        peer.wait_ok()
        with pytest.raises(PeerClosed):  # it closed after its last message, which came first
            ring.receive(timeout=WAIT)
        assert ring.stats()["received"] == len(sizes)
        assert ring.stats()["dropped"] == 0


def test_producer_killed_mid_stream(sock_path: str, spawn: Spawn) -> None:
    with listen(sock_path) as lst:
        peer = spawn(mode="produce", path=sock_path, sizes=[100] * 40, seed=1, hold_loans=3, end=False,
                     after="forever")
        lst.accept(timeout=WAIT)
        peer.event("ready")
        ring = lst.consumer
        held = [ring.receive(timeout=WAIT) for _ in range(5)]
        while True:  # the rest of its 40; it goes on publishing after them
            with ring.receive(timeout=WAIT) as frame:
                if frame.id == 39:
                    break
        peer.event("done")
        peer.kill()
        with pytest.raises(PeerDied) as died:
            while True:  # what it published before it died is still delivered, then the death
                ring.receive(timeout=WAIT).release()
        assert died.value.pid == peer.pid and died.value.role == "producer"
        assert died.value.reclaimed >= 3  # its loans (and any block in its magazines)
        stats = ring.stats()
        assert stats["peer_deaths"] == 1 and stats["reclaimed"] == died.value.reclaimed
        with pytest.raises(PeerDied):  # until a new producer attaches
            ring.receive(timeout=0)
        assert [bytes(f.payload) == payload(1, f.id, 100) for f in held] == [True] * 5  # still readable
        for frame in held:
            frame.release()

        # a new producer takes the ring over: its first reap frees what the consumer released
        fresh = spawn(mode="produce", path=sock_path, sizes=[10, 20, 30], seed=2, after="sleep")
        lst.accept(timeout=WAIT)
        fresh.event("ready")
        frames = [ring.receive(timeout=WAIT) for _ in range(3)]
        assert [(f.id, bytes(f.payload)) for f in frames] == [(i, payload(2, i, n)) for i, n in enumerate([10, 20, 30])]
        done = fresh.event("done")
        assert done["stats"]["arena"]["in_use"] == 3  # only the three it just published: nothing leaked
        assert done["stats"]["reaped"] >= 5


def test_consumer_killed_mid_stream(sock_path: str, spawn: Spawn) -> None:
    with listen(sock_path, role="producer", ring_entries=8) as lst:
        peer = spawn(mode="consume", path=sock_path, count=6, hold=4, after="sleep")
        lst.accept(timeout=WAIT)
        peer.event("ready")
        ring = lst.producer
        for i in range(6):
            ring.send(payload(3, i, 500), id=i, timeout=WAIT)
        done = peer.event("done")
        assert done["ids"] == list(range(6)) and done["held"] == 4
        for i in range(6, 9):
            ring.send(b"unread", id=i, timeout=WAIT)
        peer.kill()
        sent = 0
        with pytest.raises(PeerDied) as died:
            for i in range(9, 10_000):  # fills the ring, then the wait finds the death
                ring.send(b"after", id=i, timeout=WAIT)
                sent += 1
        assert sent <= 8
        assert died.value.pid == peer.pid and died.value.role == "consumer"
        assert died.value.reclaimed >= 4 + 3  # the frames it held and what it never read
        stats = ring.stats()
        assert stats["peer_deaths"] == 1
        ring.reap()
        assert ring.stats()["arena"]["in_use"] == 0  # every block came back
        assert ring.stats()["unread"] == 0  # the ring was reset
        with pytest.raises(PeerDied):
            ring.send(b"nobody", timeout=0)

        fresh = spawn(mode="consume", path=sock_path, count=3, hold=0)
        lst.accept(timeout=WAIT)
        fresh.event("ready")
        for i in range(3):
            ring.send(payload(4, i, 64), id=100 + i, timeout=WAIT)
        got = fresh.event("done")
        assert got["ids"] == [100, 101, 102]
        assert got["crcs"] == [crc32c(payload(4, i, 64)) for i in range(3)]
        fresh.wait_ok()


def test_three_producers_on_one_mpsc_ring(sock_path: str, spawn: Spawn) -> None:
    rng = random.Random(9)
    plans = {k: [rng.randrange(0, 5000) for _ in range(rng.randrange(50, 120))] for k in range(3)}
    with listen(sock_path, producers=3) as lst:
        peers = [spawn(mode="produce", path=sock_path, sizes=plans[k], seed=10 + k, type=k + 1,
                       pause_every=k + 2) for k in range(3)]
        slots = sorted(lst.accept(timeout=WAIT).slot for _ in peers)
        assert slots == [0, 1, 2]
        ring = lst.consumer
        next_id = {k: 0 for k in range(3)}
        segment_of: dict[int, int] = {}
        closed = 0
        ends = 0
        while ends < 3:
            try:
                frame = ring.receive(timeout=WAIT)
            except PeerClosed:  # one that finished and closed while the others go on
                closed += 1
                continue
            with frame:
                k = frame.type - 1
                assert frame.id == next_id[k], "a producer's frames arrive in its order"
                assert crc32c(frame.payload) == crc32c(payload(10 + k, frame.id, plans[k][frame.id]))
                assert segment_of.setdefault(k, frame.segment) == frame.segment  # from its own segment
                next_id[k] += 1
                ends += frame.end
        assert sorted(segment_of.values()) == [1, 2, 3]
        assert closed <= 3
        assert next_id == {k: len(plans[k]) for k in range(3)}
        for peer in peers:
            assert peer.event("ready")
            done = peer.event("done")
            assert len(done["crcs"]) == len(plans[peers.index(peer)])
            peer.wait_ok()


def test_mpsc_one_producer_killed_the_others_go_on(sock_path: str, spawn: Spawn) -> None:
    with listen(sock_path, producers=3) as lst:
        doomed = spawn(mode="produce", path=sock_path, sizes=[64] * 10, seed=20, type=1, end=False,
                       hold_loans=2, after="forever")
        lst.accept(timeout=WAIT)
        doomed.event("ready")
        ring = lst.consumer
        first = ring.receive(timeout=WAIT)  # one of the doomed producer's, held through its death
        assert first.type == 1
        doomed.event("done")
        doomed.kill()
        others = [spawn(mode="produce", path=sock_path, sizes=[300] * 60, seed=21 + k, type=k + 2,
                        pause_every=10) for k in range(2)]
        for _ in others:
            lst.accept(timeout=WAIT)
        deaths: list[PeerDied] = []
        next_id = {2: 0, 3: 0}
        ends = 0
        while ends < 2:
            try:
                frame = ring.receive(timeout=WAIT)
            except PeerDied as exc:
                deaths.append(exc)
                continue
            except PeerClosed:
                continue
            with frame:
                if frame.type == 1:
                    assert not deaths, "nothing of the dead producer comes after its death"
                    continue
                assert frame.id == next_id[frame.type]
                assert bytes(frame.payload) == payload(21 + frame.type - 2, frame.id, 300)
                next_id[frame.type] += 1
                ends += frame.end
        while not deaths:  # the death may be noticed only once the ring ran empty
            try:
                ring.receive(timeout=WAIT).release()
            except PeerDied as exc:
                deaths.append(exc)
            except PeerClosed:
                pass
        assert [d.pid for d in deaths] == [doomed.pid]
        assert deaths[0].reclaimed >= 2
        assert first.id == 0 and bytes(first.payload) == payload(20, 0, 64)
        first.release()
        # its slot is free again once its descriptors are behind the consumer
        again = spawn(mode="produce", path=sock_path, sizes=[8, 9], seed=30, type=9, after="sleep")
        lst.accept(timeout=WAIT)
        frames = []
        while len(frames) < 2:
            with contextlib.suppress(PeerClosed):  # the two that finished
                frames.append(ring.receive(timeout=WAIT))
        assert [(f.type, f.id, bytes(f.payload)) for f in frames] == [(9, 0, payload(30, 0, 8)),
                                                                      (9, 1, payload(30, 1, 9))]
        again.event("ready")


def test_areceive_is_woken_through_the_loop(sock_path: str, spawn: Spawn) -> None:
    sizes = [random.Random(5).randrange(0, 4000) for _ in range(80)]
    with listen(sock_path) as lst:
        peer = spawn(mode="produce", path=sock_path, sizes=sizes, seed=40, pause_every=4, pause=0.002)
        lst.accept(timeout=WAIT)
        ring = lst.consumer
        threads = threading.active_count()

        async def consume() -> list[tuple[int, int]]:
            got = []
            while True:
                frame = await ring.areceive(timeout=WAIT)
                got.append((frame.id, crc32c(frame.payload)))
                end = frame.end
                frame.release()
                if end:
                    return got

        got = asyncio.run(consume())
        assert threading.active_count() == threads  # no helper thread: the loop watched the eventfd
        assert got == [(i, crc32c(payload(40, i, n))) for i, n in enumerate(sizes)]
        peer.event("ready")
        peer.wait_ok()


def test_areceive_learns_of_a_dead_producer(sock_path: str, spawn: Spawn) -> None:
    with listen(sock_path) as lst:
        peer = spawn(mode="produce", path=sock_path, sizes=[64] * 3, seed=41, end=False, after="sleep")
        lst.accept(timeout=WAIT)
        ring = lst.consumer

        async def consume() -> None:
            for _ in range(3):
                (await ring.areceive(timeout=WAIT)).release()
            peer.event("ready")
            peer.event("done")
            peer.kill()  # while the next areceive waits on the loop
            await ring.areceive(timeout=WAIT)

        with pytest.raises(PeerDied) as died:
            asyncio.run(consume())
        assert died.value.pid == peer.pid


# ---------------------------------------------------------------- handshakes


def raw_client(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(WAIT)
    sock.connect(path)
    return sock


@pytest.mark.parametrize("hello", [
    b"GET / HTTP/1.1\r\n\r\n",
    _wire.HELLO.pack(b"MEIPC001", 99, 0, 1),
    _wire.HELLO.pack(b"MEIPC001", 1, 7, 1),
    b"MEIPC001",
])
def test_a_non_peer_is_refused(sock_path: str, hello: bytes) -> None:
    with listen(sock_path) as lst:
        client = raw_client(sock_path)
        client.send(hello)
        with pytest.raises(HandshakeError) as exc:
            lst.accept(timeout=WAIT)
        assert exc.value.reason == "not a peer"
        answer = client.recv(600)
        assert answer[:8] == b"MEIPC001" and b"not a peer" in answer
        client.close()
        assert lst.consumer.producers == []  # nothing attached


def test_a_silent_client_is_refused_after_the_timeout(sock_path: str) -> None:
    with listen(sock_path) as lst:
        client = raw_client(sock_path)
        with pytest.raises(HandshakeError) as exc:
            lst.accept(timeout=0.2)
        assert exc.value.reason == "timeout"
        client.close()
        with pytest.raises(TimeoutError):
            lst.accept(timeout=0)


def test_the_wrong_role_is_refused_on_both_sides(sock_path: str) -> None:
    with listen(sock_path) as lst:
        errors: list[BaseException] = []

        def accept() -> None:
            try:
                lst.accept(timeout=WAIT)
            except HandshakeError as exc:
                errors.append(exc)

        t = threading.Thread(target=accept)
        t.start()
        with pytest.raises(HandshakeError) as exc:
            ipc.connect_consumer(sock_path, timeout=WAIT)
        t.join()
        assert exc.value.reason == "refused" and "producer" in str(exc.value)
        assert isinstance(errors[0], HandshakeError) and errors[0].reason == "refused"


def test_a_second_producer_finds_the_spsc_ring_busy(sock_path: str, spawn: Spawn) -> None:
    with listen(sock_path) as lst:
        first = spawn(mode="produce", path=sock_path, sizes=[1], seed=0, end=False, after="sleep")
        lst.accept(timeout=WAIT)
        first.event("ready")
        second = spawn(mode="produce", path=sock_path, sizes=[1], seed=0)
        with pytest.raises(HandshakeError) as exc:
            lst.accept(timeout=WAIT)
        assert exc.value.reason == "busy"
        second.proc.wait(timeout=WAIT)
        assert second.proc.returncode != 0
        assert second.proc.stderr is not None and "busy" in second.proc.stderr.read()


def test_a_producer_that_closed_is_read_to_its_end_before_its_slot_is_freed(sock_path: str, spawn: Spawn) -> None:
    """Regression: a producer that published and closed while the consumer was accepting another peer (which
    looks at the attached ones) had its unread descriptors dropped as if it had died."""
    with listen(sock_path, producers=2, ring_entries=4) as lst:
        first = spawn(mode="produce", path=sock_path, sizes=[100, 200, 300], seed=30, type=1)
        lst.accept(timeout=WAIT)
        first.event("ready")
        first.event("done")
        first.wait_ok()  # published three and closed: nothing of it read yet
        second = spawn(mode="produce", path=sock_path, sizes=[10], seed=31, type=2)
        lst.accept(timeout=WAIT)  # looks at the first one, closed
        ring = lst.consumer
        got: dict[int, list[bytes]] = {1: [], 2: []}
        closed = 0
        while len(got[1]) < 3 or len(got[2]) < 1:
            try:
                with ring.receive(timeout=WAIT) as frame:
                    got[frame.type].append(bytes(frame.payload))
            except PeerClosed:
                closed += 1
        assert got[1] == [payload(30, i, n) for i, n in enumerate([100, 200, 300])]
        assert got[2] == [payload(31, 0, 10)]
        assert ring.stats()["dropped"] == 0
        second.event("ready")
        second.event("done")
        second.wait_ok()
    with listen(sock_path) as lst:
        peer = spawn(mode="produce", path=sock_path, sizes=[50, 60], seed=32)
        lst.accept(timeout=WAIT)
        peer.event("ready")
        peer.event("done")
        peer.wait_ok()
        ring = lst.consumer
        assert not ring._slot_free(0)  # closed, but what it published is still to be read
        frames = [ring.receive(timeout=WAIT) for _ in range(2)]
        assert [bytes(f.payload) for f in frames] == [payload(32, 0, 50), payload(32, 1, 60)]
        for frame in frames:
            frame.release()
        with pytest.raises(PeerClosed):
            ring.receive(timeout=WAIT)
        assert ring._slot_free(0)


@pytest.mark.parametrize(("mutation", "reason"), [("magic", "bad magic"), ("version", "bad version"),
                                                  ("total", "too small"), ("data_off", "malformed")])
def test_a_bad_segment_from_the_listener_is_refused(sock_path: str, segment_fd: Callable[[str], int],
                                                     mutation: str, reason: str) -> None:
    """A listener that is not mcp_edge's (or is broken) sends a segment that fails its checks."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(sock_path)
    server.listen(1)
    told: list[bytes] = []

    def fake_listener() -> None:
        conn, _ = server.accept()
        conn.recv(64)
        fd, efd = segment_fd(mutation), os.eventfd(0)
        socket.send_fds(conn, [_wire.OFFER.pack(_wire.MAGIC, _wire.VERSION, _wire.OK, _wire.ROLE_PRODUCER, 0, 2)],
                        [fd, efd])
        os.close(fd)
        os.close(efd)
        told.append(conn.recv(600))
        conn.close()

    t = threading.Thread(target=fake_listener)
    t.start()
    try:
        with pytest.raises(HandshakeError) as exc:
            ipc.connect(sock_path, timeout=WAIT)
    finally:
        t.join()
        server.close()
    assert exc.value.reason == "bad segment"
    assert isinstance(exc.value.__cause__, SegmentError) and exc.value.__cause__.reason == reason
    assert told[0].startswith(b"MEIPC001") and b"bad segment: " + reason.encode() in told[0]


def test_listener_paths(sock_path: str) -> None:
    with pytest.raises(FileNotFoundError):
        ipc.connect(sock_path, timeout=WAIT)
    with listen(sock_path), pytest.raises(FileExistsError):
        listen(sock_path)
    assert not os.path.exists(sock_path)  # close removed it
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(sock_path)  # a socket file nobody listens on: taken over
    stale.close()
    with listen(sock_path):
        pass
