"""Unix socket transport: ``mcp-edge serve --unix PATH``, newline-delimited JSON-RPC per connection."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

from transport_helpers import WAIT, initialize, notification, probe_command, request, running_server, server_env


class UnixClient:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send(self, msg: Any) -> None:
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line, "the server closed the connection"
        msg = json.loads(line)
        assert isinstance(msg, dict)
        return msg

    def call(self, rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.send(request(rid, method, params))
        return self.recv()

    def handshake(self) -> None:
        assert self.call(1, "initialize", initialize()["params"])["result"]["protocolVersion"]
        self.send(notification("notifications/initialized"))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _short_path(tmp_path: Path) -> Path:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer
    path = tmp_path / "mcp.sock"
    if len(str(path)) < 100:
        return path
    import tempfile

    return Path(tempfile.mkdtemp(prefix="mcp-edge-")) / "mcp.sock"


def test_round_trip_permissions_and_cleanup(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path)) as srv:
        assert srv.where == str(path)
        st = path.stat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        c = UnixClient(path)
        c.handshake()
        assert c.call(2, "ping")["result"] == {}
        reply = c.call(3, "tools/call", {"name": "echo", "arguments": {"text": "over unix"}})
        assert reply["result"]["content"][0]["text"] == "over unix"
        c.sock.sendall(b"{not json}\n")
        assert c.recv()["error"]["code"] == -32700
        assert c.call(4, "ping")["id"] == 4  # the connection lives on
        c.close()
        assert srv.stop() == 0
    assert not path.exists()


def test_two_clients_are_two_sessions(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    # One request in flight per session: a's next call is served only once its slow call is really cancelled.
    with running_server(tmp_path, "--unix", str(path), settings={"max_inflight": 1}):
        a, b = UnixClient(path), UnixClient(path)
        a.handshake()
        # b has not initialized: its own session, whatever a did
        assert b.call(1, "tools/list")["error"]["code"] == -32600
        b.handshake()
        a.send(request(5, "tools/call", {"name": "slow", "arguments": {"seconds": 60}}))
        results: dict[str, Any] = {}

        def other() -> None:
            results["b"] = b.call(6, "tools/call", {"name": "echo", "arguments": {"text": "b"}})

        t = threading.Thread(target=other)
        t.start()
        t.join(WAIT)
        assert results["b"]["result"]["content"][0]["text"] == "b"  # a's slow call does not hold b up
        busy = a.call(8, "tools/call", {"name": "echo", "arguments": {"text": "too soon"}})
        assert busy["error"]["code"] == -32010  # the slow call holds a's only slot
        a.send(notification("notifications/cancelled", {"requestId": 5}))
        assert a.call(7, "ping")["id"] == 7  # the cancelled call sent nothing
        # The slot is free again: the handler was cancelled (left running for its 60 s, it would hold the slot).
        reply = a.call(9, "tools/call", {"name": "echo", "arguments": {"text": "after"}})
        assert reply["result"]["content"][0]["text"] == "after"
        a.close()
        b.close()


def test_oversized_line_gets_an_error_and_the_next_message_is_served(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path), settings={"max_frame": 2048}):
        c = UnixClient(path)
        c.handshake()
        c.sock.sendall(b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"' + b"x" * 10000 + b'"}}\n')
        assert c.recv()["error"]["code"] == -32600
        assert c.call(10, "ping")["id"] == 10
        c.close()


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    with running_server(tmp_path, "--unix", str(path)):
        c = UnixClient(path)
        assert c.call(1, "ping")["result"] == {}
        c.close()


def _serve_fails(tmp_path: Path, path: Path) -> str:
    proc = subprocess.run(probe_command("--unix", str(path)), stdin=subprocess.DEVNULL, capture_output=True,
                          env=server_env(tmp_path), cwd=tmp_path, timeout=WAIT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    return lines[-1]


def test_refuses_a_path_that_is_not_a_socket(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    path.write_text("precious")
    message = _serve_fails(tmp_path, path)
    assert message.startswith("mcp-edge: ") and "is not a socket" in message
    assert path.read_text() == "precious"


def test_refuses_a_socket_in_use(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path)):
        message = _serve_fails(tmp_path, path)
        assert "in use" in message
        assert path.exists()
