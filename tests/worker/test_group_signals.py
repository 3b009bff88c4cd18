"""A signal sent to the server's whole process group (``timeout``, a shell's job control, a container runtime) is
the runtime's to act on: a worker ignores SIGTERM, SIGINT and SIGHUP, so a call in flight in a worker is drained
and answered, and the server exits 0, as when the runtime alone gets the SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


def _read_reply(proc: subprocess.Popen[bytes], want_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "the server closed stdout before answering"
        reply: dict[str, Any] = json.loads(line)
        if reply.get("id") == want_id:
            return reply


def test_sigterm_to_the_process_group_drains_a_call_in_a_worker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update({"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_ENTRY_POINTS": "0",
                "MCP_EDGE_RELOAD_WATCH": "0", "MCP_EDGE_PLUGIN_DIRS": str(ROOT / "perf" / "plugins"),
                "MCP_EDGE_PLUGIN_ISOLATION": "payload=process"})
    proc = subprocess.Popen([sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, start_new_session=True)
    assert proc.stdin is not None
    try:
        def send(msg: dict[str, Any]) -> None:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(msg).encode() + b"\n")
            proc.stdin.flush()

        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "pg", "version": "1"}}})
        _read_reply(proc, 1)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "mcp-edge://plugins"}})
        rows = json.loads(_read_reply(proc, 2)["result"]["contents"][0]["text"])["plugins"]
        worker = next(r for r in rows if r["id"] == "payload")["pid"]
        assert worker != proc.pid
        send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "nap", "arguments": {"ms": 1500}}})
        time.sleep(0.3)  # the call is in the worker by now (the answer below holds whether or not)
        os.killpg(proc.pid, signal.SIGTERM)  # the runtime, its worker, everything in the group
        reply = _read_reply(proc, 3)
        assert reply.get("result", {}).get("content", [{}])[0].get("text") == "slept 1500", reply
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr is not None else ""
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert "killed by SIGTERM" not in stderr, stderr
