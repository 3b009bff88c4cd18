"""Metrics on a real server: ``GET /metrics`` on HTTP counts the calls made through ``/mcp`` (both isolation
modes), keeps the Host check, is 404 with metrics off (and prometheus-client then never imported); on stdio the
metrics file is written, the last time at the end of serving."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from transport_helpers import (
    HERE,
    WAIT,
    HttpClient,
    initialize,
    notification,
    probe_command,
    request,
    running_server,
    server_env,
)

METER = HERE / "metrics_plugins"


def _settings(**kw: Any) -> dict[str, Any]:
    return {"plugin_dirs": [str(METER)], **kw}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _tool(name: str) -> tuple[tuple[str, str], ...]:
    return (("kind", "tool"), ("name", name), ("plugin", "meter"))


def _call(c: HttpClient, rid: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    reply = c.post(request(rid, "tools/call", {"name": name, "arguments": args}))
    assert reply.status == 200, reply
    body: dict[str, Any] = reply.json()
    return body


@pytest.mark.parametrize("mode", ["inproc", "process"])
def test_metrics_count_the_calls_made_over_http(tmp_path: Path, mode: str) -> None:
    settings = _settings(metrics=True, plugin_isolation={"meter": mode})
    with running_server(tmp_path, "--http", "--port", "0", settings=settings) as srv:
        c = HttpClient(srv.port)
        try:
            c.handshake()
            assert _call(c, 2, "ok", {"text": "a"})["result"]["content"][0]["text"] == "a"
            _call(c, 3, "ok", {"text": "b"})
            assert _call(c, 4, "fail", {})["result"]["isError"] is True
            reply = c.request("GET", path="/metrics")
            assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain"), reply
            samples = _samples(reply.body.decode())
            assert c.request("GET", path="/metrics", headers={"Host": "evil.example"}).status == 403
            assert c.request("POST", b"", path="/metrics").status == 405
        finally:
            c.close()
    assert samples[("mcp_edge_calls_total", _tool("ok"))] == 2
    assert samples[("mcp_edge_call_errors_total", _tool("ok"))] == 0
    assert samples[("mcp_edge_calls_total", _tool("fail"))] == 1
    assert samples[("mcp_edge_call_errors_total", _tool("fail"))] == 1
    assert samples[("mcp_edge_call_duration_seconds_count", _tool("ok"))] == 2
    assert samples[("mcp_edge_plugin_state", (("plugin", "meter"), ("state", "active")))] == 1
    assert samples[("process_open_fds", ())] > 0
    assert (("mcp_edge_ring_unread", (("plugin", "meter"),)) in samples) == (mode == "process")


def test_with_metrics_tracing_tls_and_auth_off_none_of_their_libraries_is_loaded(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings=_settings()) as srv:
        c = HttpClient(srv.port)
        try:
            c.handshake()
            assert c.request("GET", path="/metrics").status == 404
            rid = 2
            for module in ("prometheus_client", "mcp_edge.runtime.metrics", "opentelemetry",
                           "mcp_edge.runtime.tracing", "ssl", "jwt", "mcp_edge.runtime.auth"):
                body = _call(c, rid, "imported", {"module": module})
                assert body["result"]["content"][0]["text"] == "false", module
                rid += 1
        finally:
            c.close()


def test_stdio_writes_the_metrics_file_and_writes_it_last_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "out" / "mcp-edge.prom"
    env = server_env(tmp_path, _settings(metrics=True, metrics_textfile=str(path), metrics_interval_s=3600))
    lines = [initialize(1), notification("notifications/initialized"),
             request(2, "tools/call", {"name": "ok", "arguments": {"text": "x"}}),
             request(3, "tools/call", {"name": "fail", "arguments": {}})]
    done = subprocess.run(probe_command("--stdio"), input="".join(json.dumps(m) + "\n" for m in lines).encode(),
                          capture_output=True, env=env, cwd=tmp_path, timeout=WAIT, check=False)
    assert done.returncode == 0, done.stderr.decode()
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [a.get("id") for a in answers] == [1, 2, 3]
    samples = _samples(path.read_text())  # written at start (no calls yet), then again at the end
    assert samples[("mcp_edge_calls_total", _tool("ok"))] == 1
    assert samples[("mcp_edge_call_errors_total", _tool("fail"))] == 1
    assert not list(path.parent.glob(".*.tmp"))  # replaced atomically, nothing left beside it
