"""A signal sent to the server's whole process group (``timeout``, a shell's job control, a container runtime) is
the runtime's to act on: a worker ignores SIGTERM, SIGINT and SIGHUP, so a call in flight in a worker is drained
and answered, and the server exits 0, as when the runtime alone gets the SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from worker.stdio_server import PERF_PLUGINS, WAIT, StdioServer, clean_env


def test_sigterm_to_the_process_group_drains_a_call_in_a_worker(tmp_path: Path) -> None:
    srv = StdioServer(clean_env(MCP_EDGE_DATA_DIR=str(tmp_path / "data"), MCP_EDGE_PLUGIN_DIRS=str(PERF_PLUGINS),
                                MCP_EDGE_PLUGIN_ISOLATION="payload=process"), new_session=True)
    try:
        srv.initialize()
        srv.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        rows = json.loads(srv.result("resources/read", {"uri": "mcp-edge://plugins"})["contents"][0]["text"])
        worker = next(r for r in rows["plugins"] if r["id"] == "payload")["pid"]
        assert worker != srv.proc.pid
        nap = srv.start("tools/call", {"name": "nap", "arguments": {"ms": 1500}})
        time.sleep(0.3)  # the call is in the worker by now (the answer below holds whether or not)
        os.killpg(srv.proc.pid, signal.SIGTERM)  # the runtime, its worker, everything in the group
        reply = srv.reply(nap)
        assert reply.get("result", {}).get("content", [{}])[0].get("text") == "slept 1500", reply
        assert srv.proc.wait(WAIT) == 0
    finally:
        srv.close()
    assert not any("killed by SIGTERM" in line for line in srv.lines), srv.lines
