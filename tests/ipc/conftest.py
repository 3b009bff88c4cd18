"""Fixtures of the ipc tests: socket paths, peer processes (tests/ipc/peer.py) cleaned up in finally."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.native import _shm

PEER = Path(__file__).with_name("peer.py")
SMALL_SIZES = (64, 256, 4096, 65536)
SMALL_COUNTS = (64, 32, 16, 8)


class PeerProcess:
    """A tests/ipc/peer.py child: its JSON events, read line by line."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.proc = subprocess.Popen([sys.executable, str(PEER), json.dumps(spec)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def event(self, name: str) -> dict[str, Any]:
        """The next event, which must be `name` (the peer's stderr in the message if it ended instead)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"peer {self.spec['mode']} exited {self.proc.returncode} before {name!r}:\n{err}")
        event: dict[str, Any] = json.loads(line)
        assert event["event"] == name, event
        return event

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait_ok(self) -> None:
        rc = self.proc.wait(timeout=60)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        assert rc == 0, f"peer {self.spec['mode']} exited {rc}:\n{err}"


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "ring.sock")


@pytest.fixture
def spawn() -> Iterator[Callable[..., PeerProcess]]:
    """spawn(mode=..., path=..., ...) -> PeerProcess; every peer is killed at the end."""
    peers: list[PeerProcess] = []

    def start(**spec: Any) -> PeerProcess:
        peer = PeerProcess(spec)
        peers.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in peers:
            peer.kill()
            for stream in (peer.proc.stdout, peer.proc.stderr):
                if stream is not None:
                    stream.close()


def segment_bytes(mutation: str) -> bytes:
    """A valid SPSC segment's bytes, broken as `mutation` says (offsets from csrc/shm/shm_internal.h):
    magic, version, short (cut after its header), empty, total (says it is larger than it is), data_off
    (its data ring moved), ring_entries (the ring's own header disagrees), arena (the arena's magic), none."""
    seg = _shm.create_segment(data="spsc", entries=8, slab_sizes=(64, 256, 4096), slab_counts=(16, 8, 4))
    good = bytearray(memoryview(seg))
    data_off = struct.unpack_from("<Q", good, 48)[0]
    arena_off = struct.unpack_from("<Q", good, 80)[0]
    if mutation == "magic":
        good[0:8] = b"NOTASEG!"
    elif mutation == "version":
        struct.pack_into("<I", good, 8, 2)
    elif mutation == "short":
        good = good[:4096 + 100]
    elif mutation == "empty":
        good = bytearray()
    elif mutation == "total":
        struct.pack_into("<Q", good, 16, len(good) + 4096)
    elif mutation == "data_off":
        struct.pack_into("<Q", good, 48, data_off + 64)
    elif mutation == "ring_entries":
        struct.pack_into("<I", good, data_off + 4 * 64 + 8, 4)
    elif mutation == "arena":
        good[arena_off] ^= 0xFF
    elif mutation != "none":
        raise ValueError(mutation)
    return bytes(good)


@pytest.fixture
def segment_fd() -> Iterator[Callable[[str], int]]:
    """segment_fd(mutation) -> a memfd holding segment_bytes(mutation), the caller's to close or hand over
    (attach_segment takes it); the fixture keeps a descriptor of its own to the same file and closes that."""
    kept: list[int] = []

    def make(mutation: str) -> int:
        fd = os.memfd_create(f"segment-{mutation}")
        os.write(fd, segment_bytes(mutation))
        kept.append(fd)
        return os.dup(fd)

    try:
        yield make
    finally:
        for fd in kept:
            os.close(fd)
