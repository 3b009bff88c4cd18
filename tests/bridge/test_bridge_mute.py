"""A stdio server that never answers initialize, or lists without end, fails its plugin's load at init_timeout_s,
and its process (which ignores SIGTERM) is gone afterwards, not left running or unreaped."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from bridge_helpers import SERVERS, WAIT, bridge_plugin, gone, toml_list

from mcp_edge.board import Settings
from mcp_edge.errors import PluginLoadError
from mcp_edge.plugin.hosts.bridge import BridgeHost
from mcp_edge.plugin.manifest import read_manifest


def test_a_server_that_never_answers_initialize_fails_the_load(tmp_path: Path) -> None:
    command = toml_list([sys.executable, str(SERVERS / "rogue_server.py"), "mute"])
    folder = bridge_plugin(tmp_path / "plugins", "mute", f"[bridge]\ncommand = {command}\n")
    settings = Settings.load(environ={}, data_dir=tmp_path, init_timeout_s=0.5)

    async def main() -> None:
        host = BridgeHost(read_manifest(folder), settings)
        pids: list[int] = []
        original = host._transport

        def spy() -> object:
            transport = original()
            real_open = transport.open

            async def opened(*args: object) -> None:
                await real_open(*args)
                pids.append(transport.pid)

            transport.open = opened
            return transport

        host._transport = spy  # type: ignore[method-assign]
        with pytest.raises(PluginLoadError) as failed:
            await host.load()
        assert "did not answer initialize" in str(failed.value) and "init_timeout_s" in str(failed.value)
        assert host.client is None
        assert pids and gone(pids[0])

    asyncio.run(asyncio.wait_for(main(), WAIT))


def test_a_server_dripping_pages_fails_the_load_at_init_timeout(tmp_path: Path) -> None:
    """Each page in time, but pages without end: the load as a whole is bounded by init_timeout_s (it took up
    to bridge_max_list_pages times init_timeout_s)."""
    command = toml_list([sys.executable, str(SERVERS / "rogue_server.py"), "drip"])
    folder = bridge_plugin(tmp_path / "plugins", "drip", f"[bridge]\ncommand = {command}\n")
    settings = Settings.load(environ={}, data_dir=tmp_path, init_timeout_s=1.0, bridge_max_list_pages=1000)

    async def main() -> None:
        host = BridgeHost(read_manifest(folder), settings)
        with pytest.raises(PluginLoadError) as failed:
            await host.load()
        assert "did not finish its listings" in str(failed.value) and "init_timeout_s" in str(failed.value)
        assert host.client is None

    asyncio.run(asyncio.wait_for(main(), WAIT))
