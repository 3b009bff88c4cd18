"""``mcp-edge systemd-unit``: the board's hardened Type=notify unit on stdout, or a clear error with status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from transport_helpers import ROOT, WAIT, server_env


def _unit(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_edge.cli", "systemd-unit", *args], capture_output=True,
                          text=True, env=server_env(tmp_path), cwd=ROOT, timeout=WAIT, check=False)


def test_the_unit_names_the_user_the_executable_and_the_notify_type(tmp_path: Path) -> None:
    done = _unit("--user", "edge", "--exec", "/usr/local/bin/mcp-edge", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for wanted in ("Type=notify", "NotifyAccess=main", "User=edge", "ExecStart=/usr/local/bin/mcp-edge serve",
                   "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert wanted in lines, wanted
    assert any(line.startswith("WatchdogSec=") for line in lines)


def test_a_relative_executable_is_refused_with_status_2(tmp_path: Path) -> None:
    done = _unit("--exec", "bin/mcp-edge", tmp_path=tmp_path)
    assert done.returncode == 2 and "absolute path" in done.stderr and done.stdout == ""
