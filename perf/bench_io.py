"""Storage reads: mcp_edge's io engines against os.preadv, the PyPI liburing package and fio, on one 1 GiB file.

Cases (``<pattern><block>-qd<depth>-<direct|buffered>``): random 4 KiB reads
at queue depth 1 and 32 and sequential 128 KiB reads at depth 32, with
O_DIRECT, plus random 4 KiB and sequential 128 KiB reads at depth 32 through
the page cache. Metrics: ``IOPS`` and decimal ``MB/s`` (10**6 bytes/s, fio's
``bw_bytes``), both from the same round.

Impls, all reading the same file with the same block size, depth and flag:

- ``mcp_edge[uring]``: the sync batch API, ``engine.read_batch(fd, buffers,
  offsets, depth)`` on ``open_engine("uring")`` with buffers from
  ``engine.pool()`` (registered with the ring); C keeps ``depth`` reads in
  flight with the GIL released. Each call reads ``max(16 MiB / block, 64 *
  depth)`` blocks, so the drain at the end of a call costs about 1%.
- ``mcp_edge[uring-async]``: what a plugin does in asyncio: ``depth`` worker
  coroutines on one event loop, each awaiting ``engine.read(fd, buf, offset)``
  in a loop, so ``depth`` reads stay in flight.
- ``mcp_edge[threads]``: the fallback engine's ``read_batch``
  (``open_engine("threads")``, ``depth`` threads calling ``os.preadv``).
- ``os.preadv``: a plain Python loop of ``os.preadv(fd, [buf], offset)``:
  synchronous, so depth 1 whatever the case says.
- ``liburing``: the PyPI ``liburing`` package (its own low-level API) in a
  Python QD-N loop: keep ``depth`` SQEs in flight, ``io_uring_submit_and_wait(ring,
  1)``, reap every ready CQE, refill. Its ``io_uring_prep_read`` takes only a
  ``bytearray`` (never aligned for O_DIRECT), so each slot is a one-element
  ``Iovec`` over an aligned buffer and reads go through ``io_uring_prep_readv``.
  It runs in a child process (:mod:`mcp_edge.perf.isolation`), since it loads
  foreign native code: the 2026.3.30 wheel's ``liburing.Ring()`` executes an
  instruction some CPUs lack and used to kill the whole run with SIGILL. A
  crash, a hang or an exception there is noted (``liburing failed: killed by
  SIGILL while starting``) and its rows are left out; the other rows are
  unaffected. The child opens the same file with the same flags and walks the
  same offsets (sent by the parent); it times its rounds itself, so the pipe
  round trip is outside the timed region. The other impls run in this
  process: the ``mcp_edge`` rows measure the engine where plugins use it (the
  asyncio loop of the runtime's process), ``os.preadv`` is plain Python, and
  fio is a process of its own (bounded by a timeout too; a failing fio is a
  note, not the end of the run).
- ``fio[io_uring]`` and ``fio[psync]``: fio (Debian package ``fio``) as the
  reference for what the device and kernel give: same file, ``--bs``,
  ``--iodepth``, ``--direct``; ``--norandommap`` (uniform offsets with
  repeats, like ours), ``--invalidate=0`` and ``--fadvise_hint=0`` (the page
  cache left as it is and no readahead hints, like ours); otherwise fio's
  defaults (no fixed buffers or files, no SQPOLL, which is pathological on
  small machines). psync has no queue: it runs at ``--iodepth=1`` with one job
  in every case, the synchronous reference.

Workload. Random offsets are uniform over the file and aligned to the block,
drawn once with a fixed seed; sequential offsets walk the file and wrap at its
end. Every impl walks the same offset list, from where its previous round
stopped. Buffers come from aligned pools (``BufferPool``, 4 KiB aligned, also
for buffered reads); a timed batch reuses a pool of ``max(2 * depth, 8)``
buffers, which the kernel may fill in any order: contents are checked before
timing, not while timing, but every timed read must return the whole block (a
short read or an error aborts the bench).

Checks before timing: each of our impls and liburing read a spread of 64
blocks and must return the bytes that a plain buffered ``os.pread`` gives;
fio must report no error. An impl that cannot run here (no io_uring, liburing
or fio not installed) is skipped with a note; a peer that fails is noted and
its rows left out.

Timing. Each impl gets ``ctx.rounds`` rounds per case (about 0.6 s in all with
``--quick``, which keeps the whole quick suite under 3 minutes on a 2-core VM;
6 s otherwise), and in a full run ``DIRECT_ROUNDS`` (2) times as many of the
same length in the O_DIRECT cases: a virtual disk's IOPS vary by 10-20% from one
second to the next, more than two engines at the kernel's speed differ, and
the best of more rounds finds each one's peak. Rounds are interleaved across
impls (one round of each, in an order that rotates from round to round) so
that noise hits them alike, and the best round is reported (each round's
figure is a sample of the row). The garbage collector is off while timing.

The file. ``io-1GiB.bin`` in $MCP_EDGE_PERF_IO_DIR, else in the checkout's
``build/perf/`` (else ``./build/perf/``): seeded random bytes, written once and
reused while its size is right and it is not sparse. It must be on a disk
filesystem: tmpfs and ramfs are refused, since tmpfs accepts O_DIRECT at any
alignment (alignment bugs hide) and measures memory, not storage.

Buffered cases read through a *warm* page cache: before each buffered case
the whole file is read once (and its residency checked with mincore), so
those rows measure each engine's per-read software path at memory speed, the
figure that matters for hot files. Caches are not dropped: that needs root,
and a cold buffered random read is the direct case plus readahead noise
(cached blocks pile up during the round, so impls that run later would gain).
O_DIRECT reads bypass the cache either way, but not what lies below the
guest: on a VM the host's page cache holds the disk image, and random reads
warm it round by round (on a KVM guest this project ran on, rand4k-qd32-direct went
from 9k to 74k IOPS over five rounds, so impls that ran later gained). So
before each O_DIRECT case the whole file is read once with O_DIRECT,
sequentially (about a second; ``--quick`` does it before the first O_DIRECT
case only): the rounds then start where they end. On bare metal that pass
changes nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import json
import mmap
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Protocol

from mcp_edge.errors import ConfigError
from mcp_edge.perf import BenchContext, BenchError, Child, PeerFailed, PeerSkipped, Row
from mcp_edge.perf.isolation import signal_name
from mcp_edge.perf.report import is_mcp_edge

NAME = "io"

SEED = 0x10_5EED
FILE_SIZE = 1 << 30
FILE_NAME = "io-1GiB.bin"
FILE_DIR_ENV = "MCP_EDGE_PERF_IO_DIR"
WRITE_CHUNK = 64 << 20
RANDOM_OFFSETS = 1 << 19  # ~6 s of 4 KiB reads at 80k IOPS before an impl wraps around
CHECK_READS = 64
SECONDS = {True: 0.6, False: 6.0}  # per impl and case, all rounds together: quick, full
DIRECT_ROUNDS = {True: 1, False: 2}  # O_DIRECT cases get this many times ctx.rounds rounds, each as long
BATCH_BYTES = 16 << 20  # reads per read_batch call: this many bytes, at least 64 * depth reads
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "hugetlbfs", "devtmpfs"})

IMPLS = (
    "mcp_edge[uring]",
    "mcp_edge[uring-async]",
    "mcp_edge[threads]",
    "os.preadv",
    "liburing",
    "fio[io_uring]",
    "fio[psync]",
)


@dataclass(frozen=True, slots=True)
class Case:
    """One workload: block size, queue depth, O_DIRECT or not, random or sequential offsets."""

    name: str
    block: int
    depth: int
    direct: bool
    sequential: bool

    @property
    def slots(self) -> int:
        """Buffers per impl: enough that a batch rarely hands one buffer to two reads in flight."""
        return max(2 * self.depth, 8)

    @property
    def batch(self) -> int:
        """Reads per read_batch call: long enough that the drain at its end costs about 1%."""
        return max(BATCH_BYTES // self.block, 64 * self.depth)


CASES = (
    Case("rand4k-qd1-direct", 4 << 10, 1, True, False),
    Case("rand4k-qd32-direct", 4 << 10, 32, True, False),
    Case("seq128k-qd32-direct", 128 << 10, 32, True, True),
    Case("rand4k-qd32-buffered", 4 << 10, 32, False, False),
    Case("seq128k-qd32-buffered", 128 << 10, 32, False, True),
)


# --------------------------------------------------------------------------- pure helpers


def case_offsets(case: Case, file_size: int = FILE_SIZE, count: int = RANDOM_OFFSETS, seed: int = SEED) -> list[int]:
    """The offsets every impl reads in ``case``: the whole file in order, or ``count`` uniform random blocks."""
    blocks = file_size // case.block
    if blocks < 1:
        raise ValueError(f"a {file_size}-byte file holds no {case.block}-byte block")
    if case.sequential:
        return [i * case.block for i in range(blocks)]
    rng = random.Random(f"{seed}:{case.block}")
    return [rng.randrange(blocks) * case.block for _ in range(count)]


def check_offsets(offsets: Sequence[int], count: int = CHECK_READS) -> list[int]:
    """``count`` offsets spread evenly over ``offsets`` (all of them when there are fewer)."""
    if len(offsets) <= count:
        return list(offsets)
    step = len(offsets) / count
    return [offsets[int(i * step)] for i in range(count)]


class OffsetCursor:
    """Walks an offset list round and round; each impl has its own, over the same list."""

    def __init__(self, offsets: Sequence[int]) -> None:
        if not offsets:
            raise ValueError("no offsets to walk")
        self._offsets = list(offsets)
        self._pos = 0

    def take(self, n: int) -> list[int]:
        """The next ``n`` offsets, wrapping at the end of the list."""
        out: list[int] = []
        while len(out) < n:
            end = min(len(self._offsets), self._pos + n - len(out))
            out.extend(self._offsets[self._pos : end])
            self._pos = end % len(self._offsets)
        return out

    def cycle(self) -> Iterator[int]:
        """An endless iterator of offsets that moves this cursor as it goes."""
        while True:
            yield from self.take(1024)


def short_reads(results: Sequence[int], block: int, offsets: Sequence[int]) -> str | None:
    """None when every result is ``block`` bytes, else a message naming the first read that was not."""
    if results.count(block) == len(results) and len(results) == len(offsets):
        return None
    if len(results) != len(offsets):
        return f"{len(results)} results for {len(offsets)} reads"
    for res, off in zip(results, offsets, strict=True):
        if res != block:
            what = f"error {-res} ({os.strerror(-res)})" if res < 0 else f"{res} bytes"
            return f"read of {block} bytes at offset {off} gave {what}"
    return None  # pragma: no cover - unreachable


@dataclass(frozen=True, slots=True)
class FioRead:
    """What one fio run reports for reads, summed over its jobs."""

    ios: int
    runtime_s: float
    iops: float
    bw_bytes: float
    version: str


def parse_fio_json(text: str) -> FioRead:
    """Read totals from fio's ``--output-format=json`` output (text before the JSON, such as warnings, is skipped).

    Raises ValueError when the output holds no JSON, no job, a job that
    reports an error, or no reads.
    """
    start = text.find("{")
    if start < 0:
        raise ValueError("fio printed no JSON")
    try:
        data = json.JSONDecoder().raw_decode(text[start:])[0]
    except json.JSONDecodeError as exc:
        raise ValueError(f"fio printed malformed JSON: {exc}") from exc
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not jobs:
        raise ValueError("fio's JSON has no jobs")
    ios = 0
    runtime_ms = 0.0
    iops = 0.0
    bw = 0.0
    for job in jobs:
        if job.get("error"):
            raise ValueError(f"fio job {job.get('jobname', '?')} failed: error {job['error']}")
        read = job.get("read") or {}
        ios += int(read.get("total_ios", 0))
        runtime_ms = max(runtime_ms, float(read.get("runtime", 0)))
        iops += float(read.get("iops", 0.0))
        bw += float(read.get("bw_bytes", 0.0))
    if ios <= 0 or runtime_ms <= 0:
        raise ValueError("fio did no reads")
    return FioRead(ios, runtime_ms / 1000, iops, bw, str(data.get("fio version", "fio")))


def fio_command(fio: str, path: Path, case: Case, engine: str, seconds: float) -> list[str]:
    """The fio command line for one round of ``case`` on ``engine`` (``io_uring`` or ``psync``)."""
    depth = case.depth if engine != "psync" else 1
    return [
        fio,
        "--name=mcp-edge-io",
        f"--filename={path}",
        "--readonly",
        f"--rw={'read' if case.sequential else 'randread'}",
        f"--bs={case.block}",
        f"--ioengine={engine}",
        f"--iodepth={depth}",
        "--numjobs=1",
        f"--direct={int(case.direct)}",
        "--invalidate=0",
        "--fadvise_hint=0",
        "--norandommap",
        "--time_based",
        f"--runtime={max(1, round(seconds * 1000))}ms",
        "--output-format=json",
    ]


def mount_of(path: Path, mountinfo: str) -> tuple[str, str, str]:
    """(mount point, filesystem type, source) of the mount holding ``path``, from /proc/self/mountinfo text."""
    best = ("/", "unknown", "unknown")
    best_len = -1
    target = str(path)
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best_len:  # later mounts over the same point win
            best, best_len = (point, tail[0], tail[1]), len(point)
    return best


# --------------------------------------------------------------------------- the file


def _file_dir() -> Path:
    given = os.environ.get(FILE_DIR_ENV)
    if given:
        return Path(given).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.py").is_file() and (checkout / "mcp_edge").is_dir():
        return checkout / "build" / "perf"
    return Path.cwd() / "build" / "perf"


def _ensure_file(ctx: BenchContext) -> Path:
    directory = _file_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory} for the 1 GiB test file: {exc.strerror}; "
                          f"set {FILE_DIR_ENV} to a writable folder on a disk filesystem") from exc
    path = directory.resolve() / FILE_NAME
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    point, fstype, source = mount_of(path, mountinfo)
    if fstype in MEMORY_FILESYSTEMS:
        raise ConfigError(
            f"{directory} is on {fstype} ({point}): the io bench needs a disk filesystem, since {fstype} "
            f"accepts O_DIRECT at any alignment and measures memory; set {FILE_DIR_ENV} to a folder on one"
        )
    try:
        st = path.stat()
        reuse = st.st_size == FILE_SIZE and st.st_blocks * 512 >= FILE_SIZE
    except FileNotFoundError:
        reuse = False
    if not reuse:
        ctx.note(f"writing the {FILE_SIZE >> 20} MiB test file {path} (once; it is reused)")
        tmp = path.with_name(f".{FILE_NAME}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for i in range(FILE_SIZE // WRITE_CHUNK):
                data = memoryview(random.Random(SEED + i).randbytes(WRITE_CHUNK))
                while data:
                    data = data[os.write(fd, data) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
    ctx.note(f"file {path} on {fstype} ({source}, mounted at {point})")
    return path


def _cached_fraction(path: Path) -> float | None:
    """Fraction of ``path``'s pages in the page cache (mincore), or None when it cannot be told."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    page = os.sysconf("SC_PAGE_SIZE")
    pages = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(addr, size, vec) != 0:
                return None
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return (pages - bytes(vec).count(0)) / pages


def _warm_cache(ctx: BenchContext, path: Path) -> None:
    """Read the whole file through the page cache, so buffered cases start (and stay) warm."""
    buf = bytearray(8 << 20)
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.readv(fd, [buf]) > 0:
            pass
    finally:
        os.close(fd)
    cached = _cached_fraction(path)
    if cached is not None and cached < 0.99:
        ctx.note(f"only {cached:.0%} of {path.name} stays in the page cache: buffered rows are partly cold")


def _warm_device(path: Path) -> int:
    """Read the whole file once with O_DIRECT, sequentially: whatever caches sit below this kernel (a VM
    host's page cache) hold it before the first timed round, as they would after the last. Bytes read."""
    buf = mmap.mmap(-1, 8 << 20)  # page aligned, as O_DIRECT wants
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        at = 0
        while (got := os.preadv(fd, [buf], at)) > 0:
            at += got
    finally:
        os.close(fd)
        buf.close()
    return at


# --------------------------------------------------------------------------- impls


class Runner(Protocol):
    """One impl at one case."""

    slots: int

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        """Read one block at each offset (at most ``slots``) into distinct buffers; their contents."""
        ...

    def timed(self, seconds: float) -> tuple[int, float]:
        """Read for about ``seconds``: (reads done, seconds taken)."""
        ...

    def close(self) -> None: ...


def _short(impl: str, results: Sequence[int], block: int, offsets: Sequence[int]) -> None:
    problem = short_reads(results, block, offsets)
    if problem is not None:
        raise BenchError(f"{impl}: {problem}")


class BatchRunner:
    """The sync batch API: ``read_batch(fd, buffers, offsets, depth=...)`` on ``batch`` reads at a time."""

    def __init__(
        self,
        impl: str,
        read_batch: Callable[..., list[int]],
        buffers: Sequence[Any],
        fd: int,
        case: Case,
        offsets: Sequence[int],
        closers: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.impl = impl
        self.slots = len(buffers)
        self._read_batch = read_batch
        self._distinct = list(buffers)
        self._buffers = [buffers[i % len(buffers)] for i in range(case.batch)]
        self._fd = fd
        self._case = case
        self._cursor = OffsetCursor(offsets)
        self._closers = closers

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        bufs = self._distinct[: len(offsets)]
        _short(self.impl, self._read_batch(self._fd, bufs, list(offsets), depth=self._case.depth), self._case.block,
               offsets)
        return [bytes(b) for b in bufs]

    def timed(self, seconds: float) -> tuple[int, float]:
        read_batch, fd, bufs, take = self._read_batch, self._fd, self._buffers, self._cursor.take
        depth, block, batch, clock = self._case.depth, self._case.block, self._case.batch, time.perf_counter
        done = 0
        t0 = clock()
        while True:
            offs = take(batch)
            results = read_batch(fd, bufs, offs, depth=depth)
            if results.count(block) != batch:
                _short(self.impl, results, block, offs)
            done += batch
            elapsed = clock() - t0
            if elapsed >= seconds:
                return done, elapsed

    def close(self) -> None:
        for close in self._closers:
            close()


class AsyncRunner:
    """asyncio: ``depth`` coroutines, each awaiting ``engine.read`` in a loop, on one event loop per case."""

    impl = "mcp_edge[uring-async]"

    def __init__(self, open_engine: Callable[..., Any] | None, io_op: Any, fd: int, case: Case,
                 offsets: Sequence[int]) -> None:
        assert open_engine is not None
        self.slots = case.slots
        self._io_op = io_op
        self._fd = fd
        self._case = case
        self._offsets = OffsetCursor(offsets).cycle()
        self._loop = asyncio.Runner()
        self._engine: Any = None
        self._pool: Any = None

        async def start() -> None:
            self._engine = open_engine("uring")
            self._pool = self._engine.pool(case.slots, case.block)

        try:
            self._loop.run(start())
        except BaseException:
            self.close()
            raise

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        bufs = list(self._pool.buffers[: len(offsets)])

        async def go() -> list[int]:
            ops = [self._io_op.read(self._fd, b, off) for b, off in zip(bufs, offsets, strict=True)]
            return list(await self._engine.gather(ops))

        _short(self.impl, self._loop.run(go()), self._case.block, offsets)
        return [bytes(b) for b in bufs]

    def timed(self, seconds: float) -> tuple[int, float]:
        return self._loop.run(self._timed(seconds))

    async def _timed(self, seconds: float) -> tuple[int, float]:
        read, fd, block, offsets = self._engine.read, self._fd, self._case.block, self._offsets
        impl, clock = self.impl, time.perf_counter
        t0 = clock()
        deadline = t0 + seconds

        async def worker(buf: Any) -> int:
            n = 0
            while clock() < deadline:
                off = next(offsets)
                got = await read(fd, buf, off)
                if got != block:
                    raise BenchError(f"{impl}: {short_reads([got], block, [off])}")
                n += 1
            return n

        counts = await asyncio.gather(*(worker(b) for b in self._pool.buffers[: self._case.depth]))
        return sum(counts), clock() - t0

    def close(self) -> None:
        async def stop() -> None:
            if self._engine is not None:
                self._engine.close()

        try:
            self._loop.run(stop())
        finally:
            self._loop.close()
            if self._pool is not None:
                self._pool.close()


class PreadvRunner:
    """A plain Python loop of ``os.preadv(fd, [buf], offset)``: one read at a time, whatever the depth."""

    impl = "os.preadv"

    def __init__(self, fd: int, case: Case, offsets: Sequence[int], pool: Any) -> None:
        self.slots = case.slots
        self._pool = pool
        self._fd = fd
        self._case = case
        self._cursor = OffsetCursor(offsets)

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        bufs = self._pool.buffers[: len(offsets)]
        results = [os.preadv(self._fd, [b], off) for b, off in zip(bufs, offsets, strict=True)]
        _short(self.impl, results, self._case.block, offsets)
        return [bytes(b) for b in bufs]

    def timed(self, seconds: float) -> tuple[int, float]:
        preadv, fd, block, take, clock = os.preadv, self._fd, self._case.block, self._cursor.take, time.perf_counter
        bufs = [self._pool.buffers[0]]
        done = 0
        t0 = clock()
        while True:
            for off in take(256):
                if preadv(fd, bufs, off) != block:
                    _short(self.impl, [preadv(fd, bufs, off)], block, [off])
            done += 256
            elapsed = clock() - t0
            if elapsed >= seconds:
                return done, elapsed

    def close(self) -> None:
        self._pool.close()


class LiburingRunner:
    """The PyPI ``liburing`` package in a Python QD-N loop (readv of one aligned buffer per slot)."""

    impl = "liburing"

    def __init__(self, lib: Any, fd: int, case: Case, offsets: Sequence[int], arena: memoryview) -> None:
        self.slots = case.slots
        self._lib = lib
        self._fd = fd
        self._case = case
        self._cursor = OffsetCursor(offsets)
        # Slot i is arena[i * stride:][:block]. liburing's Iovec never releases the views it is given (their
        # exports stay), so the slots are views of one arena that lives as long as the run, not a pool to close.
        stride = len(arena) // case.slots
        if stride < case.block or stride % 4096:
            raise BenchError(f"liburing arena of {len(arena)} bytes is too small for {case.slots} x {case.block}")
        self._views = [arena[i * stride : i * stride + case.block] for i in range(case.slots)]
        self._iovecs = [lib.Iovec([v]) for v in self._views]
        self._ring = lib.Ring()
        lib.io_uring_queue_init(max(64, 2 * case.depth), self._ring)
        self._cqe = lib.Cqe()

    def _loop(self, offsets: Iterator[int], depth: int, deadline: float, keep: list[bytes] | None) -> int:
        lib, ring, cqe, fd, block, iovecs = self._lib, self._ring, self._cqe, self._fd, self._case.block, self._iovecs
        get_sqe, prep_readv, set_data = lib.io_uring_get_sqe, lib.io_uring_prep_readv, lib.io_uring_sqe_set_data64
        submit_and_wait, cqe_iter, cq_advance = lib.io_uring_submit_and_wait, lib.CqeIter, lib.io_uring_cq_advance
        clock = time.perf_counter
        free = list(range(depth))
        slot_off = [0] * depth
        in_flight = 0
        done = 0
        more = True
        while True:
            while more and free:
                off = next(offsets, None)
                if off is None:
                    more = False
                    break
                slot = free.pop()
                slot_off[slot] = off
                sqe = get_sqe(ring)
                prep_readv(sqe, fd, iovecs[slot], off)
                set_data(sqe, slot)
                in_flight += 1
            if not in_flight:
                return done
            submit_and_wait(ring, 1)
            got = 0
            for _ in cqe_iter(ring, cqe):
                c = cqe[0]
                slot = c.user_data
                if c.res != block:
                    res = c.res
                    cq_advance(ring, got + 1)
                    raise BenchError(f"{self.impl}: {short_reads([res], block, [slot_off[slot]])}")
                if keep is not None:
                    keep[slot] = bytes(self._views[slot])
                free.append(slot)
                got += 1
            cq_advance(ring, got)
            in_flight -= got
            done += got
            if more and clock() >= deadline:
                more = False

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        out = [b""] * len(offsets)
        for i, off in enumerate(offsets):  # one at a time: slot i would be reused out of order otherwise
            keep: list[bytes] = [b""]
            self._loop(iter([off]), 1, float("inf"), keep)
            out[i] = keep[0]
        return out

    def timed(self, seconds: float) -> tuple[int, float]:
        t0 = time.perf_counter()
        done = self._loop(self._cursor.cycle(), self._case.depth, t0 + seconds, None)
        return done, time.perf_counter() - t0

    def close(self) -> None:
        self._lib.io_uring_queue_exit(self._ring)


class LiburingHost:
    """What the liburing child runs: the PyPI package, probed once, then one :class:`LiburingRunner` per case."""

    def __init__(self) -> None:
        try:
            import liburing
        except ImportError:
            raise PeerSkipped("not installed (pip install liburing)") from None
        ring = liburing.Ring()
        try:
            liburing.io_uring_queue_init(8, ring)
        except OSError as exc:
            raise PeerSkipped(f"cannot set up a ring here ({exc})") from None
        liburing.io_uring_queue_exit(ring)
        from mcp_edge.native._dio import AlignedBuffer

        self._lib = liburing
        self._arena = memoryview(AlignedBuffer(max(c.slots for c in CASES) * max(c.block for c in CASES)))
        self._runner: LiburingRunner | None = None
        self._fd = -1

    def version(self) -> str:
        return str(getattr(self._lib, "__version__", "?"))

    def open(self, path: str, case: tuple[Any, ...], offsets: list[int]) -> int:
        """Open ``path`` as ``case`` says and set up a ring for it; the buffers per read batch (slots)."""
        self.close()
        c = Case(*case)
        self._fd = _open(Path(path), c)
        self._runner = LiburingRunner(self._lib, self._fd, c, offsets, self._arena)
        return self._runner.slots

    def read(self, offsets: list[int]) -> list[bytes]:
        assert self._runner is not None
        return self._runner.read(offsets)

    def timed(self, seconds: float) -> tuple[int, float]:
        assert self._runner is not None
        return self._runner.timed(seconds)

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class RemoteRunner:
    """A :class:`Runner` whose reads happen in a child process (a :class:`LiburingHost` there)."""

    def __init__(self, impl: str, child: Child, path: Path, case: Case, offsets: Sequence[int]) -> None:
        self.impl = impl
        self._child = child
        self.slots = int(child.call("open", str(path), astuple(case), list(offsets)))

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        got = self._child.call("read", list(offsets))
        assert isinstance(got, list)
        return got

    def timed(self, seconds: float) -> tuple[int, float]:
        done, elapsed = self._child.call("timed", seconds, timeout=seconds + self._child.timeout)
        return int(done), float(elapsed)

    def close(self) -> None:
        with suppress(PeerFailed):  # a child that died already said why, where it died
            self._child.call("close")


class FioRunner:
    """One fio process per round; its own figures (reads and run time) are taken."""

    slots = 0

    def __init__(self, fio: str, engine: str, path: Path, case: Case, timeout: float) -> None:
        self.impl = f"fio[{engine}]"
        self._fio = fio
        self._engine = engine
        self._path = path
        self._case = case
        self._timeout = timeout
        self.version = ""

    def read(self, offsets: Sequence[int]) -> list[bytes]:
        raise NotImplementedError("fio's data is not checked")

    def timed(self, seconds: float) -> tuple[int, float]:
        cmd = fio_command(self._fio, self._path, self._case, self._engine, seconds)
        limit = seconds + self._timeout
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=limit)
        except subprocess.TimeoutExpired:
            raise PeerFailed(self.impl, f"timed out after {limit:g} s (command: {' '.join(cmd)})") from None
        if proc.returncode < 0:
            raise PeerFailed(self.impl, f"killed by {signal_name(-proc.returncode)} (command: {' '.join(cmd)})")
        if proc.returncode != 0:
            raise PeerFailed(self.impl, f"exited with status {proc.returncode}: {proc.stderr.strip()[-500:]} "
                             f"(command: {' '.join(cmd)})")
        try:
            res = parse_fio_json(proc.stdout)
        except ValueError as exc:
            raise PeerFailed(self.impl, f"{exc} (command: {' '.join(cmd)})") from exc
        self.version = res.version
        return res.ios, res.runtime_s

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- peers and engines


@dataclass
class Available:
    """The impls this machine can run, and what they need."""

    impls: list[str]
    open_engine: Callable[..., Any] | None = None
    io_op: Any = None
    liburing: Child | None = None
    fio: str | None = None
    peer_timeout: float = 0.0


def _available(ctx: BenchContext) -> Available:
    av = Available([])
    try:
        from mcp_edge.io import IoOp, open_engine
    except ImportError as exc:
        ctx.note(f"mcp_edge.io cannot be imported ({exc}): the mcp_edge rows are skipped")
    else:
        av.open_engine, av.io_op = open_engine, IoOp
        try:
            open_engine("uring").close()
        except (OSError, ImportError) as exc:
            ctx.note(f"the io_uring engine cannot start here ({exc}): mcp_edge[uring] and mcp_edge[uring-async] "
                     "are skipped")
        else:
            av.impls += ["mcp_edge[uring]", "mcp_edge[uring-async]"]
        av.impls.append("mcp_edge[threads]")
    av.impls.append("os.preadv")
    av.peer_timeout = ctx.peer_timeout
    av.liburing = ctx.child("liburing", liburing_factory())
    if av.liburing is not None:
        try:
            ctx.note(f"peer liburing {av.liburing.call('version')} (PyPI), in a child process", "liburing")
        except PeerFailed as exc:
            ctx.peer_failed("liburing", exc)
            av.liburing = None
        else:
            av.impls.append("liburing")
    av.fio = shutil.which("fio")
    if av.fio is None:
        ctx.note("fio is not installed (apt-get install fio): the fio reference rows are skipped")
    else:
        av.impls += ["fio[io_uring]", "fio[psync]"]
        ctx.note("fio[psync] runs one job at depth 1 in every case (psync has no queue)")
    av.impls = [impl for impl in IMPLS if impl in av.impls]
    return av


def liburing_factory() -> str:
    """Where the liburing child finds what it runs (this file's :class:`LiburingHost`)."""
    return f"{Path(__file__).resolve()}:LiburingHost"


def _pool(case: Case) -> Any:
    from mcp_edge.native._dio import BufferPool

    return BufferPool(case.slots, case.block)


def _runner(impl: str, av: Available, path: Path, fd: int, case: Case, offsets: list[int]) -> Runner:
    if impl in ("mcp_edge[uring]", "mcp_edge[threads]"):
        assert av.open_engine is not None
        engine = av.open_engine("uring" if impl == "mcp_edge[uring]" else "threads")
        try:
            pool = engine.pool(case.slots, case.block)
        except BaseException:
            engine.close()
            raise
        return BatchRunner(impl, engine.read_batch, pool.buffers, fd, case, offsets, (engine.close, pool.close))
    if impl == "mcp_edge[uring-async]":
        return AsyncRunner(av.open_engine, av.io_op, fd, case, offsets)
    if impl == "os.preadv":
        return PreadvRunner(fd, case, offsets, _pool(case))
    if impl == "liburing":
        assert av.liburing is not None
        return RemoteRunner(impl, av.liburing, path, case, offsets)
    assert av.fio is not None
    return FioRunner(av.fio, impl.removeprefix("fio[").removesuffix("]"), path, case, av.peer_timeout)


def _peer_failed(ctx: BenchContext, impl: str, exc: Exception) -> None:
    """A peer that crashed, hung or raised is a note (its rows left out); an mcp_edge impl's error ends the bench."""
    if is_mcp_edge(impl):
        raise exc
    ctx.peer_failed(impl, exc)


def _runners(ctx: BenchContext, av: Available, path: Path, fd: int, case: Case,
             offsets: list[int]) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    try:
        for impl in av.impls:
            if impl in ctx.failed:
                continue
            try:
                runners[impl] = _runner(impl, av, path, fd, case, offsets)
            except Exception as exc:
                _peer_failed(ctx, impl, exc)
    except BaseException:
        for runner in runners.values():
            runner.close()
        raise
    return runners


def _verify(ctx: BenchContext, runners: dict[str, Runner], ref_fd: int, case: Case, offsets: list[int]) -> None:
    """Every impl but fio reads a spread of blocks and must return what a buffered os.pread returns.

    An impl whose child fails here is noted (:meth:`BenchContext.peer_failed`) and removed from ``runners``.
    """
    offs = check_offsets(offsets)
    expected = [os.pread(ref_fd, case.block, off) for off in offs]
    for impl, runner in list(runners.items()):
        if runner.slots == 0:
            continue
        for start in range(0, len(offs), runner.slots):
            group = offs[start : start + runner.slots]
            try:
                got = runner.read(group)
            except Exception as exc:
                _peer_failed(ctx, impl, exc)
                runners.pop(impl).close()
                break
            for off, data, want in zip(group, got, expected[start : start + len(group)], strict=True):
                if data != want:
                    raise BenchError(f"{impl} at {case.name}: the {case.block} bytes read at offset {off} differ "
                                     "from what os.pread reads there")


@contextmanager
def _gc_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _open(path: Path, case: Case) -> int:
    flags = os.O_RDONLY | (os.O_DIRECT if case.direct else 0)
    try:
        return os.open(path, flags)
    except OSError as exc:
        if case.direct:
            raise ConfigError(f"cannot open {path} with O_DIRECT ({exc.strerror}): put the file on a filesystem "
                              f"that supports it with {FILE_DIR_ENV}") from exc
        raise


def _rounds(ctx: BenchContext, case: Case) -> int:
    return ctx.rounds * (DIRECT_ROUNDS[ctx.quick] if case.direct else 1)


def _run_case(ctx: BenchContext, av: Available, path: Path, case: Case, round_s: float,
              warm_device: bool = True) -> Iterator[Row]:
    if case.direct:
        if warm_device:
            _warm_device(path)
    else:
        _warm_cache(ctx, path)
    offsets = case_offsets(case, FILE_SIZE, RANDOM_OFFSETS)
    fd = _open(path, case)
    ref_fd = os.open(path, os.O_RDONLY)
    runners: dict[str, Runner] = {}
    rates: dict[str, list[float]] = {}
    try:
        runners = _runners(ctx, av, path, fd, case, offsets)
        _verify(ctx, runners, ref_fd, case, offsets)
        rates = {impl: [] for impl in runners}
        names = list(runners)
        with _gc_off():
            for r in range(_rounds(ctx, case)):
                for impl in names[r % len(names) :] + names[: r % len(names)]:
                    if impl in ctx.failed:
                        continue
                    try:
                        done, seconds = runners[impl].timed(round_s)
                    except Exception as exc:
                        _peer_failed(ctx, impl, exc)
                        continue
                    rates[impl].append(done / seconds)
                    ctx.advance(1, f"{case.name} {impl}")
    finally:
        for runner in runners.values():
            runner.close()
        os.close(fd)
        os.close(ref_fd)
    for impl, per_round in rates.items():
        if impl in ctx.failed or not per_round:
            continue
        yield Row.from_samples(case.name, impl, "IOPS", per_round, value="best")
        yield Row.from_samples(case.name, impl, "MB/s", [v * case.block / 1e6 for v in per_round], value="best")


def run(ctx: BenchContext) -> Iterator[Row]:
    if sys.platform != "linux":
        ctx.note("the io bench needs Linux (io_uring, O_DIRECT); skipped")
        return
    av = _available(ctx)
    path = _ensure_file(ctx)
    # each timed round of an impl counts as one measurement
    ctx.plan(sum(_rounds(ctx, case) for case in CASES) * len(av.impls))
    round_s = SECONDS[ctx.quick] / ctx.rounds
    try:
        first_direct = next(case for case in CASES if case.direct)
        for case in CASES:
            # --quick warms the device once, before the first O_DIRECT case (the host cache then holds the file)
            yield from _run_case(ctx, av, path, case, round_s, not ctx.quick or case is first_direct)
    finally:
        if av.liburing is not None:
            av.liburing.close()
