"""Behind ``mcp-edge perf compare BASE NEW``: each row of two perf results side by side, and a regression verdict.

The rule (:data:`RULE`): a row regresses when its new median is worse than its
base median, in the row's direction (``higher_is_better``), by more than
``max(3 x the larger of the two median absolute deviations, 5% of the base
median)``. Medians and MADs are taken over the row's ``samples`` (its repeated
measurements, one per round), never over ``value``. Three times the MAD is
the noise the two runs themselves show; 5% is the floor below which a change
is not worth a failure on a shared machine even when the rounds agree.

Only ``mcp_edge`` rows (``mcp_edge``, ``mcp_edge[<path>]``) can fail the
comparison: peers are context (a peer that got slower changes the ratios, not
our code), so a peer beyond the threshold reads ``worse (peer)``. A row with
fewer than :data:`~mcp_edge.perf.harness.MIN_SAMPLES` samples on either side
reads ``too few samples`` and is never a regression (a count, one long
measurement); a result written before rows carried samples has none, and its
rows read ``no samples`` (the figures are shown, the run is not judged).

Pure Python (:mod:`statistics`); no numpy.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcp_edge.errors import ConfigError
from mcp_edge.perf.harness import MIN_SAMPLES
from mcp_edge.perf.report import format_value, is_mcp_edge

__all__ = [
    "NOISE_MADS",
    "RULE",
    "THRESHOLD",
    "Change",
    "Comparison",
    "compare_results",
    "format_comparison",
    "load_result",
    "mad",
]

NOISE_MADS = 3.0
"""A change must exceed this many median absolute deviations (the larger side's) to count."""
THRESHOLD = 0.05
"""... and this fraction of the base median."""
RULE = (
    f"regression: new median worse than base median by more than max({NOISE_MADS:g} x larger MAD, "
    f"{THRESHOLD:.0%}); medians and MADs over each row's samples; only mcp_edge rows can fail "
    f"(peers are context); rows with fewer than {MIN_SAMPLES} samples are not judged"
)

_KEY_FIELDS = ("bench", "case", "impl", "metric")


def load_result(path: Path) -> dict[str, Any]:
    """Read a perf result JSON; ConfigError (exit status 2 in the CLI) when it is unreadable or not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not a perf result: not UTF-8 text ({exc.reason})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not a perf result: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ConfigError(f"{str(path)!r} is not a perf result: no \"results\" list "
                          "(write one with `mcp-edge perf run --json FILE`)")
    for i, row in enumerate(data["results"]):
        problem = _row_problem(row)
        if problem:
            raise ConfigError(f"{str(path)!r} is not a perf result: results[{i}] {problem}")
    if not isinstance(data.get("machine", {}), dict):
        raise ConfigError(f"{str(path)!r} is not a perf result: \"machine\" is not an object")
    return data


def _row_problem(row: object) -> str | None:
    if not isinstance(row, dict):
        return "is not an object"
    for field in _KEY_FIELDS:
        if not isinstance(row.get(field), str):
            return f"has no string {field!r}"
    if not _is_number(row.get("value")):
        return "has no numeric 'value'"
    if not isinstance(row.get("higher_is_better"), bool):
        return "has no boolean 'higher_is_better'"
    samples = row.get("samples")
    if samples is not None and (not isinstance(samples, list) or not all(_is_number(v) for v in samples)):
        return "has 'samples' that is not a list of numbers"
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return float(statistics.median(abs(v - middle) for v in values))


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the comparison."""

    bench: str
    case: str
    impl: str
    metric: str
    higher_is_better: bool
    verdict: str
    """better, same, worse-within-noise, REGRESSION, worse (peer), new, gone, too few samples, no samples."""
    base: float | None
    """The base median (of the samples; ``value`` when the row has none)."""
    new: float | None
    change: float | None
    """(new - base) / base, as a fraction; None where undefined."""
    threshold: float | None
    """The allowed worsening, in the metric's unit: max(3 x larger MAD, 5% of base)."""
    base_samples: int = 0
    new_samples: int = 0


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every row's :class:`Change`, in the new run's order then rows that are gone, and the warnings."""

    changes: list[Change]
    warnings: list[str]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "REGRESSION"]

    def as_dict(self) -> dict[str, Any]:
        return {"rule": RULE, "regressions": len(self.regressions), "warnings": self.warnings,
                "changes": [asdict(c) for c in self.changes]}


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (row["bench"], row["case"], row["impl"], row["metric"])


def _center(row: Mapping[str, Any]) -> tuple[float, float, int]:
    """(median, MAD, sample count) of a row; its value, 0 and 0 when it carries no samples."""
    samples = [float(v) for v in row.get("samples") or ()]
    if not samples:
        return float(row["value"]), 0.0, 0
    return float(statistics.median(samples)), mad(samples), len(samples)


def _judge(base: Mapping[str, Any], new: Mapping[str, Any]) -> Change:
    higher = bool(new["higher_is_better"])
    b, b_mad, nb = _center(base)
    n, n_mad, nn = _center(new)
    change = (n - b) / abs(b) if b != 0 else None
    threshold = max(NOISE_MADS * max(b_mad, n_mad), THRESHOLD * abs(b))
    worse_by = (b - n) if higher else (n - b)
    if "samples" not in base or "samples" not in new:
        verdict = "no samples"
    elif min(nb, nn) < MIN_SAMPLES:
        verdict = "too few samples"
    elif worse_by > threshold:
        verdict = "REGRESSION" if is_mcp_edge(new["impl"]) else "worse (peer)"
    elif -worse_by > threshold:
        verdict = "better"
    elif worse_by > 0:
        verdict = "worse-within-noise"
    else:
        verdict = "same"
    return Change(new["bench"], new["case"], new["impl"], new["metric"], higher, verdict, b, n, change,
                  threshold, nb, nn)


def compare_results(base: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    """Judge every row of ``new`` against the same (bench, case, impl, metric) row of ``base``."""
    warnings: list[str] = []
    for name, result in (("base", base), ("new", new)):
        rows = result["results"]
        if rows and not any("samples" in r for r in rows):
            warnings.append(f"the {name} result has no samples (written before rows carried their repeated "
                            "measurements): its rows are shown but not judged; run the benches again")
    if "quick" in base and "quick" in new and base["quick"] != new["quick"]:
        warnings.append("one run is --quick and the other is not: their noise differs; compare runs of one kind")
    b_machine, n_machine = base.get("machine") or {}, new.get("machine") or {}
    for field in ("cpu", "board", "cores"):
        if b_machine.get(field) != n_machine.get(field):
            warnings.append(f"the runs are from different machines: {field} {b_machine.get(field)!r} vs "
                            f"{n_machine.get(field)!r}; compare runs of one machine")
    base_rows = {_key(r): r for r in base["results"]}
    seen: set[tuple[str, str, str, str]] = set()
    changes: list[Change] = []
    for row in new["results"]:
        key = _key(row)
        seen.add(key)
        old = base_rows.get(key)
        if old is None:
            n, _, nn = _center(row)
            changes.append(Change(*key, bool(row["higher_is_better"]), "new", None, n, None, None, 0, nn))
        else:
            changes.append(_judge(old, row))
    for key, row in base_rows.items():
        if key not in seen:
            b, _, nb = _center(row)
            changes.append(Change(*key, bool(row["higher_is_better"]), "gone", b, None, None, None, nb, 0))
    return Comparison(changes, warnings)


def _fmt(value: float | None) -> str:
    return "-" if value is None else format_value(value)


def format_comparison(comparison: Comparison) -> str:
    """The comparison as a table, then the rule and the summary (no trailing newline)."""
    header = ("bench", "case", "impl", "metric", "better", "base", "new", "change", "verdict")
    table: list[tuple[str, ...]] = [header]
    for c in comparison.changes:
        direction = "higher" if c.higher_is_better else "lower"
        change = "-" if c.change is None else f"{c.change:+.1%}"
        table.append((c.bench, c.case, c.impl, c.metric, direction, _fmt(c.base), _fmt(c.new), change,
                      c.verdict))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    right = {5, 6, 7}
    lines = []
    for r in table:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    lines.extend(f"warning: {w}" for w in comparison.warnings)
    lines.append(RULE)
    counts: dict[str, int] = {}
    for c in comparison.changes:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    regressions = comparison.regressions
    if regressions:
        lines.append(f"{len(regressions)} regression(s) ({summary})")
    else:
        lines.append(f"no regression ({summary or 'no rows'})")
    return "\n".join(lines)
