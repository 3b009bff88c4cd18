"""tools/readme_perf.py: the README's performance section rewritten between its markers, naming the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mcp_edge

CHECKOUT = Path(mcp_edge.__file__).resolve().parents[1]
TOOL = CHECKOUT / "tools" / "readme_perf.py"


def _run(tmp_path: Path, readme: str, quick: bool = False) -> tuple[int, str, str]:
    result = {"date": "2026-12-04T03:40:00+00:00", "quick": quick,
              "machine": {"arch": "x86_64", "cpu": "Test CPU 9000", "isa": ["sse42", "avx2"], "cores": 2,
                          "kernel": "6.1.0-test", "board": "generic-x86_64", "python": "3.11.2",
                          "mcp_edge": "0.1.0", "mcp_edge_commit": "abcdef123456"},
              "results": [
                  {"bench": "crc32c", "case": "1MiB", "impl": "mcp_edge", "metric": "GB/s", "value": 20.0,
                   "higher_is_better": True, "samples": [20.0, 20.0, 20.0]},
                  {"bench": "crc32c", "case": "1MiB", "impl": "google-crc32c", "metric": "GB/s", "value": 10.0,
                   "higher_is_better": True, "samples": [10.0, 10.0, 10.0]},
              ], "notes": []}
    (tmp_path / "run.json").write_text(json.dumps(result))
    (tmp_path / "report").mkdir(exist_ok=True)
    (tmp_path / "README.md").write_text(readme)
    done = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "run.json"), "--report", str(tmp_path / "report"),
                           "--readme", str(tmp_path / "README.md")], capture_output=True, text=True, timeout=60)
    return done.returncode, (tmp_path / "README.md").read_text(), done.stderr


def test_section_is_replaced_between_the_markers(tmp_path: Path) -> None:
    code, text, err = _run(tmp_path, "# X\n\nbefore\n<!-- perf:begin -->\nold figures\n<!-- perf:end -->\nafter\n")
    assert code == 0, err
    assert text.startswith("# X\n\nbefore\n<!-- perf:begin -->") and text.endswith("<!-- perf:end -->\nafter\n")
    assert "old figures" not in text
    for fact in ("Test CPU 9000", "2 cores", "6.1.0-test", "generic-x86_64", "2026-12-04", "abcdef123456"):
        assert fact in text
    assert "| crc32c | 1MiB | GB/s | 20 | 10 (google-crc32c) | 2.00x |" in text
    assert "report/report.md" in text
    assert "--quick" not in text


def test_a_quick_run_says_so(tmp_path: Path) -> None:
    code, text, err = _run(tmp_path, "<!-- perf:begin -->\n<!-- perf:end -->\n", quick=True)
    assert code == 0, err
    assert "`mcp-edge perf run --quick`" in text


def test_no_markers_is_an_error(tmp_path: Path) -> None:
    code, text, err = _run(tmp_path, "# no markers\n")
    assert code == 2
    assert "markers" in err and text == "# no markers\n"
