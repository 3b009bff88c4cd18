"""probe: tools for the transport tests; the same behaviour as conftest.FakeRegistry."""

import asyncio
import json
import sys

from mcp_edge.plugin import PluginBase, RequestContext, resource, tool


class Probe(PluginBase):
    id = "probe"
    capabilities = frozenset({"tools", "resources"})

    @tool
    async def echo(self, text: str) -> str:
        """Return text."""
        return text

    @tool
    async def progress(self, steps: int = 3, ctx: RequestContext | None = None) -> str:
        """Report progress ``steps`` times, then return "done"."""
        assert ctx is not None
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return "done"

    @tool
    async def slow(self, seconds: float = 30.0) -> str:
        """Sleep (cancellable), then return "slept"."""
        await asyncio.sleep(seconds)
        return "slept"

    @tool
    async def shout(self, text: str, ctx: RequestContext | None = None) -> str:
        """print() to stdout (which must not reach the protocol stream), log at info, return text."""
        print(f"SHOUT {text}")
        sys.stdout.flush()
        if ctx is not None:
            await ctx.log("info", {"shout": text})
        return text

    @tool
    async def touch(self, uri: str) -> str:
        """Tell subscribers that resource ``uri`` changed."""
        await self.ctx.notify_resource_updated(uri)
        return "touched"

    @tool
    async def whoami(self, ctx: RequestContext | None = None) -> str:
        """The request's principal as JSON: id, kind, pid, uid (what the transport attached)."""
        assert ctx is not None
        who = ctx.principal  # type: ignore[attr-defined]  # (RequestContext gains it in the plugin API next)
        return json.dumps({"id": who.id, "kind": who.kind, "pid": who.pid, "uid": who.uid})

    @resource("probe://counter", name="counter")
    async def counter(self) -> str:
        return "1"
