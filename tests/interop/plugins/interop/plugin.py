"""Interop test helper: ``interop_wait`` sleeps and records in the plugin's data folder how it ended.

The marker file ``<data dir>/plugin-data/interop/<tag>`` reads ``started``, then
``finished`` or ``cancelled``: so a test sees that a client's cancellation
reached the handler, not only that the client stopped waiting.
"""

from __future__ import annotations

import asyncio

from mcp_edge.plugin import PluginBase, tool


class Interop(PluginBase):
    id = "interop"
    capabilities = frozenset({"tools"})

    @tool
    async def interop_wait(self, seconds: float, tag: str) -> str:
        """Wait ``seconds`` (cancellable), recording how the call ended under ``tag``.

        Args:
            seconds: How long to wait.
            tag: The marker file's name (letters, digits, - and _).
        """
        if not tag.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"bad tag {tag!r}")
        marker = self.ctx.data_dir / tag
        marker.write_text("started")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            marker.write_text("cancelled")
            raise
        marker.write_text("finished")
        return f"waited {seconds} s"
