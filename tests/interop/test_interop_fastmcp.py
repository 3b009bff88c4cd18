"""The fastmcp client (``fastmcp.Client``, 4.x) against our server, over stdio and HTTP, in both eras."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from ci_honesty import importorskip
from interop_helpers import MODERN, ROOT, WAIT, Target

fastmcp = importorskip("fastmcp", "interop", "the interop tests need fastmcp (pip install -e '.[test]')")

from fastmcp import Client  # noqa: E402
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport  # noqa: E402
from fastmcp.exceptions import ToolError  # noqa: E402
from mcp import MCPError  # noqa: E402
from mcp.types import PromptReference  # noqa: E402

IMG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def client(target: Target, **kwargs: Any) -> Client[Any]:
    transport: StdioTransport | StreamableHttpTransport
    if target.transport == "http":
        assert target.url is not None
        transport = StreamableHttpTransport(target.url)
    else:
        cmd = target.command
        transport = StdioTransport(command=cmd[0], args=cmd[1:], env=target.env, cwd=str(ROOT), keep_alive=False)
    kwargs.setdefault("mode", target.mode)
    return Client(transport, timeout=WAIT, **kwargs)


def run(fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(3 * WAIT):
            await fn()

    anyio.run(bounded)


def test_session(target: Target) -> None:
    async def main() -> None:
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        mode = "auto" if target.mode == MODERN else "legacy"  # auto: server/discover picks 2026-07-28
        async with client(target, mode=mode, progress_handler=on_progress) as c:
            assert c.is_connected()
            names = {t.name for t in await c.list_tools()}
            assert {"sysinfo_summary", "test_simple_text", "interop_wait"} <= names

            simple = await c.call_tool("test_simple_text")
            assert simple.content[0].text == "This is a simple text response for testing."

            image = await c.call_tool("test_image_content")
            assert image.content[0].type == "image" and image.content[0].data == IMG

            summary = await c.call_tool("sysinfo_summary")  # structured output, checked against outputSchema
            assert summary.structured_content is not None and summary.structured_content["cpu"]["isa_active"]
            assert summary.data is not None

            with pytest.raises(ToolError, match="intentionally returns an error"):
                await c.call_tool("test_error_handling")
            with pytest.raises(MCPError) as bad_args:  # a JSON-RPC error, not a tool result
                await c.call_tool("interop_wait", {"seconds": "soon", "tag": "x"})
            assert bad_args.value.error.code == -32602

            await c.call_tool("test_tool_with_progress")
            await anyio.sleep(0.05)
            assert progress == [0, 50, 100]

            text = (await c.read_resource("test://static-text"))[0]
            assert text.text == "This is the content of the static text resource."
            data = (await c.read_resource("test://template/7/data"))[0]
            assert json.loads(data.text)["id"] == "7"
            with pytest.raises(MCPError):
                await c.read_resource("test://nonexistent")

            prompt = await c.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
            assert prompt.messages[0].content.text == "Prompt with arguments: arg1='a', arg2='b'"
            completion = await c.complete(PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
                                          {"name": "arg1", "value": "par"})
            assert completion.values == ["paris", "park", "party"]

    run(main)


def test_server_asks_the_client(target: Target) -> None:
    async def main() -> None:
        async def sampling(messages: Any, params: Any, context: Any) -> str:
            return "Paris"

        async def elicitation(message: str, response_type: Any, params: Any, context: Any) -> dict[str, Any]:
            props = params.requested_schema["properties"]
            return {"name": "Bob"} if "name" in props else {"color": "green"}

        async with client(target, sampling_handler=sampling, elicitation_handler=elicitation) as c:
            sampled = await c.call_tool("test_sampling", {"prompt": "Capital of France?"})
            assert sampled.content[0].text == "LLM response: Paris"
            rounds = await c.call_tool("test_input_required_result_multi_round")
            assert rounds.content[0].text == "Bob likes green"

    run(main)


def test_cancellation(target: Target) -> None:
    async def main() -> None:
        tag = f"fastmcp-{uuid.uuid4().hex}"
        async with client(target) as c:
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    await c.call_tool("interop_wait", {"seconds": 60, "tag": tag})

                tg.start_soon(call)
                with anyio.fail_after(WAIT):
                    while not target.marker(tag).exists():
                        await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
            assert await anyio.to_thread.run_sync(target.wait_marker, tag, "cancelled") == "cancelled"
            assert (await c.call_tool("test_simple_text")).content[0].text.startswith("This is a simple")

    run(main)
