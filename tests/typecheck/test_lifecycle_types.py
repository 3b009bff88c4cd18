"""mypy --strict rejects each misuse of the typed server lifecycle in this folder, and accepts proper use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BAD = sorted(HERE.glob("bad_*.py"))


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", str(path)],
        capture_output=True, text=True, cwd=ROOT,
    )


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_proper_use_type_checks() -> None:
    out = mypy(HERE / "ok_lifecycle.py")
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_misuse_is_a_type_error(path: Path) -> None:
    out = mypy(path)
    assert out.returncode == 1, out.stdout
    assert expected(path) in out.stdout, out.stdout
