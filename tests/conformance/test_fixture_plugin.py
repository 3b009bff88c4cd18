"""The conformance fixtures in-process, through the router: what tools/conformance.sh relies on, without Node.

The suite itself runs in ``make conformance``; these tests pin the parts of the
fixtures and the router it depends on: input-required round trips (2026-07-28)
with signed requestState, the same tools answered through server-to-client
requests in the handshake era, and the router's checks of ``inputResponses``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import ClientResult, Request, ServerConnection, ServerInfo
from mcp_edge.plugin import Registry
from mcp_edge.runtime.router import Router, Session

HERE = Path(__file__).resolve().parent
MODERN = "2026-07-28"


@asynccontextmanager
async def router() -> AsyncIterator[Router]:
    import tempfile

    from mcp_edge.board import Settings

    registry = Registry([HERE], entry_points=False)
    registry.discover()
    await registry.start()
    try:
        with tempfile.TemporaryDirectory() as data:  # the requestState key lives in data_dir
            info = ServerInfo("mcp-edge", "0", Router.capabilities(registry))
            yield Router(registry, info, Settings.load(data_dir=Path(data)))
    finally:
        await registry.stop()


def modern(rid: int, method: str, params: dict[str, Any], caps: dict[str, Any] | None = None) -> Request:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": caps if caps is not None else {}}
    return Request(rid, method, {**params, "_meta": meta}, MODERN, True, meta)


async def call(r: Router, req: Request, session: Session | None = None,
               emit: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
    session = session or Session(ServerConnection(r.info))
    reply: dict[str, Any] = json.loads(jsonrpc.encode_outcome(await r.handle(req, session, emit)))
    return reply


def test_input_required_round_trip() -> None:
    async def main() -> None:
        async with router() as r:
            tool = {"name": "test_input_required_result_multi_round", "arguments": {}}
            first = (await call(r, modern(1, "tools/call", tool)))["result"]
            assert first["resultType"] == "input_required"
            assert list(first["inputRequests"]) == ["step1"]
            state1 = first["requestState"]
            assert "round-1" not in state1  # signed and encoded, not the plugin's plain text

            name = {"action": "accept", "content": {"name": "Ada"}}
            second = (await call(r, modern(2, "tools/call", {**tool, "inputResponses": {"step1": name},
                                                              "requestState": state1})))["result"]
            assert second["resultType"] == "input_required" and list(second["inputRequests"]) == ["step2"]
            assert second["requestState"] != state1

            color = {"action": "accept", "content": {"color": "red"}}
            done = (await call(r, modern(3, "tools/call", {**tool, "inputResponses": {"step2": color},
                                                            "requestState": second["requestState"]})))["result"]
            assert done["resultType"] == "complete"
            assert done["content"] == [{"type": "text", "text": "Ada likes red"}]

            tampered = await call(r, modern(4, "tools/call", {**tool, "inputResponses": {"step2": color},
                                                               "requestState": second["requestState"] + "x"}))
            assert tampered["error"]["code"] == -32602

    asyncio.run(main())


def test_router_checks_input_responses() -> None:
    async def main() -> None:
        async with router() as r:
            tool = {"name": "test_input_required_result_elicitation", "arguments": {}}
            for responses in (None, [1], {"user_name": 12345}):
                reply = await call(r, modern(1, "tools/call", {**tool, "inputResponses": responses}))
                assert reply["error"]["code"] == -32602, responses
            assert "inputResponses.user_name must be an object" in reply["error"]["message"]
            # A missing answer is asked for again; unknown extra answers are ignored.
            again = (await call(r, modern(2, "tools/call", {**tool, "inputResponses": {"wrong_key": {}}})))
            assert again["result"]["resultType"] == "input_required"
            extra = {"user_name": {"action": "accept", "content": {"name": "Al"}}, "other": {"action": "decline"}}
            done = await call(r, modern(3, "tools/call", {**tool, "inputResponses": extra}))
            assert done["result"]["content"][0]["text"] == "Hello, Al!"

    asyncio.run(main())


def test_capabilities_shape_the_requests() -> None:
    async def main() -> None:
        async with router() as r:
            tool = {"name": "test_input_required_result_capabilities", "arguments": {}}
            only_sampling = (await call(r, modern(1, "tools/call", tool, {"sampling": {}})))["result"]
            assert {req["method"] for req in only_sampling["inputRequests"].values()} == {"sampling/createMessage"}
            missing = await call(r, modern(2, "tools/call", {"name": "test_missing_capability", "arguments": {}}))
            assert missing["error"]["code"] == -32021
            assert missing["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}

    asyncio.run(main())


def test_handshake_era_asks_with_server_requests() -> None:
    """The same fixtures under 2025-11-25: requests to the client on the response stream, answered by resolve()."""
    async def main() -> None:
        async with router() as r:
            conn = ServerConnection(r.info)
            conn.receive_object({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "clientInfo": {"name": "t", "version": "0"},
                "capabilities": {"sampling": {}, "elicitation": {}, "roots": {}}}})
            session = Session(conn)
            sent: list[dict[str, Any]] = []

            async def emit(data: bytes) -> None:
                msg = json.loads(data)
                sent.append(msg)
                method = msg["method"]
                answer: dict[str, Any] = (
                    {"role": "assistant", "content": {"type": "text", "text": "Hi"}, "model": "m"}
                    if method == "sampling/createMessage" else
                    {"roots": [{"uri": "file:///r"}]} if method == "roots/list" else
                    {"action": "accept", "content": {"name": "Bo"}}
                )
                asyncio.get_running_loop().call_soon(session.resolve, ClientResult(msg["id"], answer))

            req = Request(5, "tools/call", {"name": "test_input_required_result_multiple_inputs"}, "2025-11-25",
                          False)
            reply = await call(r, req, session, emit)
            assert reply["result"]["content"][0]["text"] == "Got all 3 inputs: client_roots, greeting, user_name"
            assert "resultType" not in reply["result"]
            assert sorted(m["method"] for m in sent) == ["elicitation/create", "roots/list", "sampling/createMessage"]

            req = Request(6, "tools/call", {"name": "test_sampling", "arguments": {"prompt": "p"}}, "2025-11-25",
                          False)
            assert (await call(r, req, session, emit))["result"]["content"][0]["text"] == "LLM response: Hi"

    asyncio.run(main())
