"""mcp_edge: an embeddable Model Context Protocol runtime for edge appliances."""

from mcp_edge.errors import ConfigError, IsaLevelError, McpEdgeError

__version__ = "0.1.0"

__all__ = ["ConfigError", "IsaLevelError", "McpEdgeError", "__version__"]
