"""SIGHUP cannot open what the start refuses: a re-read profile that moves the fs root over <data_dir>/plugins is
refused as a whole (ConfigError, what SIGHUP logs as "nothing changed") and the running fs plugin keeps its root."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FS = ROOT / "plugins" / "fs"


def _settings(data: Path, fs_config: dict[str, object]) -> Settings:
    return Settings.load(environ={}, data_dir=data, plugin_dirs=(FS,), entry_points=False,
                         plugin_config={"fs": fs_config}, reload_watch=False)


def test_sighup_moving_the_fs_root_over_the_plugins_folder_is_refused(tmp_path: Path) -> None:
    from mcp_edge.server import Server

    data = tmp_path / "data"

    async def main() -> None:
        running = await Server.configure(_settings(data, {})).start()
        try:
            with pytest.raises(ConfigError, match=r"plugin fs: its root .* contains .*plugins.* could plant"):
                await running.reload(_settings(data, {"root": str(data)}))
            await running.call_tool("fs_write", {"path": "a.txt", "content": "x"})  # where the root still is
        finally:
            await running.stop()

    asyncio.run(main())
    assert not (data / "a.txt").exists()
    assert (data / "plugin-data" / "fs" / "files" / "a.txt").read_text() == "x"


def test_sighup_with_a_root_apart_still_applies(tmp_path: Path) -> None:
    from mcp_edge.server import Server

    data = tmp_path / "data"
    shared = tmp_path / "shared"

    async def main() -> None:
        running = await Server.configure(_settings(data, {})).start()
        try:
            await running.reload(_settings(data, {"root": str(shared)}))
            await running.call_tool("fs_write", {"path": "a.txt", "content": "x"})
        finally:
            await running.stop()

    asyncio.run(main())
    assert (shared / "a.txt").read_text() == "x"
