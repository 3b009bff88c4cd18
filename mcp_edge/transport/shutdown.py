"""What every transport answers while the server shuts down: one refusal for new requests, one error for the cut.

After the first stop signal a transport accepts nothing new but keeps reading, so that each new request gets an
answer instead of silence: the busy refusal (retryable; HTTP 503 with ``Retry-After``) whose message says the
server is shutting down. Requests already running get ``Settings.shutdown_timeout_s`` to finish; what is still
running then is cancelled and answered with :func:`cut_failure`, the same code with a message that says so.
Both carry ``data.shuttingDown`` so a client can tell them from an ordinary busy answer.
"""

from __future__ import annotations

from typing import Final

from mcp_edge.mcp.jsonrpc import RequestId
from mcp_edge.mcp.refusals import BUSY
from mcp_edge.runtime.outcome import Failure

__all__ = ["SHUTTING_DOWN", "cut_failure", "refusal"]

SHUTTING_DOWN: Final = "the server is shutting down"


def _failure(rid: RequestId | None, message: str, retry_after_s: float) -> Failure:
    wait = max(0.0, retry_after_s)
    return Failure(rid, BUSY, message, {"retryAfterMs": round(wait * 1000), "shuttingDown": True}, wait)


def refusal(rid: RequestId | None, retry_after_s: float) -> Failure:
    """The answer to a request that arrived after the stop signal: not started, safe to retry elsewhere/later."""
    return _failure(rid, f"{SHUTTING_DOWN}: not accepting new requests (retry later)", retry_after_s)


def cut_failure(rid: RequestId | None, budget_s: float, retry_after_s: float) -> Failure:
    """The answer to a request still running when the shutdown budget ran out: it was cancelled part-way."""
    return _failure(rid, f"{SHUTTING_DOWN}: the request was cancelled after {budget_s:g} s (shutdown_timeout_s)",
                    retry_after_s)
