"""What an HTTP (or Kubernetes) client costs a plugin's worker to import: wall time and resident memory.

The containers and kubernetes plugins picked their clients by these figures (docs/containers.md). Each module is
imported in a fresh interpreter, ``--runs`` times, and the median is reported: the seconds ``import`` took and the
growth of VmRSS it caused, with a bare interpreter's RSS for scale. Run it with the interpreter whose
site-packages hold the candidates::

    python tools/http_client_cost.py httpx aiohttp niquests lightkube kubernetes_asyncio kr8s --runs 7

A module that is not installed is reported as such, not measured.
"""

from __future__ import annotations

import argparse
import json
import sys

from fresh_runs import PROBE_HEAD, fresh_samples, median

PROBE = PROBE_HEAD + r"""
before = rss()
t = time.perf_counter()
try:
    __import__(sys.argv[1])
except ImportError as exc:
    print(json.dumps({"missing": str(exc)}))
    raise SystemExit(0)
dt = time.perf_counter() - t
print(json.dumps({"import_ms": dt * 1e3, "rss_kib": rss() - before, "base_kib": before,
                  "modules": len(sys.modules)}))
"""


def measure(module: str, runs: int, python: str) -> dict[str, object]:
    samples = fresh_samples(python, PROBE, [module], runs)
    if isinstance(samples, str):
        return {"module": module, "missing": samples}
    return {
        "module": module,
        "import_ms": round(median(samples, "import_ms"), 1),
        "rss_mib": round(median(samples, "rss_kib") / 1024, 1),
        "interpreter_mib": round(median(samples, "base_kib") / 1024, 1),
        "modules_loaded": int(median(samples, "modules")),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="+")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--python", default=sys.executable, help="the interpreter to measure with")
    ap.add_argument("--json", action="store_true", help="one JSON object per module")
    args = ap.parse_args(argv)
    rows = [measure(m, max(1, args.runs), args.python) for m in args.modules]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print("| module | import (ms, median) | RSS added (MiB) | modules loaded |")
    print("|---|---|---|---|")
    for row in rows:
        if "missing" in row:
            print(f"| {row['module']} | not installed | | |")
        else:
            print(f"| {row['module']} | {row['import_ms']} | {row['rss_mib']} | {row['modules_loaded']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
