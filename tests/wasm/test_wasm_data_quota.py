"""data_write fills a plugin's data folder up to wasm_data_max_mb and no further (-EDQUOT, the file as it was):
a module writing in a loop cannot fill the disk. Files and folders count in 4 KiB blocks, so many small files
cannot either; overwriting or removing makes room again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wasm_helpers import answer, registry_of, started, write_wasm_plugin


def test_data_write_stops_at_the_quota(misbehave: Path, tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        host_functions = ["data_read", "data_write"]
    """)
    reg = registry_of([folder], tmp_path, MCP_EDGE_WASM_DATA_MAX_MB="1")
    data = tmp_path / "data" / "plugin-data" / "misbehave"
    chunk = "x" * 250_000

    async def call(tool: str, **args: str) -> tuple[bool, str]:
        return await answer(reg, tool, args)

    async def main() -> None:
        async with started(reg, "misbehave"):
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

    asyncio.run(main())
