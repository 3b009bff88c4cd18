"""SIGHUP on a real ``mcp-edge serve``: the board profile is read again and what changed is applied (limits in
place, a plugin's isolation through its hot reload); what needs a restart is said; a broken profile changes
nothing. Waits are bounded; nothing asserts on timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PERF_PLUGINS = ROOT / "perf" / "plugins"
WAIT = 60.0


def _profile(data: Path, *, timeout: float, isolation: str, port: int, extra: str = "") -> str:
    return (f'[board]\nid = "sighup"\n[match]\narch = "{os.uname().machine}"\npriority = -1000\n'
            f'[paths]\ndata_dir = {json.dumps(str(data))}\nplugin_dirs = [{json.dumps(str(PERF_PLUGINS))}]\n'
            f'[settings]\ntool_timeout_s = {timeout}\nhttp_port = {port}\n'
            f'[plugins]\nisolation = {{ payload = "{isolation}" }}\n{extra}')


class _Server:
    def __init__(self, boards: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
        env.update({"MCP_EDGE_BOARDS_DIR": str(boards), "MCP_EDGE_BOARD": "sighup", "MCP_EDGE_ENTRY_POINTS": "0",
                    "MCP_EDGE_RELOAD_WATCH": "0"})
        self.proc = subprocess.Popen([sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.next = 0

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def wait_log(self, marker: str, after: int = 0) -> None:
        deadline = time.monotonic() + WAIT
        while not any(marker in line for line in self.lines[after:]):
            assert time.monotonic() < deadline, f"never logged {marker!r}:\n" + "\n".join(self.lines)
            time.sleep(0.02)

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next += 1
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next, "method": method,
                                          "params": params}).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed stdout:\n" + "\n".join(self.lines)
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == self.next:
                return reply

    def payload_row(self) -> dict[str, Any]:
        text = self.request("resources/read", {"uri": "mcp-edge://plugins"})["result"]["contents"][0]["text"]
        row: dict[str, Any] = next(r for r in json.loads(text)["plugins"] if r["id"] == "payload")
        return row

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(WAIT)


def test_sighup_applies_a_changed_board_profile_and_says_what_needs_a_restart(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    boards.mkdir()
    profile = boards / "sighup.toml"
    data = tmp_path / "data"
    profile.write_text(_profile(data, timeout=30, isolation="inproc", port=8765))
    srv = _Server(boards)
    try:
        srv.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                   "clientInfo": {"name": "hup", "version": "1"}})
        first = srv.payload_row()
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
        deadline = time.monotonic() + WAIT
        while ((row := srv.payload_row())["isolation"], row["state"]) != ("process", "active"):
            assert time.monotonic() < deadline, row
            time.sleep(0.05)
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
        assert srv.payload_row()["isolation"] == "process"
        assert srv.request("ping", {}) == {"jsonrpc": "2.0", "id": srv.next, "result": {}}
    finally:
        assert srv.close() == 0
