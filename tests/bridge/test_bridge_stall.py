"""A mounted stdio server that stops reading its stdin must not hold a call past its deadline (the
notifications/cancelled that follows the call cannot be written either)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from bridge_helpers import SERVERS, WAIT

from mcp_edge.board import Settings
from mcp_edge.plugin.bridge.client import McpClient
from mcp_edge.plugin.bridge.stdio import StdioTransport, child_environ


def _client(mode: str, tmp_path: Path) -> McpClient:
    settings = Settings.load(environ={}, data_dir=tmp_path)
    transport = StdioTransport([sys.executable, str(SERVERS / "rogue_server.py"), mode], child_environ({}, []),
                               str(tmp_path), plugin_id="rogue", settings=settings)
    return McpClient(transport, "rogue", notify_timeout=WAIT)


def test_a_server_that_stops_reading_does_not_hold_calls_past_their_deadline(tmp_path: Path) -> None:
    async def main() -> None:
        client = _client("stall", tmp_path)
        await client.connect("2025-11-25", WAIT)
        try:
            stalled = asyncio.ensure_future(client.request("tools/call", {"name": "stall"}))
            await asyncio.sleep(0.2)
            big = {"name": "echo", "arguments": {"text": "x" * (1 << 20)}}  # more than the pipe holds
            for _ in range(2):  # the second one finds the pipe full from the start
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.5):  # as the supervisor's deadline does: by cancelling
                        await client.request("tools/call", big)
            with pytest.raises(TimeoutError):
                await client.request("tools/call", big, timeout=0.5)
            for _ in range(8):  # calls that find no room write nothing: the runtime does not hold them all
                with pytest.raises(TimeoutError):
                    await client.request("tools/call", big, timeout=0.1)
            stdin = client.transport._proc.stdin  # type: ignore[attr-defined]
            assert stdin.transport.get_write_buffer_size() < 3 * len(big["arguments"]["text"])
            stalled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stalled
        finally:
            await client.close(0.5)

    asyncio.run(asyncio.wait_for(main(), WAIT))
