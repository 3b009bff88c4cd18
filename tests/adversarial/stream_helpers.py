"""Helpers of the stream-transport tests (stdio, unix socket): a real server process and a line client.

Servers run the real CLI through ``tests/transport/serve_probe.py`` with the transport tests' ``probe`` plugin
(echo, progress, slow, shout, touch) and ``stream_plugins/asker`` (``greet`` asks the client for a name).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from transport_helpers import (
    PROBE_PLUGINS,
    WAIT,
    ServerProcess,
    initialize,
    notification,
    probe_command,
    request,
    server_env,
)

STREAM_PLUGINS = Path(__file__).resolve().parent / "stream_plugins"

__all__ = [
    "PROBE_PLUGINS",
    "WAIT",
    "LineClient",
    "MiB",
    "ServerProcess",
    "check_flood_answers",
    "flood",
    "initialize",
    "notification",
    "probe_command",
    "request",
    "rss_kib",
    "spawn_stdio",
    "stream_env",
    "wait_until_stalled",
]


def stream_env(tmp_path: Path, settings: dict[str, Any] | None = None) -> dict[str, str]:
    plugin_dirs = [str(PROBE_PLUGINS), str(STREAM_PLUGINS)]
    return server_env(tmp_path, {"plugin_dirs": plugin_dirs, **(settings or {})})


def spawn_stdio(tmp_path: Path, settings: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(probe_command("--stdio"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=stream_env(tmp_path, settings), cwd=tmp_path)


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class LineClient:
    """Newline-delimited JSON-RPC over a pair of file descriptors (a stdio pipe pair, or a socket twice)."""

    def __init__(self, read_fd: int, write: Any) -> None:
        self._fd = read_fd
        self._write = write  # callable(bytes)
        self._buf = b""
        self.early: list[dict[str, Any]] = []  # messages read while waiting for another

    @classmethod
    def stdio(cls, proc: subprocess.Popen[bytes]) -> LineClient:
        assert proc.stdin is not None and proc.stdout is not None
        stdin = proc.stdin

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        return cls(proc.stdout.fileno(), write)

    @classmethod
    def unix(cls, sock: socket.socket) -> LineClient:
        return cls(sock.fileno(), sock.sendall)

    def send_raw(self, data: bytes) -> None:
        self._write(data)

    def send(self, msg: Any) -> None:
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def line(self, wait: float = WAIT) -> bytes | None:
        """The next line; None at EOF."""
        deadline = time.monotonic() + wait
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing from the server within {wait} s")
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                chunk = os.read(self._fd, 1 << 20)
                if not chunk:
                    return None
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def recv(self, wait: float = WAIT) -> dict[str, Any]:
        line = self.line(wait)
        assert line is not None, "the server closed its output"
        msg = json.loads(line)
        assert isinstance(msg, dict)
        return msg

    def wait_for(self, rid: Any, wait: float = WAIT) -> dict[str, Any]:
        """The response with id ``rid`` (others read meanwhile are kept in ``early``)."""
        for i, msg in enumerate(self.early):
            if msg.get("id") == rid and "method" not in msg:
                return self.early.pop(i)
        while True:
            msg = self.recv(wait)
            if msg.get("id") == rid and "method" not in msg:
                return msg
            self.early.append(msg)

    def call(self, rid: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.send(request(rid, method, params))
        return self.wait_for(rid)

    def handshake(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        init = initialize()
        init["params"]["capabilities"] = capabilities or {}
        self.send(init)
        reply = self.wait_for(1)
        self.send(notification("notifications/initialized"))
        return reply

    def rest(self, wait: float = WAIT) -> list[dict[str, Any]]:
        """Every message until the server closes its output."""
        out = list(self.early)
        self.early.clear()
        while (line := self.line(wait)) is not None:
            out.append(json.loads(line))
        return out


# -- a client that floods the server with requests and does not read -----------------------------------------

MiB = 1024 * 1024


def flood(send: Any, count: int, size: int, sent: list[int], failed: list[BaseException]) -> threading.Thread:
    """Send ``count`` echo requests of ``size`` bytes (ids 100...) from a thread; ``sent[0]`` counts them."""
    def run() -> None:
        text = "x" * size
        try:
            for i in range(count):
                send(json.dumps(request(100 + i, "tools/call", {"name": "echo", "arguments": {"text": text}}))
                     .encode() + b"\n")
                sent[0] += 1
        except OSError as exc:  # the server dropped us
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until_stalled(thread: threading.Thread, sent: list[int], quiet: float = 1.5, limit: float = 60.0) -> None:
    """Until the sender is done, or has sent nothing for ``quiet`` seconds (bounded by ``limit``)."""
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while thread.is_alive() and time.monotonic() < deadline:
        if sent[0] != last:
            last, since = sent[0], time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        time.sleep(0.1)


def check_flood_answers(client: LineClient, count: int, size: int) -> None:
    """Every flood request answered, well-formed, with its own text back."""
    seen = set()
    while len(seen) < count:
        msg = client.recv()
        assert msg["jsonrpc"] == "2.0" and "result" in msg, str(msg)[:200]
        assert len(msg["result"]["content"][0]["text"]) == size
        seen.add(msg["id"])
    assert seen == set(range(100, 100 + count))
