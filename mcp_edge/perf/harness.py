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
            yield Row("1MiB", impl, "GB/s", t.gb_per_s(len(buf)))

``run`` may be a generator. It yields :class:`Row` objects (case, impl, metric,
value, higher_is_better); the harness adds the bench name and checks each one.
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
  for isolated peers (above); ``ctx.failed`` holds the impls that failed.

An exception from a bench aborts the run with :class:`BenchError` (naming the
bench) and no JSON is written; an :class:`~mcp_edge.errors.McpEdgeError` raised
by a bench passes through unchanged.

Result
------
The JSON of DESIGN.md, "Perf result format": ``{"machine": {...}, "results":
[{bench, case, impl, metric, value, higher_is_better}, ...], "notes": [{bench,
impl, text}, ...]}``, written atomically (temporary file in the same directory,
then ``os.replace``). ``notes`` holds every note of the run in order: skipped
and failed peers (``impl`` names them), the kernel a dispatched row ran,
caveats (``impl`` null).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import platform
import re
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


@dataclass(frozen=True, slots=True)
class Row:
    """One figure a bench yields; the harness adds the bench name."""

    case: str
    impl: str
    metric: str
    value: float
    higher_is_better: bool = True


class ResultRow(TypedDict):
    bench: str
    case: str
    impl: str
    metric: str
    value: float
    higher_is_better: bool


class Machine(TypedDict):
    arch: str
    cpu: str
    isa: list[str]
    cores: int
    kernel: str
    board: str


class Note(TypedDict):
    bench: str
    impl: str | None
    text: str


class PerfResult(TypedDict):
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

    def __init__(self, bench: str, *, quick: bool, reporter: _Reporter | None = None) -> None:
        self.bench = bench
        self.quick = quick
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


def _board_id(arch: str) -> str:
    try:
        from mcp_edge.board import detect
    except ImportError:
        return f"generic-{arch}"
    return str(detect().id)


def machine_info() -> Machine:
    """The ``machine`` object of the result: arch, cpu model, SIMD levels, cores, kernel, board."""
    from mcp_edge.native import cpu

    arch = platform.machine()
    return {
        "arch": arch,
        "cpu": _cpu_model(),
        "isa": [level for level in cpu.levels() if level != "scalar"],
        "cores": os.cpu_count() or 1,
        "kernel": platform.release(),
        "board": _board_id(arch),
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
    return {
        "bench": bench,
        "case": row.case,
        "impl": row.impl,
        "metric": row.metric,
        "value": float(value),
        "higher_is_better": row.higher_is_better,
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

    Raises
    ------
    ConfigError
        No bench directory, an unknown name in ``only``, an unwritable ``json_path``.
    BenchError
        A bench failed; nothing is written then.
    """
    directory = find_bench_dir(bench_dir)
    selected = select(discover(directory), only)
    _check_json_target(json_path)
    machine = machine_info()
    reporter = _Reporter(progress and sys.stderr.isatty(), sys.stderr)
    rows: list[ResultRow] = []
    notes: list[Note] = []
    try:
        for name, path in selected.items():
            ctx = BenchContext(name, quick=quick, reporter=reporter)
            try:
                rows.extend(_run_bench(name, path, ctx))
            finally:
                notes.extend(ctx.notes)
            reporter.finish()
    finally:
        reporter.finish()
    result: PerfResult = {"machine": machine, "results": rows, "notes": notes}
    write_json(json_path, result)
    return result
