"""The one exception hierarchy of mcp_edge."""

from __future__ import annotations

__all__ = ["ConfigError", "IsaLevelError", "McpEdgeError"]


class McpEdgeError(Exception):
    """Base of every error mcp_edge raises on purpose."""


class ConfigError(McpEdgeError, ValueError):
    """A setting, board profile or command-line value is invalid; the message says which."""


class IsaLevelError(McpEdgeError, ValueError):
    """An ISA level was asked for (MCP_EDGE_ISA, crc32c_variant) that is unknown or not runnable here."""
