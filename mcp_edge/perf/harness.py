"""The harness behind ``mcp-edge perf``: finds the benchmarks, runs them, writes the result JSON.

Bench protocol
--------------
A benchmark is a file ``bench_<name>.py`` in the bench directory (``perf/`` in a
checkout, ``<prefix>/share/mcp-edge/perf`` once installed). ``<name>`` is made of
``[a-z0-9_]`` and is what ``--only`` selects. The module provides::

    NAME = "crc32c"                       # optional; must equal <name> if given

    def run(ctx: BenchContext) -> Iterable[Row]:
        ctx.plan(measurements=2)          # optional: sizes the progress bar
        timings = ctx.compare({"mcp_edge": Call(fn, buf), "peer": Call(peer_fn, buf)}, label="1MiB")
        for impl, t in timings.items():
            yield Row.from_samples("1MiB", impl, "GB/s", t.gb_per_s_samples(len(buf)))

``run`` may be a generator. It yields :class:`Row` objects (case, impl, metric,
value, higher_is_better, samples); the harness adds the bench name and checks
each one. ``samples`` holds the row's repeated measurements, one per round, in
the row's metric (:meth:`Timing.gb_per_s_samples`, :meth:`Timing.per_second_samples`,
:attr:`Timing.samples_ns` give them from a timing); ``value`` is the figure the
tables print: :meth:`Row.from_samples` makes it the median of the samples (or the
best one, ``value="best"``), and a bench that computes it otherwise says how in
its docstring. ``mcp-edge perf compare`` judges rows on the medians of their
samples, and calls a row with fewer than :data:`MIN_SAMPLES` samples "too few
samples" rather than a regression: every row should carry at least three (a
row that is one long measurement repeats it, or a note says why it cannot).
Heavy imports (numpy, peers) belong inside ``run``, so that listing or
selecting benches stays cheap. A peer that is not installed is skipped with
``ctx.note(...)``, never a crash. Every bench runs its peers in the same run
(use :meth:`BenchContext.compare`, which interleaves them round by round) so the
ratios that :func:`~mcp_edge.perf.report.format_table` prints are meaningful.

Peers that survive nothing
--------------------------
A peer that loads foreign native code runs in a child process
(:meth:`BenchContext.child`, see :mod:`mcp_edge.perf.isolation`), so that a
crash (SIGILL from an instruction this CPU lacks), a hang (bounded by
``ctx.peer_timeout``) or an exception costs that peer only: the bench hands the
failure to :meth:`BenchContext.peer_failed` (``compare`` does it by itself),
which notes the peer and the reason, and the harness leaves every row of that
impl in that bench out of the result. A failure of an ``mcp_edge`` row is never
excused: it ends the run with :class:`BenchError`. A :class:`PeerFailed` that
escapes a bench's ``run`` is handled the same way (the rows yielded before it
are kept, the rest of that bench is lost).

:class:`BenchContext` gives a bench:

- ``ctx.bench``, ``ctx.quick`` and the timing budget ``ctx.min_time`` (seconds
  per measurement: 0.2 quick, 1.0 full) and ``ctx.rounds`` (3 quick, 5 full);
- ``ctx.measure(call)`` / ``ctx.compare({impl: call})``: calibrated, batched,
  interleaved timing (:mod:`mcp_edge.perf.timing`); each returns
  :class:`~mcp_edge.perf.timing.Timing` (``best_ns``, ``per_second``, ``gb_per_s``);
- ``ctx.plan(n)`` to announce n measurements (one impl at one case) and
  ``ctx.advance(n)`` for work done outside measure/compare, which advance
  the progress bar by themselves;
- ``ctx.note(text, impl=None)`` for a line on stderr that does not break the
  bar; it is also kept in the result's ``notes`` (with the impl it is about);
- ``ctx.child(peer, "file.py:factory", *args)`` and ``ctx.peer_failed(impl, exc)``
  for isolated peers (above); ``ctx.failed`` holds the impls that failed;
- ``ctx.profile_path``: where ``--profile`` wants a flame graph (None without it);
  the MCP bench attaches py-spy to its server there.

An exception from a bench aborts the run with :class:`BenchError` (naming the
bench) and no JSON is written; an :class:`~mcp_edge.errors.McpEdgeError` raised
by a bench passes through unchanged.

Result
------
The JSON of DESIGN.md, "Perf result format": ``{"date": ..., "quick": ...,
"machine": {...}, "results": [{bench, case, impl, metric, value,
higher_is_better, samples}, ...], "notes": [{bench, impl, text}, ...]}``
(``date``: when the run started, UTC, ISO 8601; ``quick``: whether it ran with
``--quick``; ``machine``: :func:`machine_info`), written atomically (temporary
file in the same directory, then ``os.replace``). ``notes`` holds every note of the run in order: skipped
and failed peers (``impl`` names them), the kernel a dispatched row ran,
caveats (``impl`` null).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO, TypedDict

from mcp_edge.board.environ import process_environ
from mcp_edge.errors import BenchError, ConfigError, McpEdgeError
from mcp_edge.perf.isolation import DEFAULT_TIMEOUT, Child, PeerFailed, PeerSkipped
from mcp_edge.perf.report import is_mcp_edge
from mcp_edge.perf.timing import Call, Timer, Timing, compare

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

__all__ = [
    "BENCH_DIR_ENV",
    "FULL",
    "MIN_SAMPLES",
    "QUICK",
    "BenchContext",
    "BenchError",
    "Budget",
    "Machine",
    "Note",
    "PeerFailed",
    "PeerSkipped",
    "PerfResult",
    "ResultRow",
    "Row",
    "discover",
    "find_bench_dir",
    "load_bench",
    "machine_info",
    "run",
    "select",
    "write_json",
]

BENCH_DIR_ENV = "MCP_EDGE_PERF_DIR"
"""Environment variable naming the bench directory (after an explicit argument)."""

_BENCH_FILE = re.compile(r"bench_([a-z0-9][a-z0-9_]*)\.py")


@dataclass(frozen=True, slots=True)
class Budget:
    """How long each measurement is timed: ``min_time`` seconds over ``rounds`` rounds."""

    min_time: float
    rounds: int


QUICK = Budget(min_time=0.2, rounds=3)
FULL = Budget(min_time=1.0, rounds=5)

MIN_SAMPLES = 3
"""Samples a row needs before ``perf compare`` judges it (fewer: "too few samples", never a regression)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One figure a bench yields; the harness adds the bench name.

    ``samples`` are the repeated measurements behind ``value`` (one per round,
    in ``metric``); ``value`` is the figure printed, see :meth:`from_samples`.
    """

    case: str
    impl: str
    metric: str
    value: float
    higher_is_better: bool = True
    samples: Sequence[float] = ()

    @classmethod
    def from_samples(
        cls,
        case: str,
        impl: str,
        metric: str,
        samples: Iterable[float],
        *,
        higher_is_better: bool = True,
        value: str = "median",
    ) -> Row:
        """A row whose value is the median of ``samples`` (``value="best"``: the best one in its direction)."""
        got = tuple(float(v) for v in samples)
        if not got:
            raise BenchError(f"row {case}/{impl}/{metric} has no samples")
        if value == "median":
            figure = statistics.median(got)
        elif value == "best":
            figure = max(got) if higher_is_better else min(got)
        else:
            raise ValueError(f"value must be 'median' or 'best', not {value!r}")
        return cls(case, impl, metric, figure, higher_is_better, got)


class ResultRow(TypedDict):
    bench: str
    case: str
    impl: str
    metric: str
    value: float
    higher_is_better: bool
    samples: list[float]


class Machine(TypedDict):
    arch: str
    cpu: str
    cpu_flags: list[str]
    isa: list[str]
    cores: int
    kernel: str
    board: str
    python: str
    mcp_edge: str
    mcp_edge_commit: str | None
    peers: dict[str, str]


class Note(TypedDict):
    bench: str
    impl: str | None
    text: str


class PerfResult(TypedDict):
    date: str
    quick: bool
    machine: Machine
    results: list[ResultRow]
    notes: list[Note]


# --------------------------------------------------------------------------- progress


class _Reporter:
    """Progress bar (click, on a terminal only) and notes on stderr."""

    def __init__(self, show_bar: bool, stream: TextIO) -> None:
        self._show_bar = show_bar
        self._stream = stream
        self._bar: ProgressBar[str | None] | None = None

    def start(self, bench: str, steps: int) -> None:
        self.finish()
        if not self._show_bar or steps <= 0:
            return
        import click

        def show(item: str | None) -> str | None:
            return item

        bar = click.progressbar(
            iterable=None,
            length=steps,
            label=f"perf {bench}",
            item_show_func=show,
            file=self._stream,
        )
        bar.__enter__()
        self._bar = bar

    def step(self, steps: int, item: str | None) -> None:
        if self._bar is not None:
            self._bar.update(steps, item)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._stream.write("\r\x1b[K")
        self._stream.write(text.rstrip("\n") + "\n")
        self._stream.flush()

    def finish(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.__exit__(None, None, None)


# --------------------------------------------------------------------------- context


class BenchContext:
    """What a bench's ``run(ctx)`` gets: the budget, timing helpers, progress and notes."""

    def __init__(self, bench: str, *, quick: bool, reporter: _Reporter | None = None,
                 profile_path: Path | None = None) -> None:
        self.bench = bench
        self.quick = quick
        self.profile_path = profile_path
        """``--profile``: the flame graph (SVG) a bench that supports it records (the MCP bench); None: off."""
        budget = QUICK if quick else FULL
        self.min_time: float = budget.min_time
        self.rounds: int = budget.rounds
        self.peer_timeout: float = DEFAULT_TIMEOUT
        """Seconds a peer's child process gets to start and to answer each request."""
        self.notes: list[Note] = []
        self.failed: dict[str, str] = {}
        """Impl -> why it failed (crashed, hung, raised); its rows are left out of the result."""
        self._reporter = reporter if reporter is not None else _Reporter(False, sys.stderr)

    def plan(self, measurements: int) -> None:
        """Announce how many measurements (one impl at one case) the bench will make."""
        self._reporter.start(self.bench, measurements * self.rounds)

    def advance(self, measurements: int = 1, label: str | None = None) -> None:
        """Move the progress bar for work not timed through :meth:`measure` or :meth:`compare`."""
        self._reporter.step(measurements * self.rounds, label)

    def note(self, text: str, impl: str | None = None) -> None:
        """Print a line to stderr (a skipped peer, a caveat) and keep it for the result's ``notes``.

        ``impl`` names the impl the note is about, if any. The progress bar survives it.
        """
        self.notes.append({"bench": self.bench, "impl": impl, "text": text})
        self._reporter.note(f"perf {self.bench}: {text}")

    def peer_failed(self, impl: str, exc: BaseException) -> None:
        """Record that ``impl`` crashed, hung, raised or cannot run: a note, and its rows left out.

        :class:`PeerSkipped` is a skip (``impl skipped: why``); anything else a
        failure (``impl failed: why; its rows are left out``). For an
        ``mcp_edge`` impl it raises :class:`BenchError` instead: our own rows
        are never dropped quietly.
        """
        if isinstance(exc, PeerFailed):
            reason = exc.reason
        elif isinstance(exc, PeerSkipped):
            reason = str(exc)
        else:
            reason = f"raised {type(exc).__name__}: {exc}" if str(exc) else f"raised {type(exc).__name__}"
        if is_mcp_edge(impl):
            raise BenchError(f"bench {self.bench}: {impl} failed: {reason}") from exc
        self.failed[impl] = reason
        if isinstance(exc, PeerSkipped):
            self.note(f"{impl} skipped: {reason}", impl)
        else:
            self.note(f"{impl} failed: {reason}; its rows are left out", impl)

    def child(self, peer: str, factory: str, *args: object, timeout: float | None = None) -> Child | None:
        """Start a :class:`~mcp_edge.perf.isolation.Child` hosting ``factory(*args)`` for ``peer``.

        None (and the failure or skip noted, see :meth:`peer_failed`) when it
        cannot start. ``timeout`` defaults to ``ctx.peer_timeout``.
        """
        try:
            return Child(peer, factory, args, timeout=self.peer_timeout if timeout is None else timeout)
        except (PeerFailed, PeerSkipped) as exc:
            self.peer_failed(peer, exc)
            return None

    def compare(
        self,
        calls: Mapping[str, Call | Timer],
        *,
        label: str | None = None,
        min_time: float | None = None,
        rounds: int | None = None,
    ) -> dict[str, Timing]:
        """Time several impls interleaved round by round (see :func:`mcp_edge.perf.timing.compare`).

        An impl whose timing raises (a peer's child crashed, hung or raised; an
        in-process peer raised) is handed to :meth:`peer_failed` and missing
        from the result; an ``mcp_edge`` impl's failure ends the bench. Impls
        that failed before (``ctx.failed``) are not timed again.
        """
        calls = {impl: call for impl, call in calls.items() if impl not in self.failed}
        # The bar counts ctx.rounds steps per measurement; scale if this call uses another count.
        n_rounds = rounds if rounds is not None else self.rounds
        per_step = max(1, round(self.rounds / n_rounds))
        prefix = f"{label} " if label else ""

        def on_step(impl: str) -> None:
            self._reporter.step(per_step, f"{prefix}{impl}".strip())

        return compare(
            calls,
            min_time=min_time if min_time is not None else self.min_time,
            rounds=n_rounds,
            on_step=on_step,
            on_failure=self.peer_failed,
        )

    def measure(
        self,
        call: Call | Timer,
        *,
        label: str | None = None,
        min_time: float | None = None,
        rounds: int | None = None,
    ) -> Timing:
        """Time one call (see :meth:`compare`)."""
        return self.compare({label or "": call}, min_time=min_time, rounds=rounds)[label or ""]


# --------------------------------------------------------------------------- discovery


def _candidate_dirs() -> list[tuple[str, Path]]:
    import mcp_edge

    return [
        ("./perf", Path.cwd() / "perf"),
        ("the checkout's perf/", Path(mcp_edge.__file__).resolve().parents[1] / "perf"),
        ("the installed benchmarks", Path(sys.prefix) / "share" / "mcp-edge" / "perf"),
    ]


def _has_benches(directory: Path) -> bool:
    try:
        return any(_BENCH_FILE.fullmatch(p.name) for p in directory.iterdir() if p.is_file())
    except OSError:
        return False


def find_bench_dir(explicit: Path | None = None) -> Path:
    """The bench directory: ``explicit``, else $MCP_EDGE_PERF_DIR, else the first of
    ``./perf``, the checkout's ``perf/`` and ``<sys.prefix>/share/mcp-edge/perf`` that
    holds a ``bench_*.py``.

    An explicit directory or the environment variable is taken as given (it must
    exist); ConfigError when nothing is found.
    """
    for source, given in (("--bench-dir", explicit), (BENCH_DIR_ENV, process_environ().get(BENCH_DIR_ENV))):
        if given is None or given == "":
            continue
        path = Path(given).expanduser()
        if not path.is_dir():
            raise ConfigError(f"bench directory {str(path)!r} (from {source}) is not a directory")
        return path
    tried = []
    for label, path in _candidate_dirs():
        if _has_benches(path):
            return path
        tried.append(f"{label} ({path})")
    raise ConfigError(
        "no benchmarks found: looked for bench_*.py in " + ", ".join(tried)
        + f"; pass --bench-dir DIR or set {BENCH_DIR_ENV}=DIR to the folder holding them"
    )


def discover(bench_dir: Path) -> dict[str, Path]:
    """Bench name -> file for every ``bench_<name>.py`` in ``bench_dir``, sorted by name."""
    try:
        entries = sorted(bench_dir.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot list bench directory {str(bench_dir)!r}: {exc.strerror}") from exc
    found: dict[str, Path] = {}
    for path in entries:
        match = _BENCH_FILE.fullmatch(path.name)
        if match and path.is_file():
            found[match.group(1)] = path
    return found


def select(benches: Mapping[str, Path], only: Sequence[str] | None) -> dict[str, Path]:
    """The benches ``only`` names (all when None or empty; names may be comma-separated).

    Keeps discovery order; ConfigError naming the known benches for an unknown name.
    """
    if not benches:
        raise ConfigError("the bench directory holds no bench_*.py file")
    wanted = [n.strip() for item in (only or ()) for n in item.split(",") if n.strip()]
    if not wanted:
        return dict(benches)
    unknown = [n for n in wanted if n not in benches]
    if unknown:
        raise ConfigError(
            f"unknown bench{'es' if len(unknown) > 1 else ''} {', '.join(unknown)} for --only; "
            f"known: {', '.join(benches)}"
        )
    return {name: path for name, path in benches.items() if name in wanted}


def load_bench(name: str, path: Path) -> ModuleType:
    """Import a bench file as module ``mcp_edge_perf_bench_<name>`` and check its protocol."""
    module_name = f"mcp_edge_perf_bench_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load bench {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise BenchError(f"cannot load bench {name} ({path}): {type(exc).__name__}: {exc}") from exc
    declared = getattr(module, "NAME", name)
    if declared != name:
        raise BenchError(f"bench file {path} declares NAME = {declared!r}; it must match its file name, {name!r}")
    if not callable(getattr(module, "run", None)):
        raise BenchError(f"bench {name} ({path}) has no run(ctx) function")
    return module


# --------------------------------------------------------------------------- machine


# CPU part numbers of the Arm cores edge boards carry (/proc/cpuinfo has no model name there).
_ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53",
    ("0x41", "0xd04"): "Cortex-A35",
    ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57",
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd40"): "Neoverse-V1",
    ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4f"): "Neoverse-V2",
    ("0x4e", "0x004"): "NVIDIA Carmel",
    ("0x61", "0x000"): "Apple",
}


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "cpu model", "hardware"):
        if fields.get(key):
            return fields[key]
    implementer, part = fields.get("cpu implementer"), fields.get("cpu part")
    if implementer and part:
        return _ARM_PARTS.get((implementer.lower(), part.lower()), f"arm implementer {implementer} part {part}")
    return platform.processor() or "unknown"


def _board_id(arch: str, board: str | None) -> str:
    if board is not None:
        from mcp_edge.board.profiles import resolve

        return str(resolve(board).id)
    try:
        from mcp_edge.board import detect
    except ImportError:
        return f"generic-{arch}"
    return str(detect().id)


# The /proc/cpuinfo flags that decide which kernel runs (x86 "flags", aarch64 "Features"):
# SIMD levels, carry-less multiply, CRC, and what the I/O and IPC paths lean on.
RELEVANT_CPU_FLAGS = frozenset({
    "sse4_2", "pclmulqdq", "avx", "avx2", "bmi2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq",
    "avx512_vnni", "vpclmulqdq", "gfni", "vaes", "sha_ni", "erms", "fsrm", "movdir64b", "waitpkg",
    "constant_tsc", "hypervisor",
    "asimd", "neon", "crc32", "pmull", "aes", "sha1", "sha2", "atomics", "sve", "sve2", "asimddp",
})


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The relevant flags of the first CPU in /proc/cpuinfo (``cpuinfo`` to parse given text), sorted."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return sorted(set(value.split()) & RELEVANT_CPU_FLAGS)
    return []


def _git_commit() -> str | None:
    """The checkout's commit (``+dirty`` when the tree has changes), or None outside a git checkout."""
    import mcp_edge

    root = Path(mcp_edge.__file__).resolve().parents[1]
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


# Peers that are not in the perf extra: the MCP bench's servers (it installs these pins in its own venvs,
# the versions here are those of the runtime's environment) and the tools the benches run.
_EXTRA_PEERS = ("mcp", "fastmcp")
_TOOL_PEERS = {"fio": ["fio", "--version"]}


def peer_versions() -> dict[str, str]:
    """Versions of the peers: the Python packages of the ``perf`` extra (and the MCP servers), the tools.

    A peer not installed reads ``"not installed"``; the value is what its metadata or ``--version`` says.
    """
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    names: list[str] = []
    try:
        for text in metadata.requires("mcp-edge") or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and req.marker.evaluate({"extra": "perf"}) and not req.marker.evaluate(
                    {"extra": ""}):
                names.append(req.name)
    except metadata.PackageNotFoundError:
        pass
    versions: dict[str, str] = {}
    for name in [*names, *_EXTRA_PEERS]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    for tool, argv in _TOOL_PEERS.items():
        if shutil.which(argv[0]) is None:
            versions[tool] = "not installed"
            continue
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            out = f"unknown ({exc})"
        versions[tool] = out.splitlines()[0] if out else "unknown"
    return versions


def machine_info(board: str | None = None) -> Machine:
    """The ``machine`` object of the result: the fingerprint of the box and of the software measured.

    arch, cpu model, the relevant cpu flags, SIMD levels, cores, kernel, board
    (``board`` resolved through the board profiles, else the detected one), the
    Python version, ours (version and git commit when run from a checkout) and
    the peers' (:func:`peer_versions`).
    """
    from importlib import metadata

    from mcp_edge.native import cpu

    arch = platform.machine()
    try:
        ours = metadata.version("mcp-edge")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    return {
        "arch": arch,
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "isa": [level for level in cpu.levels() if level != "scalar"],
        "cores": os.cpu_count() or 1,
        "kernel": platform.release(),
        "board": _board_id(arch, board),
        "python": platform.python_version(),
        "mcp_edge": ours,
        "mcp_edge_commit": _git_commit(),
        "peers": peer_versions(),
    }


# --------------------------------------------------------------------------- run


def _result_row(bench: str, row: object) -> ResultRow:
    if not isinstance(row, Row):
        raise BenchError(f"bench {bench} yielded a {type(row).__name__}; benches yield mcp_edge.perf.Row")
    for field in ("case", "impl", "metric"):
        if not isinstance(getattr(row, field), str) or not getattr(row, field):
            raise BenchError(f"bench {bench} yielded a row with an empty or non-string {field}: {row!r}")
    value = row.value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BenchError(f"bench {bench} yielded a row whose value is not a finite number: {row!r}")
    if not isinstance(row.higher_is_better, bool):
        raise BenchError(f"bench {bench} yielded a row whose higher_is_better is not a bool: {row!r}")
    samples = list(row.samples)
    for sample in samples:
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not math.isfinite(sample):
            raise BenchError(f"bench {bench} yielded a row with a sample that is not a finite number: {row!r}")
    return {
        "bench": bench,
        "case": row.case,
        "impl": row.impl,
        "metric": row.metric,
        "value": float(value),
        "higher_is_better": row.higher_is_better,
        "samples": [float(v) for v in samples],
    }


def _run_bench(name: str, path: Path, ctx: BenchContext) -> list[ResultRow]:
    """The bench's rows, less those of impls that failed (see :meth:`BenchContext.peer_failed`)."""
    module = load_bench(name, path)
    bench_run: Callable[[BenchContext], Iterable[object]] = module.run
    rows: list[ResultRow] = []
    try:
        for row in bench_run(ctx):
            rows.append(_result_row(name, row))
    except PeerFailed as exc:
        ctx.peer_failed(exc.peer, exc)
    except McpEdgeError:
        raise
    except Exception as exc:
        raise BenchError(f"bench {name} ({path}) failed: {type(exc).__name__}: {exc}") from exc
    return [row for row in rows if row["impl"] not in ctx.failed]


def _profile_path(json_path: Path) -> Path:
    """Where ``--profile`` puts the flame graph: beside the JSON, ``<stem>.flame.svg``."""
    return json_path.with_name(f"{json_path.stem}.flame.svg")


def _check_json_target(json_path: Path) -> None:
    parent = json_path.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {str(json_path)!r}: directory {str(parent)!r} does not exist")
    if json_path.is_dir():
        raise ConfigError(f"cannot write {str(json_path)!r}: it is a directory; pass a file name to --json")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write {str(json_path)!r}: directory {str(parent)!r} is not writable")


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a temporary file beside it, then os.replace."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # what open() would have given, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run(
    only: list[str] | None,
    quick: bool,
    json_path: Path,
    bench_dir: Path | None,
    progress: bool,
    board: str | None = None,
    profile: bool = False,
) -> PerfResult:
    """Run the selected benches and write the result JSON; return what was written.

    Parameters
    ----------
    only:
        Bench names to run (``--only``; comma-separated items allowed); None or
        empty runs every bench found.
    quick:
        Short budget (``--quick``): 0.2 s and 3 rounds per measurement instead of 1 s and 5.
    json_path:
        Where the result goes (``--json``); its directory must exist.
    bench_dir:
        Bench directory (``--bench-dir``); None searches (see :func:`find_bench_dir`).
    progress:
        Show a progress bar, if stderr is a terminal.
    board:
        The board id recorded in the fingerprint (``--board``, resolved through
        the board profiles); None records the detected board.
    profile:
        ``--profile``: benches that support it record a profile next to the JSON
        (the MCP bench: a py-spy flame graph of our server, ``<json stem>.flame.svg``).

    Raises
    ------
    ConfigError
        No bench directory, an unknown name in ``only``, an unwritable ``json_path``,
        an unknown ``board``.
    BenchError
        A bench failed; nothing is written then.
    """
    directory = find_bench_dir(bench_dir)
    selected = select(discover(directory), only)
    _check_json_target(json_path)
    machine = machine_info(board)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    reporter = _Reporter(progress and sys.stderr.isatty(), sys.stderr)
    rows: list[ResultRow] = []
    notes: list[Note] = []
    try:
        for name, path in selected.items():
            ctx = BenchContext(name, quick=quick, reporter=reporter,
                               profile_path=_profile_path(json_path) if profile else None)
            try:
                rows.extend(_run_bench(name, path, ctx))
            finally:
                notes.extend(ctx.notes)
            reporter.finish()
    finally:
        reporter.finish()
    result: PerfResult = {"date": started, "quick": quick, "machine": machine, "results": rows, "notes": notes}
    write_json(json_path, result)
    return result
