"""Adversarial HTTP clients (issue 7, cases 9, 11, 12, 13, 16, 21 and two mutation survivors).

Every test runs a real ``mcp-edge serve --http`` process and talks to it over loopback sockets, as an attacker
would: odd request lines, endless headers, clients that dribble one byte at a time, floods of connections and
sessions, a process out of file descriptors. Waits are bounded (``WAIT``); nothing asserts on timing.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from transport_helpers import (
    ACCEPT_BOTH,
    PROBE,
    STATELESS,
    WAIT,
    HttpClient,
    ServerProcess,
    initialize,
    notification,
    raw_exchange,
    request,
    running_server,
    server_env,
    stateless_meta,
)

MiB = 1024 * 1024


# --- helpers -----------------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path, "--http", "--port", "0") as srv:
        yield srv


def _status_lines(data: bytes) -> list[int]:
    """The status codes of every response in ``data`` (pipelined responses follow each other's bodies)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) [A-Z]", data)]


def _proc_kib(pid: int, key: str) -> int:
    """A ``Vm*`` figure of /proc/<pid>/status in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{key} not in /proc/{pid}/status")


_LEFTOVER: dict[int, bytes] = {}  # bytes of the next (pipelined) response, per socket


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body (or none) from ``sock``."""
    buf = _LEFTOVER.pop(id(sock), b"")
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        body += chunk
    if len(body) > length:
        _LEFTOVER[id(sock)] = body[length:]
    return status, headers, body[:length]


def _post_bytes(msg: Any, target: str = "/mcp", host: str = "127.0.0.1", extra: bytes = b"",
                version: bytes = b"HTTP/1.1") -> bytes:
    body = json.dumps(msg).encode()
    return (f"POST {target} ".encode() + version + b"\r\nHost: " + host.encode() + b"\r\nAccept: " +
            ACCEPT_BOTH.encode() + b"\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _closed_by_server(sock: socket.socket, limit_s: float = WAIT) -> bytes:
    """Everything the server sends until it closes the connection (bounded by ``limit_s``)."""
    sock.settimeout(limit_s)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except (TimeoutError, ConnectionResetError):
        return out


# --- case 9: odd request lines and heads ---------------------------------------------------------------------


def test_upgrade_and_connect_get_exactly_one_response(server: ServerProcess) -> None:
    # the Accept header is not enough for a POST (406 on its own): the upgrade must still get one answer only
    upgrade = (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
               b"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: 2\r\n\r\n{}")
    assert _status_lines(raw_exchange(server.port, upgrade)) == [400]
    connect = b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"
    assert _status_lines(raw_exchange(server.port, connect)) == [400]
    websocket = (b"GET /other HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert _status_lines(raw_exchange(server.port, websocket)) == [400]


def test_host_with_junk_after_an_ipv6_literal_is_refused(server: ServerProcess) -> None:
    c = HttpClient(server.port)
    for host in ("[::1]evil.com", f"[::1]evil.com:{server.port}", "[::1]:", "[::1", "local host", "localhost:x"):
        reply = c.post(initialize(), {"Host": host}, session=False)
        assert reply.status in (400, 403), (host, reply.status)
        assert "mcp-session-id" not in reply.headers
    assert c.post(initialize(), {"Host": f"[::1]:{server.port}"}, session=False).status == 200
    c.close()


def test_absolute_form_target_is_served_and_its_authority_checked(server: ServerProcess) -> None:
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(_post_bytes(initialize(), target=f"http://127.0.0.1:{port}/mcp", host=f"127.0.0.1:{port}"))
        status, headers, body = _read_response(sock)
        assert status == 200 and json.loads(body)["result"]["protocolVersion"], body
        assert "mcp-session-id" in headers
        # the target's authority replaces Host (RFC 9112 3.2.2): a foreign authority is refused like a foreign Host
        sock.sendall(_post_bytes(initialize(2), target="http://evil.example.com/mcp", host=f"127.0.0.1:{port}"))
        status, _, _ = _read_response(sock)
        assert status == 403
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(_post_bytes(initialize(), target=f"http://localhost:{port}/other", host=f"127.0.0.1:{port}"))
        assert _read_response(sock)[0] == 404


def test_accept_with_q_zero_does_not_accept(server: ServerProcess) -> None:
    c = HttpClient(server.port)
    body = json.dumps(initialize()).encode()
    ctype = {"Content-Type": "application/json"}
    for accept in ("application/json, text/event-stream;q=0", "application/json;q=0, text/event-stream",
                   "*/*, text/event-stream; q=0.000", "application/json, text/event-stream;Q=0.0"):
        assert c.request("POST", body, {**ctype, "Accept": accept}).status == 406, accept
    for accept in ("application/json;q=0.5, text/event-stream;q=0.001", "*/*;q=0.1"):
        assert c.request("POST", body, {**ctype, "Accept": accept}).status == 200, accept
    assert c.request("GET", headers={"Accept": "text/event-stream;q=0"}).status == 406
    c.close()


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.1", b"HTTP/0.9"])
def test_non_http1_request_line_gets_505_and_close(server: ServerProcess, version: bytes) -> None:
    out = raw_exchange(server.port, _post_bytes(initialize(), version=version))
    assert _status_lines(out) == [505], out
    assert b"protocolVersion" not in out


def test_http2_preface_gets_505(server: ServerProcess) -> None:
    out = raw_exchange(server.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert _status_lines(out) == [505], out


def test_pipelined_requests_refused_on_their_head_do_not_stall_the_connection(server: ServerProcess) -> None:
    # each is answered from its head alone (400: no Host); reading paused behind the first must resume
    data = b"POST /mcp HTTP/1.1\r\n\r\n" * 3
    out = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the client's EOF: seen only if reading resumed
        while chunk := sock.recv(65536):  # a TimeoutError here: the server never read on
            out += chunk
    assert _status_lines(out) == [400, 400, 400], out


# --- case 21: Origin '*' keeps the Host check ----------------------------------------------------------------


def test_any_origin_keeps_dns_rebinding_protection(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings={"allowed_origins": ["*"]}) as srv:
        c = HttpClient(srv.port)
        rebound = c.post(initialize(), {"Host": "evil.com", "Origin": "http://evil.com"}, session=False)
        assert rebound.status == 403 and "mcp-session-id" not in rebound.headers
        assert c.post(initialize(), {"Host": f"evil.com:{srv.port}"}, session=False).status == 403
        # any Origin is fine as long as the Host names this server
        ok = c.post(initialize(), {"Origin": "http://anything.example"}, session=False)
        assert ok.status == 200 and ok.headers["access-control-allow-origin"] == "http://anything.example"
        c.close()


# --- mutation survivors -------------------------------------------------------------------------------------


def test_declared_content_length_over_the_limit_gets_413_before_100_continue(server: ServerProcess) -> None:
    head = (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: " + ACCEPT_BOTH.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(head)  # and no body: a client that waits for 100 Continue
        out = _closed_by_server(sock)
    assert _status_lines(out) == [413], out
    assert b"100 Continue" not in out


def test_unknown_session_is_404_while_another_session_is_live(server: ServerProcess) -> None:
    live = HttpClient(server.port)
    live.handshake()
    other = HttpClient(server.port)
    for sid in ("no-such-session", (live.session or "")[:-1] + "A", "x" * 32):
        if sid == live.session:
            continue
        reply = other.post(request(1, "tools/list"), {"Mcp-Session-Id": sid}, session=False)
        assert reply.status == 404 and reply.json()["error"]["code"] == -32001, sid
    assert live.post(request(2, "ping")).status == 200
    live.close()
    other.close()


# --- case 11: head bytes are bounded while they arrive -------------------------------------------------------


def test_endless_header_value_gets_431_early_with_bounded_memory(server: ServerProcess) -> None:
    pid = server.proc.pid
    rss_before = _proc_kib(pid, "VmRSS")
    chunk = b"a" * (64 * 1024)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(b"GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nX-Big: ")
        while sent < 64 * MiB:
            readable, writable, _ = select.select([sock], [sock], [], WAIT)
            if readable:
                break
            assert writable, "the server neither reads nor answers"
            try:
                sent += sock.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _closed_by_server(sock)
    rss_after = _proc_kib(pid, "VmRSS")
    hwm_after = _proc_kib(pid, "VmHWM")
    print(f"\n[case 11] 64 MiB header value: server VmRSS before {rss_before} KiB, after {rss_after} KiB, "
          f"peak (VmHWM) {hwm_after} KiB; client had sent {sent} bytes when the answer came")
    assert _status_lines(answer) == [431], answer[:200]
    assert sent < 16 * MiB  # answered long before the value ended
    assert rss_after - rss_before < 20 * 1024
    c = HttpClient(server.port)  # and the server is fine
    assert c.post(initialize(), session=False).status == 200
    c.close()


def test_endless_chunked_trailer_is_refused_early_with_bounded_memory(tmp_path: Path) -> None:
    # the same attack after the head: a chunked body's trailer is buffered by llhttp until its line ends
    with running_server(tmp_path, "--http", "--port", "0", settings={"max_body": 65536}) as srv:
        pid = srv.proc.pid
        rss_before = _proc_kib(pid, "VmRSS")
        sent = 0
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: " + ACCEPT_BOTH.encode() +
                         b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"2\r\n{}\r\n0\r\nX-Trailer: ")
            chunk = b"t" * (64 * 1024)
            while sent < 64 * MiB:
                readable, writable, _ = select.select([sock], [sock], [], WAIT)
                if readable:
                    break
                assert writable, "the server neither reads nor answers"
                try:
                    sent += sock.send(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
            answer = _closed_by_server(sock)
        rss_after = _proc_kib(pid, "VmRSS")
        print(f"\n[case 11] 64 MiB trailer: server VmRSS before {rss_before} KiB, after {rss_after} KiB; "
              f"client had sent {sent} bytes when the answer came")
        assert _status_lines(answer) == [413], answer[:200]
        assert sent < 16 * MiB
        assert rss_after - rss_before < 20 * 1024


# --- case 12: deadlines, keep-alive, connection cap, accept back-off ------------------------------------------


def _dribble(sock: socket.socket, data: bytes, pause_s: float) -> bytes:
    """Send ``data`` one byte at a time, ``pause_s`` apart, until the server answers; what it answered."""
    sock.settimeout(WAIT)
    for i in range(len(data)):
        readable, _, _ = select.select([sock], [], [], pause_s)
        if readable:
            return _closed_by_server(sock)
        try:
            sock.send(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
    return _closed_by_server(sock)


def test_slow_head_gets_408_however_often_bytes_arrive(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings={"head_timeout_s": 1.0}) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
            # 100 bytes, one every 0.1 s: each byte would reset an idle timer, the deadline is from the first byte
            out = _dribble(sock, b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 300, 0.1)
        assert _status_lines(out) == [408], out
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
            out = _dribble(sock, b"POST /mcp HTTP/1.1\r\n" + b"X-A: b\r\n" * 100, 0.1)  # between headers
        assert _status_lines(out) == [408], out


def test_slow_body_gets_408(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0",
                        settings={"head_timeout_s": 5.0, "body_timeout_s": 1.0}) as srv:
        body = json.dumps(initialize()).encode()
        head = (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: " + ACCEPT_BOTH.encode() +
                b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (len(body) + 1000))
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
            sock.sendall(head)
            out = _dribble(sock, body + b" " * 1000, 0.1)
        assert _status_lines(out) == [408], out


def test_keepalive_idle_timeout_applies_between_requests(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0",
                        settings={"keepalive_s": 0.5, "head_timeout_s": 30.0}) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
            sock.sendall(_post_bytes(initialize()))
            assert _read_response(sock)[0] == 200
            # idle after a response: closed without an answer once keepalive_s has passed (not a timeout here)
            sock.settimeout(WAIT)
            assert sock.recv(65536) == b""
        # while a request is running, the keep-alive timer does not apply: a 2 s call outlives keepalive_s
        c = HttpClient(srv.port)
        c.handshake()
        slow = c.post(request(5, "tools/call", {"name": "slow", "arguments": {"seconds": 2}}))
        assert slow.status == 200 and slow.json()["result"]["content"][0]["text"] == "slept"
        c.close()


def test_connection_cap_answers_503_with_retry_after(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings={"max_connections": 4}) as srv:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) for _ in range(4)]
        try:
            for s in held:  # each of them is being served (a keep-alive connection after one request)
                s.sendall(_post_bytes(request(1, "ping"), extra=b""))
                assert _read_response(s)[0] in (400, 200)
            with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as extra:
                extra.sendall(_post_bytes(initialize()))
                status, headers, body = _read_response(extra)
            assert status == 503 and int(headers["retry-after"]) >= 1
            assert json.loads(body)["error"]["code"] == -32010
        finally:
            for s in held:
                s.close()
        c = HttpClient(srv.port)
        deadline = time.monotonic() + WAIT
        while (status := c.post(initialize(), session=False).status) == 503 and time.monotonic() < deadline:
            c.close()
            time.sleep(0.1)
            c = HttpClient(srv.port)
        assert status == 200
        c.close()


def test_out_of_descriptors_backs_off_with_one_log_line(tmp_path: Path) -> None:
    # The server runs under a low RLIMIT_NOFILE (set by a small wrapper that then execs the server).
    wrapper = ("import os, resource, sys\n"
               "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
               "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n")
    proc = subprocess.Popen([sys.executable, "-c", wrapper, str(PROBE), "serve", "--http", "--port", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=server_env(tmp_path), cwd=tmp_path)
    srv = ServerProcess(proc)
    socks: list[socket.socket] = []
    try:
        srv.wait_ready("serving MCP over")
        before = len(srv.stderr())
        for _ in range(120):  # more than the server has descriptors for
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks.append(s)
        time.sleep(3.0)  # the server keeps running out of descriptors meanwhile
        log = srv.stderr()[before:]
        print(f"\n[case 12] {len(log)} bytes of stderr while out of descriptors:\n{log}")
        assert "Traceback" not in log
        assert len(log) < 1000
        assert len(re.findall(r"descriptors", log)) == 1
        for s in socks:
            s.close()
        socks.clear()
        c = HttpClient(srv.port)  # served once descriptors are free again
        c.handshake()
        assert c.post(request(2, "tools/list")).json()["result"]["tools"]
        c.close()
    finally:
        for s in socks:
            s.close()
        srv.stop()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


# --- case 13: sessions are not evicted while in use -------------------------------------------------------------


def _flood_initialize(port: int, count: int) -> list[int]:
    """``count`` initialize POSTs, pipelined 32 at a time on one connection; their statuses."""
    statuses: list[int] = []
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        while len(statuses) < count:
            batch = min(32, count - len(statuses))
            sock.sendall(b"".join(_post_bytes(initialize(len(statuses) + i)) for i in range(batch)))
            for _ in range(batch):
                status, headers, _ = _read_response(sock)
                if status == 503:
                    assert int(headers["retry-after"]) >= 1
                statuses.append(status)
    return statuses


def test_active_session_survives_an_initialize_flood(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings={"max_sessions": 8}) as srv:
        victim = HttpClient(srv.port)
        victim.handshake()
        statuses = _flood_initialize(srv.port, 1024)
        assert statuses.count(200) == 7 and statuses.count(503) == 1024 - 7
        listed = victim.post(request(2, "tools/list"))
        assert listed.status == 200 and listed.json()["result"]["tools"]
        victim.close()


def test_sessions_idle_past_the_minimum_age_are_evicted(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0",
                        settings={"max_sessions": 2, "session_min_idle_s": 0.5}) as srv:
        c = HttpClient(srv.port)
        first, second = (c.post(initialize(i), session=False).headers["mcp-session-id"] for i in range(2))
        refused = c.post(initialize(3), session=False)
        assert refused.status == 503 and refused.json()["error"]["code"] == -32010
        assert refused.json()["error"]["data"]["retryAfterMs"] >= 0
        time.sleep(0.6)
        assert c.post(request(1, "ping"), {"Mcp-Session-Id": second}).status == 200  # second is fresh again
        newcomer = c.post(initialize(4), session=False)
        assert newcomer.status == 200
        assert c.post(request(1, "ping"), {"Mcp-Session-Id": first}).status == 404  # the idle one went
        assert c.post(request(1, "ping"), {"Mcp-Session-Id": second}).status == 200
        c.close()


# --- case 16 (HTTP part): in-flight requests per session ------------------------------------------------------


def test_inflight_cap_per_session_gives_a_busy_error(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings={"max_inflight": 2}) as srv:
        c = HttpClient(srv.port)
        c.handshake()
        sid = c.session or ""
        results: dict[int, Any] = {}

        def slow(rid: int) -> None:
            s = HttpClient(srv.port)
            s.session = sid
            results[rid] = s.post(request(rid, "tools/call", {"name": "slow", "arguments": {"seconds": 5}}))
            s.close()

        threads = [threading.Thread(target=slow, args=(rid,)) for rid in (10, 11)]
        for t in threads:
            t.start()
        busy: Any = None
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # until both slow calls run, a third request is still served
            reply = c.post(request(12, "tools/list"))
            if reply.json().get("error"):
                busy = reply
                break
            time.sleep(0.05)
        for t in threads:
            t.join(WAIT)
        assert busy is not None and busy.status == 200
        err = busy.json()["error"]
        assert busy.json()["id"] == 12 and err["code"] == -32010 and err["data"]["retryAfterMs"] >= 0
        assert all(results[rid].json()["result"]["content"][0]["text"] == "slept" for rid in (10, 11))
        assert c.post(request(13, "tools/list")).json()["result"]["tools"]  # served again once they ended
        c.close()


def test_listener_cap_answers_a_stateless_request_503_with_retry_after(tmp_path: Path) -> None:
    body = json.dumps(request("sub", "subscriptions/listen",
                              {"notifications": {"toolsListChanged": True}, "_meta": stateless_meta()})).encode()
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": STATELESS,
               "Mcp-Method": "subscriptions/listen"}
    raw = (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n" +
           b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) +
           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    with running_server(tmp_path, "--http", "--port", "0", settings={"max_listeners": 1}) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as first, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as second:
        first.sendall(raw)
        seen = b""
        while b"subscriptions/acknowledged" not in seen:
            chunk = first.recv(65536)
            assert chunk, seen
            seen += chunk
        second.sendall(raw)
        status, reply_headers, reply = _read_response(second)  # (a stream would have no Content-Length)
        assert status == 503 and int(reply_headers["retry-after"]) >= 1
        assert json.loads(reply)["error"]["code"] == -32010 and json.loads(reply)["id"] == "sub"


# --- case 6 (HTTP part): a duplicate in-flight id --------------------------------------------------------------


def test_duplicate_inflight_id_is_refused_without_reusing_it(server: ServerProcess) -> None:
    c = HttpClient(server.port)
    c.handshake()
    sid = c.session or ""
    result: dict[str, Any] = {}

    def slow() -> None:
        s = HttpClient(server.port)
        s.session = sid
        result["reply"] = s.post(request(7, "tools/call", {"name": "slow", "arguments": {"seconds": 4}}))
        s.close()

    t = threading.Thread(target=slow)
    t.start()
    dup: Any = None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and t.is_alive():
        reply = c.post(request(7, "ping"))
        if reply.json().get("error"):
            dup = reply
            break
        time.sleep(0.05)
    t.join(WAIT)
    assert dup is not None, "a ping with an in-flight id was answered as a ping"
    assert dup.json()["id"] is None and dup.json()["error"]["code"] == -32600
    assert result["reply"].json()["id"] == 7 and "result" in result["reply"].json()
    assert c.post(request(7, "ping")).json() == {"jsonrpc": "2.0", "id": 7, "result": {}}  # free again
    c.close()


# --- done-means: slowloris and connection flood ------------------------------------------------------------------


def test_slowloris_and_connection_flood_leave_the_server_answering(tmp_path: Path) -> None:
    settings = {"head_timeout_s": 5.0, "max_connections": 256}  # all 300 connect well within 5 s
    with running_server(tmp_path, "--http", "--port", "0", settings=settings) as srv:
        pid = srv.proc.pid
        rss_before = _proc_kib(pid, "VmRSS")
        stop = threading.Event()
        answers: list[int] = []

        def slowloris(socks: list[socket.socket]) -> None:
            # one byte of a never-ending header every 0.2 s on each socket, until the server answers or closes
            open_ = list(socks)
            for i in range(250):
                if stop.is_set() or not open_:
                    return
                readable, _, _ = select.select(open_, [], [], 0.2)
                for s in readable:
                    answers.extend(_status_lines(_closed_by_server(s, 2.0)) or [0])
                    open_.remove(s)
                for s in open_:
                    try:
                        s.send(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nX-Slow: "[i:i + 1] or b"x")
                    except OSError:
                        open_.remove(s)

        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) for _ in range(300)]
        idle = socks[200:]  # 100 that connect and never send a byte
        worker = threading.Thread(target=slowloris, args=(socks[:200],))
        worker.start()
        try:
            # another client: a real initialize and tools/list round trip, retrying as 503 + Retry-After says
            served: dict[str, Any] = {}
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and "tools" not in served:
                c = HttpClient(srv.port)
                try:
                    reply = c.post(initialize(), session=False)
                    if reply.status == 503:
                        time.sleep(int(reply.headers["retry-after"]))
                        continue
                    assert reply.status == 200, reply
                    c.session = reply.headers["mcp-session-id"]
                    assert c.post(notification("notifications/initialized")).status == 202
                    listed = c.post(request(2, "tools/list"))
                    assert listed.status == 200
                    served["tools"] = listed.json()["result"]["tools"]
                finally:
                    c.close()
            rss_flood = _proc_kib(pid, "VmRSS")
            assert served.get("tools"), "the other client was never served"
            for s in idle:  # closed by the server after head_timeout_s (no answer: they never sent a byte)
                answers.extend(_status_lines(_closed_by_server(s, WAIT)) or [0])
        finally:
            stop.set()
            worker.join(WAIT)
            for s in socks:
                s.close()
        rss_after = _proc_kib(pid, "VmRSS")
        hwm = _proc_kib(pid, "VmHWM")
        print(f"\n[flood] 300 sockets (200 slowloris, 100 silent), max_connections 256: server VmRSS before "
              f"{rss_before} KiB, during {rss_flood} KiB, after {rss_after} KiB, peak (VmHWM) {hwm} KiB; "
              f"answers to the flood: {sorted(set(answers))} "
              f"({answers.count(408)} x 408, {answers.count(503)} x 503)")
        assert 503 in answers and 408 in answers
        assert rss_after - rss_before < 30 * 1024
        assert os.kill(pid, 0) is None  # alive


# --- review: clients that stop reading -----------------------------------------------------------------------


def _echo_call(rid: int, text: str, close: bool = False) -> bytes:
    """A stateless tools/call of the probe's echo tool, as raw request bytes."""
    body = json.dumps(request(rid, "tools/call", {"name": "echo", "arguments": {"text": text},
                                                  "_meta": stateless_meta()})).encode()
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": STATELESS,
               "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    if close:
        headers["Connection"] = "close"
    return (b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n" +
            b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _send_some(sock: socket.socket, data: bytes) -> int:
    """What of ``data`` the kernel takes now, without waiting (a socket timeout would wait for room)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0
    finally:
        sock.settimeout(timeout)


def _small_recv_buffer() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the window fills at once when nobody reads
    sock.settimeout(WAIT)
    return sock


def test_clients_that_never_read_their_answers_lose_their_connection_slots(tmp_path: Path) -> None:
    # Before: a closing connection waited forever for its unread answer to flush and kept its slot (503 for all).
    settings = {"max_connections": 2, "keepalive_s": 1.0, "body_timeout_s": 1.0}
    with running_server(tmp_path, "--http", "--port", "0", settings=settings) as srv:
        stalled = [_small_recv_buffer() for _ in range(2)]
        try:
            for i, s in enumerate(stalled):
                s.connect(("127.0.0.1", srv.port))
                s.sendall(_echo_call(i + 1, "x" * (3 * MiB), close=True))
            # a third client is refused while those two hold the slots, then served once they are cut
            status = 0
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as third:
                    third.sendall(_echo_call(9, "hi"))
                    status, _, body = _read_response(third)
                if status != 503:
                    break
                time.sleep(0.2)
            assert status == 200 and json.loads(body)["result"]["content"][0]["text"] == "hi"
            for s in stalled:  # cut: what is left of the 3 MiB answer never comes
                got = len(_closed_by_server(s))
                assert got < 3 * MiB, got
        finally:
            for s in stalled:
                s.close()


def test_pipelined_requests_from_a_client_that_does_not_read_are_held_back(tmp_path: Path) -> None:
    # Before: the server kept answering pipelined calls into its write buffer: memory grew with what was sent.
    with running_server(tmp_path, "--http", "--port", "0", settings={"body_timeout_s": 20.0}) as srv:
        pid = srv.proc.pid
        rss_before = _proc_kib(pid, "VmRSS")
        count = 48
        text = "y" * MiB
        calls = [_echo_call(i, text) for i in range(count)]
        with _small_recv_buffer() as sock:
            sock.connect(("127.0.0.1", srv.port))
            sent = 0
            blob = b"".join(calls)
            deadline = time.monotonic() + 8
            while sent < len(blob) and time.monotonic() < deadline:  # send what the server takes, read nothing
                _, writable, _ = select.select([], [sock], [], 0.5)
                if writable:
                    sent += _send_some(sock, blob[sent:sent + 65536])
            rss_stalled = _proc_kib(pid, "VmRSS")
            print(f"\n[write back-pressure] {count} pipelined 1 MiB echo calls, none read: server VmRSS before "
                  f"{rss_before} KiB, stalled {rss_stalled} KiB; client got {sent} bytes in")
            assert rss_stalled - rss_before < 30 * 1024
            assert sent < len(blob)  # the server stopped taking requests
            # now the client reads: every answer it gets is whole and in order, and the rest gets through
            for i in range(count):
                if sent < len(blob):
                    sent += _send_some(sock, blob[sent:])
                status, _, body = _read_response(sock)
                assert status == 200
                reply = json.loads(body)
                assert reply["id"] == i and reply["result"]["content"][0]["text"] == text
        assert sent == len(blob)
