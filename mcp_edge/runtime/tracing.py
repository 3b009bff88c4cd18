"""Tracing with OpenTelemetry (the ``tracing`` extra: opentelemetry-api, -sdk and the OTLP/HTTP exporter),
imported only when ``Settings.tracing`` is on.

The runtime makes one SERVER span per request (``Router.handle``), a child of the trace the client names in the
request's ``_meta`` (``traceparent`` and ``tracestate``, W3C Trace Context, as MCP clients pass it) or the root
of a new trace. Its name is the method and, for ``tools/call``, ``prompts/get`` and ``resources/read``, what it
names (``tools/call echo``); its attributes ``mcp.method.name``, ``jsonrpc.request.id``,
``mcp.protocol.version``, ``gen_ai.tool.name`` / ``gen_ai.prompt.name`` / ``mcp.resource.uri``; a request
answered with a JSON-RPC error gets status ERROR with ``error.type`` and ``rpc.jsonrpc.error_code``. An
in-process plugin's own spans nest under it (it is the current span while the plugin runs).

A call to a plugin in a worker process carries the span's context in the CALL frame's trace TLV (trace-id,
span-id, flags); the worker, tracing with the same settings, makes a span of the call there as its child, and
the plugin's own spans nest under that one; ``tracestate`` crosses in an optional TLV (0x8005) beside it. The
process's global TracerProvider is mcp_edge's when nothing set another first: a plugin's
``opentelemetry.trace.get_tracer`` spans are exported with the runtime's, by the newest ``Tracing`` open in the
process.

Exporters (``tracing_exporter``): ``otlp`` sends batches over OTLP/HTTP to ``tracing_endpoint`` (an
OpenTelemetry collector on the box or the network); ``jsonl`` appends each span as a JSON line to
``tracing_file`` (one write per batch, so the runtime and its workers share the file line by line); ``none``
leaves spans to the TracerProvider the embedding program set globally. Spans are sampled at
``tracing_sample_ratio`` unless the client's context already decided (ParentBased).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mcp_edge import __version__
from mcp_edge.runtime.tracecontext import STATE, WIRE

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.mcp.connection import Request
    from mcp_edge.runtime.outcome import Outcome

__all__ = ["EXPORTERS", "JsonLinesExporter", "Tracing", "spans_path"]

log = logging.getLogger("mcp_edge.tracing")

EXPORTERS: Final = ("otlp", "jsonl", "none")
_NAMED: Final = {"tools/call": ("name", "gen_ai.tool.name"), "prompts/get": ("name", "gen_ai.prompt.name"),
                 "resources/read": ("uri", "mcp.resource.uri")}
_propagator: Final = TraceContextTextMapPropagator()


def spans_path(settings: Settings) -> Path:
    """Where the ``jsonl`` exporter writes: ``tracing_file``, else under the data dir."""
    if settings.tracing_file:
        return Path(settings.tracing_file).expanduser()
    return Path(settings.data_dir) / "traces" / "spans.jsonl"


class JsonLinesExporter(SpanExporter):
    """Each span as one JSON line, appended to a file opened once (so a worker keeps writing after its sandbox
    closes the filesystem); one write per batch. A line: ``name``, ``kind`` (SERVER, INTERNAL...),
    ``trace_id`` (32 hex digits), ``span_id`` and ``parent_id`` (16, or null for a root), ``trace_state``,
    ``start_ns`` and
    ``end_ns`` (Unix time), ``status`` (UNSET, OK, ERROR) and ``status_message``, ``attributes``,
    ``resource`` (the process's: service, pid) and ``events``."""

    def __init__(self, path: Path) -> None:
        import msgspec

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._encode = msgspec.json.Encoder().encode

    @staticmethod
    def record(span: ReadableSpan) -> dict[str, Any]:
        """The JSON object of one span."""
        ctx = span.get_span_context()
        parent = span.parent
        status = span.status
        return {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": f"{ctx.trace_id:032x}" if ctx is not None else None,
            "span_id": f"{ctx.span_id:016x}" if ctx is not None else None,
            "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
            "trace_state": ctx.trace_state.to_header() if ctx is not None and ctx.trace_state else None,
            "start_ns": span.start_time,
            "end_ns": span.end_time,
            "status": status.status_code.name,
            "status_message": status.description,
            "attributes": dict(span.attributes or {}),
            "resource": dict(span.resource.attributes),
            "events": [{"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
                       for e in span.events],
        }

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        fd = self._fd
        if fd is None:
            return SpanExportResult.FAILURE
        encode, record = self._encode, self.record
        data = b"".join(encode(record(span)) + b"\n" for span in spans)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            log.warning("tracing: cannot append to %s: %s", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Tracing:
    """The tracer of one process (the runtime or a worker) and what it exports through."""

    def __init__(self, settings: Settings, role: str = "runtime") -> None:
        kind = settings.tracing_exporter
        self.provider: TracerProvider | None = None
        if kind == "none":
            self.tracer = trace.get_tracer("mcp_edge", __version__)
            return
        resource = Resource.create({"service.name": settings.server_name, "service.version": __version__,
                                    "service.instance.id": f"{role}-{os.getpid()}", "process.pid": os.getpid()})
        provider = TracerProvider(resource=resource,
                                  sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)))
        exporter: SpanExporter
        if kind == "jsonl":
            exporter = JsonLinesExporter(spans_path(settings))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.tracing_endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self.provider = provider
        self.tracer = provider.get_tracer("mcp_edge", __version__)
        _active.append(provider)
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(_ActiveProvider())  # a plugin's own spans (trace.get_tracer) go our way

    async def serve(self, req: Request, outcome: Awaitable[Outcome]) -> Outcome:
        """Await ``outcome`` (the router serving ``req``) inside the request's span."""
        from mcp_edge.runtime.outcome import Failure

        meta = req.meta
        parent = _propagator.extract(meta) if meta and "traceparent" in meta else None
        attributes: dict[str, Any] = {"mcp.method.name": req.method, "jsonrpc.request.id": str(req.id),
                                      "mcp.protocol.version": req.version}
        name = req.method
        named = _NAMED.get(req.method)
        if named is not None:
            target = req.params.get(named[0])
            if isinstance(target, str):
                attributes[named[1]] = target
                name = f"{req.method} {target}"
        with self.tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
                                               record_exception=False) as span:
            ctx = span.get_span_context()
            token = WIRE.set((ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"),
                              int(ctx.trace_flags))) if ctx.is_valid else None
            state = STATE.set(ctx.trace_state.to_header() or None) if ctx.is_valid and ctx.trace_state else None
            try:
                result = await outcome
            finally:
                if token is not None:
                    WIRE.reset(token)
                if state is not None:
                    STATE.reset(state)
            if isinstance(result, Failure):
                span.set_status(Status(StatusCode.ERROR, result.message[:200]))
                span.set_attribute("error.type", str(result.code))
                span.set_attribute("rpc.jsonrpc.error_code", result.code)
        return result

    @contextlib.contextmanager
    def worker_span(self, wire: tuple[bytes, bytes, int] | None, name: str,
                    attributes: Mapping[str, Any], tracestate: str | None = None) -> Iterator[None]:
        """In a worker: the span of one call, the child of the runtime's span the CALL's trace TLV names (with
        the tracestate its optional TLV carries)."""
        parent = None
        if wire is not None:
            from opentelemetry.trace import TraceState

            state = TraceState.from_header([tracestate]) if tracestate else None
            ctx = SpanContext(int.from_bytes(wire[0], "big"), int.from_bytes(wire[1], "big"), is_remote=True,
                              trace_flags=TraceFlags(wire[2]), trace_state=state)
            if ctx.is_valid:
                parent = trace.set_span_in_context(NonRecordingSpan(ctx))
        with self.tracer.start_as_current_span(name, context=parent, kind=SpanKind.INTERNAL,
                                               attributes=dict(attributes)):
            yield

    def shutdown(self) -> None:
        """Export what is left and stop (at the end of serving, or of a worker)."""
        if self.provider is not None:
            self.provider.shutdown()
            with contextlib.suppress(ValueError):
                _active.remove(self.provider)
            self.provider = None


# The providers of the Tracings open in this process, newest last: the global provider mcp_edge sets hands
# plugins tracers that start their spans with the newest, so a server stopped and configured again (embedding)
# does not leave plugins tracing into a provider that was shut down.
_active: list[TracerProvider] = []


class _ActiveTracer(trace.Tracer):
    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._args, self._kwargs = args, kwargs

    def _real(self) -> trace.Tracer:
        if not _active:
            return trace.NoOpTracer()
        return _active[-1].get_tracer(*self._args, **self._kwargs)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._real().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._real().start_as_current_span(*args, **kwargs)


class _ActiveProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _ActiveTracer(args, kwargs)
