"""Moving bytes between two processes: mcp_edge's shared-memory rings against the Python IPC peers.

Cases (one bench, ``ipc``):

- ``rtt-64B-cross``, ``rtt-64B-same``: a 64-byte message to the other process and
  back; metrics ``p50_us`` and ``p99_us`` (lower is better);
- ``stream-4KiB-cross``, ``stream-64KiB-cross``, ``stream-1MiB-cross``: messages
  of that size one way, as fast as the consumer takes them; metrics ``GB/s``
  (decimal, of payload handed over) and ``msgs/s``;
- ``stream-1MiB-cross-consume``: the same 1 MiB stream, but the consumer
  computes ``mcp_edge.native.crc32c`` of each payload where it lies (in the
  shared segment for the zero-copy transports, in its receive buffer for the
  copying ones); the row ``mcp_edge[crc32c-in-process]`` is that CRC's speed
  over the same work in one process pinned to the consumer's CPU (see the
  yardsticks below), timed in the same rounds, so "handoff + CRC" against
  "CRC alone" reads from one result;
- ``hot-path-allocs``: heap allocations per message on the ring's steady-state
  path, metric ``count`` (lower is better), impls ``mcp_edge[ring-c]`` (the C
  path, counted with the LD_PRELOAD malloc counter of ``tools/malloc_count``)
  and ``mcp_edge[ring-py]`` (the Python API's loop, counted the same way with
  Python's allocator routed to malloc, and checked with tracemalloc).

Impls: ``mcp_edge[ring-copy]`` (``ring.send(bytes)``: the payload copied into a
slab block), ``mcp_edge[ring-zerocopy]`` (``ring.loan_block(size)`` /
``ring.publish``: the producer writes in place, here only an 8-byte marker; the
consumer's CRC takes the ``Frame`` itself as its buffer),
``multiprocessing.Pipe``, ``multiprocessing.Queue``, ``posix_ipc.MessageQueue``,
``shared_memory+pipe`` (a ``multiprocessing.shared_memory`` segment for the
payloads, a pipe doorbell carrying offsets), ``iceoryx2`` (PyPI; x86_64 wheels
only: elsewhere a note says why it is absent), and ``memcpy`` in the stream
cases (the ceiling of a copying path: see the yardsticks below).
How each peer is driven, and what differs between them (posix_ipc's message
size limit, iceoryx2's waiting), is in the notes of each run; the code is in
``perf/peers/ipc_transports.py``.

Placement. Each impl is a pair of processes (a driver in a child process of the
harness, :mod:`mcp_edge.perf.isolation`, so a peer that crashes costs only its
rows, and a partner it forks). ``cross``: the driver (pinger, producer) pinned
to one CPU and the partner (echo, consumer) to another, with
``os.sched_setaffinity`` in each; ``same``: both on one CPU. The CPUs are the
first two of this process's affinity mask; with only one, the ``-cross`` cases
are left out with a note.

Checks before timing: every pair echoes payloads of several lengths and
carries ``2 * slots + 3`` distinct payloads of each stream size; what the
consumer got (CRC-32 of each, in order) must be what was sent. A peer that
fails the check is noted and its rows left out; an mcp_edge impl that fails it
ends the run.

Timing. Round trips: per round, untimed warm-up trips then ``ROUND_TRIPS``
timed ones, each timed alone (``perf_counter_ns`` around the send and the
matching receive); p50 and p99 of the round. Streams: per round, ``n``
messages (calibrated so that a round takes ``ctx.min_time / ctx.rounds``) from
the first send to the consumer's word that it has the last. Rounds are
interleaved across impls (one round of each, in an order that rotates), and the
**median** round is reported, so a noisy moment on a shared machine lands on one
round of every impl. Garbage collection is not turned off: the peers run as
applications run them.

Yardsticks: the ceiling of a transport is the same work done in one process.
A ring's copying path writes each message into the next free block of its slab
class and its consumer reads each block where it lies, so over a stream both go
through all the class's blocks in turn (16 blocks of 1 MiB, 16 of 64 KiB, 128
of 4 KiB with the default classes): the ``memcpy`` row copies each message from
one source into as many destinations in turn as the ring's class for that size
has blocks, and the ``mcp_edge[crc32c-in-process]`` row CRCs as many 1 MiB
buffers in turn. Notes give the cache-hot figures too (one destination, one
buffer, as the crc32c bench measures), which no stream of distinct buffers
reaches: they show what the memory footprint costs, not the handoff. Other
notes give the ring's wake-ups per message in each stream case (producer
sleeps, consumer wakes and wakes held back for a batch).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import statistics
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_edge.perf import BenchContext, BenchError, Child, PeerFailed, PeerSkipped, Row

NAME = "ipc"

TRANSPORTS_FILE = Path(__file__).resolve().parent / "peers" / "ipc_transports.py"
_TRANSPORTS_MODULE = "mcp_edge_perf_bench_peer_ipc_transports"  # the name isolation's loader gives the file

RTT_SIZE = 64
RTT_CASES = {"cross": "rtt-64B-cross", "same": "rtt-64B-same"}
STREAM_CASES = {"stream-4KiB-cross": 4 << 10, "stream-64KiB-cross": 64 << 10, "stream-1MiB-cross": 1 << 20}
CONSUME_CASE = "stream-1MiB-cross-consume"
CONSUME_SIZE = 1 << 20
ALLOCS_CASE = "hot-path-allocs"

ROUND_TRIPS = {True: 2_000, False: 20_000}  # timed round trips per round: quick, full
WARM_TRIPS = {True: 200, False: 1_000}
PROBE_BYTES = {True: 4 << 20, False: 16 << 20}  # a stream's calibration run carries about this much
MIN_MESSAGES = 16
MAX_MESSAGES = 10_000_000
VERIFY_SEED = 0x1BC_5EED
ALLOC_WARM = {True: 10_000, False: 10_000}
ALLOC_MESSAGES = {True: 100_000, False: 1_000_000}  # counted messages (the 10**6 in a full run)
ALLOC_TRACED = {True: 10_000, False: 100_000}

RING_IMPLS = ("mcp_edge[ring-copy]", "mcp_edge[ring-zerocopy]")
PEERS = ("multiprocessing.Pipe", "multiprocessing.Queue", "posix_ipc.MessageQueue", "shared_memory+pipe", "iceoryx2")
MEMCPY = "memcpy"
CRC_IN_PROCESS = "mcp_edge[crc32c-in-process]"
ALLOC_IMPLS = ("mcp_edge[ring-c]", "mcp_edge[ring-py]")


def transports() -> ModuleType:
    """perf/peers/ipc_transports.py, under the module name the children load it with."""
    module = sys.modules.get(_TRANSPORTS_MODULE)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(_TRANSPORTS_MODULE, TRANSPORTS_FILE)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {TRANSPORTS_FILE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_TRANSPORTS_MODULE] = module
    spec.loader.exec_module(module)
    return module


def placements(ctx: BenchContext) -> dict[str, tuple[int, int]]:
    """``cross``: two different CPUs of this process's affinity mask; ``same``: one of them twice."""
    allowed = sorted(os.sched_getaffinity(0))
    out: dict[str, tuple[int, int]] = {}
    if len(allowed) >= 2:
        out["cross"] = (allowed[0], allowed[1])
    else:
        ctx.note(f"only CPU {allowed[0]} is in this process's affinity mask: the -cross cases need two and are "
                 "left out")
    out["same"] = (allowed[0], allowed[0])
    return out


# --------------------------------------------------------------------------- the impls' processes


class Pairs:
    """The running impls of one placement: impl -> Child (a pair's driver, or an in-process yardstick).

    Every call goes through :meth:`call`: an impl whose child fails is handed to ``ctx.peer_failed``
    (an mcp_edge impl's failure ends the run) and dropped.
    """

    def __init__(self, ctx: BenchContext, noted: dict[str, set[str]]) -> None:
        self.ctx = ctx
        self.children: dict[str, Child] = {}
        self._noted = noted

    def start(self, impl: str, factory: str, *args: object) -> None:
        if impl in self.ctx.failed:
            return
        child = self.ctx.child(impl, f"{TRANSPORTS_FILE}:{factory}", *args)
        if child is not None:
            self.children[impl] = child

    def note_each(self) -> None:
        """Each pair's own account of how it runs, once per distinct text."""
        for impl in list(self.children):
            text = self.call(impl, "note")
            if isinstance(text, str) and text and text not in self._noted.setdefault(impl, set()):
                self._noted[impl].add(text)
                self.ctx.note(text, impl)

    def call(self, impl: str, method: str, *args: object) -> Any:
        child = self.children.get(impl)
        if child is None:
            return None
        try:
            return child.call(method, *args)
        except (PeerFailed, PeerSkipped) as exc:
            self.children.pop(impl, None)
            child.close()
            self.ctx.peer_failed(impl, exc)
            return None

    def fail(self, impl: str, reason: str) -> None:
        """``impl`` misbehaved (wrong bytes): a failure like a crash, noted, its child closed."""
        child = self.children.pop(impl, None)
        if child is not None:
            child.close()
        self.ctx.peer_failed(impl, PeerFailed(impl, reason))

    def impls(self, among: Sequence[str]) -> list[str]:
        return [impl for impl in among if impl in self.children]

    def close(self) -> None:
        for child in self.children.values():
            child.close()
        self.children.clear()


def _rotated(items: Sequence[str], r: int) -> list[str]:
    if not items:
        return []
    k = r % len(items)
    return [*items[k:], *items[:k]]


# --------------------------------------------------------------------------- checks


def verify(pairs: Pairs, impls: Sequence[str], *, streams: bool) -> None:
    """Every pair's echo and (with ``streams``) stream carry the bytes: content, order, count."""
    t = transports()
    rng = random.Random(VERIFY_SEED)
    echoes = [rng.randbytes(n) for n in (RTT_SIZE, 1, 63, RTT_SIZE, RTT_SIZE, 17, RTT_SIZE)]
    for impl in impls:
        replies = pairs.call(impl, "verify_rtt", echoes)
        if replies is None:
            continue
        if list(replies) != echoes:
            bad = next((i for i, (a, b) in enumerate(zip(replies, echoes, strict=False)) if a != b), len(replies))
            pairs.fail(impl, f"echoed wrong bytes (round trip {bad} of {len(echoes)} differs)")
            continue
        if not streams:
            continue
        for case, size in STREAM_CASES.items():
            got = pairs.call(impl, "verify_stream", size, 2 * t.STREAM_SLOTS + 3, VERIFY_SEED + size)
            if got is None:
                break
            sent, received = got
            if list(sent) != list(received):
                pairs.fail(impl, _stream_mismatch(case, list(sent), list(received)))
                break


def _stream_mismatch(case: str, sent: list[int], received: list[int]) -> str:
    if len(sent) != len(received):
        return f"{case}: the consumer got {len(received)} messages of {len(sent)} sent"
    first = next(i for i, (a, b) in enumerate(zip(sent, received, strict=True)) if a != b)
    if sorted(sent) == sorted(received):
        return f"{case}: messages reordered (message {first} of {len(sent)} is another one)"
    return f"{case}: message {first} of {len(sent)} arrived with wrong bytes"


# --------------------------------------------------------------------------- measurements


def measure_rtt(ctx: BenchContext, pairs: Pairs, impls: Sequence[str], case: str) -> Iterator[Row]:
    """Interleaved rounds of round trips; rows: the median over rounds of each round's p50 and p99."""
    warm, n = WARM_TRIPS[ctx.quick], ROUND_TRIPS[ctx.quick]
    p50: dict[str, list[int]] = {impl: [] for impl in impls}
    p99: dict[str, list[int]] = {impl: [] for impl in impls}
    for r in range(ctx.rounds):
        for impl in _rotated(pairs.impls(impls), r):
            got = pairs.call(impl, "rtt", warm, n)
            if got is not None:
                p50[impl].append(got[0])
                p99[impl].append(got[1])
    ctx.advance(len(impls), case)
    for impl in pairs.impls(impls):
        yield Row.from_samples(case, impl, "p50_us", [v / 1e3 for v in p50[impl]], higher_is_better=False)
        yield Row.from_samples(case, impl, "p99_us", [v / 1e3 for v in p99[impl]], higher_is_better=False)


def _calibrate(ctx: BenchContext, pairs: Pairs, impl: str, size: int, mode: str) -> int | None:
    """Messages per round so that a round takes about ``ctx.min_time / ctx.rounds``."""
    probe = max(MIN_MESSAGES, PROBE_BYTES[ctx.quick] // size)
    ns = pairs.call(impl, "stream", size, probe, mode, min(probe, 64))
    if ns is None:
        return None
    target_ns = ctx.min_time / ctx.rounds * 1e9
    return int(min(max(target_ns * probe / max(int(ns), 1), MIN_MESSAGES), MAX_MESSAGES))


def measure_stream(
    ctx: BenchContext, pairs: Pairs, impls: Sequence[str], case: str, size: int, mode: str
) -> Iterator[Row]:
    """Interleaved rounds of ``n`` messages each; rows: the median round's GB/s and msgs/s."""
    counts: dict[str, int] = {}
    for impl in pairs.impls(impls):
        n = _calibrate(ctx, pairs, impl, size, mode)
        if n is not None:
            counts[impl] = n
    rates: dict[str, list[float]] = {impl: [] for impl in counts}
    for r in range(ctx.rounds):
        for impl in _rotated(pairs.impls(list(counts)), r):
            ns = pairs.call(impl, "stream", size, counts[impl], mode, 0)
            if ns is not None:
                rates[impl].append(counts[impl] * 1e9 / max(int(ns), 1))
    ctx.advance(len(impls), case)
    for impl in pairs.impls(list(counts)):
        yield Row.from_samples(case, impl, "GB/s", [msgs * size / 1e9 for msgs in rates[impl]])
        yield Row.from_samples(case, impl, "msgs/s", rates[impl])


# --------------------------------------------------------------------------- the bench


def _size_name(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def _notes(ctx: BenchContext, cpus: Mapping[str, tuple[int, int]], options: Mapping[str, Any]) -> None:
    where = "; ".join(f"{name}: driver on CPU {a}, partner on CPU {b}" for name, (a, b) in cpus.items())
    ctx.note("placement: each impl is a driver (pinger, producer) and a partner (echo, consumer) it forks, each "
             f"pinned with os.sched_setaffinity, the same for every impl ({where})")
    ctx.note(f"rtt: per round {WARM_TRIPS[ctx.quick]} untimed then {ROUND_TRIPS[ctx.quick]} timed round trips of "
             f"{RTT_SIZE} bytes, each timed alone; p50/p99 per round, the median over {ctx.rounds} rounds; "
             "impls interleaved round by round")
    ctx.note(f"stream: per round n messages (about {ctx.min_time / ctx.rounds:.2g} s) timed from the first send to "
             "the consumer's word that it has the last; the consumer receives and releases each payload without "
             f"touching it; the median of {ctx.rounds} interleaved rounds; GB/s counts payload bytes handed over")
    blocks = {size: transports().ring_blocks(options, size) for size in {*STREAM_CASES.values(), CONSUME_SIZE}}
    ctx.note(f"{CONSUME_CASE}: the consumer computes mcp_edge.native.crc32c over each payload where it lies; "
             f"{CRC_IN_PROCESS} is crc32c over {blocks[CONSUME_SIZE]} buffers of 1 MiB in turn (the ring's 1 MiB "
             "blocks: the same work in one process) in a process pinned to the consumer's CPU, timed in the same "
             "rounds; a note gives its cache-hot figure (one buffer)")
    ctx.note(f"{MEMCPY}: a memoryview slice assignment (a C memcpy) of the case's size from one source into as "
             "many preallocated destinations in turn as the ring's slab class for that size has blocks ("
             + ", ".join(f"{_size_name(size)}: {blocks[size]}" for size in STREAM_CASES.values())
             + "), in a process pinned to the producer's CPU: the ceiling of a copying path, the same work in one "
             "process; a note gives the cache-hot figure (one destination)")
    one_mib = blocks[CONSUME_SIZE]
    ctx.note(f"ring: the 1 MiB messages come from a slab class of {one_mib} blocks of 1 MiB (added by the bench "
             "when the board's largest class is smaller): at most that many in flight; a producer out of them "
             f"sleeps until half ({max(1, one_mib // 2)}) are back, while the consumer still has the others "
             "to work on")
    try:
        from mcp_edge.native import _crc

        ctx.note(f"crc32c ran the {_crc.kernel_name()} kernel", CRC_IN_PROCESS)
    except ImportError:  # pragma: no cover - mcp_edge.native is built with the package
        pass


def _one_hot_notes(ctx: BenchContext, pairs: Pairs) -> None:
    """The yardsticks on one cache-hot buffer (memcpy: one destination; crc32c: one buffer), as the crc32c
    bench measures them: notes, not rows (no ring's stream touches one buffer only)."""
    for impl, cases in ((MEMCPY, STREAM_CASES), (CRC_IN_PROCESS, {CONSUME_CASE: CONSUME_SIZE})):
        for case, size in cases.items():
            if impl not in pairs.children:
                return
            n = max(MIN_MESSAGES, 4 * PROBE_BYTES[ctx.quick] // size)
            rates = []
            for _ in range(ctx.rounds):
                ns = pairs.call(impl, "stream", size, n, "drop", 0, 1)
                if ns is None:
                    return
                rates.append(n * size / max(int(ns), 1))
            ctx.note(f"{case}: {impl} on one cache-hot buffer (the row goes through as many buffers as the ring's "
                     f"blocks): {statistics.median(rates):.3g} GB/s", impl)


_WAKE_KEYS = ("published", "sleeps_blocks", "sleeps_space", "sleeps_paced", "wakes", "sleeps", "wakes_held")


def _wake_counts(pairs: Pairs, impls: Sequence[str]) -> dict[str, dict[str, int]]:
    """impl -> the forward ring's counters now: the driver's producer (published, sleeps_blocks, sleeps_space,
    sleeps_paced) and the partner's consumer (sleeps waiting for frames, wakes of the producer, wakes held back)."""
    out = {}
    for impl in pairs.impls(impls):
        got = pairs.call(impl, "wake_stats")
        if not got:
            continue
        tx, rx = got["driver"].get("tx", {}), got["partner"].get("rx", {})
        out[impl] = {"published": tx.get("published", 0), "sleeps_blocks": tx.get("sleeps_blocks", 0),
                     "sleeps_space": tx.get("sleeps_space", 0), "sleeps_paced": tx.get("sleeps_paced", 0),
                     "wakes": rx.get("wakes", 0),
                     "sleeps": rx.get("sleeps", 0), "wakes_held": rx.get("wakes_held", 0)}
    return out


def _wake_notes(ctx: BenchContext, case: str, before: Mapping[str, Mapping[str, int]],
                after: Mapping[str, Mapping[str, int]]) -> None:
    for impl, now in after.items():
        if impl not in before:
            continue
        d = {k: now[k] - before[impl][k] for k in _WAKE_KEYS}
        if d["published"] <= 0:
            continue
        per = 1000 / d["published"]
        ctx.note(f"{case}: {impl} wake-ups over {d['published']} messages (calibration and rounds), per 1000: "
                 f"producer slept {d['sleeps_blocks'] * per:.3g} times for blocks and {d['sleeps_space'] * per:.3g} "
                 f"for ring space (futex) and {d['sleeps_paced'] * per:.3g} on a timer at the consumer's pace, "
                 f"consumer woke it {d['wakes'] * per:.3g} times and held "
                 f"{d['wakes_held'] * per:.3g} wake-ups back for a batch; consumer slept {d['sleeps'] * per:.3g} "
                 "times for frames", impl)


def _cross(ctx: BenchContext, cpus: tuple[int, int], impls: Sequence[str], noted: dict[str, set[str]],
           options: dict[str, Any]) -> Iterator[Row]:
    pairs = Pairs(ctx, noted)
    try:
        t = transports()
        for impl in impls:
            pairs.start(impl, "Pair", impl, cpus, options)
        pairs.start(MEMCPY, "Local", MEMCPY, cpus[0],
                    {size: t.ring_blocks(options, size) for size in STREAM_CASES.values()})
        pairs.start(CRC_IN_PROCESS, "Local", CRC_IN_PROCESS, cpus[1],
                    {CONSUME_SIZE: t.ring_blocks(options, CONSUME_SIZE)})
        pairs.note_each()
        verify(pairs, pairs.impls(impls), streams=True)
        yield from measure_rtt(ctx, pairs, impls, RTT_CASES["cross"])
        rings = [impl for impl in impls if impl in RING_IMPLS]
        for case, size in STREAM_CASES.items():
            before = _wake_counts(pairs, rings)
            yield from measure_stream(ctx, pairs, [*impls, MEMCPY], case, size, "drop")
            _wake_notes(ctx, case, before, _wake_counts(pairs, rings))
        before = _wake_counts(pairs, rings)
        yield from measure_stream(ctx, pairs, [*impls, CRC_IN_PROCESS], CONSUME_CASE, CONSUME_SIZE, "crc")
        _wake_notes(ctx, CONSUME_CASE, before, _wake_counts(pairs, rings))
        _one_hot_notes(ctx, pairs)
    finally:
        pairs.close()


def _same(ctx: BenchContext, cpus: tuple[int, int], impls: Sequence[str], noted: dict[str, set[str]],
          options: dict[str, Any]) -> Iterator[Row]:
    pairs = Pairs(ctx, noted)
    try:
        for impl in impls:
            pairs.start(impl, "Pair", impl, cpus, options)
        pairs.note_each()
        verify(pairs, pairs.impls(impls), streams=False)
        yield from measure_rtt(ctx, pairs, impls, RTT_CASES["same"])
    finally:
        pairs.close()


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with ``values`` set while the block runs (a Child copies the environment it starts with)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _hot_path_allocs(ctx: BenchContext, cpus: tuple[int, int], options: dict[str, Any]) -> Iterator[Row]:
    """Heap allocations per message of the zero-copy ring's steady state (the ``hot-path-allocs`` rows).

    One pair per impl, started under the LD_PRELOAD counter of tools/malloc_count; ``mcp_edge[ring-py]``
    also with ``PYTHONMALLOC=malloc``, so that every Python object is a counted malloc too (pymalloc
    serves small objects from its own arenas, which the counter does not see: ``mcp_edge[ring-c]`` counts
    the C heap alone). After ``ALLOC_WARM`` messages, each side counts its own calls over ``ALLOC_MESSAGES``
    messages of 64 bytes (loan, write, publish / receive, release), less what the same calls cost with no
    message (the window, the loop's set-up); the row is (producer + consumer) / messages. tracemalloc then
    says how many Python blocks the ring-py pair kept.
    """
    t = transports()
    warm, n, traced = ALLOC_WARM[ctx.quick], ALLOC_MESSAGES[ctx.quick], ALLOC_TRACED[ctx.quick]
    try:
        library = t.malloc_count().library()
    except (ImportError, OSError, RuntimeError) as exc:
        ctx.note(f"{ALLOCS_CASE}: the allocation counter (tools/malloc_count) cannot run here, no rows: {exc}")
        ctx.advance(len(ALLOC_IMPLS), ALLOCS_CASE)
        return
    pairs = Pairs(ctx, {})
    try:
        for impl in ALLOC_IMPLS:
            env = {"LD_PRELOAD": f"{library} {os.environ.get('LD_PRELOAD', '')}".strip()}
            if impl == "mcp_edge[ring-py]":
                env["PYTHONMALLOC"] = "malloc"
            with _environ(env):
                pairs.start(impl, "Pair", impl, cpus, options)
            got = pairs.call(impl, "count_allocs", RTT_SIZE, warm, n, "count")
            if got is None:
                continue
            (p_allocs, p_frees), (c_allocs, c_frees) = got["producer"], got["consumer"]
            what = "every Python object allocation counted (PYTHONMALLOC=malloc)" if "PYTHONMALLOC" in env \
                else "the C heap (glibc malloc; Python objects come from pymalloc's arenas)"
            ctx.note(f"{impl}: {n} messages of {RTT_SIZE} B after {warm}: producer {p_allocs} allocations "
                     f"({p_frees} frees), consumer {c_allocs} ({c_frees} frees); {what}; a count, one sample", impl)
            per_message = (p_allocs + c_allocs) / n
            # a count, not a timing: one sample (perf compare shows it and never calls it a regression)
            yield Row(ALLOCS_CASE, impl, "count", per_message, higher_is_better=False, samples=(per_message,))
            if impl == "mcp_edge[ring-py]":
                kept = pairs.call(impl, "count_allocs", RTT_SIZE, warm, traced, "trace")
                if kept is not None:
                    (pb, pbytes), (cb, cbytes) = kept["producer"], kept["consumer"]
                    ctx.note(f"{impl}: tracemalloc after {traced} more messages: producer kept {pb} Python "
                             f"blocks ({pbytes} B), consumer {cb} ({cbytes} B)", impl)
    finally:
        pairs.close()
    ctx.advance(len(ALLOC_IMPLS), ALLOCS_CASE)


def run(ctx: BenchContext) -> Iterator[Row]:
    cpus = placements(ctx)
    impls = [*RING_IMPLS, *PEERS]
    ctx.plan(len(impls) * (2 + len(STREAM_CASES) + 1) + len(STREAM_CASES) + 1 + len(ALLOC_IMPLS))
    options = transports().ring_options()
    _notes(ctx, cpus, options)
    noted: dict[str, set[str]] = {}
    if "cross" in cpus:
        yield from _cross(ctx, cpus["cross"], impls, noted, options)
    yield from _same(ctx, cpus["same"], [impl for impl in impls if impl not in ctx.failed], noted, options)
    yield from _hot_path_allocs(ctx, cpus.get("cross", cpus["same"]), options)
