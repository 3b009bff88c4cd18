"""Helpers of the transport tests: a real ``mcp-edge serve`` in a subprocess, driven over real pipes and sockets.

The server runs ``mcp_edge.cli`` through ``serve_probe.py``, which adds Settings
overrides (``MCP_EDGE_TEST_SETTINGS``, JSON) that the environment has no
variable for. The only plugin is ``tests/transport/plugins/probe``:

    echo(text)               -> text
    progress(steps)          -> reports progress ``steps`` times, then "done"
    slow(seconds)            -> sleeps (cancellable), then "slept"
    shout(text)              -> print()s to stdout, logs at info, then text
    touch(uri)               -> notifies subscribers that ``uri`` changed
    whoami()                 -> the request's principal as JSON (id, kind, pid, uid)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROBE = HERE / "serve_probe.py"
PROBE_PLUGINS = HERE / "plugins"
ROOT = HERE.parents[1]

# How long a test waits for something that should happen at once: only to avoid hangs, never a timing assertion.
WAIT = 20.0


# --- a server process ------------------------------------------------------------------------------------


def server_env(tmp_path: Path, settings: Mapping[str, Any] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env["MCP_EDGE_DATA_DIR"] = str(tmp_path / "data")
    env["MCP_EDGE_PLUGIN_DIRS"] = str(PROBE_PLUGINS)
    # Only the probe plugin: not the checkout's plugins/ nor installed entry points.
    overrides = {"plugin_dirs": [str(PROBE_PLUGINS)], "entry_points": False, **(settings or {})}
    env["MCP_EDGE_TEST_SETTINGS"] = json.dumps(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def probe_command(*args: str) -> list[str]:
    return [sys.executable, str(PROBE), "serve", *args]


def end_process(proc: subprocess.Popen[Any], wait: float = WAIT) -> int:
    """Ends ``proc``: SIGTERM, up to ``wait`` seconds for it to exit, then SIGKILL if it has not; its status."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(wait)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class ServerProcess:
    """A running server; its stderr is collected in the background."""

    proc: subprocess.Popen[bytes]
    where: str = ""
    stderr_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.where.rsplit(":", 1)[1].split("/", 1)[0])

    def wait_ready(self, marker: str) -> str:
        """Read stderr until the 'serving MCP over ...' line; return where it listens."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + WAIT
        fd = self.proc.stderr.fileno()
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                self.stderr_lines.append(text)
                if marker in text:
                    self.where = text.split(" at ", 1)[1].strip() if " at " in text else ""
                    self._drain_in_background()
                    return self.where
        raise AssertionError(f"server never said {marker!r}; stderr:\n" + "\n".join(self.stderr_lines)
                             + buf.decode(errors="replace"))

    def _drain_in_background(self) -> None:
        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr_lines.append(line.decode(errors="replace").rstrip("\n"))

        self._reader = threading.Thread(target=drain, daemon=True)
        self._reader.start()

    def stop(self) -> int:
        try:
            return end_process(self.proc)
        finally:
            if self._reader is not None:
                self._reader.join(WAIT)

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)


@contextlib.contextmanager
def running_server(tmp_path: Path, *args: str, settings: Mapping[str, Any] | None = None,
                   marker: str = "serving MCP over") -> Iterator[ServerProcess]:
    proc = subprocess.Popen(probe_command(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server_env(tmp_path, settings), cwd=tmp_path)
    server = ServerProcess(proc)
    try:
        server.wait_ready(marker)
        yield server
    finally:
        server.stop()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


@contextlib.contextmanager
def http_serving(command: list[str], env: Mapping[str, str]) -> Iterator[ServerProcess]:
    """``command`` (a ``serve --http`` on a loopback port) run with ``env`` from the repository root, for the
    ``with`` block: the ServerProcess once it says where it serves (``.where``, its URL); stopped after."""
    proc = subprocess.Popen(command, env=dict(env), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    server = ServerProcess(proc)
    try:
        server.wait_ready("serving MCP over Streamable HTTP at ")
        yield server
    finally:
        server.stop()
        if proc.stderr is not None:
            proc.stderr.close()


# --- JSON-RPC helpers --------------------------------------------------------------------------------------

HANDSHAKE = "2025-11-25"
STATELESS = "2026-07-28"


def initialize(rid: int | str = 1, version: str = HANDSHAKE) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}


def request(rid: int | str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def stateless_meta() -> dict[str, Any]:
    return {"io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}


# --- an HTTP client on http.client ------------------------------------------------------------------------

ACCEPT_BOTH = "application/json, text/event-stream"


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages of an SSE body."""
        assert self.headers.get("content-type", "").startswith("text/event-stream"), self.headers
        return sse_messages(self.body)


def sse_messages(body: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            out.append(json.loads(b"\n".join(data)))
    return out


class HttpClient:
    """One keep-alive connection to the server's /mcp."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        import http.client

        self.port = port
        self.conn = http.client.HTTPConnection(host, port, timeout=WAIT)
        self.session: str | None = None

    def close(self) -> None:
        self.conn.close()

    def request(self, method: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                path: str = "/mcp") -> HttpReply:
        hdrs = dict(headers or {})
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return HttpReply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def post(self, msg: Any, headers: Mapping[str, str] | None = None, *, session: bool = True) -> HttpReply:
        hdrs = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        if session and self.session:
            hdrs["Mcp-Session-Id"] = self.session
        hdrs.update(headers or {})
        return self.request("POST", json.dumps(msg).encode(), hdrs)

    def handshake(self) -> HttpReply:
        reply = self.post(initialize(), session=False)
        assert reply.status == 200, reply
        self.session = reply.headers["mcp-session-id"]
        assert self.post(notification("notifications/initialized")).status == 202
        return reply

    def stateless(self, rid: int | str, method: str, params: dict[str, Any] | None = None,
                  headers: Mapping[str, str] | None = None, name: str | None = None) -> HttpReply:
        """A 2026-07-28 request with its _meta and routing headers."""
        p = dict(params or {})
        p["_meta"] = {**stateless_meta(), **p.get("_meta", {})}
        hdrs = {"MCP-Protocol-Version": STATELESS, "Mcp-Method": method}
        if name is not None:
            hdrs["Mcp-Name"] = name
        hdrs.update(headers or {})
        return self.post(request(rid, method, p), hdrs, session=False)


def raw_exchange(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    """Send raw bytes on a fresh connection and return what comes back (until the server closes)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)


# --- requests with a credential (the authentication tests) -------------------------------------------------


def post_as(c: HttpClient, msg: Any, credential: str | None, sid: str | None = None,
            header: str = "Authorization") -> HttpReply:
    """POST ``msg`` to /mcp with ``credential`` as a bearer token (or as the value of ``header``)."""
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
    if credential is not None:
        headers[header] = f"Bearer {credential}" if header == "Authorization" else credential
    if sid is not None:
        headers["Mcp-Session-Id"] = sid
    return c.request("POST", json.dumps(msg).encode(), headers)


def open_as(c: HttpClient, credential: str) -> str:
    """A handshake-era session opened with ``credential``: its id."""
    reply = post_as(c, initialize(), credential)
    assert reply.status == 200, reply
    sid = reply.headers["mcp-session-id"]
    assert post_as(c, notification("notifications/initialized"), credential, sid).status == 202
    return sid
