"""`mcp-edge plugin install` and `plugin remove` under a running server: the installed plugin's tool becomes
callable by the official ``mcp`` SDK client without a restart, clients are told (tools/list_changed), and the
removed plugin's tool goes away, while the server serves on."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ci_honesty import importorskip
from click.testing import CliRunner
from index_helpers import PLUGIN_ID, base_url, published_v1, serve_folder

from mcp_edge.commands import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from transport_helpers import WAIT, running_server

anyio = importorskip("anyio", "interop", "the live install test needs anyio (with the mcp SDK)")
mcp = importorskip("mcp", "interop", "the live install test drives the server with the mcp SDK client")

TOOL = f"{PLUGIN_ID}_version"


def _cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    return result.output


def test_install_and_remove_under_a_running_server_need_no_restart(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        index_url = base_url(http) + "index.json"
        env = {"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_TRUST_DIR": str(trust),
               "MCP_EDGE_PLUGIN_INDEX": index_url, "MCP_EDGE_PLUGIN_DIRS": ""}
        settings = {"plugin_index": index_url, "trust_dir": str(trust)}
        with running_server(tmp_path, "--http", "--host", "127.0.0.1", "--port", "0", settings=settings) as server:
            seen = anyio.run(_session, f"http://127.0.0.1:{server.port}/mcp", env)
            stderr = server.stderr()
            assert server.proc.poll() is None  # the same process throughout
    print("\n".join(line for line in stderr.splitlines() if "plugin" in line))
    assert f"plugin {PLUGIN_ID}: added (version 1.0.0)" in stderr
    assert f"plugin {PLUGIN_ID}: removed" in stderr
    assert seen["before"] is False and seen["answer"] == "v1" and seen["after"] is False
    assert seen["error"]
    assert seen["notified"] >= 2  # one tools/list_changed for the install, one for the removal


async def _session(url: str, env: dict[str, str]) -> dict[str, Any]:
    from mcp import Client

    notified = [0]

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/tools/list_changed":
            notified[0] += 1

    async def listed(c: Any) -> bool:
        return TOOL in {t.name for t in (await c.list_tools()).tools}

    async def until(c: Any, want: bool, what: str) -> None:
        deadline = time.monotonic() + WAIT  # a hang guard, not a measurement: the assertion is on the listing
        while await listed(c) is not want and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert await listed(c) is want, what

    out: dict[str, Any] = {}
    with anyio.fail_after(4 * WAIT):
        async with Client(url, mode="legacy", read_timeout_seconds=WAIT, message_handler=on_message) as c:
            out["before"] = await listed(c)
            await anyio.to_thread.run_sync(lambda: _cli(env, "plugin", "install", PLUGIN_ID))
            await until(c, True, "the installed plugin's tool is listed")
            result = await c.call_tool(TOOL)
            out["answer"] = None if result.is_error else str(result.content[0].text)
            await anyio.to_thread.run_sync(lambda: _cli(env, "plugin", "remove", PLUGIN_ID))
            await until(c, False, "the removed plugin's tool is gone")
            out["after"] = await listed(c)
            try:
                gone = await c.call_tool(TOOL)
                out["error"] = gone.is_error
            except Exception as exc:  # the SDK raises for a JSON-RPC error (unknown tool)
                out["error"] = str(exc) or type(exc).__name__
            deadline = time.monotonic() + WAIT
            while notified[0] < 2 and time.monotonic() < deadline:
                await anyio.sleep(0.05)
    out["notified"] = notified[0]
    return out
