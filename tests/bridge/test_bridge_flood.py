"""A mounted server flooding a call with progress and log notifications, faster than the call's client takes
them, holds at most bridge_max_pending of them in the runtime; the rest are dropped and counted, and the call's
answer still comes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from bridge_helpers import SERVERS, WAIT

from mcp_edge.board import Settings
from mcp_edge.plugin.bridge.client import McpClient
from mcp_edge.plugin.bridge.stdio import StdioTransport, child_environ


class StuckClient:
    """A request context whose client takes nothing (its output is full)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.taken = 0

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        await self.go.wait()
        self.taken += 1

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        await self.go.wait()
        self.taken += 1


def test_a_notification_flood_is_bounded(tmp_path: Path) -> None:
    async def main() -> None:
        settings = Settings.load(environ={}, data_dir=tmp_path, bridge_max_pending=50)
        transport = StdioTransport([sys.executable, str(SERVERS / "rogue_server.py"), "flood"],
                                   child_environ({}, []), str(tmp_path), plugin_id="rogue", settings=settings)
        client = McpClient(transport, "rogue", max_pending=settings.bridge_max_pending)
        await client.connect("2025-11-25", WAIT)
        try:
            rctx = StuckClient()
            call = asyncio.ensure_future(client.request("tools/call", {"name": "flood", "arguments": {"count": 5000}},
                                                        rctx=rctx, progress=True))
            seen = 0
            while not call.done():
                seen = max(seen, len(client._tasks))
                await asyncio.sleep(0)
            assert b"flooded" in bytes(await call)
            assert seen <= 50
            # (over stdio a log line belongs to no call: it goes to the runtime's log, not to the client)
            assert client.dropped >= 5000 - 50
            rctx.go.set()
            while client._tasks:
                await asyncio.sleep(0.01)
            assert rctx.taken == 5000 - client.dropped  # what was kept reached the client
        finally:
            await client.close(0.5)

    asyncio.run(asyncio.wait_for(main(), WAIT))
