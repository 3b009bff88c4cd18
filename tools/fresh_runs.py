"""The measuring both cost tools share (tools/http_client_cost.py, tools/wasm_engine_cost.py): a probe script run
in a fresh interpreter ``runs`` times, its one JSON line per run collected, and medians taken over the runs.

A probe starts with ``PROBE_HEAD`` (``json``, ``sys`` and ``time`` imported; ``rss()``: this process's VmRSS in
KiB) and prints one JSON object: its figures, or ``{"missing": "<why>"}`` when what it measures is not installed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROBE_HEAD = r"""
import json, sys, time
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
"""


def fresh_samples(python: str, probe: str, argv: Sequence[str], runs: int, *, cwd: Path | None = None,
                  label: str | None = None) -> list[dict[str, Any]] | str:
    """``probe`` run ``runs`` times as ``python -c probe *argv``: each run's JSON object, or the reason the first
    run gave for ``missing``. A probe that fails: with ``label``, SystemExit with its stderr; without, the
    CalledProcessError."""
    samples = []
    for _ in range(runs):
        proc = subprocess.run([python, "-c", probe, *argv], capture_output=True, text=True, cwd=cwd,
                              check=label is None)
        if proc.returncode != 0:
            raise SystemExit(f"{label}: the probe failed:\n{proc.stderr}")
        row = json.loads(proc.stdout)
        if "missing" in row:
            return str(row["missing"])
        samples.append(row)
    return samples


def median(samples: list[dict[str, Any]], key: str) -> float:
    """The median of ``key`` over the runs."""
    return float(statistics.median(s[key] for s in samples))
