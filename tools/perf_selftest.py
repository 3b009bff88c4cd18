"""Helpers of ``make test-perf``: plant a regression in a perf result, check a report's PNGs.

    python tools/perf_selftest.py plant RUN.json OUT.json   # OUT: RUN with its steadiest mcp_edge row 50% worse
    python tools/perf_selftest.py pngs DIR                  # every DIR/*.png readable, non-empty, not one colour

Exit status 0 when done, 1 when a check fails (with a line saying which), 2 on bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def plant(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` with one mcp_edge row made 50% worse (every sample and the value).

    The row is the steadiest mcp_edge row with at least 3 samples (the smallest MAD relative to its median), so
    that the planted change is beyond the noise whatever the run's scatter: compare must call it a REGRESSION.
    """
    import statistics

    from mcp_edge.perf.regression import mad

    data: dict[str, Any] = json.loads(src.read_text())
    candidates = []
    for row in data["results"]:
        impl, samples = row["impl"], row.get("samples", [])
        if (impl == "mcp_edge" or impl.startswith("mcp_edge[")) and len(samples) >= 3:
            middle = statistics.median(samples)
            if middle > 0:
                candidates.append((mad(samples) / middle, len(candidates), row))
    if not candidates:
        print(f"{src}: no mcp_edge row with 3 samples to plant a regression in", file=sys.stderr)
        return 2
    spread, _, row = min(candidates, key=lambda c: (c[0], c[1]))
    if spread > 0.1:
        print(f"{src}: even the steadiest mcp_edge row scatters by {spread:.0%} (MAD/median): too noisy to plant "
              "a regression that must be found", file=sys.stderr)
        return 2
    factor = 0.5 if row["higher_is_better"] else 1.5
    row["samples"] = [v * factor for v in row["samples"]]
    row["value"] *= factor
    dst.write_text(json.dumps(data, indent=1))
    print(f"planted: {row['bench']} {row['case']} {row['impl']} {row['metric']} x{factor} "
          f"(its MAD/median {spread:.1%})")
    return 0


def pngs(folder: Path) -> int:
    """Every PNG of ``folder`` read back by matplotlib: a real image, more than one colour."""
    from matplotlib import image

    files = sorted(folder.glob("*.png"))
    if not files:
        print(f"{folder}: no PNG", file=sys.stderr)
        return 1
    for path in files:
        pixels = image.imread(path)
        if pixels.shape[0] < 50 or pixels.shape[1] < 50 or pixels.min() == pixels.max():
            print(f"{path}: unreadable plot (shape {pixels.shape}, one colour: {pixels.min() == pixels.max()})",
                  file=sys.stderr)
            return 1
    page = (folder / "report.html").read_text()
    if page.count("data:image/png;base64,") != len(files) or not (folder / "report.md").is_file():
        print(f"{folder}: report.html does not embed every PNG, or report.md is missing", file=sys.stderr)
        return 1
    print(f"{len(files)} PNGs readable, report.md and report.html (images embedded) in {folder}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "plant":
        return plant(Path(argv[1]), Path(argv[2]))
    if len(argv) == 2 and argv[0] == "pngs":
        return pngs(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
