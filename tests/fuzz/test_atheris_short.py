"""The short atheris run of ``make test``: each target for up to 20,000 executions or 15 s (x86_64 only).

The executions reached are printed at the end of the pytest run (``fuzz: ...`` lines) and written to
build/fuzz/summary.json; ``make fuzz`` runs the same targets for minutes. A crash keeps its input under
tests/data/fuzz/<target>/ and fails this test. On machines other than x86_64 this file is not collected
(atheris has no wheels there; tests/fuzz/conftest.py leaves it out).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from fuzzing import FUZZ_SUMMARY, ROOT

SHORT = ["--time", "15", "--runs", "20000"]


def test_atheris_targets_short_run() -> None:
    assert importlib.util.find_spec("atheris") is not None, \
        "atheris is a test dependency on x86_64: run `make setup` (pip install -e '.[test]')"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz" / "run.py"), *SHORT], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    FUZZ_SUMMARY.extend(line for line in proc.stdout.splitlines() if line.startswith("fuzz"))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    summary = json.loads((ROOT / "build" / "fuzz" / "summary.json").read_text())
    assert {r["target"] for r in summary} == {"jsonrpc", "http", "manifest", "frame"}
    assert all(r["executions"] > 0 for r in summary), summary
