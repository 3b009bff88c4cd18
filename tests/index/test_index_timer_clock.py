"""The update service runs after the clock is set (time-sync.target): an index's expiry is checked against it."""

from __future__ import annotations

from pathlib import Path

from mcp_edge.board.settings import Settings
from mcp_edge.index.timer import SERVICE, timer_units


def test_the_update_service_waits_for_the_clock(tmp_path: Path) -> None:
    units = timer_units(Settings.load(environ={}, data_dir=tmp_path), exec_path=Path("/usr/bin/mcp-edge"))
    after = [line for line in units[SERVICE].splitlines() if line.startswith("After=")]
    assert after and "time-sync.target" in after[0].split("=", 1)[1].split()
