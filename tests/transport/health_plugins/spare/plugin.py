"""spare: disabled in the health tests."""

from mcp_edge.plugin import PluginBase, tool


class Spare(PluginBase):
    id = "spare"
    capabilities = frozenset({"tools"})

    @tool
    async def idle(self) -> str:
        """Return "idle"."""
        return "idle"
