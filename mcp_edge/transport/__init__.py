"""Transports: the only code that touches pipes and sockets.

``serve_stdio`` (stdin/stdout), ``serve_http`` (Streamable HTTP at ``/mcp``) and
``serve_unix`` (a unix socket) all hand the protocol core bytes and the router
requests. The HTTP stack (httptools) loads only when ``serve_http`` runs.
"""

from mcp_edge.transport.http import ENDPOINT, serve_http
from mcp_edge.transport.stdio import serve_stdio
from mcp_edge.transport.stream import StreamSession
from mcp_edge.transport.unix import serve_unix

__all__ = ["ENDPOINT", "StreamSession", "serve_http", "serve_stdio", "serve_unix"]
