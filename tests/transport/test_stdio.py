"""stdio transport: ``mcp-edge serve --stdio`` as a desktop client spawns it, over real pipes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transport_helpers import WAIT, initialize, notification, probe_command, request, server_env


class StdioClient:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buf = b""

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, msg: Any) -> None:
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def line(self) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + WAIT
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no answer from the server")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise AssertionError(f"server closed stdout (exit {self.proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def recv(self) -> dict[str, Any]:
        msg = json.loads(self.line())
        assert isinstance(msg, dict)
        return msg

    def call(self, rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response to a request (notifications that come first are skipped)."""
        self.send(request(rid, method, params))
        while "id" not in (msg := self.recv()):
            pass
        return msg

    def handshake(self) -> dict[str, Any]:
        reply = self.call(1, "initialize", initialize()["params"])
        self.send(notification("notifications/initialized"))
        return reply

    def rest_of_stdout(self) -> bytes:
        assert self.proc.stdout is not None
        return self._buf + self.proc.stdout.read()


def _spawn(tmp_path: Path, settings: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(probe_command("--stdio"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server_env(tmp_path, settings), cwd=tmp_path)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[StdioClient]:
    proc = _spawn(tmp_path, {"max_frame": 4096, "drain_timeout_s": 1.0})
    try:
        yield StdioClient(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_handshake_ping_and_tools(client: StdioClient) -> None:
    reply = client.handshake()
    assert reply["id"] == 1
    assert reply["result"]["protocolVersion"] == "2025-11-25"
    assert client.call(2, "ping") == {"jsonrpc": "2.0", "id": 2, "result": {}}
    tools = {t["name"] for t in client.call(3, "tools/list")["result"]["tools"]}
    assert {"echo", "progress", "slow", "shout", "touch"} <= tools
    result = client.call(4, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})["result"]
    assert result["content"][0]["text"] == "hi"


def test_malformed_json_then_the_connection_lives_on(client: StdioClient) -> None:
    client.handshake()
    client.send_raw(b'{"jsonrpc": "2.0", "id": 5, "method": \n')
    error = client.recv()
    assert error["error"]["code"] == -32700 and error["id"] is None
    client.send_raw(b"[1, 2]\n")
    assert client.recv()["error"]["code"] == -32600
    assert client.call(6, "ping")["result"] == {}


def test_oversized_frame_gets_an_error_and_the_next_message_is_served(client: StdioClient) -> None:
    client.handshake()
    big = json.dumps(request(7, "tools/call", {"name": "echo", "arguments": {"text": "x" * 20000}}))
    client.send_raw(big.encode() + b"\n")
    error = client.recv()
    assert error["error"]["code"] == -32600 and "frame limit" in error["error"]["message"]
    assert client.call(8, "ping")["result"] == {}


def test_request_before_initialize_is_an_error(client: StdioClient) -> None:
    reply = client.call(1, "tools/list")
    assert reply["id"] == 1 and reply["error"]["code"] == -32600
    assert client.handshake()["result"]["protocolVersion"]  # and the handshake still works


def test_progress_notifications_come_before_the_result(client: StdioClient) -> None:
    client.handshake()
    client.send(request(9, "tools/call", {"name": "progress", "arguments": {"steps": 2},
                                          "_meta": {"progressToken": "tok"}}))
    first, second, result = client.recv(), client.recv(), client.recv()
    assert first["method"] == second["method"] == "notifications/progress"
    assert [first["params"]["progress"], second["params"]["progress"]] == [1, 2]
    assert result["id"] == 9 and result["result"]["content"][0]["text"] == "done"


def test_stdout_carries_protocol_only_when_a_plugin_prints(client: StdioClient) -> None:
    client.handshake()
    reply = client.call(10, "tools/call", {"name": "shout", "arguments": {"text": "loud"}})
    assert reply["result"]["content"][0]["text"] == "loud"
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    assert client.proc.wait(WAIT) == 0
    for line in client.rest_of_stdout().splitlines():
        json.loads(line)  # every line on stdout is a JSON-RPC message
    assert client.proc.stderr is not None
    assert b"SHOUT loud" in client.proc.stderr.read()


def test_eof_on_stdin_exits_zero(client: StdioClient) -> None:
    client.handshake()
    client.send(request(11, "tools/call", {"name": "slow", "arguments": {"seconds": 60}}))
    assert client.call(12, "ping")["id"] == 12
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    assert client.proc.wait(WAIT) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_stops_the_server(client: StdioClient, sig: signal.Signals) -> None:
    client.handshake()
    client.send(request(13, "tools/call", {"name": "slow", "arguments": {"seconds": 60}}))
    assert client.call(14, "ping")["id"] == 14
    client.proc.send_signal(sig)
    assert client.proc.wait(WAIT) == 0


def test_server_exits_when_its_parent_dies(tmp_path: Path) -> None:
    # An intermediate process starts the server with a stdin pipe it keeps open, reports the
    # server's pid, then blocks; SIGKILL on it must take the server down too.
    pid_file = tmp_path / "server.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({probe_command('--stdio')!r}, stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "p.stdin.write(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\\n'); p.stdin.flush()\n"
        "sys.stdout.buffer.write(p.stdout.readline()); sys.stdout.flush()\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              env=server_env(tmp_path), cwd=tmp_path)
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], WAIT)
        assert ready, "the server never answered its parent"
        assert json.loads(parent.stdout.readline())["result"] == {}
        server_pid = int(pid_file.read_text())
        parent.kill()
        parent.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and _alive(server_pid):
            time.sleep(0.05)
        assert not _alive(server_pid), "the server outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its (dead) parent could reap it


def test_stdin_and_stdout_may_be_regular_files(tmp_path: Path) -> None:
    requests = tmp_path / "in.jsonl"
    answers = tmp_path / "out.jsonl"
    msgs = [initialize(), notification("notifications/initialized"), request(2, "ping")]
    requests.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    with requests.open("rb") as stdin, answers.open("wb") as stdout:
        proc = subprocess.run(probe_command("--stdio"), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                              env=server_env(tmp_path), cwd=tmp_path, timeout=WAIT)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [r["id"] for r in replies] == [1, 2]
    with subprocess.Popen(probe_command("--stdio"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=server_env(tmp_path), cwd=tmp_path) as empty:
        assert empty.wait(WAIT) == 0  # /dev/null: EOF at once


@pytest.mark.parametrize("asked", [None, 0, 256 * 1024])
def test_the_stdio_pipes_are_grown_for_large_answers(tmp_path: Path, asked: int | None) -> None:
    import fcntl

    proc = _spawn(tmp_path, None if asked is None else {"stdio_pipe_size": asked})
    try:
        assert proc.stdout is not None and proc.stdin is not None
        default = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
        StdioClient(proc).handshake()  # the server serves: its pipes are set up
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        want = default if asked == 0 else min(1 << 20 if asked is None else asked, limit)
        for pipe in (proc.stdout, proc.stdin):  # one buffer per pipe, whichever end asked
            assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == max(want, default)
    finally:
        proc.kill()
        proc.wait(WAIT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
