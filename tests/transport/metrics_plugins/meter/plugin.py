"""meter: tools whose outcomes the metrics tests count, in both isolation modes."""

import asyncio
import logging
import sys

from mcp_edge.plugin import PluginBase, resource, tool
from mcp_edge.plugin.types import ToolAnnotations


class Meter(PluginBase):
    id = "meter"
    capabilities = frozenset({"tools", "resources"})

    @tool
    def ok(self, text: str) -> str:
        """Return text."""
        return text

    @tool
    def fail(self) -> str:
        """Raise: the client gets an error result (isError)."""
        raise RuntimeError("this tool always fails")

    @tool
    async def hold(self, seconds: float = 30.0) -> str:
        """Sleep (cancellable), then return "held"."""
        await asyncio.sleep(seconds)
        return "held"

    @tool(annotations=ToolAnnotations(readOnlyHint=True))
    def imported(self, module: str) -> bool:
        """Whether ``module`` is imported in the process this plugin runs in."""
        return module in sys.modules

    @tool
    def traced(self) -> str:
        """Make a span of its own (the child of the call's) and return its trace id and its parent's span id."""
        from opentelemetry import trace

        with trace.get_tracer("meter").start_as_current_span("meter inner") as span:
            parent = span.parent  # type: ignore[attr-defined]
            return f"{span.get_span_context().trace_id:032x} {parent.span_id:016x}"

    @tool
    def tell(self, secret: str, note: str) -> str:
        """Log what it was given (a careless plugin: the secret too) at warning, and the note alone at info."""
        log = logging.getLogger("meter")
        log.warning("called with %s", {"api_key": secret, "note": note})
        log.warning("header was Authorization: Bearer %s", secret)
        log.info("note: %s", note)
        return "told"

    @resource("meter://count", name="count")
    def count(self) -> str:
        return "1"
