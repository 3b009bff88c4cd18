"""``mcp-edge perf report RUN.json [RUN2.json ...] -o DIR``: a Markdown and a self-contained HTML report with plots.

What goes in (:func:`write_report`):

- one table per run with its machine fingerprint (CPU, flags, cores, kernel,
  board, Python, our version and commit, the peers' versions);
- *throughput*: per bench, its throughput metrics (GB/s, IOPS, MB/s, calls/s,
  msgs/s, ops/s) per case and impl, as grouped bars (log scale when the values
  span more than two decades);
- *latency percentiles*: rows whose metric is ``p<N>_<unit>`` (p50, p99 ...),
  per bench, one panel per percentile;
- *ratios to peers*: each ``mcp_edge`` row against the best peer of its bench,
  case and metric (:func:`~mcp_edge.perf.report.best_peer`), >1 is better
  whatever the metric's direction;
- with several runs, *boards*: the ``mcp_edge`` throughput rows with one bar
  (and one table row) per board.

The plots are PNGs written into DIR by matplotlib's Agg backend and embedded in
``report.html`` as ``data:`` URIs, so the HTML is one file that opens anywhere;
``report.md`` links the PNG files beside it. matplotlib is the ``report`` extra:
it is imported inside :func:`write_report` only, never when ``mcp_edge`` (or its
CLI) starts, and a missing matplotlib is a ConfigError naming the extra.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_edge.errors import ConfigError
from mcp_edge.perf.report import REFERENCE_IMPLS, best_peer, format_value, is_mcp_edge

__all__ = ["THROUGHPUT_METRICS", "is_latency", "is_throughput", "write_report"]

THROUGHPUT_METRICS = frozenset({"GB/s", "MB/s", "IOPS", "calls/s", "msgs/s", "ops/s"})
_LATENCY = re.compile(r"p(\d+(?:\.\d+)?)_(ns|us|ms|s)")

Row = Mapping[str, Any]


def is_throughput(metric: str) -> bool:
    """True for the metrics the throughput plots show."""
    return metric in THROUGHPUT_METRICS


def is_latency(metric: str) -> bool:
    """True for latency percentiles: ``p50_us``, ``p99_ms`` ..."""
    return _LATENCY.fullmatch(metric) is not None


# --------------------------------------------------------------------------- document model


@dataclass
class _Doc:
    """Blocks rendered both as Markdown and as HTML: ("h", level, text), ("p", text), ("table", ...), ("img", ...)."""

    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def image(self, name: str, alt: str, png: bytes) -> None:
        self.blocks.append(("img", name, alt, png))

    def markdown(self) -> str:
        out: list[str] = []
        for block in self.blocks:
            if block[0] == "h":
                out.append("#" * block[1] + " " + block[2])
            elif block[0] == "p":
                out.append(block[1])
            elif block[0] == "table":
                header, rows = block[1], block[2]
                out.append("| " + " | ".join(_md_cell(c) for c in header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
            else:
                out.append(f"![{block[2]}]({block[1]})")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
               f"<title>{html.escape(title)}</title>",
               "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
               "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
               "text-align:left}td.n{text-align:right}img{max-width:100%}</style></head><body>"]
        for block in self.blocks:
            if block[0] == "h":
                out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
            elif block[0] == "p":
                out.append(f"<p>{html.escape(block[1])}</p>")
            elif block[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in block[1]) + "</tr>")
                for r in block[2]:
                    out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
                out.append("</table>")
            else:
                data = base64.b64encode(block[3]).decode("ascii")
                out.append(f'<p><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}"></p>')
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# --------------------------------------------------------------------------- plots


class _Plotter:
    """matplotlib (Agg), imported here only; each figure saved as a PNG in ``out`` and returned as bytes."""

    def __init__(self, out: Path) -> None:
        try:
            import matplotlib
        except ImportError as exc:
            raise ConfigError("perf report needs matplotlib: pip install 'mcp-edge[report]'") from exc
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt
        self.out = out

    def save(self, fig: Any, name: str) -> bytes:
        path = self.out / name
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
        self.plt.close(fig)
        return path.read_bytes()

    def grouped_bars(self, ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[float | None]],
                     ylabel: str) -> None:
        """Bars per group (x) and series (colour); None leaves a gap."""
        n = max(1, len(series))
        width = 0.8 / n
        values = [v for vs in series.values() for v in vs if v is not None and v > 0]
        colours = self.plt.get_cmap("tab10" if n <= 10 else "tab20")
        for i, (name, vs) in enumerate(series.items()):
            xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
            ax.bar([x for x, v in zip(xs, vs, strict=True) if v is not None],
                   [v for v in vs if v is not None], width, label=name, color=colours(i % colours.N))
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                           fontsize=8)
        ax.set_ylabel(ylabel)
        if values and max(values) / min(values) > 100:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        # beside the axes, not over the bars
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _series(rows: Sequence[Row], label: Callable[[Row], str]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Cases in order of first appearance, and per label its value at each case (None where absent)."""
    cases = list(dict.fromkeys(r["case"] for r in rows))
    series: dict[str, list[float | None]] = {}
    for r in rows:
        series.setdefault(label(r), [None] * len(cases))[cases.index(r["case"])] = float(r["value"])
    return cases, series


# --------------------------------------------------------------------------- sections


def _board(run: Mapping[str, Any], i: int) -> str:
    machine = run.get("machine") or {}
    return str(machine.get("board") or f"run {i + 1}")


def _fingerprint(doc: _Doc, runs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    doc.heading(2, "Machines")
    keys = ["board", "cpu", "cores", "arch", "isa", "cpu_flags", "kernel", "python", "mcp_edge", "mcp_edge_commit",
            "peers"]
    header = ["", *[_board(run, i) for i, (_, run) in enumerate(runs)]]
    rows = [["file", *[name for name, _ in runs]],
            ["date", *[str(run.get("date", "-")) for _, run in runs]],
            ["quick", *[str(run["quick"]).lower() if "quick" in run else "-" for _, run in runs]]]
    for key in keys:
        cells = []
        for _, run in runs:
            value = (run.get("machine") or {}).get(key)
            if isinstance(value, list):
                value = " ".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            cells.append("-" if value is None else str(value))
        rows.append([key, *cells])
    doc.table(header, rows)


def _throughput(doc: _Doc, plot: _Plotter, run: Mapping[str, Any]) -> None:
    rows = [r for r in run["results"] if is_throughput(r["metric"])]
    if not rows:
        return
    doc.heading(2, "Throughput per size and implementation")
    for bench in dict.fromkeys(r["bench"] for r in rows):
        for metric in dict.fromkeys(r["metric"] for r in rows if r["bench"] == bench):
            group = [r for r in rows if r["bench"] == bench and r["metric"] == metric]
            cases, series = _series(group, lambda r: str(r["impl"]))
            fig, ax = plot.plt.subplots(figsize=(max(6.0, 0.9 * len(cases) + 3), 4))
            plot.grouped_bars(ax, cases, series, metric)
            ax.set_title(f"{bench}: {metric} (higher is better)")
            name = f"throughput-{_slug(bench)}-{_slug(metric)}.png"
            doc.heading(3, f"{bench}: {metric}")
            doc.image(name, f"{bench} {metric} per case and implementation", plot.save(fig, name))
            doc.table(["case", *series], [[case, *[_cell(vs[i]) for vs in series.values()]]
                                          for i, case in enumerate(cases)])


def _latency(doc: _Doc, plot: _Plotter, run: Mapping[str, Any]) -> None:
    rows = [r for r in run["results"] if is_latency(r["metric"])]
    if not rows:
        return
    doc.heading(2, "Latency percentiles")
    for bench in dict.fromkeys(r["bench"] for r in rows):
        metrics = list(dict.fromkeys(r["metric"] for r in rows if r["bench"] == bench))
        fig, axes = plot.plt.subplots(len(metrics), 1, squeeze=False,
                                      figsize=(max(6.0, 0.9 * len({r["case"] for r in rows}) + 3),
                                               3.2 * len(metrics)))
        doc.heading(3, f"{bench}: {', '.join(metrics)}")
        tables: list[tuple[str, list[str], dict[str, list[float | None]]]] = []
        for ax, metric in zip(axes[:, 0], metrics, strict=True):
            cases, series = _series([r for r in rows if r["bench"] == bench and r["metric"] == metric],
                                    lambda r: str(r["impl"]))
            plot.grouped_bars(ax, cases, series, metric)
            ax.set_title(f"{bench}: {metric} (lower is better)")
            tables.append((metric, cases, series))
        fig.tight_layout()
        name = f"latency-{_slug(bench)}.png"
        doc.image(name, f"{bench} latency percentiles", plot.save(fig, name))
        for metric, cases, series in tables:
            doc.table(["case", "metric", *series], [[case, metric, *[_cell(vs[i]) for vs in series.values()]]
                                                    for i, case in enumerate(cases)])


def ratios(run: Mapping[str, Any]) -> list[tuple[Row, Row, float]]:
    """(mcp_edge row, best peer row, ratio >1 better) for every mcp_edge row that has a peer."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in run["results"]:
        groups.setdefault((r["bench"], r["case"], r["metric"]), []).append(r)
    out: list[tuple[Row, Row, float]] = []
    for rows in groups.values():
        peer = best_peer(rows, REFERENCE_IMPLS)
        if peer is None:
            continue
        for r in rows:
            if not is_mcp_edge(r["impl"]):
                continue
            num, den = (float(r["value"]), float(peer["value"])) if r["higher_is_better"] \
                else (float(peer["value"]), float(r["value"]))
            if den > 0:
                out.append((r, peer, num / den))
    return out


def _ratios(doc: _Doc, plot: _Plotter, run: Mapping[str, Any]) -> None:
    got = ratios(run)
    if not got:
        return
    doc.heading(2, "Ratios to the best peer")
    doc.para("How many times better than the best peer of the same bench, case and metric each mcp_edge row is "
             "(above 1: mcp_edge is better, whatever the metric's direction).")
    for bench in dict.fromkeys(r["bench"] for r, _, _ in got):
        items = [(r, p, x) for r, p, x in got if r["bench"] == bench]
        fig, ax = plot.plt.subplots(figsize=(7, 0.28 * len(items) + 1.2))
        labels = [f"{r['case']} {r['metric']} {r['impl']}" for r, _, _ in items]
        values = [x for _, _, x in items]
        ax.barh(range(len(items)), values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
        ax.set_yticks(range(len(items)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        if max(values) / max(min(values), 1e-9) > 100:
            ax.set_xscale("log")
        ax.set_xlabel("x best peer (>1 is better)")
        ax.set_title(f"{bench}: mcp_edge vs best peer")
        name = f"ratios-{_slug(bench)}.png"
        doc.heading(3, bench)
        doc.image(name, f"{bench} ratios of mcp_edge to the best peer", plot.save(fig, name))
        doc.table(["case", "metric", "impl", "value", "best peer", "peer value", "ratio"],
                  [[r["case"], r["metric"], r["impl"], format_value(float(r["value"])), p["impl"],
                    format_value(float(p["value"])), f"{x:.2f}x"] for r, p, x in items])


def _boards(doc: _Doc, plot: _Plotter, runs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    boards = [_board(run, i) for i, (_, run) in enumerate(runs)]
    doc.heading(2, "Boards")
    doc.para("mcp_edge's throughput rows, one bar and one table row per board (run).")
    keys: dict[tuple[str, str], None] = {}
    for _, run in runs:
        for r in run["results"]:
            if is_throughput(r["metric"]) and is_mcp_edge(r["impl"]):
                keys[(r["bench"], r["metric"])] = None
    for bench, metric in keys:
        per_board = [[r for r in run["results"] if r["bench"] == bench and r["metric"] == metric
                      and is_mcp_edge(r["impl"])] for _, run in runs]
        labels = list(dict.fromkeys(f"{r['case']} {r['impl']}" for rows in per_board for r in rows))
        series: dict[str, list[float | None]] = {}
        for board, rows in zip(boards, per_board, strict=True):
            got = {f"{r['case']} {r['impl']}": float(r["value"]) for r in rows}
            series[board] = [got.get(label) for label in labels]
        fig, ax = plot.plt.subplots(figsize=(max(6.0, 0.6 * len(labels) + 3), 4))
        plot.grouped_bars(ax, labels, series, metric)
        ax.set_title(f"{bench}: mcp_edge {metric} per board")
        name = f"boards-{_slug(bench)}-{_slug(metric)}.png"
        doc.heading(3, f"{bench}: {metric}")
        doc.image(name, f"{bench} {metric} per board", plot.save(fig, name))
        doc.table(["board", *labels], [[board, *[_cell(v) for v in vs]] for board, vs in series.items()])


def _cell(value: float | None) -> str:
    return "-" if value is None else format_value(value)


def write_report(runs: Sequence[tuple[str, Mapping[str, Any]]], out: Path) -> list[Path]:
    """Write ``out``/report.md, report.html and the PNGs for ``runs`` ((name, result JSON) pairs); the files.

    One run: its sections. Several: each run's sections under its board's
    heading, then the boards section that sets them side by side.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the report folder {str(out)!r}: {exc.strerror or exc}") from exc
    plot = _Plotter(out)
    doc = _Doc()
    doc.heading(1, "mcp_edge performance report")
    doc.para("Figures from `mcp-edge perf run`; peers ran in the same run, on the same machine. "
             "Values are what each bench reports (see docs/perf.md); every row also carries its samples.")
    _fingerprint(doc, runs)
    several = len(runs) > 1
    for i, (name, run) in enumerate(runs):
        if several:
            doc.heading(2, f"{_board(run, i)} ({name})")
        sub = _Doc()
        # with several runs the file names carry the run's index, so that runs do not overwrite each other
        prefix = f"run{i + 1}-" if several else ""
        saver = _PrefixPlotter(plot, prefix)
        _throughput(sub, saver, run)
        _latency(sub, saver, run)
        _ratios(sub, saver, run)
        for block in sub.blocks:
            if several and block[0] == "h":
                block = ("h", block[1] + 1, block[2])
            if block[0] == "img":
                block = ("img", prefix + block[1], block[2], block[3])
            doc.blocks.append(block)
    if several:
        _boards(doc, plot, runs)
    md = out / "report.md"
    md.write_text(doc.markdown(), encoding="utf-8")
    page = out / "report.html"
    page.write_text(doc.html("mcp_edge performance report"), encoding="utf-8")
    pngs = sorted(out.glob("*.png"))
    return [md, page, *pngs]


class _PrefixPlotter(_Plotter):
    """The same plotter, saving under ``prefix + name``."""

    def __init__(self, inner: _Plotter, prefix: str) -> None:
        # shares inner's matplotlib and folder (no second import, no Agg switch)
        self.plt = inner.plt
        self.out = inner.out
        self.prefix = prefix

    def save(self, fig: Any, name: str) -> bytes:
        return super().save(fig, self.prefix + name)
