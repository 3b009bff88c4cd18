"""Text rendering of a perf result: one block per bench, case and metric, with ratios to the best peer."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

__all__ = ["REFERENCE_IMPLS", "best_peer", "format_table", "format_value", "is_mcp_edge"]

REFERENCE_IMPLS = frozenset({"memcpy"})
"""Impls that are yardsticks (memory bandwidth), not peers: never the "best peer"."""


def is_mcp_edge(impl: str) -> bool:
    """True for ``mcp_edge`` and ``mcp_edge[<path>]`` rows."""
    return impl == "mcp_edge" or impl.startswith("mcp_edge[")


def format_value(value: float) -> str:
    """Three significant figures, with k/M/G for large values: 0.512, 41.2, 1.53M."""
    magnitude = abs(value)
    # (from this magnitude on, divide by, suffix): 12,345 -> 12.3k, not 1.23k
    for limit, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if magnitude >= limit:
            return f"{value / scale:.3g}{suffix}"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def best_peer(
    rows: Sequence[Mapping[str, Any]], references: Collection[str] = REFERENCE_IMPLS
) -> Mapping[str, Any] | None:
    """The best row among peers (neither mcp_edge nor a reference) of rows sharing bench, case, metric."""
    peers = [r for r in rows if not is_mcp_edge(r["impl"]) and r["impl"] not in references]
    if not peers:
        return None
    if rows[0]["higher_is_better"]:
        return max(peers, key=lambda r: r["value"])
    return min(peers, key=lambda r: r["value"])


def _ratio(value: float, best: float, higher_is_better: bool) -> float | None:
    """How many times better than ``best`` (>1 is better), or None where it is undefined."""
    num, den = (value, best) if higher_is_better else (best, value)
    if den <= 0:
        return None
    return num / den


def format_table(result: Mapping[str, Any], *, references: Collection[str] = REFERENCE_IMPLS) -> str:
    """Render a perf result (the JSON of DESIGN.md) as text.

    Rows are grouped by bench, then case, then metric, in the order they first
    appear. Each line shows an impl, its value and ``vs best peer``: how many
    times better than the best peer it is (a ratio above 1 is better, whatever
    the direction of the metric). Peers are the impls that are neither
    ``mcp_edge``/``mcp_edge[...]`` nor a reference such as ``memcpy``; a group with
    no peer shows no ratios. Each bench's notes (skipped or failed peers, the
    kernel a dispatched row ran, caveats) follow its rows; a bench with notes
    but no rows still gets its block. The text has no trailing newline (for
    ``click.echo``).
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for row in result.get("results", []):
        groups.setdefault((row["bench"], row["case"], row["metric"]), []).append(row)
    notes: dict[str, list[str]] = {}
    for note in result.get("notes", []):
        notes.setdefault(note["bench"], []).append(note["text"])
    benches = list(dict.fromkeys([bench for bench, _, _ in groups] + list(notes)))
    machine = result.get("machine") or {}
    lines: list[str] = []
    if machine:
        isa = ",".join(machine.get("isa", [])) or "-"
        lines.append(
            f"machine: {machine.get('board', '?')}  {machine.get('cpu', '?')}  "
            f"{machine.get('cores', '?')} cores  isa {isa}  kernel {machine.get('kernel', '?')}"
        )
    if not groups and not notes:
        lines.append("(no results)")
        return "\n".join(lines)
    width = max([len(r["impl"]) for rows in groups.values() for r in rows] + [len("impl")])
    for bench in benches:
        lines.append("")
        lines.append(f"== {bench}")
        for (row_bench, case, metric), rows in groups.items():
            if row_bench == bench:
                lines.extend(_group_lines(case, metric, rows, width, references))
        if not any(key[0] == bench for key in groups):
            lines.append("(no results)")
        if notes.get(bench):
            lines.append("notes:")
            lines.extend(f"   - {text}" for text in notes[bench])
    return "\n".join(lines).lstrip("\n")


def _group_lines(
    case: str, metric: str, rows: Sequence[Mapping[str, Any]], width: int, references: Collection[str]
) -> list[str]:
    """The lines of one case and metric: a header, then each impl with its ratio to the best peer."""
    lines: list[str] = []
    higher = bool(rows[0]["higher_is_better"])
    peer = best_peer(rows, references)
    direction = "higher is better" if higher else "lower is better"
    against = f"vs {peer['impl']}" if peer is not None else ""
    lines.append(f"-- {case}  {metric} ({direction})")
    lines.append(f"   {'impl':<{width}}  {metric:>10}  {against}".rstrip())
    for row in rows:
        text = f"   {row['impl']:<{width}}  {format_value(float(row['value'])):>10}"
        if peer is not None:
            ratio = _ratio(float(row["value"]), float(peer["value"]), higher)
            text += f"  {ratio:.2f}x" if ratio is not None else "  -"
        lines.append(text)
    return lines
