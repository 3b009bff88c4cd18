"""Every transport attaches a principal to its sessions: stdio the parent process, unix the peer's SO_PEERCRED
credentials, HTTP anonymous, in-process calls embedded. Real servers, asked by the probe's ``whoami`` tool."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_stdio import StdioClient, _spawn
from test_unix import UnixClient, _short_path
from transport_helpers import PROBE_PLUGINS, WAIT, HttpClient, request, running_server


def _who(reply: dict[str, Any]) -> dict[str, Any]:
    who: dict[str, Any] = json.loads(reply["result"]["content"][0]["text"])
    return who


def _whoami(rid: int) -> tuple[int, str, dict[str, Any]]:
    return rid, "tools/call", {"name": "whoami", "arguments": {}}


def test_stdio_sessions_are_the_parent_process(tmp_path: Path) -> None:
    proc = _spawn(tmp_path)
    try:
        client = StdioClient(proc)
        client.handshake()
        who = _who(client.call(*_whoami(2)))
    finally:
        proc.kill()
        proc.wait(WAIT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert who == {"id": f"uid:{os.getuid()}", "kind": "process", "pid": os.getpid(), "uid": os.getuid()}


def test_unix_sessions_are_their_peer(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path)):
        c = UnixClient(path)
        try:
            c.handshake()
            who = _who(c.call(*_whoami(2)))
        finally:
            c.close()
    assert who == {"id": f"uid:{os.getuid()}", "kind": "unix-peer", "pid": os.getpid(), "uid": os.getuid()}


def test_a_unix_peer_in_another_process_is_that_process(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    script = (
        "import json, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rb')\n"
        "for m in sys.argv[2:]:\n"
        "    s.sendall(m.encode() + b'\\n')\n"
        "    line = f.readline() if 'id' in json.loads(m) else b''\n"
        "    sys.stdout.write(line.decode())\n"
    )
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    msgs = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}, request(*_whoami(2))]
    with running_server(tmp_path, "--unix", str(path)):
        peer = subprocess.Popen([sys.executable, "-c", script, str(path), *map(json.dumps, msgs)],
                                stdout=subprocess.PIPE)
        out, _ = peer.communicate(timeout=WAIT)
    reply = json.loads(out.decode().splitlines()[-1])
    assert _who(reply)["pid"] == peer.pid


def test_http_sessions_are_anonymous(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--port", "0") as srv:
        c = HttpClient(srv.port)
        try:
            c.handshake()
            handshake_era = c.post(request(*_whoami(2))).json()
            stateless = c.stateless(3, "tools/call", {"name": "whoami", "arguments": {}}, name="whoami").json()
        finally:
            c.close()
    anonymous = {"id": "anonymous", "kind": "anonymous", "pid": None, "uid": None}
    assert _who(handshake_era) == anonymous
    assert _who(stateless) == anonymous


def test_embedded_calls_are_embedded(tmp_path: Path) -> None:
    from mcp_edge.board.settings import Settings
    from mcp_edge.server import Server

    async def main() -> str:
        settings = Settings.load(plugin_dirs=[PROBE_PLUGINS], entry_points=False, data_dir=tmp_path / "data")
        running = await Server.configure(settings).start()
        try:
            result = await running.call_tool("whoami", {})
        finally:
            await running.stop()
        text: str = result.content[0].text  # type: ignore[union-attr]
        return text

    assert json.loads(asyncio.run(main())) == {"id": "embedded", "kind": "embedded", "pid": None, "uid": None}
