"""The unix socket transport under a client that misbehaves (issue 7, cases 7, 14, 16 on ``serve --unix``).

A real ``mcp-edge serve --unix`` process and real sockets. Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .stream_helpers import (
    WAIT,
    LineClient,
    MiB,
    ServerProcess,
    check_flood_answers,
    flood,
    notification,
    probe_command,
    request,
    rss_kib,
    stream_env,
    wait_until_stalled,
)


@contextmanager
def unix_server(tmp_path: Path, settings: dict[str, Any] | None = None) -> Iterator[tuple[Any, Path]]:
    sock_dir = Path(tempfile.mkdtemp(prefix="mcp-edge-"))  # AF_UNIX paths are short; tmp_path may be long
    path = sock_dir / "mcp.sock"
    proc = subprocess.Popen(probe_command("--unix", str(path)), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=stream_env(tmp_path, settings), cwd=tmp_path)
    server = ServerProcess(proc)
    try:
        server.wait_ready("serving MCP over")
        yield server, path
    finally:
        server.stop()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def connect(path: Path) -> Iterator[tuple[socket.socket, LineClient]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(WAIT)
    try:
        sock.connect(str(path))
        yield sock, LineClient.unix(sock)
    finally:
        sock.close()


COUNT, SIZE = 300, MiB  # 300 MiB of responses asked for


def test_a_client_that_does_not_read_is_paused_not_dropped(tmp_path: Path) -> None:
    # Before: the server buffered responses until 16 MiB were pending, then cut the connection.
    with unix_server(tmp_path, {"max_frame": 2 * MiB, "output_backlog": MiB}) as (server, path), \
            connect(path) as (sock, client):
        client.handshake()
        before = rss_kib(server.proc.pid)
        sent: list[int] = [0]
        failed: list[BaseException] = []
        thread = flood(sock.sendall, COUNT, SIZE, sent, failed)
        wait_until_stalled(thread, sent)
        during = rss_kib(server.proc.pid)
        print(f"server RSS {before} KiB before, {during} KiB with the client not reading; {sent[0]} sent")
        assert not failed
        assert sent[0] < COUNT  # the server stopped reading, so the client's writes wait
        assert during < 200 * 1024
        check_flood_answers(client, COUNT, SIZE)  # reading again: everything is served, on the same connection
        thread.join(WAIT)
        assert not failed and sent[0] == COUNT
        assert client.call(1000, "ping")["result"] == {}


def test_shutdown_answers_requests_in_flight(tmp_path: Path) -> None:
    with unix_server(tmp_path) as (server, path), connect(path) as (_, client):
        client.handshake()
        client.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 0.3}}))
        assert client.call(3, "ping")["result"] == {}
        assert server.stop() == 0  # SIGTERM
        replies = client.rest()
    assert [m["id"] for m in replies] == [2]
    assert replies[0]["result"]["content"][0]["text"] == "slept"


def test_half_close_answers_in_flight_requests_and_the_last_line(tmp_path: Path) -> None:
    with unix_server(tmp_path) as (_, path), connect(path) as (sock, client):
        client.handshake()
        client.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 0.2}}))
        sock.sendall(json.dumps(request(3, "tools/call", {"name": "echo", "arguments": {"text": "tail"}})).encode())
        sock.shutdown(socket.SHUT_WR)  # EOF, and the last line has no newline
        replies = {m["id"]: m for m in client.rest()}
    assert replies[2]["result"]["content"][0]["text"] == "slept"
    assert replies[3]["result"]["content"][0]["text"] == "tail"


def test_in_flight_cap_on_the_unix_socket(tmp_path: Path) -> None:
    with unix_server(tmp_path, {"max_inflight": 1}) as (_, path), connect(path) as (_, client):
        client.handshake()
        client.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 600}}))
        busy = client.call(3, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert busy["error"]["code"] == -32010 and busy["error"]["data"]["retryAfterMs"] == 1000
        client.send(notification("notifications/cancelled", {"requestId": 2}))
        assert client.call(4, "ping")["result"] == {}
        assert client.call(5, "tools/call", {"name": "echo", "arguments": {"text": "x"}})["result"]
