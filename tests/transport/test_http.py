"""Streamable HTTP transport: ``mcp-edge serve --http`` in a subprocess, real sockets, http.client."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transport_helpers import (
    ACCEPT_BOTH,
    STATELESS,
    WAIT,
    HttpClient,
    ServerProcess,
    initialize,
    notification,
    raw_exchange,
    request,
    running_server,
    sse_messages,
    stateless_meta,
)


@pytest.fixture
def client(http_server: ServerProcess) -> Iterator[HttpClient]:
    c = HttpClient(http_server.port)
    try:
        yield c
    finally:
        c.close()


def _call(name: str, args: dict[str, Any] | None = None, rid: int = 2, meta: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": args or {}}
    if meta:
        params["_meta"] = meta
    return request(rid, "tools/call", params)


# --- the handshake era: sessions --------------------------------------------------------------------------


def test_session_lifecycle(client: HttpClient) -> None:
    reply = client.handshake()
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["result"]["protocolVersion"] == "2025-11-25"
    sid = client.session
    assert sid is not None and re.fullmatch(r"[\x21-\x7e]{16,}", sid)

    listed = client.post(request(2, "tools/list"), {"MCP-Protocol-Version": "2025-11-25"})
    assert listed.status == 200 and listed.headers["content-type"] == "application/json"
    assert {"echo", "progress", "slow", "shout", "touch"} <= {t["name"] for t in listed.json()["result"]["tools"]}
    assert client.post(request(3, "ping")).json()["result"] == {}

    # a client's answer, and a notification: 202 with no body
    accepted = client.post({"jsonrpc": "2.0", "id": "x", "result": {}})
    assert (accepted.status, accepted.body) == (202, b"")

    deleted = client.request("DELETE", headers={"Mcp-Session-Id": sid})
    assert deleted.status in (200, 204)
    gone = client.post(request(4, "ping"))
    assert gone.status == 404 and gone.json()["error"]["message"].startswith("session not found")


def test_each_initialize_gets_its_own_session(client: HttpClient) -> None:
    ids = {client.post(initialize(i), session=False).headers["mcp-session-id"] for i in range(3)}
    assert len(ids) == 3


def test_failed_initialize_opens_no_session(client: HttpClient) -> None:
    reply = client.post(request(1, "initialize", {"capabilities": {}}), session=False)
    assert reply.status == 200 and reply.json()["error"]["code"] == -32602
    assert "mcp-session-id" not in reply.headers


def test_requests_need_a_known_session(client: HttpClient) -> None:
    missing = client.post(request(1, "tools/list"), session=False)
    assert missing.status == 400 and missing.json()["error"]["code"] == -32000
    unknown = client.post(request(1, "tools/list"), {"Mcp-Session-Id": "no-such-session"})
    assert unknown.status == 404
    assert client.request("GET", headers={"Accept": "text/event-stream"}).status == 400
    assert client.request("DELETE", headers={"Mcp-Session-Id": "nope"}).status == 404


def test_request_before_initialized_notification_and_double_initialize(client: HttpClient) -> None:
    reply = client.post(initialize(), session=False)
    client.session = reply.headers["mcp-session-id"]
    again = client.post(initialize(2))  # on the session: the core refuses a second handshake
    assert again.status == 200 and again.json()["error"]["code"] == -32600


# --- status codes of the transport --------------------------------------------------------------------------


def test_accept_and_content_type_are_checked(client: HttpClient) -> None:
    body = json.dumps(initialize()).encode()
    only_json = client.request("POST", body, {"Accept": "application/json", "Content-Type": "application/json"})
    assert only_json.status == 406
    assert client.request("POST", body, {"Accept": "*/*", "Content-Type": "application/json"}).status == 200
    assert client.request("POST", body, {"Accept": ACCEPT_BOTH, "Content-Type": "text/plain"}).status == 415
    assert client.request("GET", headers={"Accept": "application/json"}).status == 406


def test_unknown_paths_and_methods(client: HttpClient) -> None:
    assert client.request("GET", path="/").status == 404
    assert client.request("POST", b"{}", {"Content-Type": "application/json"}, path="/other").status == 404
    put = client.request("PUT", b"{}")
    assert put.status == 405 and set(put.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST", "DELETE"}


def test_malformed_json_gets_a_parse_error_and_the_connection_lives_on(client: HttpClient) -> None:
    client.handshake()
    hdrs = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "Mcp-Session-Id": client.session or ""}
    bad = client.request("POST", b'{"jsonrpc": "2.0", "id": 1,', hdrs)
    assert bad.status == 400 and bad.json()["error"]["code"] == -32700 and bad.json()["id"] is None
    batch = client.request("POST", b"[]", hdrs)
    assert batch.status == 400 and batch.json()["error"]["code"] == -32600
    no_method = client.post({"jsonrpc": "2.0", "id": 9})
    assert no_method.status == 200 and no_method.json()["error"]["code"] == -32600
    assert client.post(request(2, "ping")).json()["result"] == {}  # same keep-alive connection


def test_protocol_version_header(client: HttpClient) -> None:
    client.handshake()
    assert client.post(request(2, "ping"), {"MCP-Protocol-Version": "2025-06-18"}).status == 200
    # an unknown version is no handshake-era version: served as 2026-07-28, whose _meta is missing
    unknown = client.post(request(3, "tools/list"), {"MCP-Protocol-Version": "1999-01-01", "Mcp-Method": "tools/list"})
    assert unknown.status == 400 and unknown.json()["error"]["code"] == -32602


def test_host_and_origin_are_checked(client: HttpClient, http_server: ServerProcess) -> None:
    body = json.dumps(initialize()).encode()
    base = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
    port = http_server.port
    assert client.request("POST", body, {**base, "Host": "evil.example.com"}).status == 403
    assert client.request("POST", body, {**base, "Host": f"evil.example.com:{port}"}).status == 403
    evil = client.request("POST", body, {**base, "Origin": "http://evil.example.com"})
    assert evil.status == 403 and evil.json()["error"]["message"].startswith("forbidden")
    assert client.request("POST", body, {**base, "Origin": "null"}).status == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert client.request("POST", body, {**base, "Host": host}).status == 200, host
    ok = client.request("POST", body, {**base, "Origin": f"http://localhost:{port}"})
    assert ok.status == 200 and ok.headers["access-control-allow-origin"] == f"http://localhost:{port}"
    no_host = raw_exchange(port, b"POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", read_until_close=False)
    assert no_host.startswith(b"HTTP/1.1 400")


def test_allowed_origins_setting(tmp_path: Path) -> None:
    with running_server(tmp_path, "--port", "0", settings={"allowed_origins": ["https://app.example.com"]}) as srv:
        c = HttpClient(srv.port)
        body = json.dumps(initialize()).encode()
        base = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        assert c.request("POST", body, {**base, "Origin": "https://app.example.com"}).status == 200
        assert c.request("POST", body, {**base, "Host": "app.example.com"}).status == 200
        assert c.request("POST", body, {**base, "Origin": "https://other.example.com"}).status == 403
        pre = c.request("OPTIONS", headers={"Origin": "https://app.example.com",
                                            "Access-Control-Request-Method": "POST"})
        assert pre.status == 204 and "mcp-session-id" in pre.headers["access-control-allow-headers"]
        c.close()


def test_body_limit(tmp_path: Path) -> None:
    with running_server(tmp_path, "--port", "0", settings={"max_body": 4096}) as srv:
        c = HttpClient(srv.port)
        c.handshake()
        big = _call("echo", {"text": "x" * 10000})
        too_large = c.post(big)
        assert too_large.status == 413 and too_large.json()["error"]["code"] == -32600
        # a chunked body is cut off at the limit too, not read to its end
        c2 = HttpClient(srv.port)
        hdrs = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "Mcp-Session-Id": c.session or ""}
        c2.conn.putrequest("POST", "/mcp")
        for k, v in hdrs.items():
            c2.conn.putheader(k, v)
        c2.conn.putheader("Transfer-Encoding", "chunked")
        c2.conn.endheaders()
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            piece = data[i:i + 1000]
            c2.conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        c2.conn.send(b"0\r\n\r\n")
        assert c2.conn.getresponse().status == 413
        c2.close()
        # under the limit all is well, on a new connection
        c3 = HttpClient(srv.port)
        c3.session = c.session
        assert c3.post(_call("echo", {"text": "y" * 1000})).status == 200
        c.close()
        c3.close()


def test_malformed_http_is_refused(http_server: ServerProcess) -> None:
    reply = raw_exchange(http_server.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    huge = b"GET /mcp HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    assert raw_exchange(http_server.port, huge).startswith(b"HTTP/1.1 431")
    upgrade = (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
               b"Content-Type: application/json\r\nAccept: " + ACCEPT_BOTH.encode() +
               b"\r\nContent-Length: 2\r\n\r\n{}")
    assert raw_exchange(http_server.port, upgrade).startswith(b"HTTP/1.1 400")


def test_pipelined_requests_are_answered_in_order(http_server: ServerProcess) -> None:
    c = HttpClient(http_server.port)
    c.handshake()
    sid = c.session or ""
    c.close()

    def post(msg: dict[str, Any], close: bool = False) -> bytes:
        body = json.dumps(msg).encode()
        return (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n"
                b"Content-Type: application/json\r\nMcp-Session-Id: " + sid.encode() +
                (b"\r\nConnection: close" if close else b"") +
                b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    data = post(_call("slow", {"seconds": 0.2}, rid=1)) + post(request(2, "ping")) + post(request(3, "ping"), True)
    out = raw_exchange(http_server.port, data)
    ids = [int(m) for m in re.findall(rb'"id":(\d+)', out)]
    assert ids == [1, 2, 3], out


# --- responses as SSE, the GET stream, cancellation -----------------------------------------------------------


def test_progress_turns_the_response_into_sse(client: HttpClient) -> None:
    client.handshake()
    reply = client.post(_call("progress", {"steps": 3}, rid=7, meta={"progressToken": "tok"}))
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
    assert b"event: message\ndata: " in reply.body and reply.body.endswith(b"\n\n")
    msgs = reply.events()
    assert [m.get("method") for m in msgs[:3]] == ["notifications/progress"] * 3
    assert [m["params"]["progress"] for m in msgs[:3]] == [1, 2, 3]
    assert msgs[-1]["id"] == 7 and msgs[-1]["result"]["content"][0]["text"] == "done"
    # without a progress token the same tool answers plain JSON
    plain = client.post(_call("progress", {"steps": 3}, rid=8))
    assert plain.headers["content-type"] == "application/json" and plain.json()["id"] == 8


def test_log_messages_stream_before_the_result(client: HttpClient) -> None:
    client.handshake()
    assert client.post(request(2, "logging/setLevel", {"level": "debug"})).json()["result"] == {}
    msgs = client.post(_call("shout", {"text": "hey"}, rid=3)).events()
    assert msgs[0]["method"] == "notifications/message" and msgs[0]["params"]["data"] == {"shout": "hey"}
    assert msgs[-1]["id"] == 3


def _open_stream(port: int, sid: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    conn.request("GET", "/mcp", headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type") == "text/event-stream"
    assert resp.readline() == b": stream open\n" and resp.readline() == b"\n"
    return conn, resp


def _next_message(resp: http.client.HTTPResponse) -> dict[str, Any]:
    block = b""
    while not block.endswith(b"\n\n"):
        line = resp.readline()
        if not line:
            raise AssertionError("stream ended")
        if line.startswith(b":") and not block:
            resp.readline()  # a comment (ping) and its blank line
            continue
        block += line
    (msg,) = sse_messages(block)
    return msg


def test_get_stream_receives_resource_updates(client: HttpClient, http_server: ServerProcess) -> None:
    client.handshake()
    sid = client.session or ""
    assert client.post(request(2, "resources/subscribe", {"uri": "probe://counter"})).json()["result"] == {}
    conn, resp = _open_stream(http_server.port, sid)
    try:
        other = HttpClient(http_server.port)  # touch from another session: notifications follow subscriptions
        other.handshake()
        assert other.post(_call("touch", {"uri": "probe://counter"}, rid=3)).status == 200
        assert client.post(_call("touch", {"uri": "probe://unwatched"}, rid=4)).status == 200
        assert client.post(_call("touch", {"uri": "probe://counter"}, rid=5)).status == 200
        first, second = _next_message(resp), _next_message(resp)
        assert first == second == {"jsonrpc": "2.0", "method": "notifications/resources/updated",
                                   "params": {"uri": "probe://counter"}}
        # a second GET replaces the first, which ends
        conn2, resp2 = _open_stream(http_server.port, sid)
        assert resp.read() == b""
        assert client.post(_call("touch", {"uri": "probe://counter"}, rid=6)).status == 200
        assert _next_message(resp2)["params"] == {"uri": "probe://counter"}
        # DELETE ends the session and its stream
        assert client.request("DELETE", headers={"Mcp-Session-Id": sid}).status in (200, 204)
        assert resp2.read() == b""
        conn2.close()
        other.close()
    finally:
        conn.close()


def test_cancelled_request_ends_its_response_without_a_result(client: HttpClient, http_server: ServerProcess) -> None:
    client.handshake()
    slow = HttpClient(http_server.port)
    slow.session = client.session
    result: dict[str, Any] = {}

    def call() -> None:
        result["reply"] = slow.post(_call("slow", {"seconds": 60}, rid=42))

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + WAIT
    while t.is_alive() and time.monotonic() < deadline:  # cancel until the request is there to cancel
        cancel = client.post(notification("notifications/cancelled", {"requestId": 42}))
        assert cancel.status == 202
        t.join(0.1)
    t.join(WAIT)
    reply = result["reply"]
    assert reply.status == 200 and reply.events() == []
    assert slow.post(request(43, "ping")).json()["id"] == 43  # that connection still works
    slow.close()


def test_concurrent_requests_on_one_session(client: HttpClient, http_server: ServerProcess) -> None:
    client.handshake()
    replies: list[Any] = []

    def call(rid: int) -> None:
        c = HttpClient(http_server.port)
        c.session = client.session
        replies.append(c.post(request(rid, "tools/list")))
        c.close()

    threads = [threading.Thread(target=call, args=(1000 + i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(r.json()["id"] for r in replies) == [1000, 1001, 1002]
    assert all(r.status == 200 for r in replies)


# --- sessions are bounded -----------------------------------------------------------------------------------


def test_idle_sessions_are_reaped(tmp_path: Path) -> None:
    with running_server(tmp_path, "--port", "0", settings={"session_idle_s": 0.3}) as srv:
        c = HttpClient(srv.port)
        sessions = [c.post(initialize(i), session=False).headers["mcp-session-id"] for i in range(40)]
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not re.search(r"reaped \d+ idle session\(s\); 0 left", srv.stderr()):
            time.sleep(0.05)
        assert re.search(r"reaped \d+ idle session\(s\); 0 left", srv.stderr()), srv.stderr()
        for sid in sessions[:3] + sessions[-3:]:
            assert c.post(request(1, "ping"), {"Mcp-Session-Id": sid}).status == 404
        c.close()


def test_session_count_is_bounded(tmp_path: Path) -> None:
    # session_min_idle_s 0: any idle session may be evicted (tests/adversarial/test_http.py covers the minimum age)
    with running_server(tmp_path, "--port", "0", settings={"max_sessions": 3, "session_min_idle_s": 0}) as srv:
        c = HttpClient(srv.port)
        sessions = [c.post(initialize(i), session=False).headers["mcp-session-id"] for i in range(5)]
        alive = [c.post(request(1, "ping"), {"Mcp-Session-Id": sid}).status for sid in sessions]
        assert alive == [404, 404, 200, 200, 200]  # the least recently used went first
        # a session with its GET stream open is never evicted: with all three streaming, a fourth is refused
        streams = [_open_stream(srv.port, sid) for sid in sessions[2:]]
        refused = c.post(initialize(9), session=False)
        assert refused.status == 503 and "retry-after" in refused.headers
        for conn, _ in streams:
            conn.close()
        deadline = time.monotonic() + WAIT
        while (status := c.post(initialize(10), session=False).status) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200
        c.close()


# --- the stateless era (2026-07-28) ----------------------------------------------------------------------------


def test_stateless_request_needs_no_session(client: HttpClient) -> None:
    reply = client.stateless(1, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}, name="echo")
    assert reply.status == 200 and "mcp-session-id" not in reply.headers
    result = reply.json()["result"]
    assert result["content"][0]["text"] == "hi" and result["resultType"] == "complete"
    listed = client.stateless(2, "tools/list")
    assert listed.status == 200 and "ttlMs" in listed.json()["result"]
    # an Mcp-Session-Id, even a bogus one, is ignored
    assert client.stateless(3, "tools/list", headers={"Mcp-Session-Id": "bogus"}).status == 200
    # a name in the =?base64?...?= form is decoded before comparing
    assert client.stateless(4, "tools/call", {"name": "echo", "arguments": {"text": "x"}},
                            name="=?base64?ZWNobw==?=").status == 200


def test_stateless_routing_headers_must_match(client: HttpClient) -> None:
    call = {"name": "echo", "arguments": {"text": "hi"}}
    wrong_method = client.stateless(1, "tools/call", call, name="echo", headers={"Mcp-Method": "tools/list"})
    assert wrong_method.status == 400 and wrong_method.json()["error"]["code"] == -32020
    assert wrong_method.json()["id"] == 1
    wrong_name = client.stateless(2, "tools/call", call, name="other")
    assert wrong_name.status == 400 and wrong_name.json()["error"]["code"] == -32020
    missing_name = client.stateless(3, "tools/call", call)
    assert missing_name.status == 400 and missing_name.json()["error"]["code"] == -32020
    no_headers = client.post(request(4, "tools/list", {"_meta": stateless_meta()}), session=False)
    assert no_headers.status == 400 and no_headers.json()["error"]["code"] == -32020
    assert client.stateless(5, "tools/call", call, name=" echo ").status == 200  # whitespace is trimmed


def test_stateless_errors_map_to_http_statuses(client: HttpClient) -> None:
    unknown = client.stateless(1, "ping")
    assert unknown.status == 404 and unknown.json()["error"]["code"] == -32601 and unknown.json()["id"] == 1
    meta = {**stateless_meta(), "io.modelcontextprotocol/protocolVersion": "v999.0.0"}
    bad_version = client.post(request(2, "tools/list", {"_meta": meta}),
                              {"MCP-Protocol-Version": "v999.0.0", "Mcp-Method": "tools/list"}, session=False)
    assert bad_version.status == 400 and bad_version.json()["error"]["code"] == -32022
    assert bad_version.json()["error"]["data"]["requested"] == "v999.0.0"
    tool_error = client.stateless(3, "tools/call", {"name": "no-such-tool"}, name="no-such-tool")
    assert tool_error.status == 400 and tool_error.json()["error"]["code"] == -32602
    for method in ("GET", "DELETE"):
        refused = client.request(method, headers={"MCP-Protocol-Version": STATELESS, "Accept": "text/event-stream"})
        assert refused.status == 405 and refused.headers["allow"] == "POST"


def test_stateless_progress_streams_and_closing_the_stream_cancels(http_server: ServerProcess) -> None:
    c = HttpClient(http_server.port)
    msgs = c.stateless(1, "tools/call", {"name": "progress", "arguments": {"steps": 2},
                                         "_meta": {"progressToken": 5}}, name="progress").events()
    assert [m.get("method") for m in msgs] == ["notifications/progress"] * 2 + [None]
    # a listen stream: acknowledged at once, then closed by the client, which cancels it on the server
    body = json.dumps(request("sub", "subscriptions/listen",
                              {"notifications": {"toolsListChanged": True}, "_meta": stateless_meta()})).encode()
    with socket.create_connection(("127.0.0.1", http_server.port), timeout=WAIT) as sock:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: " + ACCEPT_BOTH.encode() +
                     b"\r\nContent-Type: application/json\r\nMCP-Protocol-Version: " + STATELESS.encode() +
                     b"\r\nMcp-Method: subscriptions/listen\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        seen = b""
        while b"subscriptions/acknowledged" not in seen:
            chunk = sock.recv(65536)
            assert chunk, seen
            seen += chunk
        assert seen.startswith(b"HTTP/1.1 200") and b"text/event-stream" in seen
    assert c.stateless(2, "tools/list").status == 200  # and the server is fine
    c.close()


def test_sigterm_stops_the_server_with_a_stream_open(tmp_path: Path) -> None:
    with running_server(tmp_path, "--port", "0") as srv:
        c = HttpClient(srv.port)
        c.handshake()
        conn, resp = _open_stream(srv.port, c.session or "")
        assert srv.stop() == 0
        assert resp.read() == b""
        conn.close()
        c.close()
        assert "stopped" in srv.stderr()
