"""A mounted server's tools/call answer that is no result (neither a result nor an error, or a result that is
not an object) fails that call with a clear error; it is never passed on as it came (an empty result made the
runtime write broken JSON to the client)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bridge_helpers import SERVERS, WAIT, bridge_plugin, toml_list

from mcp_edge.board import Settings
from mcp_edge.errors import PluginError
from mcp_edge.mcp.versions import LATEST_HANDSHAKE
from mcp_edge.plugin.hosts.bridge import BridgeHost
from mcp_edge.plugin.manifest import read_manifest


class Ctx:
    protocol_version = LATEST_HANDSHAKE  # the era whose results were passed on as the server's bytes
    stateless = False


@pytest.mark.parametrize("result", ["absent", None, 5, "text", [1]], ids=repr)
def test_a_result_that_is_not_an_object_fails_the_call(tmp_path: Path, result: Any) -> None:
    command = toml_list([sys.executable, str(SERVERS / "rogue_server.py"), "hollow"])
    folder = bridge_plugin(tmp_path / "plugins", "rogue", f"[bridge]\ncommand = {command}\n")
    settings = Settings.load(environ={}, data_dir=tmp_path)

    async def main() -> None:
        host = BridgeHost(read_manifest(folder), settings)
        await host.load()
        try:
            arguments = {} if result == "absent" else {"result": result}
            with pytest.raises(PluginError) as failed:
                await host.call_tool("rogue_echo", arguments, Ctx())
            assert "result" in str(failed.value)
            good = await host.call_tool("rogue_echo", {"result": {"content": []}}, Ctx())
            assert json.loads(msgspec.json.encode(good)) == {"content": []}  # the server goes on
        finally:
            await host.stop(1.0)

    asyncio.run(asyncio.wait_for(main(), WAIT))
