"""``mcp-edge plugins list``: text and JSON, exit 0 with failed plugins listed, exit 2 on a bad plugin folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from plugin_helpers import FIXTURES, NATIVE_HELLO, write_plugin


def mcp_edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mcp_edge.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_list_text(tmp_path: Path) -> None:
    write_plugin(tmp_path, "needy", requires={"ghost": ">=1"})
    proc = mcp_edge("plugins", "list", "--plugin-dir", str(FIXTURES), "--plugin-dir", str(tmp_path),
                    "--no-entry-points")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["ID", "VERSION", "KIND", "STATE", "LOAD", "ms", "INIT", "ms", "SOURCE"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if not line.startswith(" ")}
    assert rows["hello"][:4] == ["hello", "1.4.0", "python", "active"]
    assert rows["hello"][-1] == str(FIXTURES / "hello")
    assert rows["runtime"][2:4] == ["builtin", "active"]
    assert rows["needy"][3] == "failed"
    assert "    reason: plugin needy requires plugin ghost (>=1), which is not installed" in lines
    assert lines[-1] == "3 plugins: 2 active, 1 failed"


def test_list_json(tmp_path: Path) -> None:
    proc = mcp_edge("plugins", "list", "--json", "--plugin-dir", str(FIXTURES), "--plugin-dir", str(NATIVE_HELLO),
                    env={"XDG_CACHE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    hello = rows["hello"]
    assert {k: hello[k] for k in ("version", "kind", "state", "reason", "source")} == {
        "version": "1.4.0", "kind": "python", "state": "active", "reason": None, "source": str(FIXTURES / "hello")}
    assert hello["load_ms"] > 0 and hello["init_ms"] >= 0
    assert rows["native_hello"]["kind"] == "native" and rows["native_hello"]["state"] == "active"
    assert (tmp_path / "mcp-edge").is_dir()  # the entry-point scan was cached there


def test_list_no_init(tmp_path: Path) -> None:
    proc = mcp_edge("plugins", "list", "--json", "--no-init", "--no-entry-points", "--plugin-dir", str(FIXTURES))
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert rows["hello"]["state"] == "loaded" and rows["hello"]["init_ms"] is None


def test_list_defaults_to_env_and_board_dirs(tmp_path: Path) -> None:
    write_plugin(tmp_path, "fromenv")
    proc = mcp_edge("plugins", "list", "--json", "--no-entry-points", env={"MCP_EDGE_PLUGIN_DIRS": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    ids = [r["id"] for r in json.loads(proc.stdout)]
    assert "fromenv" in ids and "native_hello" in ids  # the env folder, then the board's (the checkout's plugins/)


def test_bad_plugin_dir_exits_2(tmp_path: Path) -> None:
    proc = mcp_edge("plugins", "list", "--plugin-dir", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mcp-edge: --plugin-dir {tmp_path / 'nope'}: not a folder"
    proc = mcp_edge("plugins", "list", env={"MCP_EDGE_PLUGIN_DIRS": str(tmp_path / "gone")})
    assert proc.returncode == 2
    assert f"MCP_EDGE_PLUGIN_DIRS: {tmp_path / 'gone'} is not a folder" in proc.stderr


def test_bad_board_plugin_dirs_exits_2(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text(
        '[identity]\nid = "weird"\narch = "x86_64"\n[storage]\nplugin_dirs = "plugins"\n')
    proc = mcp_edge("plugins", "list", env={"MCP_EDGE_BOARDS_DIR": str(tmp_path), "MCP_EDGE_BOARD": "weird"})
    assert proc.returncode == 2
    assert "[storage] plugin_dirs: expected array | null, got str" in proc.stderr


def test_list_uses_the_profile_plugin_layer(tmp_path: Path) -> None:
    """The board profile's [plugins] tables reach `plugins list` as they reach the server (settings, not env)."""
    boards = tmp_path / "boards"
    boards.mkdir()
    machine = os.uname().machine
    (boards / "cfgtest.toml").write_text(
        f'[identity]\nid = "cfgtest"\narch = "{machine}"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\nplugin_dirs = ["{FIXTURES}"]\n'
        '[plugins]\ndisabled = ["native_hello"]\n[plugins.hello]\ntimes = 99\n')
    proc = mcp_edge("plugins", "list", "--json", "--no-entry-points",
                    env={"MCP_EDGE_BOARDS_DIR": str(boards), "MCP_EDGE_BOARD": "cfgtest"})
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert rows["hello"]["state"] == "failed"
    assert rows["hello"]["reason"] == "plugin hello: config key 'times' must be at most 10, got 99 (from config)"
    proc = mcp_edge("plugins", "list", "--json", "--no-entry-points",
                    env={"MCP_EDGE_BOARDS_DIR": str(boards), "MCP_EDGE_BOARD": "cfgtest",
                         "MCP_EDGE_HELLO_TIMES": "3"})
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert rows["hello"]["state"] == "active", rows["hello"]["reason"]
