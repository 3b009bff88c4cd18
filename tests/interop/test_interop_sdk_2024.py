"""The official MCP Python SDK (``mcp`` 2.x) speaking protocol 2024-11-05 to our server (issue 7, case 8).

The SDK's client always offers its newest handshake revision: it has no option to offer an older one. Its
``initialize`` reads the offer from the module constant ``mcp.client.session.LATEST_HANDSHAKE_VERSION``, so
the test sets that constant to 2024-11-05 (``monkeypatch``, this test only). Everything else is the SDK as
shipped, parsing what our server sends with its own models, over stdio and Streamable HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from ci_honesty import importorskip
from interop_helpers import ROOT, WAIT, Target

mcp = importorskip("mcp", "interop", "the interop tests need the mcp SDK (pip install -e '.[test]')")

from mcp import Client, StdioServerParameters  # noqa: E402

OLD = "2024-11-05"


@pytest.fixture(params=["stdio", "http"])
def old_target(request: pytest.FixtureRequest, server_env: dict[str, str],
               monkeypatch: pytest.MonkeyPatch) -> Target:
    import mcp.client.session

    monkeypatch.setattr(mcp.client.session, "LATEST_HANDSHAKE_VERSION", OLD)
    url = request.getfixturevalue("http_url") if request.param == "http" else None
    return Target(request.param, "legacy", server_env, url, Path(server_env["MCP_EDGE_DATA_DIR"]))


def _client(target: Target) -> Client:
    server: str | StdioServerParameters
    if target.url is not None:
        server = target.url
    else:
        cmd = target.command
        server = StdioServerParameters(command=cmd[0], args=cmd[1:], env=target.env, cwd=str(ROOT))
    return Client(server, read_timeout_seconds=WAIT, mode="legacy")


def test_sdk_client_speaking_2024_11_05(old_target: Target) -> None:
    async def main() -> None:
        async with _client(old_target) as c:
            assert c.protocol_version == OLD
            assert c.server_info is not None and c.server_info.title is None
            assert c.server_capabilities.completions is None and c.server_capabilities.tools is not None

            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert "sysinfo_summary" in tools
            for tool in tools.values():
                assert tool.output_schema is None and tool.annotations is None and tool.title is None, tool.name

            summary = await c.call_tool("sysinfo_summary")
            assert not summary.is_error and summary.structured_content is None
            block: Any = summary.content[0]
            assert block.type == "text" and "cpu" in json.loads(block.text)  # the same data, as text

            audio: Any = (await c.call_tool("test_audio_content")).content
            assert [b.type for b in audio] == ["text"]  # 2024-11-05 has no audio content

            prompts = (await c.list_prompts()).prompts
            assert prompts and all(p.title is None for p in prompts)

    async def bounded() -> None:
        with anyio.fail_after(3 * WAIT):
            await main()

    anyio.run(bounded)
