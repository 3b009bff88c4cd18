"""The pure helpers of perf/bench_mcp.py: requests, answers, HTTP/1.1 and SSE parsing, percentiles, /proc text.

No servers and no timing here: the bench itself runs under ``mcp-edge perf``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import mcp_edge
from mcp_edge.perf.harness import load_bench

CHECKOUT = Path(mcp_edge.__file__).resolve().parents[1]
BENCH = CHECKOUT / "perf" / "bench_mcp.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_mcp.py is not in this checkout")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("mcp", BENCH)


def _answer(req_id: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "result": {"content": [{"type": "text", "text": text}], **extra}}


# -- cases and requests -----------------------------------------------------------------------------------


def test_case_names(bench: ModuleType) -> None:
    assert bench.THROUGHPUT_CASES == ("stdio-seq", "stdio-pipelined", "http-seq", "http-pipelined")
    assert tuple(f"{c}-2026" for c in bench.THROUGHPUT_CASES) == bench.MODERN_CASES
    assert [p.name for p in bench.PEERS] == ["mcp-sdk", "fastmcp"]
    assert bench.BUILTIN_PLUGINS == ("fs", "sysinfo", "logs", "native_hello")


def test_echo_request_handshake_era(bench: ModuleType) -> None:
    msg = json.loads(bench.echo_request(7))
    assert msg == {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": bench.ECHO_TEXT}}}
    assert b" " not in bench.echo_request(7).replace(bench.ECHO_TEXT.encode(), b"")  # compact
    assert b"\n" not in bench.echo_request(7)


def test_echo_request_2026_carries_meta(bench: ModuleType) -> None:
    msg = json.loads(bench.echo_request(3, bench.MODERN))
    meta = msg["params"]["_meta"]
    assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
    assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    disc = json.loads(bench.discover_request(0))
    assert disc["method"] == "server/discover" and disc["params"]["_meta"] == meta


def test_initialize_request(bench: ModuleType) -> None:
    msg = json.loads(bench.initialize_request(0))
    assert msg["id"] == 0 and msg["method"] == "initialize"
    assert msg["params"]["protocolVersion"] == "2025-11-25"
    assert json.loads(bench.INITIALIZED) == {"jsonrpc": "2.0", "method": "notifications/initialized"}


@pytest.mark.parametrize("req_id", [0, 1, 9, 10, 12345, 10**12])
def test_request_template_equals_the_full_encoding(bench: ModuleType, req_id: int) -> None:
    for protocol in (bench.HANDSHAKE, bench.MODERN):
        tpl = bench.RequestTemplate(lambda i, p=protocol: bench.echo_request(i, p), b"\n")
        assert tpl(req_id) == bench.echo_request(req_id, protocol) + b"\n"


def test_request_template_needs_the_id_once(bench: ModuleType) -> None:
    with pytest.raises(ValueError):
        bench.RequestTemplate(lambda i: b'{"id":1}')
    with pytest.raises(ValueError):
        bench.RequestTemplate(lambda i: f'{{"id":{i},"x":{i}}}'.encode())


def test_http_post_bytes(bench: ModuleType) -> None:
    raw = bench.http_post("127.0.0.1", 8765, b'{"a":1}', {"Mcp-Session-Id": "abc"})
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /mcp HTTP/1.1"
    assert "Host: 127.0.0.1:8765" in lines
    assert "Accept: application/json, text/event-stream" in lines
    assert "Content-Type: application/json" in lines
    assert "Mcp-Session-Id: abc" in lines
    assert "Content-Length: 7" in lines
    assert body == b'{"a":1}'


# -- answers ----------------------------------------------------------------------------------------------


def test_check_echo_accepts_every_server_s_shape(bench: ModuleType) -> None:
    text = bench.ECHO_TEXT
    assert bench.check_echo(_answer(5, text), 5) is None
    assert bench.check_echo(_answer(5, text, isError=False, structuredContent={"result": text}), 5) is None
    assert bench.check_echo(_answer(5, text, resultType="complete", _meta={}), 5) is None


@pytest.mark.parametrize(("msg", "needle"), [
    ([], "not a JSON object"),
    ({"jsonrpc": "2.0", "id": 4, "result": {}}, "id 4"),
    ({"jsonrpc": "2.0", "id": 5, "error": {"code": -32601, "message": "nope"}}, "JSON-RPC error"),
    ({"jsonrpc": "2.0", "id": 5, "result": {"content": []}}, "no text content"),
    ({"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": "x"}], "isError": True}},
     "tool error"),
    ({"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": "other"}]}}, "echoed 'other'"),
])
def test_check_echo_names_the_problem(bench: ModuleType, msg: Any, needle: str) -> None:
    problem = bench.check_echo(msg, 5)
    assert problem is not None and needle in problem


# -- statistics and /proc ---------------------------------------------------------------------------------


def test_percentile_nearest_rank(bench: ModuleType) -> None:
    values = list(range(1, 101))
    assert bench.percentile(values, 0.5) == 50
    assert bench.percentile(values, 0.99) == 99
    assert bench.percentile(values, 1.0) == 100
    assert bench.percentile([7], 0.99) == 7
    assert bench.percentile([1, 2], 0.5) == 1
    assert bench.percentile(list(range(1000)), 0.99) == 989
    with pytest.raises(ValueError):
        bench.percentile([], 0.5)
    with pytest.raises(ValueError):
        bench.percentile([1], 0.0)


def test_parse_vmrss(bench: ModuleType) -> None:
    status = "Name:\tpython\nVmPeak:\t  30000 kB\nVmRSS:\t   25876 kB\nRssAnon:\t 9000 kB\n"
    assert bench.parse_vmrss_kib(status) == 25876
    assert bench.parse_vmrss_kib("Name:\tkthreadd\nState:\tS\n") is None


def test_import_ms_is_best_minus_best(bench: ModuleType) -> None:
    assert bench.import_ms([20_000_000, 15_000_000], [95_000_000, 90_000_000]) == 75.0
    assert bench.import_ms([20_000_000], [19_000_000]) == 0.0


def test_rotate(bench: ModuleType) -> None:
    assert bench.rotate(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert bench.rotate(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert bench.rotate(["a", "b", "c"], 5) == ["c", "a", "b"]
    assert bench.rotate([], 3) == []


def test_split_lines_keeps_the_partial_tail(bench: ModuleType) -> None:
    buf = bytearray(b'{"a":1}\n\n{"b":2}\n{"c"')
    assert bench.split_lines(buf) == [b'{"a":1}', b'{"b":2}']
    assert buf == bytearray(b'{"c"')
    assert bench.split_lines(buf) == []
    buf += b":3}\n"
    assert bench.split_lines(buf) == [b'{"c":3}']
    assert buf == bytearray()


def test_placement(bench: ModuleType) -> None:
    assert bench.placement("split", [3, 1, 2]) == ({1}, {2})
    assert bench.placement("same", [3, 1]) == ({1}, {1})
    assert bench.placement("none", [0, 1]) is None
    assert bench.placement("split", [0]) is None  # one CPU: nothing to split
    assert bench.placement("same", [5]) == ({5}, {5})
    with pytest.raises(ValueError, match="split, same or none"):
        bench.placement("both", [0, 1])


def test_board_profile_loads_and_lists_only_the_bench_plugins(bench: ModuleType, tmp_path: Path) -> None:
    from mcp_edge.board.profiles import load

    path = tmp_path / "perf-mcp.toml"
    plugins = tmp_path / "with space" / "plugins"
    path.write_text(bench.board_profile(plugins, tmp_path / "data", "x86_64"))
    board = load(path)
    assert board.id == bench.BOARD_ID
    assert board.plugin_dirs == (plugins,)
    assert board.data_dir == tmp_path / "data"


def test_plugin_times(bench: ModuleType) -> None:
    rows = [{"id": "runtime", "state": "active", "load_ms": 0.1, "init_ms": 0.1},
            {"id": "fs", "state": "active", "load_ms": 4.5, "init_ms": 0.25},
            {"id": "bad", "state": "failed", "reason": "boom", "load_ms": None, "init_ms": None}]
    assert bench.plugin_times(rows, "fs") == (4.5, 0.25)
    with pytest.raises(ValueError, match="failed: boom"):
        bench.plugin_times(rows, "bad")
    with pytest.raises(ValueError, match="not in the list"):
        bench.plugin_times(rows, "echo")
    with pytest.raises(ValueError):
        bench.plugin_times({}, "fs")


def test_bench_echo_plugin_is_declared() -> None:
    import tomllib

    manifest = tomllib.loads((CHECKOUT / "perf" / "plugins" / "echo" / "plugin.toml").read_text())
    assert manifest["plugin"]["id"] == "echo"
    assert (CHECKOUT / "perf" / "plugins" / "echo" / "plugin.py").is_file()


# -- HTTP/1.1 ---------------------------------------------------------------------------------------------

SSE_EVENT = b'event: message\r\ndata: {"id":1}\r\n\r\n'
SSE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: s1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    + b"%x;ext=1\r\n" % 5 + SSE_EVENT[:5] + b"\r\n"
    + b"%X\r\n" % (len(SSE_EVENT) - 5) + SSE_EVENT[5:] + b"\r\n"
    + b"0\r\nX-Trailer: t\r\n\r\n"
)
JSON_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":2}"
ACCEPTED = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


def test_parser_content_length_and_chunked(bench: ModuleType) -> None:
    p = bench.HttpResponseParser()
    got = p.feed(SSE_RESPONSE + JSON_RESPONSE + ACCEPTED + NO_CONTENT)
    assert [r.status for r in got] == [200, 200, 202, 204]
    assert got[0].header("MCP-Session-Id") == "s1"
    assert got[0].body == SSE_EVENT
    assert got[1].body == b'{"id":2}'
    assert got[2].body == b"" and got[3].body == b""
    assert p.idle


def test_parser_any_split(bench: ModuleType, rng: Any) -> None:
    stream = SSE_RESPONSE + JSON_RESPONSE + ACCEPTED + SSE_RESPONSE
    whole = bench.HttpResponseParser().feed(stream)
    for _ in range(50):
        p = bench.HttpResponseParser()
        got = []
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, 9)
            got += p.feed(stream[pos : pos + step])
            pos += step
        assert [(r.status, r.headers, r.body) for r in got] == [(r.status, r.headers, r.body) for r in whole]
    p = bench.HttpResponseParser()
    got = [r for i in range(len(stream)) for r in p.feed(stream[i : i + 1])]
    assert len(got) == 4 and p.idle


def test_parser_interim_and_repeated_headers(bench: ModuleType) -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok")
    (resp,) = bench.HttpResponseParser().feed(raw)
    assert resp.status == 200 and resp.body == b"ok"
    assert resp.header("set-cookie") == "a=1, b=2"


def test_parser_body_until_close(bench: ModuleType) -> None:
    p = bench.HttpResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"id\"") == []
    assert p.feed(b":3}") == []
    (resp,) = p.feed_eof()
    assert resp.body == b'{"id":3}'


@pytest.mark.parametrize("raw", [
    b"SPDY/3 200 OK\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
])
def test_parser_rejects_garbage(bench: ModuleType, raw: bytes) -> None:
    with pytest.raises(ValueError):
        bench.HttpResponseParser().feed(raw)


def test_parser_eof_mid_response(bench: ModuleType) -> None:
    p = bench.HttpResponseParser()
    p.feed(JSON_RESPONSE[:-3])
    with pytest.raises(ValueError, match="middle of a response"):
        p.feed_eof()
    assert bench.HttpResponseParser().feed_eof() == []


# -- SSE and JSON-RPC bodies ------------------------------------------------------------------------------


def test_sse_data(bench: ModuleType) -> None:
    body = (b": keep-alive\r\n\r\nevent: message\r\nid: 1\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n"
            b"retry: 100\ndata:\n\ndata: last")
    assert bench.sse_data(body) == [b'{"a":\n1}', b"", b"last"]
    assert bench.sse_data(b"") == []


def test_rpc_messages(bench: ModuleType) -> None:
    (sse,) = bench.HttpResponseParser().feed(SSE_RESPONSE)
    assert bench.rpc_messages(sse) == [{"id": 1}]
    (js,) = bench.HttpResponseParser().feed(JSON_RESPONSE)
    assert bench.rpc_messages(js) == [{"id": 2}]
    batch = bench.HttpResponse(200, {"content-type": "application/json; charset=utf-8"}, b'[{"id":1},{"id":2}]')
    assert bench.rpc_messages(batch) == [{"id": 1}, {"id": 2}]
    assert bench.rpc_messages(bench.HttpResponse(202, {}, b"")) == []
    primed = bench.HttpResponse(200, {"content-type": "text/event-stream"}, b"id: 0\ndata:\n\ndata: {\"id\":9}\n\n")
    assert bench.rpc_messages(primed) == [{"id": 9}]
    with pytest.raises(ValueError, match="Content-Type"):
        bench.rpc_messages(bench.HttpResponse(200, {"content-type": "text/html"}, b"<html>"))


def test_random_sse_round_trip(bench: ModuleType, rng: random.Random) -> None:
    msgs = [{"id": i, "text": "x" * rng.randint(0, 50)} for i in range(rng.randint(1, 8))]
    body = b"".join(b"event: message\r\ndata: " + json.dumps(m).encode() + b"\r\n\r\n" for m in msgs)
    assert bench.rpc_messages(bench.HttpResponse(200, {"content-type": "text/event-stream"}, body)) == msgs
