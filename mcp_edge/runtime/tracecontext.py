"""The trace context of the request being served, as the worker ring carries it: ``(trace_id, span_id,
trace_flags)`` in a context variable the tracing sets while a request runs (:mod:`mcp_edge.runtime.tracing`) and
a process host reads when it sends the call (the frame's trace TLV). Nothing here imports OpenTelemetry: with
tracing off the variable stays None and the host sends no TLV."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["WIRE"]

WIRE: ContextVar[tuple[bytes, bytes, int] | None] = ContextVar("mcp_edge_trace", default=None)
