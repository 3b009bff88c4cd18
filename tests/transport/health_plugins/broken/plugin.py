"""broken: initialize fails with a reason readiness must show."""

from typing import Any

from mcp_edge.plugin import PluginBase, tool


class Broken(PluginBase):
    id = "broken"
    capabilities = frozenset({"tools"})

    async def initialize(self, config: Any, ctx: Any) -> None:
        raise RuntimeError("the sensor bus is not there")

    @tool
    async def never(self) -> str:
        """Never served."""
        return "no"
