"""tools/sanitize (``make test-sanitize``) fails what it must: a data race under TSan, a heap overflow under ASan,
signed overflow under UBSan, a program without its sources line; and passes a clean one.

The programs are tests/data/sanitize/*.c, run through the real script (``run.py FILE.c``), each under the
one variant that matters for it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ci_honesty import require_or_skip

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "sanitize"


def sanitize(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "tools/sanitize/run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "CI": ""})
    if "SKIPPED" in proc.stdout:
        require_or_skip("sanitizers", f"the compiler's sanitizers do not run here: {proc.stdout.strip()}")
    return proc


@pytest.mark.parametrize(("program", "variant", "report"), [
    ("race.c", "tsan", "WARNING: ThreadSanitizer: data race"),
    ("overflow.c", "asan", "ERROR: AddressSanitizer: heap-buffer-overflow"),
    ("signed_overflow.c", "asan", "runtime error: signed integer overflow"),
])
def test_a_report_fails_the_run(program: str, variant: str, report: str) -> None:
    proc = sanitize("--variants", variant, str(DATA / program))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    name = program.removesuffix(".c")
    assert f"FAIL {name} [{variant}]" in proc.stdout and report in proc.stdout
    assert report in (ROOT / "build" / "sanitize" / variant / f"{name}.log").read_text()


def test_a_clean_program_passes_both_variants() -> None:
    proc = sanitize(str(DATA / "clean.c"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   clean [tsan]" in proc.stdout and "ok   clean [asan]" in proc.stdout
    assert "clean: no sanitizer report" in proc.stdout


def test_a_program_without_its_sources_line_fails_by_name() -> None:
    proc = sanitize(str(DATA / "no_header.c"), str(DATA / "clean.c"), "--variants", "asan")
    assert proc.returncode == 1
    assert "FAIL no_header" in proc.stdout and "no '// sources: ...' line" in proc.stdout
    assert "ok   clean [asan]" in proc.stdout  # the others still run


def test_unknown_extension_and_variant() -> None:
    bad = ROOT / "build" / "sanitize" / "bad_ext.c"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("// sources: ext:mcp_edge.native._nope\nint main(void) { return 0; }\n")
    try:
        proc = sanitize("--variants", "asan", str(bad))
        assert proc.returncode == 1 and "ext:mcp_edge.native._nope: no such extension" in proc.stdout
    finally:
        bad.unlink()
    proc = sanitize("--variants", "msan", str(DATA / "clean.c"))
    assert proc.returncode == 2 and "unknown variant(s) msan" in proc.stderr
