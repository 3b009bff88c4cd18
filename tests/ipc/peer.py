"""The other process of the ipc tests: connects to a ring and produces or consumes as the JSON argument says.

Run as ``python tests/ipc/peer.py '<json>'``. It prints one JSON line per
event to stdout (``{"event": "ready"}``, ``{"event": "done", ...}``) so the
test can follow it, and exits 0 when it finished its part. Modes:

- ``produce``: connect as producer; publish ``sizes`` (payload i is
  ``payload(seed, i, size)``) with loan/publish, or ``send`` when ``copy``;
  keep ``hold_loans`` loans unpublished; ``end`` on the last; report the
  CRC32C of each payload; then ``after``: ``close``, ``sleep`` (until killed)
  or ``forever`` (publish without end until killed).
- ``consume``: connect as consumer; receive ``count`` frames, keep the last
  ``hold`` unreleased, report ids and CRC32Cs, then ``after`` as above.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

from mcp_edge import ipc
from mcp_edge.native._crc import crc32c


def payload(seed: int, i: int, size: int) -> bytes:
    return random.Random(seed * 1_000_003 + i).randbytes(size)


def say(**event: Any) -> None:
    print(json.dumps(event), flush=True)


def produce(spec: dict[str, Any]) -> None:
    ring = ipc.connect_producer(spec["path"], timeout=30)
    say(event="ready", pid=os.getpid(), spin_ns=ring.spin_ns)
    held = [ring.loan(64) for _ in range(spec.get("hold_loans", 0))]
    sizes = spec.get("sizes", [])
    crcs = []
    for i, size in enumerate(sizes):
        data = payload(spec["seed"], i, size)
        crcs.append(crc32c(data))
        last = i == len(sizes) - 1 and spec.get("end", True)
        if spec.get("copy"):
            ring.send(data, type=spec.get("type", 1), id=i, end=last, timeout=60)
        else:
            view = ring.loan(size, timeout=60)
            view[:] = data
            ring.publish(view, type=spec.get("type", 1), id=i, end=last, timeout=60)
        if spec.get("pause_every") and i % spec["pause_every"] == spec["pause_every"] - 1:
            time.sleep(spec.get("pause", 0.001))
    say(event="done", crcs=crcs, stats=ring.stats(), held=len(held))
    after = spec.get("after", "close")
    if after == "forever":
        i = len(sizes)
        while True:
            view = ring.loan(64, timeout=60)
            view[:8] = i.to_bytes(8, "little")
            ring.publish(view, type=spec.get("type", 1), id=i, timeout=60)
            i += 1
    if after == "sleep":
        while True:
            time.sleep(60)
    ring.close()


def consume(spec: dict[str, Any]) -> None:
    ring = ipc.connect_consumer(spec["path"], timeout=30)
    say(event="ready", pid=os.getpid())
    held = []
    ids, crcs = [], []
    for _ in range(spec["count"]):
        frame = ring.receive(timeout=60)
        ids.append(frame.id)
        crcs.append(crc32c(frame.payload))
        held.append(frame)
        if len(held) > spec.get("hold", 0):
            held.pop(0).release()
    say(event="done", ids=ids, crcs=crcs, held=len(held), stats=ring.stats())
    after = spec.get("after", "close")
    if after == "sleep":
        while True:
            time.sleep(60)
    for frame in held:
        frame.release()
    ring.close()


def main() -> None:
    spec = json.loads(sys.argv[1])
    {"produce": produce, "consume": consume}[spec["mode"]](spec)


if __name__ == "__main__":
    main()
