"""echo: one tool, ``echo(text) -> text``, the same tool the MCP bench's peers serve."""

from mcp_edge.plugin import PluginBase, tool

__all__ = ["Echo"]


class Echo(PluginBase):
    @tool
    def echo(self, text: str) -> str:
        """Echo the given text back."""
        return text
