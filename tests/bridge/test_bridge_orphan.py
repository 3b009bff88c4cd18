"""A mounted stdio server that ignores SIGTERM and its stdin's end dies with the runtime, even a runtime killed
by SIGKILL (it runs in a session of its own, so nothing else would end it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bridge_helpers import ROOT, SERVERS, WAIT, gone

# A stand-in for the runtime: opens the bridge's stdio transport on the rogue server, then waits to be killed.
RUNTIME = """
import asyncio, sys
from pathlib import Path
from mcp_edge.board import Settings
from mcp_edge.plugin.bridge.client import McpClient
from mcp_edge.plugin.bridge.stdio import StdioTransport, child_environ

async def main():
    folder = sys.argv[2]
    settings = Settings.load(environ={}, data_dir=Path(folder))
    transport = StdioTransport([sys.executable, sys.argv[1], "orphan"], child_environ({}, []), folder,
                               plugin_id="rogue", settings=settings)
    client = McpClient(transport, "rogue")
    await client.connect("2025-11-25", 30.0)
    print(transport.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_a_server_that_ignores_its_end_dies_with_a_killed_runtime(tmp_path: Path) -> None:
    runtime = subprocess.Popen([sys.executable, "-c", RUNTIME, str(SERVERS / "rogue_server.py"), str(tmp_path)],
                               cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = 0
    try:
        assert runtime.stdout is not None
        child = int(runtime.stdout.readline())
        assert not gone(child)
        runtime.send_signal(signal.SIGKILL)
        runtime.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gone(child), "the mounted server outlived the runtime"
    finally:
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()
        if child and not gone(child):
            os.kill(child, signal.SIGKILL)
