"""The built-in plugins served both ways: the same calls through a real `mcp-edge serve --stdio`, with every
plugin in the runtime's process and with every plugin in a worker process, give the same answers, for a client
of the newest handshake revision and for one of an older revision (whose results a worker shapes itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("fs", "sysinfo", "logs", "native_hello")


class _Stdio:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=ROOT)
        self.next = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next += 1
        msg = {"jsonrpc": "2.0", "id": self.next, "method": method, "params": params or {}}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the server closed stdout: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
            reply = json.loads(line)
            if reply.get("id") == self.next:
                assert "error" not in reply, reply
                return reply["result"]

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(60)


def _session(tmp_path: Path, mode: str, version: str) -> dict[str, Any]:
    data = tmp_path / mode
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update({"MCP_EDGE_DATA_DIR": str(data), "MCP_EDGE_ENTRY_POINTS": "0", "MCP_EDGE_RELOAD_WATCH": "0",
                "MCP_EDGE_PLUGIN_ISOLATION": ",".join(f"{p}={mode}" for p in PLUGINS)})
    s = _Stdio(env)
    try:
        s.call("initialize", {"protocolVersion": version, "capabilities": {},
                              "clientInfo": {"name": "modes", "version": "1"}})
        out: dict[str, Any] = {}
        status = json.loads(s.call("resources/read", {"uri": "mcp-edge://plugins"})["contents"][0]["text"])
        rows = {r["id"]: r for r in status["plugins"]}
        out["isolation"] = {p: (rows[p]["isolation"], rows[p]["state"], rows[p]["pid"] != rows["runtime"]["pid"])
                            for p in PLUGINS}
        out["tools"] = sorted((t["name"], json.dumps(t["inputSchema"], sort_keys=True))
                              for t in s.call("tools/list")["tools"])
        out["write"] = s.call("tools/call", {"name": "fs_write", "arguments": {"path": "a/b.txt", "content": "hé",
                                                                              "create_dirs": True}})
        out["read"] = s.call("tools/call", {"name": "fs_read", "arguments": {"path": "a/b.txt"}})
        out["sum"] = s.call("tools/call", {"name": "fs_checksum", "arguments": {"path": "a/b.txt"}})
        out["missing"] = s.call("tools/call", {"name": "fs_read", "arguments": {"path": "nope"}})
        out["native"] = s.call("tools/call", {"name": "native_add", "arguments": {"a": 1.5, "b": 2}})
        summary = s.call("tools/call", {"name": "sysinfo_summary", "arguments": {}})
        out["summary_keys"] = sorted(summary.get("structuredContent", {}))
        out["summary_text"] = [b["type"] for b in summary["content"]]
        out["templates"] = sorted(t["uriTemplate"] for t in s.call("resources/templates/list")["resourceTemplates"])
    finally:
        assert s.close() == 0
    return out


@pytest.mark.parametrize("version", ["2025-11-25", "2025-03-26"])
def test_the_builtin_plugins_answer_the_same_in_process_and_in_workers(tmp_path: Path, version: str) -> None:
    inproc = _session(tmp_path, "inproc", version)
    process = _session(tmp_path, "process", version)
    assert inproc["isolation"] == {p: ("inproc", "active", False) for p in PLUGINS}
    assert process["isolation"] == {p: ("process", "active", True) for p in PLUGINS}
    del inproc["isolation"], process["isolation"]
    assert process == inproc
    assert "hé" in json.dumps(inproc["read"], ensure_ascii=False) and inproc["missing"]["isError"] is True
    if version == "2025-11-25":
        assert inproc["native"]["structuredContent"] == {"sum": 3.5}
        assert inproc["summary_keys"]
    else:  # 2025-03-26 has no structuredContent: shaped out in the runtime (inproc) and in the worker alike
        assert "structuredContent" not in inproc["native"] and "structuredContent" not in process["native"]
        assert inproc["summary_keys"] == [] and inproc["summary_text"]
