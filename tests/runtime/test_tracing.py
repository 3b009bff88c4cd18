"""Tracing: a SERVER span per request, the child of the client's ``_meta`` traceparent, exported as JSON lines;
a worker's span of the call is the child of the runtime's (the trace crosses the ring in the CALL frame's TLV)
and a plugin's own span the child of that; errors marked; no OpenTelemetry without tracing; clear errors for a
missing extra or a bad setting."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError
from mcp_edge.runtime.outcome import Failure, Result

PLUGINS = Path(__file__).resolve().parents[1] / "transport" / "metrics_plugins"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def _settings(tmp_path: Path, mode: str, **kw: Any) -> Settings:
    return Settings.load(data_dir=tmp_path, plugin_dirs=(PLUGINS,), entry_points=False, reload_watch=False,
                         tracing=True, tracing_exporter="jsonl", tracing_file=str(tmp_path / "spans.jsonl"),
                         plugin_isolation={"meter": mode}, **kw)


def _serve(tmp_path: Path, mode: str,
           calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    from mcp_edge.mcp.connection import Request, ServerConnection
    from mcp_edge.runtime.principal import EMBEDDED
    from mcp_edge.runtime.router import Session
    from mcp_edge.server import Server

    async def main() -> list[Any]:
        running = await Server.configure(_settings(tmp_path, mode)).start()
        outcomes = []
        try:
            router = running.router
            session = Session(ServerConnection(router.info), principal=EMBEDDED)
            for i, (method, params) in enumerate(calls):
                req = Request(i + 1, method, params, "2025-11-25", False,
                              params.get("_meta"))
                outcomes.append(await router.handle(req, session, None))
        finally:
            await running.stop()
        return outcomes

    outcomes = asyncio.run(main())
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    return outcomes, spans


def _call(name: str, args: dict[str, Any], traceparent: str | None = None,
          tracestate: str | None = None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"name": name, "arguments": args}
    if traceparent is not None:
        params["_meta"] = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
    return "tools/call", params


def _hex(value: str) -> str:
    return value.removeprefix("0x")


@pytest.mark.parametrize("mode", ["inproc", "process"])
def test_a_request_span_is_the_child_of_the_clients_traceparent(tmp_path: Path, mode: str) -> None:
    outcomes, spans = _serve(tmp_path, mode, [_call("ok", {"text": "a"}, f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
                                                    "vendor=abc,other=1"),
                                              _call("ok", {"text": "b"})])
    assert all(isinstance(o, Result) for o in outcomes)
    server = [s for s in spans if s["kind"] == "SERVER"]
    assert [s["name"] for s in server] == ["tools/call ok", "tools/call ok"]
    first, second = server
    assert _hex(first["trace_id"]) == TRACE_ID and _hex(first["parent_id"]) == CLIENT_SPAN
    assert first["attributes"]["gen_ai.tool.name"] == "ok" and first["attributes"]["mcp.method.name"] == "tools/call"
    assert first["attributes"]["jsonrpc.request.id"] == "1"
    assert first["trace_state"] == "vendor=abc,other=1"
    assert second["parent_id"] is None and _hex(second["trace_id"]) != TRACE_ID  # a new trace
    workers = [s for s in spans if s["kind"] == "INTERNAL"]
    if mode == "inproc":
        assert workers == []
    else:  # the worker's span of each call: the child of the runtime's, from another process
        assert len(workers) == 2
        for runtime_span, worker_span in zip(server, sorted(workers, key=lambda s: s["start_ns"]), strict=True):
            assert worker_span["trace_id"] == runtime_span["trace_id"]
            assert worker_span["parent_id"] == runtime_span["span_id"]
            assert worker_span["trace_state"] == runtime_span["trace_state"]  # (the optional TLV)
            assert worker_span["name"] == "tool ok" and worker_span["attributes"]["mcp_edge.plugin"] == "meter"
            assert worker_span["resource"]["process.pid"] != runtime_span["resource"]["process.pid"]


@pytest.mark.parametrize("mode", ["inproc", "process"])
def test_a_plugins_own_span_nests_under_the_call(tmp_path: Path, mode: str) -> None:
    outcomes, spans = _serve(tmp_path, mode, [_call("traced", {}, f"00-{TRACE_ID}-{CLIENT_SPAN}-01")])
    (outcome,) = outcomes
    assert isinstance(outcome, Result) and outcome.encoded is not None
    text = json.loads(outcome.encoded)["result"]["content"][0]["text"]
    trace_id, parent = text.split()
    assert trace_id == TRACE_ID
    inner = [s for s in spans if s["name"] == "meter inner"]
    assert len(inner) == 1 and _hex(inner[0]["parent_id"]) == parent
    caller = [s for s in spans if s["span_id"] == parent]
    assert len(caller) == 1 and caller[0]["name"] == ("tool traced" if mode == "process" else "tools/call traced")


def test_an_error_answer_marks_its_span(tmp_path: Path) -> None:
    outcomes, spans = _serve(tmp_path, "inproc", [_call("no_such_tool", {})])
    assert isinstance(outcomes[0], Failure)
    (span,) = spans
    assert span["status"] == "ERROR" and span["status_message"]
    assert span["attributes"]["rpc.jsonrpc.error_code"] == outcomes[0].code


def test_tracing_on_without_opentelemetry_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_edge import server

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("opentelemetry") else real(name, *a))
    with pytest.raises(ConfigError, match=r"opentelemetry.*mcp-edge\[tracing\]"):
        server._tracing(_settings(tmp_path, "inproc"))


@pytest.mark.parametrize(("key", "value", "match"), [
    ("tracing_sample_ratio", 1.5, "0..1"),
    ("tracing_sample_ratio", -0.1, "at least 0"),
    ("tracing_exporter", "zipkin", "one of otlp, jsonl, none"),
])
def test_bad_tracing_settings_are_refused(key: str, value: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings.load(**{key: value}).validate()
