"""revisions: one of each thing later MCP revisions added, for the revision-shaping tests."""

import asyncio

import msgspec

from mcp_edge.plugin import PluginBase, RequestContext, prompt, resource, tool
from mcp_edge.plugin.types import AudioContent, ResourceLink, TextContent, ToolAnnotations

WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="


class Forecast(msgspec.Struct):
    city: str
    celsius: int


class Revisions(PluginBase):
    id = "revisions"
    capabilities = frozenset({"tools", "resources", "prompts"})

    @tool(title="Weather", annotations=ToolAnnotations(title="Weather", readOnlyHint=True))
    async def weather(self, city: str) -> Forecast:
        """Structured output (2025-06-18) with a title (2025-06-18) and annotations (2025-03-26)."""
        return Forecast(city=city, celsius=21)

    @tool
    async def clip(self) -> AudioContent:
        """Audio content (2025-03-26)."""
        return AudioContent(data=WAV, mimeType="audio/wav")

    @tool
    async def link(self) -> list[TextContent | ResourceLink]:
        """A resource link (2025-06-18) after a text block."""
        return [TextContent(text="see the log"),
                ResourceLink(uri="rev://log", name="log", title="The log", mimeType="text/plain")]

    @tool
    async def nap(self, seconds: float = 0.2) -> str:
        """Sleep a little, then answer: batch members that finish in another order than they came."""
        await asyncio.sleep(seconds)
        return "rested"

    @tool
    async def steps(self, ctx: RequestContext) -> str:
        """Report progress twice, then answer: notifications emitted by a batch member."""
        for i in (1, 2):
            await ctx.report_progress(i, 2)
        return "walked"

    @resource("rev://log", name="log", title="The log")
    async def log_text(self) -> str:
        return "line 1\n"

    @prompt(title="Greeting")
    async def greet(self, who: str) -> str:
        """Say hello."""
        return f"hello {who}"
