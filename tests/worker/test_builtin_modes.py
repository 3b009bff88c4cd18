"""The built-in plugins served both ways: the same calls through a real `mcp-edge serve --stdio`, with every
plugin in the runtime's process and with every plugin in a worker process, give the same answers, for a client
of the newest handshake revision and for one of an older revision (whose results a worker shapes itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.stdio_server import StdioServer, clean_env

PLUGINS = ("fs", "sysinfo", "logs", "native_hello")


def _session(tmp_path: Path, mode: str, version: str) -> dict[str, Any]:
    data = tmp_path / mode
    s = StdioServer(clean_env(MCP_EDGE_DATA_DIR=str(data),
                              MCP_EDGE_PLUGIN_ISOLATION=",".join(f"{p}={mode}" for p in PLUGINS)))
    try:
        assert "result" in s.initialize(version)
        out: dict[str, Any] = {}
        status = json.loads(s.result("resources/read", {"uri": "mcp-edge://plugins"})["contents"][0]["text"])
        rows = {r["id"]: r for r in status["plugins"]}
        out["isolation"] = {p: (rows[p]["isolation"], rows[p]["state"], rows[p]["pid"] != rows["runtime"]["pid"])
                            for p in PLUGINS}
        out["rss"] = {p: rows[p]["rss_bytes"] for p in PLUGINS}
        out["tools"] = sorted((t["name"], json.dumps(t["inputSchema"], sort_keys=True))
                              for t in s.result("tools/list")["tools"])
        out["write"] = s.result("tools/call", {"name": "fs_write", "arguments": {"path": "a/b.txt", "content": "hé",
                                                                              "create_dirs": True}})
        out["read"] = s.result("tools/call", {"name": "fs_read", "arguments": {"path": "a/b.txt"}})
        out["sum"] = s.result("tools/call", {"name": "fs_checksum", "arguments": {"path": "a/b.txt"}})
        out["missing"] = s.result("tools/call", {"name": "fs_read", "arguments": {"path": "nope"}})
        out["native"] = s.result("tools/call", {"name": "native_add", "arguments": {"a": 1.5, "b": 2}})
        summary = s.result("tools/call", {"name": "sysinfo_summary", "arguments": {}})
        out["summary_keys"] = sorted(summary.get("structuredContent", {}))
        out["summary_text"] = [b["type"] for b in summary["content"]]
        out["templates"] = sorted(t["uriTemplate"] for t in s.result("resources/templates/list")["resourceTemplates"])
    finally:
        assert s.close() == 0
    return out


@pytest.mark.parametrize("version", ["2025-11-25", "2025-03-26"])
def test_the_builtin_plugins_answer_the_same_in_process_and_in_workers(tmp_path: Path, version: str) -> None:
    inproc = _session(tmp_path, "inproc", version)
    process = _session(tmp_path, "process", version)
    assert inproc["isolation"] == {p: ("inproc", "active", False) for p in PLUGINS}
    assert process["isolation"] == {p: ("process", "active", True) for p in PLUGINS}
    assert inproc["rss"] == dict.fromkeys(PLUGINS)  # only a worker has memory of its own to show
    assert all(isinstance(v, int) and v > 4 << 20 for v in process["rss"].values()), process["rss"]
    del inproc["isolation"], process["isolation"], inproc["rss"], process["rss"]
    assert process == inproc
    assert "hé" in json.dumps(inproc["read"], ensure_ascii=False) and inproc["missing"]["isError"] is True
    if version == "2025-11-25":
        assert inproc["native"]["structuredContent"] == {"sum": 3.5}
        assert inproc["summary_keys"]
    else:  # 2025-03-26 has no structuredContent: shaped out in the runtime (inproc) and in the worker alike
        assert "structuredContent" not in inproc["native"] and "structuredContent" not in process["native"]
        assert inproc["summary_keys"] == [] and inproc["summary_text"]
