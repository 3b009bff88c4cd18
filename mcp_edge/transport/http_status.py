"""HTTP status and headers for a JSON-RPC answer: a pure function of typed data, no I/O, no parsing.

The handshake era (2025-03-26 .. 2025-11-25) answers every JSON-RPC response with 200, errors included, except
an error tied to no request (id null: the message could not be read), which is 400. The 2026-07-28 revision
gives errors their own statuses: 400 for a malformed request (-32700, -32600, -32602, -32020..-32022), 404 for
an unknown method (-32601), 503 with ``Retry-After`` for the busy refusal (-32010, ``Failure.retry_after_s``),
403 for the forbidden one (-32012); any other error stays 200. A rate-limited answer (-32011) is 429 with
``Retry-After`` in both eras.
"""

from __future__ import annotations

import math
from typing import Final

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import HEADER_MISMATCH, MISSING_CAPABILITY, UNSUPPORTED_VERSION
from mcp_edge.mcp.refusals import BUSY, FORBIDDEN, RATE_LIMITED
from mcp_edge.runtime.outcome import Failure, Outcome

__all__ = ["MODERN_STATUS", "http_status", "http_status_for_error"]

Headers = list[tuple[str, str]]

# JSON-RPC error code -> HTTP status, for 2026-07-28 requests (any other code: 200).
MODERN_STATUS: Final = {
    jsonrpc.PARSE_ERROR: 400, jsonrpc.INVALID_REQUEST: 400, jsonrpc.INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
    MISSING_CAPABILITY: 400, UNSUPPORTED_VERSION: 400, jsonrpc.METHOD_NOT_FOUND: 404, BUSY: 503,
    RATE_LIMITED: 429, FORBIDDEN: 403,
}


def http_status_for_error(code: int, request_id: jsonrpc.RequestId | None, modern: bool,
                          retry_after_s: float | None = None) -> tuple[int, Headers]:
    """(status, extra headers) for a JSON-RPC error with ``code`` answering ``request_id``."""
    if code == RATE_LIMITED:  # 429 in either era: a client backs off on the status as on the error
        return 429, [("retry-after", str(max(1, math.ceil(retry_after_s or 0.0))))]
    if not modern:
        return (400 if request_id is None else 200), []
    status = MODERN_STATUS.get(code, 200)
    if status == 503 and retry_after_s is not None:
        return status, [("retry-after", str(max(1, math.ceil(retry_after_s))))]
    return status, []


def http_status(outcome: Outcome, modern: bool) -> tuple[int, Headers]:
    """(status, extra headers) for the router's ``outcome``, in the 2026-07-28 revision when ``modern``."""
    if isinstance(outcome, Failure):
        return http_status_for_error(outcome.code, outcome.request_id, modern, outcome.retry_after_s)
    return 200, []
