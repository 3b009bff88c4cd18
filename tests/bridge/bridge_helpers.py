"""Helpers of the bridge tests: plugin folders that mount the fixture servers, our server serving them.

The fixture servers (``servers/``) are built with the official ``mcp`` SDK (``sdk_server.py``: stdio, or
Streamable HTTP with ``--http PORT``) and with ``fastmcp`` (``fastmcp_server.py``, stdio). Our server is the real
CLI (``tests/transport/serve_probe.py``, for Settings overrides) serving Streamable HTTP on loopback, driven by
the official SDK client in either era.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVERS = HERE / "servers"
sys.path.insert(0, str(ROOT / "tests" / "transport"))
from transport_helpers import PROBE, ServerProcess, end_process, http_serving  # noqa: E402

MODERN = "2026-07-28"
# Only to end a broken test, never a timing assertion.
WAIT = 30.0


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def bridge_plugin(root: Path, plugin_id: str, body: str) -> Path:
    """A plugin folder ``root/plugin_id`` whose plugin.toml has ``body`` under its [plugin] table."""
    folder = root / plugin_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(f'[plugin]\nid = "{plugin_id}"\nversion = "1.0.0"\n\n{body}\n')
    return folder


def stdio_plugin(root: Path, plugin_id: str, server: str, extra: str = "") -> Path:
    """A plugin mounting ``servers/<server>`` over stdio with this interpreter."""
    command = toml_list([sys.executable, str(SERVERS / server)])
    return bridge_plugin(root, plugin_id, f"[bridge]\ncommand = {command}\n{extra}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(plugin_dir: Path, data: Path, environ: dict[str, str] | None = None, **settings: Any
            ) -> Iterator[ServerProcess]:
    """Our server over Streamable HTTP with only the plugins of ``plugin_dir`` (``environ`` added to its
    environment); ``.where`` is its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update(environ or {})
    # quick restarts, and a breaker that opens for half a second only (tests poll while a server restarts)
    overrides = {"plugin_dirs": [str(plugin_dir)], "entry_points": False, "restart_backoff_base_s": 0.05,
                 "restart_backoff_cap_s": 1.0, "breaker_open_s": 0.5, **settings}
    env.update({"MCP_EDGE_DATA_DIR": str(data), "MCP_EDGE_PLUGIN_DIRS": str(plugin_dir),
                "MCP_EDGE_TEST_SETTINGS": json.dumps(overrides), "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    with http_serving([sys.executable, str(PROBE), "serve", "--http", "--host", "127.0.0.1", "--port", "0"],
                      env) as server:
        yield server


@contextlib.contextmanager
def sdk_http_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The SDK fixture server as a real Streamable HTTP server on loopback ``port`` (ready when it accepts)."""
    proc = subprocess.Popen([sys.executable, str(SERVERS / "sdk_server.py"), "--http", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
                break
            assert proc.poll() is None, "the fixture HTTP server exited"
            time.sleep(0.05)
        yield proc
    finally:
        end_process(proc, WAIT)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie not yet reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def run(fn: Callable[[], Awaitable[None]]) -> None:
    """One test's client session, bounded in time."""
    import anyio

    async def bounded() -> None:
        with anyio.fail_after(4 * WAIT):
            await fn()

    anyio.run(bounded)


def setting_events(events: dict[str, Any]) -> Callable[[Any], Awaitable[None]]:
    """A client's message_handler that sets ``events[method]`` (an anyio.Event) when a notification of that
    method comes in."""
    async def on_message(message: Any) -> None:
        event = events.get(getattr(getattr(message, "root", message), "method", None) or "")
        if event is not None:
            event.set()

    return on_message


async def plugins_status(c: Any) -> dict[str, dict[str, Any]]:
    """The runtime's plugin table (mcp-edge://plugins), by id."""
    status = await c.read_resource("mcp-edge://plugins")
    return {p["id"]: p for p in json.loads(status.contents[0].text)["plugins"]}


def text_of(result: Any) -> str:
    block = result.content[0]
    assert block.type == "text", result
    return str(block.text)
