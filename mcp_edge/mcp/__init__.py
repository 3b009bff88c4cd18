"""Sans-I/O MCP protocol core: JSON-RPC framing, both protocol eras, lifecycle."""

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import (
    DEFAULT_MAX_FRAME,
    LOG_LEVELS,
    Batch,
    CancelRequest,
    ClientLog,
    ClientResult,
    ConnState,
    Event,
    Notification,
    Reply,
    Request,
    ServerConnection,
    ServerInfo,
    stateless_version,
)
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE, STATELESS_VERSIONS, SUPPORTED_VERSIONS

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE",
    "LOG_LEVELS",
    "STATELESS_VERSIONS",
    "SUPPORTED_VERSIONS",
    "Batch",
    "CancelRequest",
    "ClientLog",
    "ClientResult",
    "ConnState",
    "Event",
    "Notification",
    "Reply",
    "Request",
    "ServerConnection",
    "ServerInfo",
    "jsonrpc",
    "stateless_version",
]
