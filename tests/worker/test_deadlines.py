"""Client deadlines: ``_meta["io.mcp-edge/timeout_ms"]`` bounds a call in the runtime and, for a ``process``
plugin, travels to its worker as the frame's deadline TLV; the box's ``tool_timeout_s`` caps it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from worker.stdio_server import PERF_PLUGINS, StdioServer, clean_env


def _nap(server: StdioServer, ms: float, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "nap", "arguments": {"ms": ms}}
    if meta is not None:
        params["_meta"] = meta
    return server.request("tools/call", params)


@pytest.fixture(params=["inproc", "process"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s = StdioServer(clean_env(MCP_EDGE_DATA_DIR=str(tmp_path / "data"), MCP_EDGE_PLUGIN_DIRS=str(PERF_PLUGINS),
                              MCP_EDGE_TOOL_TIMEOUT_S="2", MCP_EDGE_PLUGIN_ISOLATION=f"payload={request.param}"))
    s.initialize()
    yield s
    assert s.close() == 0


def _error_text(reply: dict[str, Any]) -> str:
    if "error" in reply:
        return str(reply["error"]["message"])
    result = reply["result"]
    assert result.get("isError"), reply
    return str(result["content"][0]["text"])


def test_a_client_timeout_cancels_the_call_and_the_plugin_serves_on(server: StdioServer) -> None:
    reply = _nap(server, 30_000, {"io.mcp-edge/timeout_ms": 150})
    assert "deadline" in _error_text(reply)  # a nap that ran to its end would answer "slept 30000"
    assert _nap(server, 1, {"io.mcp-edge/timeout_ms": 20_000})["result"]["content"][0]["text"] == "slept 1"


def test_the_box_caps_a_client_timeout(server: StdioServer) -> None:
    # The client allows an hour; tool_timeout_s (2 s here) still ends the call.
    reply = _nap(server, 30_000, {"io.mcp-edge/timeout_ms": 3_600_000})
    assert "deadline" in _error_text(reply)


@pytest.mark.parametrize("bad", [0, -5, "100", True, None, [1]])
def test_a_bad_client_timeout_is_refused_as_invalid_params(server: StdioServer, bad: Any) -> None:
    if bad is None:  # a null value is the same as none given
        assert _nap(server, 1, {"io.mcp-edge/timeout_ms": None})["result"]["content"][0]["text"] == "slept 1"
        return
    reply = _nap(server, 1, {"io.mcp-edge/timeout_ms": bad})
    assert reply["error"]["code"] == -32602, reply
    assert "io.mcp-edge/timeout_ms" in reply["error"]["message"]
