"""A misbehaving MCP server over stdio, in plain JSON lines (no SDK), for the bridge's robustness tests.

``python rogue_server.py MODE``; every mode answers ``initialize`` and ``tools/list`` (tools ``stall``, ``echo``
and ``flood``), then:

- ``stall``: ``tools/call stall`` stops reading stdin for good (the pipe fills; the process stays);
- ``orphan``: writes its pid to stderr, ignores SIGTERM and stdin's end (it must die with the runtime);
- ``flood``: ``tools/call flood`` writes ``arguments.count`` progress and log notifications, then answers;
- ``leave``: ``tools/call stall`` starts a process that keeps stdout open (writing its pid to stderr), then
  exits without answering;
- ``mute``: reads everything, answers nothing (not even ``initialize``), and ignores SIGTERM;
- ``drip``: ``tools/list`` answers a page of one tool every 0.2 s, each with a next cursor, for ever;
- ``hollow``: ``tools/call echo`` is answered with ``arguments.result`` as its result (absent: neither a result
  nor an error).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in ("stall", "echo", "flood")]


def send(msg: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main() -> None:
    if MODE in ("orphan", "mute"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr.write(f"pid {os.getpid()}\n")
        sys.stderr.flush()
    for line in sys.stdin:
        msg = json.loads(line)
        method, mid, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        if mid is None or MODE == "mute":
            continue
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": params.get("protocolVersion"), "capabilities": {"tools": {}},
                "serverInfo": {"name": "rogue", "version": "1"}}})
        elif method == "tools/list" and MODE == "drip":
            time.sleep(0.2)
            page = int(params.get("cursor") or 0)
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
                {"name": f"t{page}", "inputSchema": {"type": "object"}}], "nextCursor": str(page + 1)}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
        elif method == "tools/call" and params.get("name") == "stall" and MODE == "leave":
            import subprocess

            child = subprocess.Popen(["sleep", "3600"])  # inherits stdout
            sys.stderr.write(f"left {child.pid}\n")
            sys.stderr.flush()
            os._exit(3)
        elif method == "tools/call" and params.get("name") == "stall":
            while True:  # never reads stdin again
                time.sleep(3600)
        elif method == "tools/call" and params.get("name") == "flood":
            token = (params.get("_meta") or {}).get("progressToken")
            for i in range(int(params["arguments"]["count"])):
                if token is not None:
                    send({"jsonrpc": "2.0", "method": "notifications/progress",
                          "params": {"progressToken": token, "progress": i}})
                send({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": f"line {i}"}})
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "flooded"}]}})
        elif method == "tools/call" and MODE == "hollow":
            answer: dict[str, object] = {"jsonrpc": "2.0", "id": mid}
            if "result" in params["arguments"]:
                answer["result"] = params["arguments"]["result"]
            send(answer)
        elif method == "tools/call":
            text = json.dumps(params.get("arguments"))
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text[:100]}]}})
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no"}})
    if MODE == "orphan":
        while True:  # stdin ended: stays anyway
            time.sleep(3600)


if __name__ == "__main__":
    main()
