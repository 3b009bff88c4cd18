"""The graceful shutdown, on every transport: real ``mcp-edge serve`` processes, real SIGTERM, real sockets.

Fifty calls are in flight when the signal comes: half nap briefly and must be answered with their result, half
nap for ten minutes and must be cut when ``shutdown_timeout_s`` runs out, each answered with the shutting-down
error, never dropped. A request sent after the signal is refused (HTTP: 503 with Retry-After). The process exits
0. Nothing here asserts how long anything took: the short naps are far inside the budget, the long ones far
outside it, and every wait is bounded only so that a failure cannot hang the suite.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_stdio import StdioClient, _spawn
from test_supervisor import STOPPING, _close, _wait_lines, _wait_stderr
from test_unix import UnixClient, _short_path
from transport_helpers import ACCEPT_BOTH, HERE, WAIT, initialize, notification, request, running_server, sse_messages

NAPPER = HERE / "shutdown_plugins"
CALLS = 50
BUDGET_S = 3.0  # shutdown_timeout_s: SHORT_S naps finish well inside it, LONG_S naps never do
SHORT_S, LONG_S = 0.3, 600.0
SETTINGS = {"plugin_dirs": [str(NAPPER)], "shutdown_timeout_s": BUDGET_S, "retry_after_s": 2.0}
FIRST = 100
LATE = 999  # the id of the request sent after the signal


def _nap(rid: int) -> dict[str, Any]:
    seconds = LONG_S if rid % 2 else SHORT_S
    return request(rid, "tools/call", {"name": "nap", "arguments": {"seconds": seconds},
                                       "_meta": {"progressToken": f"t{rid}"}})


def _check_answers(answers: list[dict[str, Any]]) -> None:
    """Every one of the fifty got exactly one answer: a result for a short nap, the cut error for a long one."""
    ids = [m["id"] for m in answers]
    assert sorted(ids) == list(range(FIRST, FIRST + CALLS)), ids
    for msg in answers:
        if msg["id"] % 2:
            err = msg["error"]
            assert err["code"] == -32010 and err["data"]["shuttingDown"] is True, msg
            assert "shutting down" in err["message"] and "cancelled" in err["message"], msg
        else:
            assert msg["result"]["content"][0]["text"] == "rested", msg


def _check_refusal(msg: dict[str, Any]) -> None:
    err = msg["error"]
    assert err["code"] == -32010 and err["data"] == {"retryAfterMs": 2000, "shuttingDown": True}, msg
    assert "shutting down" in err["message"] and "not accepting" in err["message"]


def _responses(messages: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for msg in messages:
        if "id" in msg:
            out.setdefault(msg["id"], []).append(msg)
    return out


def _split(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    by_id = _responses(messages)
    assert all(len(v) == 1 for v in by_id.values()), "a request was answered twice"
    late = by_id.pop(LATE)[0]
    by_id.pop(2, None)  # the ping
    return [v[0] for v in by_id.values()], late


def test_stdio_sigterm_answers_every_in_flight_call_and_refuses_new_ones(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, SETTINGS)
    client = StdioClient(proc)
    seen: list[str] = []
    try:
        client.handshake()
        for rid in range(FIRST, FIRST + CALLS):
            client.send(_nap(rid))
        got: list[dict[str, Any]] = []
        client.send(request(2, "ping"))
        while (msg := client.recv()).get("id") != 2:  # the ping is answered once all fifty started
            got.append(msg)
        proc.send_signal(signal.SIGTERM)
        _wait_stderr(proc, STOPPING, seen)
        client.send(_nap(LATE))
        got += [json.loads(line) for line in client.rest_of_stdout().splitlines() if line.strip()]
        assert proc.wait(WAIT) == 0
    finally:
        _close(proc)
    answers, late = _split(got)
    _check_answers(answers)
    _check_refusal(late)


def test_unix_sigterm_answers_every_in_flight_call_and_refuses_new_ones(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path), settings=SETTINGS) as srv:
        c = UnixClient(path)
        try:
            c.handshake()
            for rid in range(FIRST, FIRST + CALLS):
                c.send(_nap(rid))
            got: list[dict[str, Any]] = []
            c.send(request(2, "ping"))
            while (msg := c.recv()).get("id") != 2:
                got.append(msg)
            srv.proc.send_signal(signal.SIGTERM)
            _wait_lines(srv, STOPPING)
            c.send(_nap(LATE))
            while line := c.file.readline():  # until the server closes the connection
                got.append(json.loads(line))
            assert srv.proc.wait(WAIT) == 0
        finally:
            c.close()
        assert "cancelled, each answered with an error" in srv.stderr()
    answers, late = _split(got)
    _check_answers(answers)
    _check_refusal(late)
    assert not path.exists()


class _Caller(threading.Thread):
    """One tools/call on its own connection: ``started`` once the response head (SSE, after the progress
    notification) arrived, then the rest of the stream is read into ``messages``."""

    def __init__(self, port: int, session: str, rid: int, started: threading.Semaphore) -> None:
        super().__init__(daemon=True)
        self.port, self.session, self.rid, self.started = port, session, rid, started
        self.status = 0
        self.messages: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT + LONG_S / 10)
        try:
            conn.request("POST", "/mcp", json.dumps(_nap(self.rid)).encode(),
                         {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "Mcp-Session-Id": self.session})
            resp = conn.getresponse()
            self.status = resp.status
            self.started.release()
            self.messages = sse_messages(resp.read())
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.started.release()
        finally:
            conn.close()


def test_http_sigterm_answers_every_in_flight_call_and_refuses_new_ones_with_503(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0", settings=SETTINGS) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=WAIT)
        hdrs = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        conn.request("POST", "/mcp", json.dumps(initialize()).encode(), hdrs)
        resp = conn.getresponse()
        resp.read()
        session = resp.getheader("mcp-session-id")
        assert resp.status == 200 and session
        hdrs["Mcp-Session-Id"] = session
        conn.request("POST", "/mcp", json.dumps(notification("notifications/initialized")).encode(), hdrs)
        assert conn.getresponse().read() == b""
        conn.close()

        started = threading.Semaphore(0)
        callers = [_Caller(srv.port, session, rid, started) for rid in range(FIRST, FIRST + CALLS)]
        for caller in callers:
            caller.start()
        for _ in callers:  # every call is running: its response head (SSE after the progress) came back
            assert started.acquire(timeout=WAIT)
        assert [c.error for c in callers if c.error] == []
        srv.proc.send_signal(signal.SIGTERM)
        _wait_lines(srv, STOPPING)

        late = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=WAIT)
        late.request("POST", "/mcp", json.dumps(_nap(LATE)).encode(), hdrs)
        refused = late.getresponse()
        refused_body = json.loads(refused.read())
        late.close()
        ready = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=WAIT)
        ready.request("GET", "/healthz/ready")
        probe = ready.getresponse()
        probe_body = json.loads(probe.read())
        ready.close()

        for caller in callers:
            caller.join(WAIT + BUDGET_S)
        assert srv.proc.wait(WAIT) == 0
    assert refused.status == 503 and refused.getheader("retry-after") == "2"
    _check_refusal(refused_body)
    assert probe.status == 503 and probe_body["phase"] == "stopping"
    assert [c.status for c in callers] == [200] * CALLS
    answers = []
    for caller in callers:
        finals = [m for m in caller.messages if "id" in m]
        assert len(finals) == 1, (caller.rid, caller.messages)  # one answer each, never an empty stream
        answers.append(finals[0])
    _check_answers(answers)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_right_after_the_first_never_kills_by_signal(tmp_path: Path, sig: signal.Signals) -> None:
    # Wherever the second signal lands (the drain, the plugins' stop, the loop closing, after exit), the status is
    # 1 (stopped at once) or 0 (it had finished): never death by the signal.
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path), settings=SETTINGS) as srv:
        srv.proc.send_signal(sig)
        time.sleep(0.01)
        if srv.proc.poll() is None:
            srv.proc.send_signal(sig)
        status = srv.proc.wait(WAIT)
    assert status in (0, 1), srv.stderr()
