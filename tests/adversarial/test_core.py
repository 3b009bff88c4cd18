"""Issue 7, protocol core (driven in memory): deep nesting (1), a non-object ``_meta`` (2), no exception
escapes the core (4), responses are never answered (5), duplicate in-flight ids (6), the last line at EOF
(7, core part), and an exhaustive product of small odd messages. Odd inputs the core already handled
(ids past 64 bits, odd levels, clientInfo, cancelled ids) are guarded in tests/mcp/test_connection.py."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import pytest

from mcp_edge.mcp import (
    Batch,
    ClientLog,
    ClientResult,
    Event,
    Notification,
    Reply,
    Request,
    ServerConnection,
    ServerInfo,
    jsonrpc,
)
from mcp_edge.mcp.connection import META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION

INFO = ServerInfo(name="adversarial", version="1.0", capabilities={"tools": {}})
MODERN_META = {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}}
CORE_LOG = "mcp_edge.mcp"


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def ready(max_frame: int = 1 << 16) -> ServerConnection:
    """A connection past the handshake."""
    c = ServerConnection(INFO, max_frame=max_frame)
    [reply] = c.receive_data(line({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}))
    assert isinstance(reply, Reply) and not reply.is_error
    assert c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/initialized"})) == []
    return c


def body(ev: Event) -> dict[str, Any]:
    assert isinstance(ev, Reply), ev
    msg: dict[str, Any] = json.loads(ev.data)
    assert msg["jsonrpc"] == "2.0"
    return msg


def error_of(ev: Event) -> tuple[Any, int, str]:
    """(id, code, message) of an error reply."""
    assert isinstance(ev, Reply) and ev.is_error, ev
    msg = body(ev)
    return msg["id"], msg["error"]["code"], msg["error"]["message"]


def assert_alive(c: ServerConnection, rid: Any = "alive") -> None:
    """The session still serves: a ping is answered and a request reaches the router."""
    [pong] = c.receive_data(line({"jsonrpc": "2.0", "id": f"{rid}-ping", "method": "ping"}))
    assert body(pong) == {"jsonrpc": "2.0", "id": f"{rid}-ping", "result": {}}
    [req] = c.receive_data(line({"jsonrpc": "2.0", "id": rid, "method": "tools/list"}))
    assert isinstance(req, Request) and req.id == rid
    c.finished(rid)


# -- 1: deep nesting ----------------------------------------------------------------------------------

DEEP = [
    b"[" * 2000 + b"]" * 2000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":' + b"[" * 5000 + b"]" * 5000 + b"}}",
    b"[" * 100_000,  # never closed, still well inside the frame limit
]


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object", "in-request", "unclosed"])
def test_deep_nesting_is_a_parse_error_on_every_entry(raw: bytes) -> None:
    c = ready(max_frame=1 << 20)
    [ev] = c.receive_data(raw + b"\n")
    assert error_of(ev)[:2] == (None, jsonrpc.PARSE_ERROR)
    [ev] = c.receive_message(raw)
    assert error_of(ev)[:2] == (None, jsonrpc.PARSE_ERROR)
    assert c.receive_data(raw) == []  # no newline yet
    [ev] = c.receive_eof()
    assert error_of(ev)[:2] == (None, jsonrpc.PARSE_ERROR)
    assert_alive(c)


def test_deep_python_object_given_to_receive_object() -> None:
    deep: Any = 1
    for _ in range(100_000):  # deeper than any recursion limit: a repr or a recursive walk would fail
        deep = {"x": deep}
    c = ready()
    events = c.receive_object({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": deep})
    assert len(events) == 1
    assert_alive(c)


def nested(depth: int, *, key: str = "params", rid: Any = 1, method: str | None = "tools/call") -> dict[str, Any]:
    """A message whose arrays and objects nest exactly ``depth`` levels (the envelope is level 1)."""
    inner: Any = 0
    for _ in range(depth - 2 if key == "params" else depth - 1):
        inner = [inner]
    msg: dict[str, Any] = {"jsonrpc": "2.0", key: {"arguments": inner} if key == "params" else inner}
    if rid is not None:
        msg["id"] = rid
    if method is not None:
        msg["method"] = method
    return msg


@pytest.mark.parametrize("limit", [8, 64])
def test_nesting_past_the_limit_is_refused_with_its_id(limit: int) -> None:
    c = ready(max_frame=1 << 20)
    c.max_depth = limit
    def as_line(msg: Any) -> list[Event]:
        return c.receive_data(line(msg))

    for feed in (as_line, c.receive_object):
        [ok] = feed(nested(limit))
        assert isinstance(ok, Request)
        c.finished(1)
        [ev] = feed(nested(limit + 1))
        rid, code, message = error_of(ev)
        assert (rid, code) == (1, jsonrpc.INVALID_REQUEST) and f"{limit} levels" in message
        assert not c.inflight
    assert_alive(c)


def test_decodable_but_deep_message_is_refused_before_the_router() -> None:
    """900 levels decode (msgspec stops near 1,000), but a recursive validator or encoder deeper in the
    stack would not survive them: the core refuses the message before it reaches anyone."""
    c = ready(max_frame=1 << 20)
    raw = b'{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{"arguments":' + b"[" * 900 + b"]" * 900 + b"}}"
    [ev] = c.receive_data(raw + b"\n")
    assert error_of(ev)[:2] == ("deep", jsonrpc.INVALID_REQUEST)
    assert not c.inflight


def test_deep_response_fails_its_request_and_deep_notification_is_dropped() -> None:
    c = ready(max_frame=1 << 20)
    [ev] = c.receive_data(line(nested(200, key="result", rid="mcp-edge-1", method=None)))
    assert isinstance(ev, ClientResult) and ev.id == "mcp-edge-1" and ev.result is None
    assert isinstance(ev.error, dict) and isinstance(ev.error["code"], int)
    assert c.receive_data(line(nested(200, key="result", rid=None, method=None))) == []
    assert c.receive_data(line(nested(200, rid=None, method="notifications/x"))) == []
    assert_alive(c)


# -- framing: a line trickled in small chunks is searched once ----------------------------------------------

class CountingBuffer(bytearray):
    """A bytearray that counts the bytes its ``find`` calls search."""

    searched = 0

    def find(self, sub: Any, start: Any = 0, *args: Any) -> int:
        CountingBuffer.searched += len(self) - (start or 0)
        return super().find(sub, start, *args)


def test_trickled_line_is_searched_once() -> None:
    """A 256 KiB line in 16-byte chunks: searching the whole buffer again for every chunk is quadratic
    (about 2 GB of memchr here, a frozen event loop at the 4 MiB limit)."""
    c = ready(max_frame=1 << 20)
    c._buffer = CountingBuffer()
    CountingBuffer.searched = 0
    data = line({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"pad": "x" * (256 * 1024)}})
    events: list[Event] = []
    for i in range(0, len(data), 16):
        events += c.receive_data(data[i : i + 16])
    assert [type(e) for e in events] == [Request]
    assert CountingBuffer.searched <= 2 * len(data)


# -- 2: params._meta that is not an object ------------------------------------------------------------

BAD_META = [5, True, "x", [], [META_PROTOCOL_VERSION], 1.5, False, META_PROTOCOL_VERSION]


@pytest.mark.parametrize("meta", BAD_META, ids=repr)
@pytest.mark.parametrize("method", ["ping", "tools/list", "initialize", "tools/call"])
def test_non_object_meta_is_invalid_params(meta: Any, method: str) -> None:
    c = ready()
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}}))
    rid, code, message = error_of(ev)
    assert (rid, code) == (1, jsonrpc.INVALID_PARAMS) and "_meta" in message
    assert not c.inflight
    assert_alive(c)


@pytest.mark.parametrize("meta", BAD_META, ids=repr)
def test_non_object_meta_before_initialize_and_stateless(meta: Any) -> None:
    c = ServerConnection(INFO)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": "a", "method": "ping", "params": {"_meta": meta}}))
    assert error_of(ev)[:2] == ("a", jsonrpc.INVALID_PARAMS)
    [ev] = c.receive_object({"jsonrpc": "2.0", "id": "b", "method": "tools/list", "params": {"_meta": meta}},
                            modern=True)
    assert error_of(ev)[:2] == ("b", jsonrpc.INVALID_PARAMS)
    # a notification with it gets no reply, and the lifecycle is untouched
    assert c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/x", "params": {"_meta": meta}})) == []
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": "p", "method": "ping"}))
    assert body(ev)["result"] == {}


# -- 4: no exception escapes; an internal error is -32603 and one log line ------------------------------

def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


def _core_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CORE_LOG and r.levelno >= logging.WARNING]


def test_exception_in_request_handling_is_internal_error(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    c = ready()
    monkeypatch.setattr(ServerConnection, "_request", _boom)
    with caplog.at_level(logging.DEBUG, logger=CORE_LOG):
        [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 41, "method": "tools/list"}))
    assert error_of(ev)[:2] == (41, jsonrpc.INTERNAL_ERROR)
    [record] = _core_lines(caplog)
    assert "RuntimeError" in record.getMessage() and "\n" not in record.getMessage()
    monkeypatch.undo()
    assert_alive(c)


def test_exception_in_notification_handling_is_logged_not_answered(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    c = ready()
    monkeypatch.setattr(ServerConnection, "_notification", _boom)
    with caplog.at_level(logging.WARNING, logger=CORE_LOG):
        assert c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})) == []
        assert c.receive_message(b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {}}') == []
    assert len(_core_lines(caplog)) == 2
    monkeypatch.undo()
    assert_alive(c)


def test_exception_after_the_request_was_registered_frees_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    c = ready()
    real = ServerConnection._emit

    def emit_then_fail(self: ServerConnection, request: Request) -> Request:
        real(self, request)
        raise RuntimeError("lost after registration")

    monkeypatch.setattr(ServerConnection, "_emit", emit_then_fail)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}))
    assert error_of(ev)[:2] == (5, jsonrpc.INTERNAL_ERROR)
    assert not c.inflight  # its event was lost, so nobody would ever call finished(5)
    monkeypatch.undo()
    assert_alive(c, 5)


def test_decoder_failure_of_any_kind_is_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    c = ready()
    for exc in (RecursionError("deep"), MemoryError(), ValueError("odd"), OverflowError("big")):
        def fail(_data: Any, exc: BaseException = exc) -> Any:
            raise exc
        monkeypatch.setattr(jsonrpc, "decode", fail)
        [ev] = c.receive_data(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n')
        assert error_of(ev)[:2] == (None, jsonrpc.PARSE_ERROR)
    monkeypatch.undo()
    assert_alive(c)


@pytest.mark.parametrize("obj", [
    {"jsonrpc": "2.0", "id": "\ud800", "method": "ping"},           # an id UTF-8 cannot encode
    {"jsonrpc": "2.0", "id": 1, "method": "nope\udfff"},            # a method that cannot be echoed
    {"jsonrpc": "2.0", "id": 10 ** 5000, "method": "ping"},        # past Python's int-to-str digit limit
    {"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "\ud800" * 3}},
    {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": "\udc80"}},
], ids=["surrogate-id", "surrogate-method", "huge-int-id", "surrogate-level", "surrogate-version"])
def test_python_objects_that_cannot_be_encoded_do_not_raise(obj: dict[str, Any]) -> None:
    c = ready()
    events = c.receive_object(obj)
    assert len(events) <= 1
    for ev in events:
        if isinstance(ev, Reply):
            body(ev)  # valid JSON-RPC bytes
        elif isinstance(ev, Request):
            c.finished(ev.id)
    assert_alive(c)


class HostileDict(dict[str, Any]):
    def get(self, *_args: Any) -> Any:
        raise RuntimeError("get")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str")

    def __repr__(self) -> str:
        raise RuntimeError("repr")


def test_hostile_python_objects_do_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    c = ready()
    [ev] = c.receive_object(HostileDict(jsonrpc="2.0", id=1, method="ping"))
    assert error_of(ev)[:2] == (None, jsonrpc.INTERNAL_ERROR)

    def raise_bad(*_args: Any) -> Any:
        raise BadStr()

    monkeypatch.setattr(ServerConnection, "_request", raise_bad)
    [ev] = c.receive_object({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert error_of(ev)[:2] == (2, jsonrpc.INTERNAL_ERROR)
    monkeypatch.undo()
    [ev] = c.receive_message(memoryview(b'{"jsonrpc": "2.0", "id": 3, "method": "ping"}'))
    assert body(ev)["id"] == 3
    assert_alive(c)


# -- 5: a response is never answered -------------------------------------------------------------------

BAD_IDS = [None, True, False, 1.5, [], {}, [1], {"id": 1}]
ENDINGS = [{"result": {}}, {"result": None}, {"error": {"code": -1, "message": "m"}}, {"error": None},
           {"error": 5}, {"error": "text"}, {"error": {"code": "x", "message": 5}}, {"error": {}},
           {"result": 1, "error": {"code": 1, "message": "both"}}]


@pytest.mark.parametrize("ending", ENDINGS, ids=repr)
@pytest.mark.parametrize("rid", BAD_IDS, ids=repr)
@pytest.mark.parametrize("version", ["2.0", "1.0", None])
def test_response_with_unusable_id_is_dropped_and_logged(rid: Any, ending: dict[str, Any], version: str | None,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    c = ready()
    msg: dict[str, Any] = {"id": rid, **ending}
    if version is not None:
        msg["jsonrpc"] = version
    with caplog.at_level(logging.WARNING, logger=CORE_LOG):
        assert c.receive_data(line(msg)) == []
        assert c.receive_object(msg) == []
    assert len(_core_lines(caplog)) == 2  # one line per dropped response
    assert_alive(c)


def test_a_flood_of_dropped_responses_is_thinned_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    c = ready()
    with caplog.at_level(logging.DEBUG, logger=CORE_LOG):
        for _ in range(1000):
            assert c.receive_data(b'{"jsonrpc": "2.0", "id": null, "error": {"code": 1, "message": "m"}}\n') == []
    loud = _core_lines(caplog)
    # the first 16, then the 32nd, 64th ... 512th: every one still at DEBUG
    assert len(loud) == 16 + 5 and "512 such lines" in loud[-1].getMessage()
    assert len([r for r in caplog.records if r.name == CORE_LOG]) == 1000
    shared = ClientLog()  # shared by connections that belong together (stateless HTTP requests)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=CORE_LOG):
        for _ in range(100):
            ServerConnection(INFO, client_log=shared).receive_object({"jsonrpc": "2.0", "id": None, "result": 1})
    assert len(_core_lines(caplog)) == 16 + 2


def test_response_without_id_member_is_dropped() -> None:
    c = ready()
    assert c.receive_data(line({"jsonrpc": "2.0", "error": {"code": -32600, "message": "x"}})) == []
    assert c.receive_data(line({"jsonrpc": "2.0", "result": {}})) == []


@pytest.mark.parametrize("rid", ["mcp-edge-1", 7, 0, -3, 2 ** 80, ""], ids=repr)
def test_error_null_response_fails_the_request_it_answers(rid: Any) -> None:
    """{"error": null} with no result answers nothing: the router must see a failure, not a None result."""
    c = ready()
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": rid, "error": None}))
    assert isinstance(ev, ClientResult) and ev.id == rid
    assert isinstance(ev.error, dict) and isinstance(ev.error["code"], int)


def test_response_with_wrong_version_fails_the_request_it_answers() -> None:
    c = ready()
    [ev] = c.receive_data(line({"jsonrpc": "1.0", "id": "mcp-edge-1", "result": {"ok": True}}))
    assert isinstance(ev, ClientResult) and ev.id == "mcp-edge-1"
    assert isinstance(ev.error, dict) and ev.error["code"] == jsonrpc.INVALID_REQUEST
    [ev] = c.receive_data(line({"id": 3, "error": {"code": 1, "message": "no jsonrpc member"}}))
    assert isinstance(ev, ClientResult) and isinstance(ev.error, dict)


def test_response_id_equal_to_an_inflight_request_id_is_still_delivered() -> None:
    c = ready()
    [req] = c.receive_data(line({"jsonrpc": "2.0", "id": 9, "method": "tools/call"}))
    assert isinstance(req, Request)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 9, "result": {}}))  # our ids and theirs are apart
    assert ev == ClientResult(9, {}, None)
    assert c.inflight == {9}


STARTERS = [
    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid"}},
    {"jsonrpc": "2.0", "id": None, "result": {}},
    {"jsonrpc": "1.0", "id": 1, "error": {"code": -32600, "message": "x"}},
    {"jsonrpc": "2.0", "id": True, "error": {"code": "x"}},
    {"jsonrpc": "2.0", "id": None, "method": "ping"},
    [1, 2],
    "text",
]


@pytest.mark.parametrize("starter", STARTERS, ids=repr)
def test_two_peers_cannot_ping_pong(starter: Any) -> None:
    """Two of our connections wired back to back: whatever starts it, the exchange dies out at once."""
    a, b = ready(), ready()
    wire = [line(starter)]
    for _round in range(6):
        peer = (a, b)[_round % 2]
        out: list[bytes] = []
        for data in wire:
            for ev in peer.receive_data(data):
                if isinstance(ev, Reply):
                    out.append(ev.data + b"\n")
        wire = out
        if not wire:
            break
    assert wire == [], f"still bouncing after 6 rounds: {wire!r}"
    is_response = isinstance(starter, dict) and "method" not in starter
    # a response gets no answer at all; anything else one error reply, which is a response itself
    assert _round == (0 if is_response else 1)


# -- 6: duplicate in-flight ids ---------------------------------------------------------------------------

def test_duplicate_inflight_id_is_refused_with_null_id() -> None:
    c = ready()
    [req] = c.receive_data(line({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "slow"}}))
    assert isinstance(req, Request) and c.inflight == {7}
    for dup in ({"method": "tools/call", "params": {"name": "x"}}, {"method": "ping"},
                {"method": "logging/setLevel", "params": {"level": "debug"}}, {"method": "initialize"},
                {"method": "tools/list", "params": {"_meta": 5}}, {"method": 5}, {}):
        [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 7, **dup}))
        rid, code, message = error_of(ev)
        assert (rid, code) == (None, jsonrpc.INVALID_REQUEST) and "7" in message and "in flight" in message
    [ev] = c.receive_data(line({"jsonrpc": "1.0", "id": 7, "method": "ping"}))
    assert error_of(ev)[0] is None
    [other] = c.receive_data(line({"jsonrpc": "2.0", "id": "7", "method": "tools/list"}))  # "7" is not 7
    assert isinstance(other, Request) and c.inflight == {7, "7"}
    c.finished(7)
    c.finished(7)  # idempotent
    [pong] = c.receive_data(line({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
    assert body(pong) == {"jsonrpc": "2.0", "id": 7, "result": {}}
    [again] = c.receive_data(line({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}))
    assert isinstance(again, Request) and c.inflight == {7, "7"}


def test_duplicate_id_in_one_read_and_in_stateless_and_discover() -> None:
    c = ServerConnection(INFO)
    two = line({"jsonrpc": "2.0", "id": "d", "method": "server/discover"}) * 2
    first, second = c.receive_data(two)
    assert isinstance(first, Request) and error_of(second)[0] is None
    c.finished("d")
    m = {"jsonrpc": "2.0", "id": 2 ** 70, "method": "tools/list", "params": {"_meta": MODERN_META}}
    first, second = c.receive_data(line(m) * 2)
    assert isinstance(first, Request) and first.id == 2 ** 70 and error_of(second)[0] is None
    assert c.inflight == {2 ** 70}


def test_duplicate_ids_inside_a_batch() -> None:
    """2025-03-26 batches: each message goes through the same checks, so a repeated id is refused with id
    null there too, and a batch of responses gets no answer at all."""
    c = ServerConnection(INFO)
    c.receive_data(line({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}))
    c.receive_data(line({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    [batch] = c.receive_data(line([{"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                                   {"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                                   {"jsonrpc": "2.0", "id": 7, "method": "ping"},
                                   {"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}}]))
    assert isinstance(batch, Batch)
    assert [type(e) for e in batch.events] == [Request] and c.inflight == {7}
    assert [json.loads(a)["id"] for a in batch.answers] == [None, None]
    [quiet] = c.receive_data(line([{"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}},
                                   {"jsonrpc": "2.0", "id": "mcp-edge-1", "result": {}}]))
    assert isinstance(quiet, Batch) and quiet.encode() is None
    [deep] = c.receive_data(b"[" + b"[" * 100 + b"]" * 100 + b"]\n")  # too deep as a whole: one error
    assert error_of(deep)[:2] == (None, jsonrpc.INVALID_REQUEST)


def test_every_request_event_is_in_flight_and_only_those() -> None:
    c = ServerConnection(INFO)
    [ev] = c.receive_data(line({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
    assert isinstance(ev, Reply) and not c.inflight  # answered by the core itself: nothing in flight
    c = ready()
    ids = [f"r{i}" for i in range(50)]
    events = c.receive_data(b"".join(line({"jsonrpc": "2.0", "id": i, "method": "tools/list"}) for i in ids))
    assert [e.id for e in events if isinstance(e, Request)] == ids and c.inflight == set(ids)
    for i in ids:
        c.finished(i)
    assert not c.inflight


# -- 7 (core part): the last line at EOF -------------------------------------------------------------------

def test_last_line_without_newline_is_served_at_eof() -> None:
    c = ready()
    assert c.receive_data(b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}\n{"jsonrpc": "2.0", "id"') == [
        Request(1, "tools/list", {}, "2025-06-18", False)]
    assert c.receive_data(b': 2, "method": "tools/call"}') == []
    [ev] = c.receive_eof()
    assert isinstance(ev, Request) and ev.id == 2 and c.inflight == {1, 2}
    assert c.receive_eof() == []  # the buffer is empty after


@pytest.mark.parametrize("tail", [b"", b"   \r", b"\r\n  "])
def test_blank_tail_at_eof_gives_nothing(tail: bytes) -> None:
    c = ready()
    c.receive_data(tail)
    assert c.receive_eof() == []


def test_eof_after_an_oversized_unterminated_frame() -> None:
    c = ready(max_frame=1024)
    [ev] = c.receive_data(b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"a": "' + b"x" * 2000)
    assert "frame limit" in error_of(ev)[2]
    c.receive_data(b"y" * 100)
    assert c.receive_eof() == []  # its tail was refused already
    assert c.receive_data(b'{"jsonrpc": "2.0", "id": 2, "method": "ping"}') == []
    [ev] = c.receive_eof()
    assert body(ev)["id"] == 2


def test_eof_tail_at_exactly_the_frame_limit() -> None:
    msg = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "'
    end = b'"}}'
    c = ready(max_frame=256)
    exact = msg + b"x" * (256 - len(msg) - len(end)) + end
    assert len(exact) == 256
    assert c.receive_data(exact) == []
    [ev] = c.receive_eof()
    assert isinstance(ev, Request)
    c = ready(max_frame=255)
    [ev] = c.receive_data(exact)  # one byte over: refused as it arrives, nothing left for EOF
    assert "frame limit" in error_of(ev)[2] and c.receive_eof() == []


# -- exhaustive small cases: every combination of a few odd members ----------------------------------------

_ABSENT = object()
_IDS: list[Any] = [_ABSENT, None, 0, -1, 2 ** 70, "x", "", True, 1.5, [], {}]
_METHODS: list[Any] = [_ABSENT, None, "ping", "initialize", "tools/list", "logging/setLevel", "server/discover",
                       "notifications/initialized", "notifications/cancelled", 5, ""]
_PARAMS: list[Any] = [_ABSENT, None, {}, [], 5, "s", {"_meta": 5}, {"_meta": []}, {"_meta": None},
                      {"_meta": MODERN_META}, {"_meta": {META_PROTOCOL_VERSION: 5}}, {"level": []},
                      {"requestId": [], "protocolVersion": 5}]
_ENDS: list[dict[str, Any]] = [{}, {"result": {}}, {"error": {"code": "x"}}, {"error": None}]
_VERSIONS: list[Any] = ["2.0", _ABSENT, 2.0]


def _cases() -> list[dict[str, Any]]:
    out = []
    for rid, method, params, end, version in itertools.product(_IDS, _METHODS, _PARAMS, _ENDS, _VERSIONS):
        msg: dict[str, Any] = dict(end)
        for key, value in (("jsonrpc", version), ("id", rid), ("method", method), ("params", params)):
            if value is not _ABSENT:
                msg[key] = value
        out.append(msg)
    return out


@pytest.mark.parametrize("fresh", [False, True], ids=["ready", "idle"])
def test_exhaustive_small_messages_keep_every_invariant(fresh: bool) -> None:
    c = ServerConnection(INFO) if fresh else ready()
    # one id stays in flight throughout
    c.receive_data(line({"jsonrpc": "2.0", "id": "held", "method": "tools/call", "params": {"_meta": MODERN_META}}))
    held = {"held"}
    assert c.inflight == held
    for msg in _cases():
        is_response = msg.get("method") is None and ("result" in msg or "error" in msg)
        raw_id = msg.get("id")
        usable = isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool)
        for as_bytes in (True, False):
            events = c.receive_data(line(msg)) if as_bytes else c.receive_object(msg)
            assert len(events) <= 1, (msg, events)
            for ev in events:
                if isinstance(ev, Reply):
                    assert not is_response, f"answered a response: {msg!r} -> {ev.data!r}"
                    out = body(ev)
                    assert out["id"] is None or (usable and out["id"] == raw_id and raw_id not in held), (msg, out)
                    if "error" in out:
                        assert isinstance(out["error"]["code"], int) and isinstance(out["error"]["message"], str)
                elif isinstance(ev, Request):
                    assert ev.id == raw_id and ev.id in c.inflight and isinstance(ev.params, dict)
                    c.finished(ev.id)
                elif isinstance(ev, ClientResult):
                    assert is_response and ev.id == raw_id
                else:
                    assert isinstance(ev, Notification) or type(ev).__name__ == "CancelRequest"
                    assert "id" not in msg
        assert c.inflight == held
