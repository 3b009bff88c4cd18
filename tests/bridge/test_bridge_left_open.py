"""A stdio server that exits while something it started keeps its stdout open is lost all the same: the call in
it fails at once with the exit named (it waited for an end of stdout that never came), and what it left is
killed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from bridge_helpers import SERVERS, WAIT, gone

from mcp_edge.board import Settings
from mcp_edge.plugin.bridge.client import BridgeLost, McpClient
from mcp_edge.plugin.bridge.stdio import StdioTransport, child_environ


def test_a_server_that_exits_leaving_its_stdout_open_is_lost(tmp_path: Path) -> None:
    lost: list[str] = []
    settings = Settings.load(environ={}, data_dir=tmp_path)
    transport = StdioTransport([sys.executable, str(SERVERS / "rogue_server.py"), "leave"], child_environ({}, []),
                               str(tmp_path), plugin_id="rogue", settings=settings)
    left = 0

    async def main() -> None:
        nonlocal left
        client = McpClient(transport, "rogue", on_lost=lost.append)
        await client.connect("2025-11-25", WAIT)
        try:
            with pytest.raises(BridgeLost) as failed:
                await client.request("tools/call", {"name": "stall"})  # no deadline of its own
            assert "exited with status 3" in failed.value.reason
            assert lost and "exited with status 3" in lost[0]
            found = re.search(r"left (\d+)", failed.value.reason)
            assert found, failed.value.reason
            left = int(found.group(1))
            while not gone(left):
                await asyncio.sleep(0.02)
        finally:
            await client.close(0.5)

    try:
        asyncio.run(asyncio.wait_for(main(), WAIT))
    finally:
        if left and not gone(left):
            os.kill(left, signal.SIGKILL)
