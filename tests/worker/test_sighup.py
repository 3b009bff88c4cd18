"""SIGHUP on a real ``mcp-edge serve``: the board profile is read again and what changed is applied (limits in
place, a plugin's isolation through its hot reload); what needs a restart is said; a broken profile changes
nothing. Waits are bounded; nothing asserts on timing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from worker.stdio_server import PERF_PLUGINS, WAIT, StdioServer, clean_env


def _profile(data: Path, *, timeout: float, isolation: str, port: int, extra: str = "") -> str:
    return (f'[identity]\nid = "sighup"\narch = "{os.uname().machine}"\n[match]\npriority = -1000\n'
            f'[storage]\ndata_dir = {json.dumps(str(data))}\nplugin_dirs = [{json.dumps(str(PERF_PLUGINS))}]\n'
            f'[runtime]\ntool_timeout_s = {timeout}\n[transport]\nhttp_port = {port}\n'
            f'[plugins]\nisolation = {{ payload = "{isolation}" }}\n{extra}')


def _server(boards: Path) -> StdioServer:
    return StdioServer(clean_env(MCP_EDGE_BOARDS_DIR=str(boards), MCP_EDGE_BOARD="sighup"), quiet=False)


def _payload_row(srv: StdioServer) -> dict[str, Any]:
    text = srv.result("resources/read", {"uri": "mcp-edge://plugins"})["contents"][0]["text"]
    row: dict[str, Any] = next(r for r in json.loads(text)["plugins"] if r["id"] == "payload")
    return row


def _until_payload(srv: StdioServer, isolation: str) -> dict[str, Any]:
    """The payload row once it is active with ``isolation`` (a bounded wait, not a measurement)."""
    for _ in range(int(WAIT / 0.05)):
        row = _payload_row(srv)
        if (row["isolation"], row["state"]) == (isolation, "active"):
            return row
        time.sleep(0.05)
    raise AssertionError(f"payload never became an active {isolation} plugin: {row}")


def test_sighup_applies_a_changed_board_profile_and_says_what_needs_a_restart(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    boards.mkdir()
    profile = boards / "sighup.toml"
    data = tmp_path / "data"
    profile.write_text(_profile(data, timeout=30, isolation="inproc", port=8765))
    srv = _server(boards)
    try:
        srv.initialize()
        first = _payload_row(srv)
        assert (first["isolation"], first["state"]) == ("inproc", "active")
        assert srv.request("tools/call", {"name": "nap", "arguments": {"ms": 400}})["result"]["content"][0][
            "text"] == "slept 400"

        # A shorter tool timeout (in place), the plugin moved to a worker (its reload), another port (a restart).
        profile.write_text(_profile(data, timeout=0.2, isolation="process", port=8766))
        mark = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log("http_port changed", mark)
        srv.wait_log("applied in place: tool_timeout_s", mark)
        srv.wait_log("applied through each plugin's reload: plugin_isolation", mark)
        row = _until_payload(srv, "process")
        assert row["pid"] != first["pid"] and row["reloads"] == first["reloads"] + 1
        slow = srv.request("tools/call", {"name": "nap", "arguments": {"ms": 5000}})
        text = slow["error"]["message"] if "error" in slow else slow["result"]["content"][0]["text"]
        assert "deadline" in text, slow
        assert srv.request("tools/call", {"name": "nap", "arguments": {"ms": 1}})["result"]["content"][0][
            "text"] == "slept 1"

        # A profile that does not load changes nothing, and says why.
        profile.write_text(_profile(data, timeout=30, isolation="inproc", port=8766, extra="[oops]\nx = 1\n"))
        mark = len(srv.lines)
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log("SIGHUP: nothing changed", mark)
        assert any("unknown table [oops]" in line for line in srv.lines[mark:]), "\n".join(srv.lines[mark:])
        assert _payload_row(srv)["isolation"] == "process"
        assert srv.request("ping", {}) == {"jsonrpc": "2.0", "id": srv.next, "result": {}}
    finally:
        assert srv.close() == 0
