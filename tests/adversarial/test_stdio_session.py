"""A stdio session must survive what one client sends (issue 7, cases 3, 4, 6, 7, 14, 16).

Real ``mcp-edge serve --stdio`` processes over real pipes, except the read-path backstop of case 4, which needs
a protocol core that raises and runs the stream session in this process. Waits are bounded; nothing asserts on
timing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .stream_helpers import (
    WAIT,
    LineClient,
    MiB,
    check_flood_answers,
    flood,
    notification,
    request,
    rss_kib,
    spawn_stdio,
    wait_until_stalled,
)


@contextmanager
def stdio_server(tmp_path: Path, settings: dict[str, Any] | None = None
                 ) -> Iterator[tuple[subprocess.Popen[bytes], LineClient]]:
    proc = spawn_stdio(tmp_path, settings)
    try:
        yield proc, LineClient.stdio(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    return proc.stderr.read().decode(errors="replace")


# -- case 3: a client's malformed error response fails only the request it answers -----------------------------


@pytest.mark.parametrize("error", [
    {"code": "oops", "message": "no"},  # int("oops") raised out of Session.resolve and ended the session
    {"code": None, "message": "no"},
    {"code": 1.5, "message": "no"},
    {"code": True, "message": "no"},
    {"code": -1, "message": 42},
    "not an object",
])
def test_malformed_error_response_fails_that_request_and_the_session_lives(tmp_path: Path, error: Any) -> None:
    with stdio_server(tmp_path) as (proc, client):
        client.handshake({"elicitation": {}})
        client.send(request(2, "tools/call", {"name": "greet", "arguments": {}}))
        ask = client.recv()
        assert ask["method"] == "elicitation/create"
        client.send({"jsonrpc": "2.0", "id": ask["id"], "error": error})
        reply = client.wait_for(2)
        assert reply["error"]["code"] == -32603
        assert "malformed" in reply["error"]["message"] and str(ask["id"]) in reply["error"]["message"]
        assert client.call(3, "ping")["result"] == {}  # the session lives on
        # and a well-formed answer to the next question is delivered as before
        client.send(request(4, "tools/call", {"name": "greet", "arguments": {}}))
        ask = client.recv()
        client.send({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"name": "Ada"}}})
        assert client.wait_for(4)["result"]["content"][0]["text"] == "Hello, Ada! (asked)"
        _close_stdin(proc)
        assert proc.wait(WAIT) == 0
        assert "malformed error response from the client" in _stderr(proc)


def test_a_well_formed_client_error_is_passed_on(tmp_path: Path) -> None:
    with stdio_server(tmp_path) as (_, client):
        client.handshake({"elicitation": {}})
        client.send(request(2, "tools/call", {"name": "greet", "arguments": {}}))
        ask = client.recv()
        client.send({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": -1, "message": "user declined"}})
        assert client.wait_for(2)["error"] == {"code": -1, "message": "user declined"}


# -- case 4: an exception on the read path is logged and the session goes on --------------------------------


def test_read_path_exception_is_logged_once_and_the_session_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from mcp_edge.board.settings import Settings
    from mcp_edge.mcp import ServerConnection, ServerInfo
    from mcp_edge.plugin import Registry
    from mcp_edge.runtime.router import Router
    from mcp_edge.transport import stream as stream_mod
    from mcp_edge.transport.stream import Output, StreamSession

    from .stream_helpers import PROBE_PLUGINS

    real = ServerConnection.receive_data

    def flaky(self: ServerConnection, data: bytes) -> list[Any]:
        if b"BOOM" in data:
            raise RuntimeError("a bug in the core")
        return real(self, data)

    monkeypatch.setattr(ServerConnection, "receive_data", flaky)
    monkeypatch.setattr(stream_mod, "_failures", {})

    class Collect(Output):
        def __init__(self) -> None:
            self.lines: list[dict[str, Any]] = []

        def write(self, data: bytes) -> None:
            self.lines.extend(json.loads(line) for line in data.splitlines())

    chunks = [json.dumps(request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                   "clientInfo": {"name": "t", "version": "0"}})) + "\n",
              json.dumps(notification("notifications/initialized")) + "\n",
              "BOOM\n", "BOOM again\n",
              json.dumps(request(2, "tools/call", {"name": "echo", "arguments": {"text": "alive"}})) + "\n"]

    async def main() -> list[dict[str, Any]]:
        registry = Registry([PROBE_PLUGINS], entry_points=False)
        registry.discover()
        await registry.start()
        settings = Settings.load(data_dir=tmp_path)
        router = Router(registry, ServerInfo("t", "0", {}), settings)
        out = Collect()
        feed = [c.encode() for c in chunks]

        async def read(size: int) -> bytes:
            return feed.pop(0) if feed else b""

        await StreamSession(router, out, settings).run(read)
        await registry.stop()
        return out.lines

    with caplog.at_level(logging.ERROR, logger="mcp_edge.transport"):
        lines = asyncio.run(main())
    assert [m.get("id") for m in lines] == [1, 2]
    assert lines[1]["result"]["content"][0]["text"] == "alive"
    failures = [r for r in caplog.records if r.name == "mcp_edge.transport"]
    assert len(failures) == 2  # the first with its traceback, the second a one-line count
    assert failures[0].exc_info is not None and "RuntimeError" in failures[0].getMessage()
    assert failures[1].exc_info is None and "2 times" in failures[1].getMessage()


# -- case 6: an id is free again once its response is written --------------------------------------------------


def test_an_answered_or_cancelled_id_can_be_used_again(tmp_path: Path) -> None:
    with stdio_server(tmp_path) as (_, client):
        client.handshake()
        client.send(request(5, "tools/call", {"name": "slow", "arguments": {"seconds": 60}}))
        client.send(request(5, "ping"))  # in flight: refused, and not with id 5 (the client would get two answers)
        dup = client.recv()
        assert dup["error"]["code"] == -32600 and dup["id"] is None
        client.send(notification("notifications/cancelled", {"requestId": 5}))
        assert client.call(6, "ping")["result"] == {}
        reply = client.call(5, "tools/call", {"name": "echo", "arguments": {"text": "again"}})
        assert reply["result"]["content"][0]["text"] == "again"
        assert client.call(5, "tools/call", {"name": "echo", "arguments": {"text": "thrice"}})["result"]
        assert not client.early  # nothing else was sent


# -- case 7: EOF and signals drain what is in flight -------------------------------------------------------------


def test_eof_answers_in_flight_requests_and_the_last_line(tmp_path: Path) -> None:
    with stdio_server(tmp_path) as (proc, client):
        init = request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "0"}})
        lines = [init, notification("notifications/initialized"),
                 request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 0.2}})]
        last = json.dumps(request(3, "tools/call", {"name": "echo", "arguments": {"text": "no newline"}}))
        client.send_raw(b"".join(json.dumps(m).encode() + b"\n" for m in lines) + last.encode())
        _close_stdin(proc)
        replies = {m["id"]: m for m in client.rest()}
        assert proc.wait(WAIT) == 0
    assert set(replies) == {1, 2, 3}
    assert replies[2]["result"]["content"][0]["text"] == "slept"
    assert replies[3]["result"]["content"][0]["text"] == "no newline"


def test_eof_drain_is_bounded_by_drain_timeout(tmp_path: Path) -> None:
    with stdio_server(tmp_path, {"drain_timeout_s": 0.2}) as (proc, client):
        client.handshake()
        client.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 600}}))
        assert client.call(3, "ping")["result"] == {}
        _close_stdin(proc)
        assert client.rest() == []  # the slow call was cancelled: no answer
        assert proc.wait(WAIT) == 0
        assert "drain_timeout_s" in _stderr(proc)


def test_eof_fails_requests_waiting_on_the_client(tmp_path: Path) -> None:
    with stdio_server(tmp_path, {"drain_timeout_s": 60}) as (proc, client):
        client.handshake({"elicitation": {}})
        client.send(request(2, "tools/call", {"name": "greet", "arguments": {}}))
        assert client.recv()["method"] == "elicitation/create"
        _close_stdin(proc)  # the client can never answer now: the call fails at once, not after 60 s
        (reply,) = client.rest()
        assert reply["id"] == 2 and "input ended" in reply["error"]["message"]
        assert proc.wait(WAIT) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_in_flight_requests(tmp_path: Path, sig: signal.Signals) -> None:
    with stdio_server(tmp_path) as (proc, client):
        client.handshake()
        client.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 0.3}}))
        assert client.call(3, "ping")["result"] == {}
        proc.send_signal(sig)
        replies = client.rest()
        assert proc.wait(WAIT) == 0
    assert [m["id"] for m in replies] == [2]
    assert replies[0]["result"]["content"][0]["text"] == "slept"


# -- case 16: the in-flight cap -------------------------------------------------------------------------------------


def test_in_flight_cap_answers_busy_and_frees_up(tmp_path: Path) -> None:
    with stdio_server(tmp_path, {"max_inflight": 2, "retry_after_s": 2.5}) as (_, client):
        client.handshake()
        for rid in (10, 11):
            client.send(request(rid, "tools/call", {"name": "slow", "arguments": {"seconds": 600}}))
        busy = client.call(12, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert busy["error"]["code"] == -32010 and busy["error"]["data"] == {"retryAfterMs": 2500}
        assert "max_inflight" in busy["error"]["message"]
        client.send(notification("notifications/cancelled", {"requestId": 10}))
        assert client.call(13, "ping")["result"] == {}
        reply = client.call(12, "tools/call", {"name": "echo", "arguments": {"text": "x"}})  # the id is free too
        assert reply["result"]["content"][0]["text"] == "x"


# -- case 14: a client that stops reading stops being read; memory stays bounded ---------------------------------

COUNT, SIZE = 300, MiB  # 300 MiB of responses asked for


def test_stdio_pauses_reading_while_the_client_does_not_read(tmp_path: Path) -> None:
    settings = {"max_frame": 2 * MiB, "output_backlog": MiB}
    with stdio_server(tmp_path, settings) as (proc, client):
        client.handshake()
        before = rss_kib(proc.pid)
        sent: list[int] = [0]
        failed: list[BaseException] = []
        assert proc.stdin is not None
        stdin = proc.stdin

        def send(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        thread = flood(send, COUNT, SIZE, sent, failed)
        wait_until_stalled(thread, sent)
        during = rss_kib(proc.pid)
        print(f"server RSS {before} KiB before, {during} KiB with the client not reading; {sent[0]} sent")
        assert sent[0] < COUNT  # the server stopped reading, so the client's writes wait
        assert during < 200 * 1024
        check_flood_answers(client, COUNT, SIZE)  # reading again: everything is served
        thread.join(WAIT)
        assert not failed and sent[0] == COUNT
        _close_stdin(proc)
        assert proc.wait(WAIT) == 0


# -- batches (2025-03-26) on a stream: one array once every request in it is answered ---------------------------


def test_a_batch_is_answered_with_one_array(tmp_path: Path) -> None:
    with stdio_server(tmp_path, {"max_inflight": 2}) as (_, client):
        init = request(1, "initialize", {"protocolVersion": "2025-03-26", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "0"}})
        client.send(init)
        assert client.wait_for(1)["result"]["protocolVersion"] == "2025-03-26"
        client.send(notification("notifications/initialized"))
        client.send([request(2, "ping"),
                     request(3, "tools/call", {"name": "slow", "arguments": {"seconds": 0.1}}),
                     request(4, "tools/call", {"name": "echo", "arguments": {"text": "b"}}),
                     request(5, "tools/call", {"name": "echo", "arguments": {"text": "busy"}}),
                     notification("notifications/progress", {"progressToken": "t", "progress": 1})])
        line = client.line()
        assert line is not None
        answers = {m["id"]: m for m in json.loads(line)}
        assert set(answers) == {2, 3, 4, 5}
        assert answers[3]["result"]["content"][0]["text"] == "slept"
        assert answers[4]["result"]["content"][0]["text"] == "b"
        assert answers[5]["error"]["code"] == -32010  # two already running: past max_inflight
        assert client.call(6, "ping")["result"] == {}  # and nothing else was written
        assert not client.early


def test_a_failed_write_frees_the_request_id(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """stdout on a full disk: the write of an answer raises; it is logged and the id is free again."""
    from mcp_edge.board.settings import Settings
    from mcp_edge.mcp import ServerInfo
    from mcp_edge.plugin import Registry
    from mcp_edge.runtime.router import Router
    from mcp_edge.transport.stream import Output, StreamSession

    class Full(Output):
        def write(self, data: bytes) -> None:
            raise OSError(28, "No space left on device")

        def backlog(self) -> int:
            return 0

    from .stream_helpers import PROBE_PLUGINS

    feed = [(json.dumps(m) + "\n").encode() for m in (
        request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "0"}}),
        notification("notifications/initialized"),
        request(9, "tools/call", {"name": "echo", "arguments": {"text": "x"}}))]

    async def main() -> set[Any]:
        settings = Settings.load(data_dir=tmp_path, drain_timeout_s=2.0)
        registry = Registry([PROBE_PLUGINS], entry_points=False)
        registry.discover()
        await registry.start()
        try:
            stream = StreamSession(Router(registry, ServerInfo("t", "0", {}), settings), Full(), settings)

            async def read(size: int) -> bytes:
                return feed.pop(0) if feed else b""

            await stream.run(read)  # EOF after the call: the drain waits for its answer, whose write fails
            return set(stream.conn.inflight)
        finally:
            await registry.stop()

    with caplog.at_level(logging.WARNING, logger="mcp_edge.transport"):
        inflight = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert inflight == set()
    assert any("No space left" in r.getMessage() or "writing the answer" in r.getMessage() for r in caplog.records)


def test_broadcasts_to_a_client_far_behind_are_dropped_not_queued(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from mcp_edge.board.settings import Settings
    from mcp_edge.mcp import ServerInfo
    from mcp_edge.plugin import Registry
    from mcp_edge.runtime.router import Router
    from mcp_edge.transport.stream import Output, StreamSession

    class Stuck(Output):  # a client that reads nothing: everything written stays pending
        def __init__(self) -> None:
            self.pending = 0
            self.writes = 0

        def write(self, data: bytes) -> None:
            self.pending += len(data)
            self.writes += 1

        def backlog(self) -> int:
            return self.pending

    async def main() -> tuple[Stuck, Stuck]:
        settings = Settings.load(data_dir=tmp_path, output_backlog=64 * 1024)
        router = Router(Registry([], entry_points=False), ServerInfo("t", "0", {}), settings)
        stuck, fine = Stuck(), Stuck()
        StreamSession(router, stuck, settings)
        StreamSession(router, fine, settings)
        stuck.pending = 4 * 64 * 1024 + 1  # past four times the bound
        for _ in range(3):
            await router.list_changed("tools")  # never waits for the stuck client
        return stuck, fine

    with caplog.at_level(logging.WARNING, logger="mcp_edge.transport"):
        stuck, fine = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert stuck.writes == 0 and fine.writes == 3
    assert any("not reading its output" in r.getMessage() for r in caplog.records)
