"""JSON-RPC 2.0 as MCP uses it: error codes, message shapes, encoding.

Pure functions over bytes and dicts; JSON goes through msgspec (C, no models
built at import).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from mcp_edge.runtime.outcome import Failure, Outcome, Result

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RESOURCE_NOT_FOUND",
    "RequestId",
    "decode",
    "encode",
    "encode_outcome",
    "error",
    "notification",
    "request",
    "result",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
RESOURCE_NOT_FOUND: Final = -32002

RequestId = str | int

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def decode(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse one JSON text; msgspec.DecodeError on malformed input."""
    return _decoder.decode(data)


def encode(message: Any) -> bytes:
    """One message as compact JSON bytes (msgspec Structs and dicts alike)."""
    return _encoder.encode(message)


def result(request_id: RequestId | None, value: Any) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "id": request_id, "result": value})


def error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return _encoder.encode({"jsonrpc": "2.0", "id": request_id, "error": err})


def encode_outcome(outcome: Outcome) -> bytes:
    """The JSON-RPC response for the router's outcome (a ``Result``'s cached encoding when it has one)."""
    if isinstance(outcome, Result):
        if outcome.encoded is None:
            outcome.encoded = result(outcome.request_id, outcome.value)
        return outcome.encoded
    if isinstance(outcome, Failure):
        return error(outcome.request_id, outcome.code, outcome.message, outcome.data)
    raise TypeError(f"not an outcome: {type(outcome).__name__}")


def notification(method: str, params: Any = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return _encoder.encode(msg)


def request(request_id: RequestId, method: str, params: Any = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return _encoder.encode(msg)
