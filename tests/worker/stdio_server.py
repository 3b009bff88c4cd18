"""A real ``mcp-edge serve --stdio`` for the worker tests: requests by id, its stderr collected line by line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PERF_PLUGINS = ROOT / "perf" / "plugins"
WAIT = 60.0


def clean_env(**mcp_edge: str) -> dict[str, str]:
    """This process's environment without its MCP_EDGE_* variables, plus ``mcp_edge`` (no entry points and no
    folder watcher unless given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update({"MCP_EDGE_ENTRY_POINTS": "0", "MCP_EDGE_RELOAD_WATCH": "0", **mcp_edge})
    return env


class StdioServer:
    def __init__(self, env: dict[str, str], *, quiet: bool = True, new_session: bool = False) -> None:
        argv = [sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio", *(["-q"] if quiet else [])]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=ROOT, start_new_session=new_session)
        self.lines: list[str] = []
        self.next = 0
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def reply(self, want_id: int) -> dict[str, Any]:
        """The answer to request ``want_id`` (notifications and other answers skipped)."""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed stdout:\n" + "\n".join(self.lines)
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == want_id:
                return reply

    def start(self, method: str, params: dict[str, Any]) -> int:
        """Send a request without waiting for its answer; its id."""
        self.next += 1
        self.send({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params})
        return self.next

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.reply(self.start(method, params))

    def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The result of a request that must succeed."""
        reply = self.request(method, params or {})
        assert "error" not in reply, reply
        return reply["result"]

    def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        return self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                           "clientInfo": {"name": "worker-tests", "version": "1"}})

    def wait_log(self, marker: str, after: int = 0) -> None:
        """Until a stderr line from ``after`` on holds ``marker`` (a bounded wait, not a measurement)."""
        for _ in range(int(WAIT / 0.02)):
            if any(marker in line for line in self.lines[after:]):
                return
            time.sleep(0.02)
        raise AssertionError(f"never logged {marker!r}:\n" + "\n".join(self.lines))

    def close(self) -> int:
        """End the session (EOF) and wait for the exit status; kill a server that does not exit."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(WAIT)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
