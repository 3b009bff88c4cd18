"""data_write fills a plugin's data folder up to wasm_data_max_mb and no further (-EDQUOT, the file as it was):
a module writing in a loop cannot fill the disk. Files and folders count in 4 KiB blocks, so many small files
cannot either; overwriting or removing makes room again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wasm_helpers import write_wasm_plugin

from mcp_edge.plugin import NullRequestContext, PluginState, Registry


def test_data_write_stops_at_the_quota(misbehave: Path, tmp_path: Path) -> None:
    from mcp_edge.board import Settings

    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        host_functions = ["data_read", "data_write"]
    """)
    env = {"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_WASM_DATA_MAX_MB": "1"}
    reg = Registry([folder], entry_points=False, environ=env, settings=Settings.load(environ=env))
    data = tmp_path / "data" / "plugin-data" / "misbehave"
    chunk = "x" * 250_000

    async def call(tool: str, **args: str) -> tuple[bool, str]:
        res = await reg.call_tool(tool, args, NullRequestContext())
        return res.isError, res.content[0].text if res.content else ""

    async def main() -> None:
        await reg.start()
        try:
            rec = reg.get("misbehave")
            assert rec is not None and rec.state is PluginState.ACTIVE, rec.reason if rec else None
            written = 0
            for i in range(20):  # 250 kB each: four fit in 1 MiB, the fifth does not
                got = await call("write", path=f"f{i}", text=chunk)
                if got != (False, "written"):
                    assert got == (True, "Quota exceeded"), got
                    break
                written += 1
            assert written == 4, written
            assert sorted(p.name for p in data.iterdir()) == ["f0", "f1", "f2", "f3"]  # no f4, not even empty
            assert await call("write", path="f0", text=chunk) == (False, "written")  # the same size again: fits
            assert await call("write", path="f0", text=chunk * 2) == (True, "Quota exceeded")
            assert await call("read", path="f0") == (False, chunk)  # as it was
            many = 0
            for i in range(400):  # small files are 4 KiB each to the quota
                if (await call("write", path=f"small/{i}", text="s"))[0]:
                    break
                many += 1
            assert 0 < many < 400, many
            (data / "f1").unlink()
            assert await call("write", path="again", text=chunk) == (False, "written")
        finally:
            await reg.stop()

    asyncio.run(main())
