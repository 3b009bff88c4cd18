"""A WASI preopen is handed to the engine as the folder the runtime opened (a descriptor), not as a name the
engine looks up again: a folder swapped for a link between the runtime's check and the engine's open (a module
can make links in a writable preopen, and race its own next instance) still gives the folder that was checked.
And a link on a preopen's way is refused even when it leads inside."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from wasm_helpers import registry_of, write_wasm_plugin

from mcp_edge.plugin import NullRequestContext, PluginState


def test_a_folder_swapped_for_a_link_after_the_check_is_not_what_the_module_sees(
        misbehave: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        [[wasm.preopens]]
        guest = "/s"
        source = "data/sub"
    """)
    sub = tmp_path / "data" / "plugin-data" / "misbehave" / "sub"
    sub.mkdir(parents=True)
    (sub / "f.txt").write_text("inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("secret")
    import wasmtime  # (the misbehave fixture has checked it is there)

    real = wasmtime.WasiConfig.preopen_dir
    swapped: list[str] = []

    def racing(self: Any, path: str, guest: str, fs_mutable: bool = True) -> None:
        if not swapped:  # the window between the runtime's check and the engine's open
            sub.rename(sub.with_name("sub-old"))
            os.symlink(outside, sub)
            swapped.append(path)
        real(self, path, guest, fs_mutable)

    reg = registry_of([folder], tmp_path)

    async def main() -> tuple[bool, str]:
        await reg.start()
        try:
            rec = reg.get("misbehave")
            assert rec is not None and rec.state is PluginState.ACTIVE, rec.reason if rec else None
            monkeypatch.setattr(wasmtime.WasiConfig, "preopen_dir", racing)
            res = await reg.call_tool("fread", {"path": "/s/f.txt"}, NullRequestContext())
            return res.isError, res.content[0].text if res.content else ""
        finally:
            await reg.stop()

    got = asyncio.run(main())
    assert swapped, "the engine was never asked for the preopen"
    assert got == (False, "inside"), got


def test_a_link_on_a_preopens_way_is_refused_even_leading_inside(misbehave: Path, tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        [[wasm.preopens]]
        guest = "/assets"
        source = "plugin/assets"
    """)
    (folder / "real").mkdir()
    os.symlink("real", folder / "assets")
    reg = registry_of([folder], tmp_path)
    asyncio.run(reg.start())
    try:
        rec = reg.get("misbehave")
        assert rec is not None and rec.state is not PluginState.ACTIVE
        assert "preopen 'plugin/assets' leaves its folder (a symbolic link" in (rec.reason or ""), rec.reason
    finally:
        asyncio.run(reg.stop())
