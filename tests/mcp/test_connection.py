"""The sans-I/O protocol core: framing, lifecycle table, both eras, errors that keep the connection alive."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from mcp_edge.mcp import (
    CancelRequest,
    ClientResult,
    ConnState,
    Notification,
    Reply,
    Request,
    ServerConnection,
    ServerInfo,
    jsonrpc,
)
from mcp_edge.mcp.connection import (
    META_CLIENT_CAPABILITIES,
    META_LOG_LEVEL,
    META_PROTOCOL_VERSION,
    UNSUPPORTED_VERSION,
)

INFO = ServerInfo(name="test", version="1.0", capabilities={"tools": {"listChanged": True}}, instructions="be nice")


def conn(max_frame: int = 4096) -> ServerConnection:
    return ServerConnection(INFO, max_frame=max_frame)


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def initialize(c: ServerConnection, version: str = "2025-11-25") -> dict[str, Any]:
    [reply] = c.receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "0"}}}))
    assert isinstance(reply, Reply)
    result: dict[str, Any] = json.loads(reply.data)["result"]
    c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    return result


def error_of(ev: object) -> dict[str, Any]:
    assert isinstance(ev, Reply) and ev.is_error
    err: dict[str, Any] = json.loads(ev.data)["error"]
    return err


def test_core_imports_no_io() -> None:
    code = (
        "import sys; import mcp_edge.mcp; "
        "bad = {'socket', 'asyncio', 'selectors', 'ssl'} & set(sys.modules); "
        "own = [m for m in sys.modules if m.startswith('mcp_edge.mcp')]; "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for name in ("connection", "jsonrpc", "versions"):
        src = (__import__("pathlib").Path(__file__).parents[2] / "mcp_edge" / "mcp" / f"{name}.py").read_text()
        for mod in ("socket", "asyncio", "os"):
            assert f"import {mod}\n" not in src and f"from {mod} " not in src


def test_initialize_negotiates_and_moves_through_states() -> None:
    c = conn()
    assert c.state is ConnState.IDLE
    result = initialize(c, "2025-06-18")
    assert result["protocolVersion"] == "2025-06-18"
    assert result["serverInfo"]["name"] == "test"
    assert result["capabilities"] == INFO.capabilities
    assert result["instructions"] == "be nice"
    assert c.state is ConnState.READY
    assert c.client_capabilities == {"sampling": {}}


@pytest.mark.parametrize("asked", ["1999-01-01", "2026-07-28"])
def test_unknown_version_gets_our_latest(asked: str) -> None:
    assert initialize(conn(), asked)["protocolVersion"] == "2025-11-25"


def test_request_before_initialize_is_an_error_and_connection_lives() -> None:
    c = conn()
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}))
    err = error_of(ev)
    assert err["code"] == jsonrpc.INVALID_REQUEST and "before initialize" in err["message"]
    initialize(c)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}))
    assert isinstance(ev, Request) and ev.method == "tools/list" and ev.version == "2025-11-25"


def test_second_initialize_refused() -> None:
    c = conn()
    initialize(c)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}))
    assert "already initialized" in error_of(ev)["message"]


def test_ping_in_any_state() -> None:
    [ev] = conn().receive_data(line({"jsonrpc": "2.0", "id": "p", "method": "ping"}))
    assert isinstance(ev, Reply) and json.loads(ev.data) == {"jsonrpc": "2.0", "id": "p", "result": {}}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", jsonrpc.PARSE_ERROR),
        (b"[1, 2]", jsonrpc.INVALID_REQUEST),
        (b'"text"', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}', jsonrpc.INVALID_PARAMS),
        (b'{"jsonrpc": "2.0", "id": 1}', jsonrpc.INVALID_REQUEST),
    ],
)
def test_malformed_messages_get_errors_and_connection_lives(raw: bytes, code: int) -> None:
    c = conn()
    initialize(c)
    [ev] = c.receive_data(raw + b"\n")
    assert error_of(ev)["code"] == code
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    assert isinstance(ev, Request)


def test_oversized_frame_is_refused_then_next_served() -> None:
    c = conn(max_frame=2048)
    initialize(c)
    big = b'{"jsonrpc": "2.0", "id": 3, "method": "x", "params": {"a": "' + b"x" * 5000 + b'"}}'
    events = c.receive_data(big[:3000])  # the limit is hit before the newline arrives
    assert "frame limit" in error_of(events[0])["message"]
    assert c.receive_data(big[3000:] + b"\n") == []  # the rest of that frame is dropped
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
    assert isinstance(ev, Request) and ev.id == 4


def test_split_and_coalesced_frames() -> None:
    c = conn()
    initialize(c)
    data = line({"jsonrpc": "2.0", "id": 1, "method": "a"}) + line({"jsonrpc": "2.0", "id": 2, "method": "b"})
    events = []
    for i in range(0, len(data), 7):
        events += c.receive_data(data[i : i + 7])
    assert [e.method for e in events if isinstance(e, Request)] == ["a", "b"]
    assert c.receive_data(b"\r\n\n") == []


def test_notifications_and_cancel_and_client_results() -> None:
    c = conn()
    initialize(c)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                "params": {"requestId": 7, "reason": "user"}}))
    assert ev == CancelRequest(7, "user")
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}))
    assert isinstance(ev, Notification)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 99, "result": {"ok": 1}}))
    assert ev == ClientResult(99, {"ok": 1}, None)


def test_set_level_and_wants_log() -> None:
    c = conn()
    initialize(c)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "error"}}))
    assert isinstance(ev, Reply) and not ev.is_error
    assert not c.wants_log("warning") and c.wants_log("critical")
    assert c.wants_log("debug", request_level="debug")
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "loud"}}))
    assert error_of(ev)["code"] == jsonrpc.INVALID_PARAMS


MODERN = {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}}


def test_stateless_request_needs_no_handshake() -> None:
    c = conn()
    meta = {**MODERN, META_LOG_LEVEL: "debug", "progressToken": "t1"}
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}))
    assert isinstance(ev, Request) and ev.stateless and ev.version == "2026-07-28"
    assert ev.progress_token == "t1"
    assert c.state is ConnState.IDLE


def test_stateless_unsupported_version() -> None:
    meta = {**MODERN, META_PROTOCOL_VERSION: "2030-01-01"}
    [ev] = conn().receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}))
    err = error_of(ev)
    assert err["code"] == UNSUPPORTED_VERSION
    assert err["data"] == {"supported": ["2026-07-28"], "requested": "2030-01-01"}


@pytest.mark.parametrize("meta", [
    {META_PROTOCOL_VERSION: "2026-07-28"},  # no clientCapabilities
    {META_PROTOCOL_VERSION: 2026, META_CLIENT_CAPABILITIES: {}},
    {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: []},
])
def test_stateless_meta_must_be_complete(meta: dict[str, Any]) -> None:
    [ev] = conn().receive_object({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}},
                                 modern=True)
    assert error_of(ev)["code"] == jsonrpc.INVALID_PARAMS


@pytest.mark.parametrize("method", ["initialize", "ping", "logging/setLevel", "resources/subscribe"])
def test_methods_removed_in_2026_are_not_found(method: str) -> None:
    [ev] = conn().receive_data(line({"jsonrpc": "2.0", "id": 8, "method": method, "params": {"_meta": MODERN}}))
    assert isinstance(ev, Reply) and json.loads(ev.data)["id"] == 8
    assert error_of(ev)["code"] == jsonrpc.METHOD_NOT_FOUND


def test_discover_before_handshake() -> None:
    [ev] = conn().receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "server/discover"}))
    assert isinstance(ev, Request) and ev.method == "server/discover"


# -- odd but decodable input the core has always survived (guards; issue 7 review) ---------------------

def ready() -> ServerConnection:
    c = conn(max_frame=1 << 16)
    initialize(c)
    return c


def test_null_meta_is_no_meta() -> None:
    [ev] = ready().receive_data(line({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": None}}))
    assert isinstance(ev, Request) and ev.meta is None and not ev.stateless


@pytest.mark.parametrize("rid", [2 ** 63, 2 ** 64, -(2 ** 64) - 1, 10 ** 40, -(10 ** 40), int("9" * 4300), ""])
def test_ids_past_64_bits_round_trip(rid: int | str) -> None:
    c = ready()
    raw = b'{"jsonrpc": "2.0", "id": ' + json.dumps(rid).encode() + b', "method": "ping"}\n'
    [ev] = c.receive_data(raw)
    assert isinstance(ev, Reply) and json.loads(ev.data)["id"] == rid
    [req] = c.receive_data(raw.replace(b"ping", b"tools/list"))
    assert isinstance(req, Request) and req.id == rid and c.inflight == {rid}
    assert jsonrpc.decode(c.respond(req.id, {}))["id"] == rid


def test_id_with_too_many_digits_is_a_parse_error() -> None:
    c = ready()
    [ev] = c.receive_data(b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "ping"}\n')
    assert isinstance(ev, Reply) and json.loads(ev.data)["id"] is None
    assert error_of(ev)["code"] == jsonrpc.PARSE_ERROR


@pytest.mark.parametrize("level", [None, 5, [], {}, ["debug"], {"debug": 1}, True, "DEBUG", "", "x" * 10_000])
def test_set_level_with_odd_levels(level: Any) -> None:
    c = ready()
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": level}}))
    err = error_of(ev)
    assert err["code"] == jsonrpc.INVALID_PARAMS and len(err["message"]) < 300  # a long value is cut short
    assert c.log_level == "info"


@pytest.mark.parametrize("params", [
    {"protocolVersion": "2025-06-18", "clientInfo": 5},
    {"protocolVersion": "2025-06-18", "clientInfo": {"name": ["x"], "version": {}}},
    {"protocolVersion": "2025-06-18", "capabilities": None},
    {"protocolVersion": ["2025-06-18"]},
    {"protocolVersion": "2025-06-18", "clientInfo": {"name": "\u0000" * 5}, "capabilities": {"x": [1] * 1000}},
    {},
])
def test_initialize_with_odd_params(params: dict[str, Any]) -> None:
    [ev] = conn().receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}))
    assert isinstance(ev, Reply) and json.loads(ev.data)["id"] == 1


@pytest.mark.parametrize("params", [
    {"requestId": None}, {"requestId": True}, {"requestId": 1.5}, {"requestId": []}, {"requestId": {}},
    {"requestId": 1, "reason": 5}, {"requestId": 2 ** 90}, {}, {"reason": "why"}, {"_meta": 5, "requestId": 1},
])
def test_cancelled_with_odd_ids_never_answers(params: dict[str, Any]) -> None:
    c = ready()
    events = c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}))
    assert not any(isinstance(e, Reply) for e in events)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": "p", "method": "ping"}))
    assert isinstance(ev, Reply) and not ev.is_error


@pytest.mark.parametrize("ending", [
    {"result": {}}, {"result": None}, {"error": {"code": -1, "message": "m"}}, {"error": 5}, {"error": "text"},
    {"error": {"code": "x", "message": 5}}, {"error": {}}, {"result": 1, "error": {"code": 1, "message": "both"}},
], ids=repr)
@pytest.mark.parametrize("rid", ["mcp-edge-1", 7, 0, -3, 2 ** 80, ""], ids=repr)
def test_response_is_delivered_as_it_came(rid: Any, ending: dict[str, Any]) -> None:
    """The router judges a response's contents (a malformed error fails the request it answers)."""
    [ev] = ready().receive_data(line({"jsonrpc": "2.0", "id": rid, **ending}))
    assert ev == ClientResult(rid, ending.get("result"), ending.get("error"))


@pytest.mark.parametrize("starter", [{"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "2.0", "id": 1, "method": 5}])
def test_error_reply_to_a_peer_like_us_ends_there(starter: dict[str, Any]) -> None:
    a, b = ready(), ready()
    [ev] = a.receive_data(line(starter))
    assert isinstance(ev, Reply) and ev.is_error
    assert [type(e) for e in b.receive_data(ev.data + b"\n")] == [ClientResult]


def test_wide_shallow_messages_and_brackets_in_strings_pass() -> None:
    c = conn(max_frame=1 << 22)
    initialize(c)
    wide = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"arguments": {"rows": [{"a": [1, 2], "b": {"c": 3}} for _ in range(20_000)]}}}
    [ev] = c.receive_data(line(wide))
    assert isinstance(ev, Request)
    brackets = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"text": "[{" * 50_000}}
    [ev] = c.receive_data(line(brackets))
    assert isinstance(ev, Request)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_every_chunking_frames_the_same(chunk: int) -> None:
    stream = (b'{"jsonrpc":"2.0","id":1,"method":"a"}\r\n\n  \n{"jsonrpc":"2.0","id":2,"method":"b"}\n'
              + b'{"jsonrpc":"2.0","id":3,"method":"c","params":{"pad":"' + b"x" * 300 + b'"}}\n'
              + b'{"jsonrpc":"2.0","id":4,"method":"d"}\n{"jsonrpc":"2.0","id":5,"method":"e"}')
    c = conn(max_frame=200)
    initialize(c)
    events: list[Any] = []
    for i in range(0, len(stream), chunk):
        events += c.receive_data(stream[i : i + chunk])
    events += c.receive_eof()
    summary = [e.method if isinstance(e, Request) else error_of(e)["code"] for e in events]
    assert summary == ["a", "b", jsonrpc.INVALID_REQUEST, "d", "e"]
