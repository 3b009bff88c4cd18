"""Helpers of the interop tests: our server as the official clients meet it, over stdio and HTTP.

The server is ``python -m mcp_edge.cli serve`` in a subprocess with the built-in
plugins, the conformance fixtures (``tests/conformance``) and the ``interop``
helper plugin (``tests/interop/plugins``). Each test gets a ``Target``: how to
reach that server (a stdio command, or the URL of one HTTP server shared by the
whole session) and the protocol era to speak (``legacy`` = the 2025-11-25
handshake, or ``2026-07-28``).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN_DIRS = (ROOT / "tests" / "conformance", HERE / "plugins")
SERVE = (sys.executable, "-m", "mcp_edge.cli", "serve")
MODERN = "2026-07-28"
# Only to avoid hangs, never a timing assertion.
WAIT = 30.0


@dataclass(frozen=True)
class Target:
    """Where the server is and which era to speak to it."""

    transport: str  # "stdio" or "http"
    mode: str  # "legacy" or "2026-07-28"
    env: dict[str, str]
    url: str | None
    data_dir: Path

    @property
    def command(self) -> list[str]:
        return [*SERVE, "--stdio", "-q"]

    def marker(self, tag: str) -> Path:
        """The file in which ``interop_wait`` records how the call tagged ``tag`` ended."""
        return self.data_dir / "plugin-data" / "interop" / tag

    def wait_marker(self, tag: str, want: str) -> str:
        deadline = time.monotonic() + WAIT
        text = ""
        while time.monotonic() < deadline:
            path = self.marker(tag)
            text = path.read_text() if path.exists() else ""
            if text == want:
                break
            time.sleep(0.02)
        return text


def wait_for_url(proc: subprocess.Popen[bytes], lines: list[str]) -> str:
    assert proc.stderr is not None
    marker = "serving MCP over Streamable HTTP at "
    deadline = time.monotonic() + WAIT
    buf = b""
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.decode(errors="replace")
            lines.append(line)
            if marker in line:
                return line.split(marker, 1)[1].strip()
    raise AssertionError("the HTTP server did not start:\n" + "\n".join(lines) + buf.decode(errors="replace"))
