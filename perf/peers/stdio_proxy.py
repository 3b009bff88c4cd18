"""``stdio-proxy``: the way users isolate an MCP server today, as the supervisor bench's peer.

A gateway process speaks newline-delimited JSON-RPC on its own stdin/stdout and relays every line, unchanged,
to a child MCP server it started over stdio (``mcp-edge serve --stdio`` serving the same plugin), and every
line the child writes back to its own stdout. The plugin is isolated in the child's process, as a
``process`` plugin is in its worker; the gateway is the relay every such deployment has (per-server stdio
children behind one front process). It reads and writes whole lines with no JSON parsing, so it is the
cheapest such relay; a real gateway also routes (parses each message), which only costs more.

Usage: ``python stdio_proxy.py -- <child command...>``. The child's stderr is inherited. EOF on stdin closes
the child's stdin; the gateway exits with the child.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys

_CHUNK = 1 << 20


def _pump(src: int, dst: int, pending: bytearray) -> bool:
    """Move what ``src`` has to ``dst`` in whole lines; False at EOF. A partial line waits in ``pending``."""
    data = os.read(src, _CHUNK)
    if not data:
        return False
    pending += data
    cut = pending.rfind(b"\n") + 1
    if cut:
        view = memoryview(pending)[:cut]
        while view:
            n = os.write(dst, view)
            view = view[n:]
        view.release()
        del pending[:cut]
    return True


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: stdio_proxy.py -- <child command...>", file=sys.stderr)
        return 2
    child_cmd = argv[argv.index("--") + 1:]
    child = subprocess.Popen(child_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert child.stdin is not None and child.stdout is not None
    to_child, from_child = child.stdin.fileno(), child.stdout.fileno()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(stdin, selectors.EVENT_READ, "in")
    sel.register(from_child, selectors.EVENT_READ, "out")
    up, down = bytearray(), bytearray()
    open_in = True
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                if not _pump(stdin, to_child, up):
                    sel.unregister(stdin)
                    child.stdin.close()
                    open_in = False
            elif not _pump(from_child, stdout, down):
                if open_in:
                    sel.unregister(stdin)
                sel.unregister(from_child)
                return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
