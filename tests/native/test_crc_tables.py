"""The committed constant tables are what tools/gen_crc32c_tables.py generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tables_header_is_up_to_date() -> None:
    gen = ROOT / "tools" / "gen_crc32c_tables.py"
    out = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
