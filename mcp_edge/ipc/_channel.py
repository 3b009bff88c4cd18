"""Setting a ring up between two processes: a listener that owns the shared memory, and connect.

The listener creates the segments (memfd by default) and one end of the ring;
each process that connects over the unix socket gets the segments' descriptors
(SCM_RIGHTS), maps and checks them, and builds the other end. Each side knows
the other's pid from SO_PEERCRED and watches it through a pidfd.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time
from collections.abc import Sequence
from typing import NamedTuple

from mcp_edge.errors import HandshakeError, SegmentError
from mcp_edge.ipc import _wire
from mcp_edge.native import _shm
from mcp_edge.native._shm import Consumer, Producer, Segment

DEFAULT_SLAB_SIZES: tuple[int, ...] = _shm.DEFAULT_SLAB_SIZES
DEFAULT_SLAB_COUNTS: tuple[int, ...] = _shm.DEFAULT_SLAB_COUNTS
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RING_ENTRIES = 1024
DEFAULT_RING_SPIN_US = 50


class Peer(NamedTuple):
    """A process that attached: its pid, and its slot (producer slot k for an MPSC ring, else 0)."""

    pid: int
    slot: int
    role: str


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def _eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def _pidfd(pid: int) -> int:
    return _shm.pidfd_open(pid)


def _claim_path(path: str) -> None:
    """Remove a stale socket file at path (nobody listening); refuse a live one or another kind of file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
        return
    finally:
        probe.close()
    raise FileExistsError(f"{path}: a ring listener is already there")


class Listener:
    """Listener: one ring's creating side, waiting for peers on a unix socket.

    ``role="consumer"``: this process reads; up to ``producers`` processes
    connect and write (``producers > 1``: an MPSC ring, each producer with its
    own segment and arena). ``role="producer"``: this process writes; one
    consumer connects. ``endpoint`` (also ``consumer`` / ``producer``) is this
    side's end, usable at once; ``accept()`` attaches one peer. A peer that
    dies or closes frees its slot for the next one.

    The ring's settings are the ``ipc`` section's: ``ring_entries``,
    ``ring_spin_us``, ``ring_payload_crc``, ``slab_sizes``, ``slab_counts``.
    ``segment_name``: a POSIX shm name to create the segment under (removed by
    ``close()``), instead of an anonymous memfd.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        role: str = "consumer",
        producers: int = 1,
        ring_entries: int = DEFAULT_RING_ENTRIES,
        ring_spin_us: int = DEFAULT_RING_SPIN_US,
        ring_payload_crc: bool = False,
        slab_sizes: Sequence[int] = DEFAULT_SLAB_SIZES,
        slab_counts: Sequence[int] = DEFAULT_SLAB_COUNTS,
        segment_name: str | None = None,
    ) -> None:
        if role not in _wire.ROLES:
            raise ValueError(f"role must be 'consumer' or 'producer', got {role!r}")
        if producers > 1 and role != "consumer":
            raise ValueError("several producers need the listener to be the consumer (an MPSC ring)")
        if not 1 <= producers <= _shm.MAX_PRODUCERS:
            raise ValueError(f"producers must be between 1 and {_shm.MAX_PRODUCERS}, got {producers}")
        self.path = os.fspath(path)
        self.role = role
        self.producers = producers
        self._spin_us = ring_spin_us
        self._slab = (tuple(slab_sizes), tuple(slab_counts))
        self._crc = ring_payload_crc
        self._segment_name = segment_name
        self._mpsc = producers > 1
        self._conns: dict[int, socket.socket] = {}
        self._own_segments: dict[int, Segment] = {}
        self._closed = False
        if self._mpsc:
            self._hub = _shm.create_segment(data="mpsc", entries=ring_entries, producers=producers,
                                            payload_crc=ring_payload_crc, name=segment_name)
        else:
            self._hub = _shm.create_segment(data="spsc", entries=ring_entries, slab_sizes=self._slab[0],
                                            slab_counts=self._slab[1], payload_crc=ring_payload_crc,
                                            name=segment_name)
        self._efd = _eventfd()
        self._endpoint: Producer | Consumer
        try:
            if role == "consumer":
                self._endpoint = Consumer(self._hub, wake_fd=os.dup(self._efd), spin_us=ring_spin_us)
                self._hub.set_peer(0, os.getpid(), "attached")
            else:
                self._endpoint = Producer(self._hub, self._hub, wake_fd=os.dup(self._efd), spin_us=ring_spin_us)
                self._hub.set_peer(1, os.getpid(), "attached")
            _claim_path(self.path)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            self._sock.bind(self.path)
            os.chmod(self.path, 0o600)
            self._sock.listen(max(8, producers))
        except BaseException:
            os.close(self._efd)
            if segment_name is not None:
                _shm.unlink_segment(segment_name)
            raise
        self._endpoint._set_on_close(self.close)

    @property
    def endpoint(self) -> Producer | Consumer:
        return self._endpoint

    @property
    def consumer(self) -> Consumer:
        """This side's end when the listener reads (``role="consumer"``)."""
        if not isinstance(self._endpoint, Consumer):
            raise TypeError("this listener is the producer: use .producer")
        return self._endpoint

    @property
    def producer(self) -> Producer:
        """This side's end when the listener writes (``role="producer"``)."""
        if not isinstance(self._endpoint, Producer):
            raise TypeError("this listener is the consumer: use .consumer")
        return self._endpoint

    def fileno(self) -> int:
        """The listening socket: readable when a peer is connecting (for a selector or ``loop.add_reader``)."""
        return self._sock.fileno()

    def _free_slot(self) -> int | None:
        """The producer slot (MPSC) or 0 a new peer may take, or None when all are busy."""
        ep = self._endpoint
        if isinstance(ep, Producer):
            return 0 if ep._peer_free() else None
        if not self._mpsc:
            return 0 if ep._slot_free(0) else None
        for k in range(self.producers):
            if ep._slot_free(k + 1):
                return k
        return None

    def _segment_for(self, slot: int) -> Segment:
        """The segment a producer in this slot writes from (MPSC: its own, made at its first use)."""
        if not self._mpsc:
            return self._hub
        seg = self._own_segments.get(slot)
        if seg is None:
            seg = _shm.create_segment(slab_sizes=self._slab[0], slab_counts=self._slab[1], segment_id=slot + 1,
                                      producers=self.producers, payload_crc=self._crc)
            self._own_segments[slot] = seg
        return seg

    def accept(self, timeout: float | None = None) -> Peer:
        """accept(timeout=None) -> Peer

        Wait up to ``timeout`` seconds (None: no limit) for a process to
        connect, run the handshake and attach it (``timeout=0``: only a
        process already waiting, whose handshake may then take up to
        DEFAULT_CONNECT_TIMEOUT). TimeoutError when none came;
        HandshakeError when the one that came was refused (``not a peer``:
        no or a wrong handshake, another user; ``busy``: no free slot;
        ``bad segment``: it could not use the segment) — call accept again.
        """
        if self._closed:
            raise HandshakeError("refused", "the listener is closed")
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        self._sock.settimeout(timeout)
        try:
            conn, _ = self._sock.accept()
        except (TimeoutError, BlockingIOError):  # BlockingIOError: timeout 0 and nobody there
            raise TimeoutError(f"no peer connected to {self.path} within {timeout} s") from None
        if timeout == 0:  # only a peer already waiting was taken; its handshake still needs a moment
            deadline = time.monotonic() + DEFAULT_CONNECT_TIMEOUT
        try:
            return self._handshake(conn, deadline)
        except BaseException:
            conn.close()
            raise

    def _handshake(self, conn: socket.socket, deadline: float | None) -> Peer:
        pid, uid, _ = _wire.peer_credentials(conn)
        if uid not in (os.getuid(), 0):
            raise _wire.refuse(conn, "not a peer", f"pid {pid} runs as uid {uid}, not as this user")
        conn.settimeout(_remaining(deadline))
        try:
            hello = conn.recv(_wire.MAX_MESSAGE)
        except (TimeoutError, BlockingIOError):
            raise _wire.refuse(conn, "timeout", f"pid {pid} connected but sent no ring HELLO") from None
        try:
            want = _wire.parse_hello(hello)
        except HandshakeError as exc:
            raise _wire.refuse(conn, exc.reason, f"pid {pid}: {exc}") from None
        role = _wire.ROLE_CONSUMER if self.role == "producer" else _wire.ROLE_PRODUCER
        if want not in (_wire.ROLE_ANY, role):
            raise _wire.refuse(conn, "refused", f"pid {pid} wants to be a {_wire.ROLE_NAMES[want]}; this ring "
                                                f"needs a {_wire.ROLE_NAMES[role]}")
        slot = self._free_slot()
        if slot is None:
            what = f"all {self.producers} producer slots are" if self.role == "consumer" else "the consumer is"
            raise _wire.refuse(conn, "busy", f"{what} taken")
        own = self._segment_for(slot)
        # Attached before the offer: the peer may publish as soon as it has the segments.
        ep = self._endpoint
        pidfd = _pidfd(pid)
        if isinstance(ep, Consumer):
            segment = slot + 1 if self._mpsc else 0
            ep._add_producer(segment, own, pid, pidfd)
            self._hub.set_peer(slot + 1, pid, "attached")
        else:
            ep._attach_peer(pid, pidfd)
            self._hub.set_peer(0, pid, "attached")
        fds = [self._hub.fileno()] + ([own.fileno()] if self._mpsc else []) + [self._efd]
        try:
            socket.send_fds(conn, [_wire.OFFER.pack(_wire.MAGIC, _wire.VERSION, _wire.OK, role, slot, len(fds))],
                            fds)
            try:
                _wire.parse_status(conn.recv(_wire.MAX_MESSAGE))
            except (TimeoutError, BlockingIOError):
                raise HandshakeError("timeout", f"pid {pid} took the offer but did not answer") from None
        except BaseException:
            if isinstance(ep, Consumer):
                ep._drop_producer(slot + 1 if self._mpsc else 0)
                self._hub.set_peer(slot + 1, pid, "free")
            else:
                ep._drop_peer()
                self._hub.set_peer(0, pid, "free")
            raise
        old = self._conns.pop(slot, None)
        if old is not None:
            old.close()
        conn.settimeout(None)
        self._conns[slot] = conn
        return Peer(pid, slot, _wire.ROLE_NAMES[role])

    def close(self) -> None:
        """Close this side's end and the socket (its file removed), and a named segment's name. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._endpoint._set_on_close(None)
        self._endpoint.close()
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        os.close(self._efd)
        if self._segment_name is not None:
            with contextlib.suppress(FileNotFoundError):
                _shm.unlink_segment(self._segment_name)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listen(
    path: str | os.PathLike[str],
    *,
    role: str = "consumer",
    producers: int = 1,
    ring_entries: int = DEFAULT_RING_ENTRIES,
    ring_spin_us: int = DEFAULT_RING_SPIN_US,
    ring_payload_crc: bool = False,
    slab_sizes: Sequence[int] = DEFAULT_SLAB_SIZES,
    slab_counts: Sequence[int] = DEFAULT_SLAB_COUNTS,
    segment_name: str | None = None,
) -> Listener:
    """A ``Listener`` on ``path`` (see there); its end is ``.consumer`` or ``.producer``."""
    return Listener(path, role=role, producers=producers, ring_entries=ring_entries, ring_spin_us=ring_spin_us,
                    ring_payload_crc=ring_payload_crc, slab_sizes=slab_sizes, slab_counts=slab_counts,
                    segment_name=segment_name)


def _close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def connect(
    path: str | os.PathLike[str],
    *,
    role: str | None = None,
    timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    ring_spin_us: int = DEFAULT_RING_SPIN_US,
) -> Producer | Consumer:
    """connect(path, *, role=None, timeout=5.0, ring_spin_us=50) -> Producer | Consumer

    Attach to the ring whose listener is at ``path``: this process gets the
    other end (a producer when the listener consumes, and the reverse);
    ``role`` says which one this process expects (HandshakeError if the
    listener offers the other). The segments received are checked before
    use: SegmentError's reason (``bad magic``, ``bad version``, ``too
    small``, ``malformed``) comes back as HandshakeError("bad segment"), and
    the listener is told. ``timeout`` bounds the whole handshake.
    """
    want = _wire.ROLE_ANY if role is None else _wire.ROLES.get(role, -1)
    if want < 0:
        raise ValueError(f"role must be 'producer', 'consumer' or None, got {role!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except TimeoutError:
            raise HandshakeError("timeout", f"the listener at {path} did not take the connection in time") from None
        listener_pid, _, _ = _wire.peer_credentials(sock)
        sock.send(_wire.HELLO.pack(_wire.MAGIC, _wire.VERSION, want, os.getpid()))
        sock.settimeout(_remaining(deadline))
        try:
            data, fds, _, _ = socket.recv_fds(sock, _wire.MAX_MESSAGE, 3)
        except TimeoutError:
            raise HandshakeError("timeout", f"the listener at {path} did not answer in time") from None
        if not data:
            _close_fds(fds)
            raise HandshakeError("refused", f"the listener at {path} hung up during the handshake")
        try:
            offer = _wire.parse_offer(data, fds)
        except HandshakeError:
            _close_fds(fds)
            raise
        if want not in (_wire.ROLE_ANY, offer.role):
            _close_fds(fds)
            raise _wire.refuse(sock, "refused", f"the listener offers the {_wire.ROLE_NAMES[offer.role]} end, "
                                                f"this process asked for the {_wire.ROLE_NAMES[want]} end")
        endpoint = _build(sock, offer, fds, listener_pid, ring_spin_us)
        sock.send(_wire.STATUS.pack(_wire.MAGIC, _wire.VERSION, _wire.OK))
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    endpoint._set_on_close(sock.close)
    return endpoint


def _build(sock: socket.socket, offer: _wire.Offer, fds: list[int], listener_pid: int,
           spin_us: int) -> Producer | Consumer:
    """Map and check the offered segments and make this side's end; tell the listener why not otherwise."""
    segments: list[Segment] = []
    efd = fds[-1]
    try:
        for fd in fds[:-1]:
            segments.append(_shm.attach_segment(fd))  # owns fd from here, even when it raises
    except SegmentError as exc:
        _close_fds([*fds[len(segments) + 1:-1], efd])
        raise _wire.refuse(sock, "bad segment", str(exc)) from exc
    hub = segments[0]
    pidfd = _pidfd(listener_pid)
    try:
        if offer.role == _wire.ROLE_PRODUCER:
            producer = Producer(hub, segments[-1], wake_fd=efd, spin_us=spin_us)
            producer._attach_peer(listener_pid, pidfd)
            return producer
        consumer = Consumer(hub, wake_fd=efd, spin_us=spin_us)
        consumer._add_producer(0, hub, listener_pid, pidfd)
        return consumer
    except OSError as exc:
        _close_fds([efd, *([pidfd] if pidfd >= 0 else [])])
        raise _wire.refuse(sock, "bad segment", f"the segments do not make a ring end: {exc}") from exc


def connect_producer(path: str | os.PathLike[str], *, timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
                     ring_spin_us: int = DEFAULT_RING_SPIN_US) -> Producer:
    """``connect`` asking for the producer end (the listener consumes)."""
    end = connect(path, role="producer", timeout=timeout, ring_spin_us=ring_spin_us)
    assert isinstance(end, Producer)
    return end


def connect_consumer(path: str | os.PathLike[str], *, timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
                     ring_spin_us: int = DEFAULT_RING_SPIN_US) -> Consumer:
    """``connect`` asking for the consumer end (the listener produces)."""
    end = connect(path, role="consumer", timeout=timeout, ring_spin_us=ring_spin_us)
    assert isinstance(end, Consumer)
    return end
