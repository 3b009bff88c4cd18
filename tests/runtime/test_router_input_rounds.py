"""A handler that returns InputRequired works in both eras: signed round trips (2026-07-28), and
server-to-client requests made by the router itself (handshake era)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mcp_edge.board.settings import Settings
from mcp_edge.mcp import ServerConnection, ServerInfo, jsonrpc
from mcp_edge.mcp.connection import META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, ClientResult, Request
from mcp_edge.mcp.jsonrpc import encode_outcome
from mcp_edge.plugin import Registry
from mcp_edge.runtime.router import Router, Session

PLUGIN = '''
from mcp_edge.plugin import PluginBase, RequestContext, tool
from mcp_edge.plugin.types import InputRequired

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}
ASK = {"method": "elicitation/create", "params": {"message": "Name?", "requestedSchema": SCHEMA}}


class Asker(PluginBase):
    id = "asker"

    @tool(description="Greets after asking the name")
    async def greet(self, ctx: RequestContext) -> str:
        answers = ctx.input_responses or {}
        if "who" not in answers:
            return InputRequired(inputRequests={"who": ASK}, requestState="round-1")
        return f"Hello, {answers['who']['content']['name']} ({ctx.request_state})"
'''

TOML = """
[plugin]
id = "asker"
version = "1.0.0"
description = "asks"
abi = 1
module = "plugin"
class = "Asker"
"""

INFO = ServerInfo(name="t", version="0", capabilities={})


async def _router(tmp: Path) -> Router:
    folder = tmp / "asker"
    folder.mkdir()
    (folder / "plugin.toml").write_text(TOML)
    (folder / "plugin.py").write_text(PLUGIN)
    registry = Registry([tmp], entry_points=False)
    registry.discover()
    await registry.start()
    return Router(registry, INFO, Settings.load(data_dir=tmp / "data"))  # the requestState key goes there


def test_handshake_era_router_asks_the_client(tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        router = await _router(tmp_path)
        session = Session(ServerConnection(INFO))
        sent: list[dict[str, Any]] = []

        async def emit(data: bytes) -> None:
            msg = json.loads(data)
            sent.append(msg)
            reply = ClientResult(msg["id"], {"action": "accept", "content": {"name": "Ada"}})
            asyncio.get_running_loop().call_soon(session.resolve, reply)

        req = Request(1, "tools/call", {"name": "greet", "arguments": {}}, "2025-11-25", False)
        out = json.loads(encode_outcome(await router.handle(req, session, emit)))
        await router.registry.stop()
        return out, sent

    out, sent = asyncio.run(main())
    assert [m["method"] for m in sent] == ["elicitation/create"]
    assert sent[0]["params"]["message"] == "Name?"
    assert out["result"]["content"][0]["text"] == "Hello, Ada (round-1)"


def test_stateless_round_trip_with_signed_state(tmp_path: Path) -> None:
    meta = {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {"elicitation": {}}}

    async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        router = await _router(tmp_path)
        session = Session(ServerConnection(INFO))
        first = json.loads(encode_outcome(await router.handle(
            Request(1, "tools/call", {"name": "greet", "_meta": meta}, "2026-07-28", True, meta), session, None)))
        state = first["result"]["requestState"]
        retry = {"name": "greet", "_meta": meta, "requestState": state,
                 "inputResponses": {"who": {"action": "accept", "content": {"name": "Bo"}}}}
        async def call(rid: int, params: dict[str, Any]) -> dict[str, Any]:
            data = encode_outcome(
                await router.handle(Request(rid, "tools/call", params, "2026-07-28", True, meta), session, None))
            out: dict[str, Any] = json.loads(data)
            return out

        second = await call(2, retry)
        third = await call(3, {**retry, "requestState": state + "-TAMPERED"})
        await router.registry.stop()
        return first, second, third

    first, second, third = asyncio.run(main())
    assert first["result"]["resultType"] == "input_required"
    assert first["result"]["inputRequests"]["who"]["method"] == "elicitation/create"
    assert first["result"]["requestState"] != "round-1"  # signed on the way out
    assert second["result"]["resultType"] == "complete"
    assert second["result"]["content"][0]["text"] == "Hello, Bo (round-1)"
    assert third["error"]["code"] == jsonrpc.INVALID_PARAMS
