"""Transports: the only code that touches pipes and sockets.

``mcp_edge.transport.stdio.serve_stdio`` (stdin/stdout), ``mcp_edge.transport.http.serve_http``
(Streamable HTTP at ``/mcp``) and ``mcp_edge.transport.unix.serve_unix`` (a unix socket) all hand
the protocol core bytes and the router requests. Import the one you serve: this package imports
none of them, so a stdio server never loads the HTTP code.
"""

__all__: list[str] = []
