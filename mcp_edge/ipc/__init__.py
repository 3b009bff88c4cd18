"""Shared-memory rings between processes: payloads written once, only 32-byte descriptors move.

One process listens on a unix socket and owns the shared memory; others
connect and get the other end of the ring::

    # consumer (creates the ring)                # producer
    lst = ipc.listen("/run/cam.sock")            ring = ipc.connect_producer("/run/cam.sock")
    lst.accept(timeout=10)                       view = ring.loan(n)      # a block in the segment
    ring = lst.consumer                          view[:] = ...            # written in place
    with ring.receive(timeout=5) as frame:       ring.publish(view, type=1, id=7)
        use(frame.payload)                       ring.send(b"...")        # the copying convenience

``frame.payload`` is a memoryview of the producer's block where it lies;
``frame.release()`` sends the block's offset back on the completion ring and
the producer frees it at its next loan. ``await ring.areceive()`` waits inside
asyncio (an eventfd the loop watches). Several producers can write one ring
(``listen(..., producers=3)``: MPSC). A peer killed mid-stream is found
through its pidfd: the survivor gets PeerDied, the blocks the dead one held go
back to their arena, and the listener accepts a new peer.
"""

from mcp_edge.errors import (
    HandshakeError,
    IpcError,
    PeerClosed,
    PeerDied,
    RingClosed,
    RingFull,
    SegmentError,
    SlabExhausted,
)
from mcp_edge.ipc._channel import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RING_ENTRIES,
    DEFAULT_RING_SPIN_US,
    DEFAULT_SLAB_COUNTS,
    DEFAULT_SLAB_SIZES,
    Listener,
    Peer,
    connect,
    connect_consumer,
    connect_producer,
    listen,
)
from mcp_edge.native._shm import Consumer, Frame, Producer, Segment

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_RING_ENTRIES",
    "DEFAULT_RING_SPIN_US",
    "DEFAULT_SLAB_COUNTS",
    "DEFAULT_SLAB_SIZES",
    "Consumer",
    "Frame",
    "HandshakeError",
    "IpcError",
    "Listener",
    "Peer",
    "PeerClosed",
    "PeerDied",
    "Producer",
    "RingClosed",
    "RingFull",
    "Segment",
    "SegmentError",
    "SlabExhausted",
    "connect",
    "connect_consumer",
    "connect_producer",
    "listen",
]
