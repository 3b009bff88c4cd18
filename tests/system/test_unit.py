"""The hardened unit: every directive present, values taken from Settings, accepted by systemd-analyze."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ci_honesty import require_or_skip

from mcp_edge.board import Settings, load
from mcp_edge.board.schema import table_of
from mcp_edge.board.settings import FIELDS
from mcp_edge.errors import ConfigError
from mcp_edge.system.unit import (
    CONFINE_SYSCALLS,
    DEFAULT_WATCHDOG_S,
    NOFILE_FLOOR,
    STOP_MARGIN_S,
    service_nofile,
    unit_text,
)

PROFILE = """
[identity]
id = "testbox"
arch = "x86_64"
[storage]
data_dir = "{data}"
plugin_dirs = []
{settings}
"""
EXEC = Path(sys.executable)  # any absolute path to an executable; verify checks it exists


def _settings(tmp_path: Path, data: str | None = None, **values: object) -> Settings:
    tables: dict[str, list[str]] = {}
    sections = {info.name: info.section for info in FIELDS}
    for k, v in values.items():
        tables.setdefault(table_of(k, sections[k]), []).append(f"{k} = {v!r}")
    lines = "\n".join(f"[{t}]\n" + "\n".join(rows) for t, rows in tables.items())
    path = tmp_path / "testbox.toml"
    path.write_text(PROFILE.format(data=data or tmp_path / "data", settings=lines))
    return Settings.load(load(path), environ={})


def _parse(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value it is given (SystemCallFilter, Environment repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line!r}"
        current.setdefault(key, []).append(value)
    return sections


def _one(unit: dict[str, dict[str, list[str]]], key: str, section: str = "Service") -> str:
    values = unit[section][key]
    assert len(values) == 1, (key, values)
    return values[0]


def test_every_hardening_directive_and_values_from_settings(tmp_path: Path) -> None:
    s = _settings(tmp_path, shutdown_timeout_s=12.5, plugin_shutdown_timeout_s=4.0, init_timeout_s=20.0,
                  worker_rlimit_nofile=4096, max_connections=2000)
    unit = _parse(unit_text(s, exec_path=EXEC, user="mcp-edge", serve_args=["--http"]))
    assert set(unit) == {"Unit", "Service", "Install"}
    expect = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
        "AmbientCapabilities": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "ExecReload": "/bin/kill -HUP $MAINPID", "KillMode": "mixed", "User": "mcp-edge",
        "SystemCallArchitectures": "native", "ProtectControlGroups": "yes", "UMask": "0077",
    }
    for key, value in expect.items():
        assert _one(unit, key) == value, key
    assert unit["Service"]["SystemCallFilter"] == ["@system-service", " ".join(CONFINE_SYSCALLS)]
    assert _one(unit, "ExecStart") == f"{EXEC} serve --http"
    assert _one(unit, "ReadWritePaths") == str(s.data_dir) == str(tmp_path / "data")
    assert _one(unit, "TimeoutStopSec") == str(math.ceil(12.5 + 4.0 + STOP_MARGIN_S))
    assert int(_one(unit, "TimeoutStartSec")) > s.init_timeout_s
    assert _one(unit, "WatchdogSec") == str(int(DEFAULT_WATCHDOG_S))
    assert _one(unit, "LimitNOFILE") == str(service_nofile(s)) == str(4 * (2000 + s.max_listeners) + 4096)
    assert unit["Service"]["Environment"][:2] == ["MCP_EDGE_BOARD=testbox", f"MCP_EDGE_BOARDS_DIR={tmp_path}"]
    assert "MemoryMax" not in unit["Service"] and "Delegate" not in unit["Service"]
    assert "StateDirectory" not in unit["Service"]  # the data dir is not under /var/lib
    assert _one(unit, "WantedBy", "Install") == "multi-user.target"


def test_defaults_memory_delegation_and_state_directory(tmp_path: Path) -> None:
    s = _settings(tmp_path, data="/var/lib/mcp-edge", worker_memory_max=256 << 20)
    unit = _parse(unit_text(s, exec_path=EXEC, watchdog_s=7.2, memory_max=1 << 30))
    assert "User" not in unit["Service"]  # root, still without capabilities
    assert _one(unit, "ExecStart") == f"{EXEC} serve"
    assert _one(unit, "WatchdogSec") == "8"
    assert _one(unit, "MemoryMax") == str(1 << 30)
    # Workers get memory.max in child cgroups: the service's cgroup is delegated, so not read-only.
    assert _one(unit, "Delegate") == "yes" and "ProtectControlGroups" not in unit["Service"]
    assert _one(unit, "StateDirectory") == "mcp-edge"
    assert _one(unit, "TimeoutStopSec") == str(math.ceil(s.shutdown_timeout_s + s.plugin_shutdown_timeout_s
                                                         + STOP_MARGIN_S))
    assert _one(unit, "LimitNOFILE") == str(NOFILE_FLOOR)


def test_values_are_escaped_and_bad_ones_refused(tmp_path: Path) -> None:
    s = _settings(tmp_path, data=str(tmp_path / "my data%x"))
    unit = _parse(unit_text(s, exec_path=EXEC, serve_args=["--unix", "/run/a b/$sock"]))
    assert _one(unit, "ReadWritePaths") == f'"{tmp_path}/my data%%x"'
    assert _one(unit, "ExecStart").endswith(' serve --unix "/run/a b/$$sock"')
    with pytest.raises(ConfigError, match="absolute path"):
        unit_text(s, exec_path="mcp-edge")
    with pytest.raises(ConfigError, match="newline"):
        unit_text(s, exec_path=EXEC, user="a\nExecStartPre=/bin/sh")


def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        require_or_skip("systemd-analyze", "systemd-analyze is not installed here: the unit is checked by the "
                                           "parser tests only")
    for memory in (0, 256 << 20):
        s = _settings(tmp_path, worker_memory_max=memory)
        path = tmp_path / "mcp-edge.service"
        path.write_text(unit_text(s, exec_path=EXEC, user="mcp-edge", serve_args=["--http"], memory_max=1 << 30))
        out = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True)
        # Any complaint about this file (an unknown key, a value it cannot parse) is printed with its name.
        complaints = [line for line in (out.stdout + out.stderr).splitlines() if path.name in line]
        assert out.returncode == 0 and complaints == [], out.stdout + out.stderr
