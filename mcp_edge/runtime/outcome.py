"""The router's typed outcome of one request: a ``Result`` or a ``Failure``.

The router returns one of these instead of bytes, so that each layer below it looks at typed data: the protocol
core encodes it (``mcp_edge.mcp.jsonrpc.encode_outcome``), HTTP maps it to a status
(``mcp_edge.transport.http_status``), and nobody parses the encoded JSON to learn what happened. A cancelled
request has no outcome (the router raises ``CancelledError``; transports answer nothing).

Plain ``__slots__`` classes: this module sits on every request's path and imports nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Failure", "Outcome", "Result"]


class Result:
    """A request served: ``value`` becomes the JSON-RPC ``result``.

    ``encoded`` is the message's JSON once someone encoded it (the router does, to apply ``max_out_frame``), so
    the edge does not encode it twice.
    """

    __slots__ = ("encoded", "request_id", "value")

    def __init__(self, request_id: str | int | None, value: Any, encoded: bytes | None = None) -> None:
        self.request_id = request_id
        self.value = value
        self.encoded = encoded

    def __repr__(self) -> str:
        return f"Result(request_id={self.request_id!r}, value={self.value!r:.80})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and (self.request_id, self.value) == (other.request_id, other.value)

    __hash__ = None  # type: ignore[assignment]


class Failure:
    """A request refused or failed: a JSON-RPC error ``code``, ``message`` and optional ``data``.

    ``retry_after_s`` is set on retryable refusals (busy): HTTP turns it into ``Retry-After`` and the JSON-RPC
    error carries it as ``data.retryAfterMs``.
    """

    __slots__ = ("code", "data", "message", "request_id", "retry_after_s")

    def __init__(self, request_id: str | int | None, code: int, message: str, data: Any = None,
                 retry_after_s: float | None = None) -> None:
        self.request_id = request_id
        self.code = code
        self.message = message
        self.data = data
        self.retry_after_s = retry_after_s

    def _key(self) -> tuple[Any, ...]:
        return self.request_id, self.code, self.message, self.data, self.retry_after_s

    def __repr__(self) -> str:
        return (f"Failure(request_id={self.request_id!r}, code={self.code}, message={self.message!r}"
                f"{'' if self.retry_after_s is None else f', retry_after_s={self.retry_after_s}'})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Failure) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]


Outcome = Result | Failure
