"""napper: a slow call that reports progress once it runs, so a client knows it is in flight."""

import asyncio

from mcp_edge.plugin import PluginBase, RequestContext, tool


class Napper(PluginBase):
    id = "napper"
    capabilities = frozenset({"tools"})

    @tool
    async def nap(self, seconds: float, ctx: RequestContext | None = None) -> str:
        """Report progress 0/1 ("started"), sleep ``seconds`` (cancellable), return "rested"."""
        if ctx is not None:
            await ctx.report_progress(0, 1, "started")
        await asyncio.sleep(seconds)
        return "rested"
