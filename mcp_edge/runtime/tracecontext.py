"""The trace context of the request being served, as the worker ring carries it: ``(trace_id, span_id,
trace_flags)`` in a context variable the tracing sets while a request runs (:mod:`mcp_edge.runtime.tracing`) and
a process host reads when it sends the call (the frame's trace TLV). Nothing here imports OpenTelemetry: with
tracing off the variable stays None and the host sends no TLV."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["STATE", "TLV_TRACESTATE", "WIRE", "tracestate_tlv"]

WIRE: ContextVar[tuple[bytes, bytes, int] | None] = ContextVar("mcp_edge_trace", default=None)
# The W3C tracestate that goes with it (vendor entries), as its header text; sent in an optional TLV.
STATE: ContextVar[str | None] = ContextVar("mcp_edge_tracestate", default=None)
TLV_TRACESTATE = 0x0005  # docs/wire-format.md; sent with the OPTIONAL bit (0x8000)
MAX_TRACESTATE = 512  # W3C: at most 32 entries; longer ones are not carried


def tracestate_tlv() -> tuple[tuple[int, bytes], ...]:
    """The extra TLV of the current request's tracestate, or none."""
    state = STATE.get()
    if not state:
        return ()
    raw = state.encode()
    return ((0x8000 | TLV_TRACESTATE, raw),) if len(raw) <= MAX_TRACESTATE else ()
