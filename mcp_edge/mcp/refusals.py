"""One table of refusals: what the runtime answers when it will not serve something now (busy) or at all (too big,
too slow), on every transport.

Each kind has one HTTP status and one JSON-RPC error code, so a transport never picks its own. "Busy" is
retryable: HTTP answers 503 with ``Retry-After`` and JSON-RPC errors carry ``data.retryAfterMs``. The busy code
is implementation-defined and lies outside -32020..-32099, which the 2026-07-28 revision reserves.
Rate limits answer ``RATE_LIMITED`` (429, retryable, -32011) and authorization ``FORBIDDEN`` (403, -32012), both
implementation-defined codes outside the reserved range too.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.jsonrpc import RequestId
from mcp_edge.runtime.outcome import Failure

__all__ = ["BUSY", "FORBIDDEN", "RATE_LIMITED", "REFUSALS", "Refusal", "RefusalSpec", "http_refusal",
           "refusal_error", "refusal_failure"]

BUSY: Final = -32010  # "busy, retry later": in-flight, listener, connection and session caps
RATE_LIMITED: Final = -32011  # a principal's or a tool's rate limit: retry later
FORBIDDEN: Final = -32012  # the policy gives the caller no role that allows this


class Refusal(enum.Enum):
    BUSY = "busy"  # a cap is reached: retry after a while
    TOO_LARGE = "too_large"  # a message or body over its limit
    HEAD_TOO_LARGE = "head_too_large"  # an HTTP request head over its limit
    TIMEOUT = "timeout"  # a head or body that did not arrive in time
    RATE_LIMITED = "rate_limited"  # over a rate limit: retry after a while
    FORBIDDEN = "forbidden"  # not allowed by the authorization policy


@dataclass(frozen=True, slots=True)
class RefusalSpec:
    http_status: int
    code: int
    retryable: bool


REFUSALS: Final[dict[Refusal, RefusalSpec]] = {
    Refusal.BUSY: RefusalSpec(503, BUSY, True),
    Refusal.TOO_LARGE: RefusalSpec(413, jsonrpc.INVALID_REQUEST, False),
    Refusal.HEAD_TOO_LARGE: RefusalSpec(431, jsonrpc.INVALID_REQUEST, False),
    Refusal.TIMEOUT: RefusalSpec(408, jsonrpc.INVALID_REQUEST, False),
    Refusal.RATE_LIMITED: RefusalSpec(429, RATE_LIMITED, True),
    Refusal.FORBIDDEN: RefusalSpec(403, FORBIDDEN, False),
}


def refusal_failure(kind: Refusal, rid: RequestId | None, message: str,
                    retry_after_s: float | None = None) -> Failure:
    """The typed outcome of a refusal; a retryable one keeps ``retry_after_s`` and carries ``data.retryAfterMs``."""
    spec = REFUSALS[kind]
    if not spec.retryable:
        return Failure(rid, spec.code, message)
    wait = max(0.0, retry_after_s or 0.0)
    return Failure(rid, spec.code, message, {"retryAfterMs": round(wait * 1000)}, wait)


def refusal_error(kind: Refusal, rid: RequestId | None, message: str, retry_after_s: float | None = None) -> bytes:
    """The JSON-RPC error for a refusal, encoded (``refusal_failure``'s)."""
    return jsonrpc.encode_outcome(refusal_failure(kind, rid, message, retry_after_s))


def http_refusal(kind: Refusal, message: str, retry_after_s: float | None = None,
                 rid: RequestId | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, JSON body) for an HTTP refusal; a retryable one carries ``Retry-After`` (whole seconds)."""
    spec = REFUSALS[kind]
    headers = [("content-type", "application/json")]
    if spec.retryable:
        headers.append(("retry-after", str(max(1, math.ceil(retry_after_s or 0.0)))))
    return spec.http_status, headers, refusal_error(kind, rid, message, retry_after_s)
