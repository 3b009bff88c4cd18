"""A real ``mcp-edge serve --stdio`` with one of the repository's built-in plugins (fs, logs), for issue 7's tests.

The server runs through ``tests/transport/serve_probe.py`` (the real CLI, with Settings overrides in
``MCP_EDGE_TEST_SETTINGS``), with the repository's ``plugins/`` as its only plugin folder and one plugin
enabled, configured by the test. Every line the server writes to stdout is kept (``lines``), so a test can
check their sizes.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "transport" / "serve_probe.py"
WAIT = 30.0  # how long to wait for something that should come at once: a bound against hangs, not a timing check


class BuiltinServer:
    """A stdio server process and a line-oriented JSON-RPC client of it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._buf = b""
        self.lines: list[int] = []  # the length of every line the server wrote to stdout, newline included
        self.pending: dict[Any, dict[str, Any]] = {}  # responses read while waiting for another id

    def send(self, msg: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def recv(self, wait: float = WAIT) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + wait
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message from the server within {wait} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise AssertionError(f"server closed stdout (exit {self.proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        self.lines.append(len(line) + 1)
        msg = json.loads(line)
        assert isinstance(msg, dict)
        return msg

    def response(self, rid: Any, wait: float = WAIT) -> dict[str, Any]:
        """The response to request ``rid`` (other messages read meanwhile are kept or skipped)."""
        if rid in self.pending:
            return self.pending.pop(rid)
        deadline = time.monotonic() + wait
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if "id" in msg and "method" not in msg:
                if msg["id"] == rid:
                    return msg
                self.pending[msg["id"]] = msg

    def call(self, rid: Any, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = dict(params)
        self.send(msg)
        return self.response(rid)

    def handshake(self) -> None:
        reply = self.call("init", "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                 "clientInfo": {"name": "adversarial", "version": "0"}})
        assert "result" in reply, reply
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


@contextmanager
def builtin_server(tmp_path: Path, plugin: str, config: Mapping[str, Any],
                   settings: Mapping[str, Any] | None = None) -> Iterator[BuiltinServer]:
    """``mcp-edge serve --stdio`` with only the built-in ``plugin``, configured with ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env["MCP_EDGE_DATA_DIR"] = str(tmp_path / "data")
    env["MCP_EDGE_ENABLED_PLUGINS"] = plugin
    overrides = {"plugin_dirs": [str(ROOT / "plugins")], "entry_points": False,
                 "plugin_config": {plugin: dict(config)}, **(settings or {})}
    env["MCP_EDGE_TEST_SETTINGS"] = json.dumps(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with open(tmp_path / "server.stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(PROBE), "serve", "--stdio"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, env=env, cwd=tmp_path)
        try:
            server = BuiltinServer(proc)
            server.handshake()
            yield server
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(WAIT)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
