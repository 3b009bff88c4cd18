"""Client deadlines: ``_meta["io.mcp-edge/timeout_ms"]`` bounds a call in the runtime and, for a ``process``
plugin, travels to its worker as the frame's deadline TLV; the box's ``tool_timeout_s`` caps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERF_PLUGINS = ROOT / "perf" / "plugins"


class _Stdio:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=ROOT)
        self.next = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next += 1
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next, "method": method,
                                          "params": params}).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed stdout"
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == self.next:
                return reply

    def nap(self, ms: float, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": "nap", "arguments": {"ms": ms}}
        if meta is not None:
            params["_meta"] = meta
        return self.request("tools/call", params)

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(60)


@pytest.fixture(params=["inproc", "process"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update({"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_ENTRY_POINTS": "0",
                "MCP_EDGE_RELOAD_WATCH": "0", "MCP_EDGE_PLUGIN_DIRS": str(PERF_PLUGINS),
                "MCP_EDGE_TOOL_TIMEOUT_S": "2", "MCP_EDGE_PLUGIN_ISOLATION": f"payload={request.param}"})
    s = _Stdio(env)
    s.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "deadlines", "version": "1"}})
    yield s
    assert s.close() == 0


def _error_text(reply: dict[str, Any]) -> str:
    if "error" in reply:
        return str(reply["error"]["message"])
    result = reply["result"]
    assert result.get("isError"), reply
    return str(result["content"][0]["text"])


def test_a_client_timeout_cancels_the_call_and_the_plugin_serves_on(server: _Stdio) -> None:
    t0 = time.monotonic()
    reply = server.nap(30_000, {"io.mcp-edge/timeout_ms": 150})
    assert time.monotonic() - t0 < 25  # cancelled long before the nap's end (no bound on how soon: shared box)
    assert "deadline" in _error_text(reply)
    assert server.nap(1, {"io.mcp-edge/timeout_ms": 20_000})["result"]["content"][0]["text"] == "slept 1"


def test_the_box_caps_a_client_timeout(server: _Stdio) -> None:
    # The client allows an hour; tool_timeout_s (2 s here) still ends the call.
    reply = server.nap(30_000, {"io.mcp-edge/timeout_ms": 3_600_000})
    assert "deadline" in _error_text(reply)


@pytest.mark.parametrize("bad", [0, -5, "100", True, None, [1]])
def test_a_bad_client_timeout_is_refused_as_invalid_params(server: _Stdio, bad: Any) -> None:
    if bad is None:  # a null value is the same as none given
        assert server.nap(1, {"io.mcp-edge/timeout_ms": None})["result"]["content"][0]["text"] == "slept 1"
        return
    reply = server.nap(1, {"io.mcp-edge/timeout_ms": bad})
    assert reply["error"]["code"] == -32602, reply
    assert "io.mcp-edge/timeout_ms" in reply["error"]["message"]
