"""``mcp-edge perf report``: Markdown, self-contained HTML and readable PNG plots; matplotlib off the start-up path."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import mcp_edge
from mcp_edge.commands import cli

image = pytest.importorskip("matplotlib.image", reason="the report extra (matplotlib) is not installed")

CHECKOUT = Path(mcp_edge.__file__).resolve().parents[1]


def _row(bench: str, case: str, impl: str, metric: str, value: float, higher: bool = True) -> dict[str, Any]:
    return {"bench": bench, "case": case, "impl": impl, "metric": metric, "value": value,
            "higher_is_better": higher, "samples": [value * 0.99, value, value * 1.01]}


def run_result(board: str, scale: float = 1.0) -> dict[str, Any]:
    rows = []
    for case, size in (("64B", 0.5), ("4KiB", 8.0), ("1MiB", 20.0)):
        rows.append(_row("crc32c", case, "mcp_edge[avx2]", "GB/s", size * scale))
        rows.append(_row("crc32c", case, "google-crc32c", "GB/s", size * 0.8))
        rows.append(_row("crc32c", case, "memcpy", "GB/s", size * 3))
    for case in ("rtt-64B-cross", "rtt-64B-same"):
        for impl, base in (("mcp_edge[ring-c]", 5.0), ("multiprocessing.Pipe", 20.0)):
            rows.append(_row("ipc", case, impl, "p50_us", base, higher=False))
            rows.append(_row("ipc", case, impl, "p99_us", base * 4, higher=False))
    rows.append(_row("mcp", "stdio-seq", "mcp_edge", "calls/s", 9000.0 * scale))
    rows.append(_row("mcp", "stdio-seq", "fastmcp", "calls/s", 1000.0))
    rows.append(_row("mcp", "import", "mcp_edge", "ms", 40.0, higher=False))
    return {"machine": {"arch": "x86_64", "cpu": "Test CPU", "cpu_flags": ["avx2", "sse4_2"], "isa": ["sse42", "avx2"],
                        "cores": 2, "kernel": "6.1", "board": board, "python": "3.11.2", "mcp_edge": "0.1.0",
                        "mcp_edge_commit": "abc", "peers": {"crc32c": "2.7"}},
            "results": rows, "notes": []}


def write_runs(tmp_path: Path, *runs: dict[str, Any]) -> list[str]:
    paths = []
    for i, run in enumerate(runs):
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps(run))
        paths.append(str(path))
    return paths


def check_png(path: Path) -> None:
    pixels = image.imread(path)
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50, path
    assert pixels.min() != pixels.max(), f"{path} is one colour"
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97]}) > 3, path


def test_report_writes_md_html_and_readable_pngs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    got = CliRunner().invoke(cli, ["perf", "report", *write_runs(tmp_path, run_result("generic-x86_64")),
                                   "-o", str(out)])
    assert got.exit_code == 0, got.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "throughput-crc32c-gb-s.png" in pngs
    assert "latency-ipc.png" in pngs
    assert "ratios-crc32c.png" in pngs
    for name in pngs:
        check_png(out / name)
    md = (out / "report.md").read_text()
    for name in pngs:
        assert f"]({name})" in md
    assert "Test CPU" in md and "generic-x86_64" in md
    assert "1.25x" in md  # mcp_edge[avx2] vs google-crc32c; memcpy is a yardstick, not the best peer
    page = (out / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(pngs)
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in embedded)
    assert 'src="' not in page.replace('src="data:', "")  # nothing fetched from elsewhere


def test_report_of_several_runs_has_one_row_per_board(tmp_path: Path) -> None:
    out = tmp_path / "report"
    paths = write_runs(tmp_path, run_result("generic-x86_64"), run_result("rpi4", scale=0.2))
    got = CliRunner().invoke(cli, ["perf", "report", *paths, "-o", str(out)])
    assert got.exit_code == 0, got.output
    boards = sorted(out.glob("boards-*.png"))
    assert [p.name for p in boards] == ["boards-crc32c-gb-s.png", "boards-mcp-calls-s.png"]
    for path in out.glob("*.png"):
        check_png(path)
    md = (out / "report.md").read_text()
    table = md.split("### crc32c: GB/s")[-1]
    assert re.search(r"^\| generic-x86_64 \|", table, re.M) and re.search(r"^\| rpi4 \|", table, re.M)


def test_report_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    got = CliRunner().invoke(cli, ["perf", "report", str(bad), "-o", str(tmp_path / "r")])
    assert got.exit_code == 2
    assert "not a perf result" in got.output


def test_old_results_without_samples_still_report(tmp_path: Path) -> None:
    run = run_result("generic-x86_64")
    for r in run["results"]:
        del r["samples"]
    got = CliRunner().invoke(cli, ["perf", "report", *write_runs(tmp_path, run), "-o", str(tmp_path / "r")])
    assert got.exit_code == 0, got.output


@pytest.mark.parametrize("code", [
    "import mcp_edge.cli, mcp_edge.commands, mcp_edge.perf, mcp_edge.perf.regression",
    "import sys; sys.argv = ['mcp-edge', '--help']\nimport mcp_edge.cli\ntry:\n    mcp_edge.cli.main()\n"
    "except SystemExit:\n    pass",
])
def test_matplotlib_is_not_imported_at_start(code: str) -> None:
    probe = code + "\nimport sys\nprint('LOADED' if 'matplotlib' in sys.modules else 'CLEAN')"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    assert out.stdout.strip().splitlines()[-1] == "CLEAN"
