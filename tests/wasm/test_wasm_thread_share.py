"""Each WASM plugin runs its calls on threads of its own (settings.wasm_threads apiece): a plugin whose calls
all run to their deadline holds up its own later calls only; another plugin's calls are answered meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wasm_helpers import write_wasm_plugin

from mcp_edge.plugin import NullRequestContext, PluginState, Registry


def test_runaway_calls_of_one_plugin_do_not_hold_up_another(misbehave: Path, wasm_hello: Path,
                                                            tmp_path: Path) -> None:
    from mcp_edge.board import Settings

    root = tmp_path / "plugins"
    runaway = write_wasm_plugin(root, "runaway", misbehave, "deadline_ms = 4000\n")
    env = {"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_WASM_THREADS": "2"}
    reg = Registry([runaway, wasm_hello], entry_points=False, environ=env, settings=Settings.load(environ=env))

    async def main() -> None:
        await reg.start()
        try:
            for pid in ("runaway", "wasm_hello"):
                rec = reg.get(pid)
                assert rec is not None and rec.state is PluginState.ACTIVE, rec.reason if rec else None
            spins = [asyncio.create_task(reg.call_tool("spin", {}, NullRequestContext()))
                     for _ in range(4)]
            await asyncio.sleep(0)  # they are on their way: both of runaway's threads spin, two calls wait
            res = await reg.call_tool("text_stats", {"text": "a b"}, NullRequestContext())
            pending = sum(not t.done() for t in spins)
            assert not res.isError and res.content[0].text.startswith("bytes=3 chars=3 words=2"), res
            assert pending == 4, "another plugin's call waited for runaway's calls to end"
            for done in await asyncio.gather(*spins):
                assert done.isError and "deadline of 4000 ms passed" in done.content[0].text
        finally:
            await reg.stop()

    asyncio.run(main())
