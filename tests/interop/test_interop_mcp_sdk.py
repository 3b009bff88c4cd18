"""The official MCP Python SDK (``mcp`` 2.x, ``mcp.Client``) against our server.

Every test runs four times: over stdio (``python -m mcp_edge.cli serve --stdio``
spawned by the client) and over Streamable HTTP (one server subprocess), each
in the handshake era (``mode="legacy"``: initialize, 2025-11-25) and in the
stateless 2026-07-28 revision.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from ci_honesty import importorskip
from interop_helpers import MODERN, ROOT, WAIT, Target

mcp = importorskip("mcp", "interop", "the interop tests need the mcp SDK (pip install -e '.[test]')")
types = importorskip("mcp.types", "interop", "the interop tests need the mcp SDK's mcp.types")

from mcp import Client, MCPError, StdioServerParameters  # noqa: E402

IMG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def client(target: Target, **kwargs: Any) -> Client:
    server: str | StdioServerParameters
    if target.transport == "http":
        assert target.url is not None
        server = target.url
    else:
        cmd = target.command
        server = StdioServerParameters(command=cmd[0], args=cmd[1:], env=target.env, cwd=str(ROOT))
    kwargs.setdefault("mode", target.mode)
    return Client(server, read_timeout_seconds=WAIT, **kwargs)


def run(fn: Callable[[], Awaitable[None]]) -> None:
    """Run one test's client session, bounded in time."""
    async def bounded() -> None:
        with anyio.fail_after(3 * WAIT):
            await fn()

    anyio.run(bounded)


def text_of(result: Any) -> str:
    block = result.content[0]
    assert block.type == "text", result
    return str(block.text)


def test_discover_and_list(target: Target) -> None:
    async def main() -> None:
        # "auto" probes server/discover first: the 2026-07-28 revision is picked, and serverInfo comes
        # from the discover result's _meta. "legacy" does the initialize handshake.
        mode = "auto" if target.mode == MODERN else "legacy"
        async with client(target, mode=mode) as c:
            assert c.protocol_version == (MODERN if target.mode == MODERN else "2025-11-25")
            assert c.server_info is not None and c.server_info.name == "mcp-edge"
            caps = c.server_capabilities
            assert caps.tools is not None and caps.resources is not None and caps.prompts is not None

            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert {"sysinfo_summary", "test_simple_text", "test_image_content", "interop_wait"} <= set(tools)
            for tool in tools.values():
                assert tool.description, tool.name
                assert tool.input_schema["type"] == "object", tool.name
            assert tools["sysinfo_summary"].output_schema is not None

            uris = {r.uri for r in (await c.list_resources()).resources}
            assert {"test://static-text", "test://static-binary", "sysinfo://summary"} <= {str(u) for u in uris}
            templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
            assert "test://template/{id}/data" in templates

            prompts = {p.name: p for p in (await c.list_prompts()).prompts}
            args = {a.name: a.required for a in prompts["test_prompt_with_arguments"].arguments or []}
            assert args == {"arg1": True, "arg2": True}

    run(main)


def test_call_tools(target: Target) -> None:
    async def main() -> None:
        async with client(target) as c:
            result = await c.call_tool("test_simple_text")
            assert not result.is_error
            assert text_of(result) == "This is a simple text response for testing."

            image = (await c.call_tool("test_image_content")).content[0]
            assert image.type == "image" and image.mime_type == "image/png" and image.data == IMG

            mixed = (await c.call_tool("test_multiple_content_types")).content
            assert [b.type for b in mixed] == ["text", "image", "resource"]

            # Structured output, checked by the SDK against the tool's outputSchema.
            summary = await c.call_tool("sysinfo_summary")
            assert not summary.is_error
            assert summary.structured_content is not None
            assert summary.structured_content["cpu"]["isa_active"]
            assert json.loads(text_of(summary)) == summary.structured_content

            failed = await c.call_tool("test_error_handling")
            assert failed.is_error
            assert text_of(failed) == "This tool intentionally returns an error for testing"

            with pytest.raises(MCPError) as bad_args:
                await c.call_tool("interop_wait", {"seconds": "soon", "tag": "x"})
            assert bad_args.value.error.code == -32602
            with pytest.raises(MCPError) as unknown:
                await c.call_tool("no_such_tool")
            assert unknown.value.error.code == -32602

    run(main)


def test_resources_prompts_completion(target: Target) -> None:
    async def main() -> None:
        async with client(target) as c:
            text = (await c.read_resource("test://static-text")).contents[0]
            assert text.text == "This is the content of the static text resource."
            assert text.mime_type == "text/plain"

            blob = (await c.read_resource("test://static-binary")).contents[0]
            assert blob.blob == IMG and blob.mime_type == "image/png"

            data = (await c.read_resource("test://template/42/data")).contents[0]
            assert json.loads(data.text) == {"id": "42", "templateTest": True, "data": "Data for ID: 42"}

            summary = (await c.read_resource("sysinfo://summary")).contents[0]
            assert "cpu" in json.loads(summary.text)

            with pytest.raises(MCPError) as missing:
                await c.read_resource("test://nonexistent")
            # 2026-07-28 reports a missing resource as invalid params; the handshake era as -32002.
            assert missing.value.error.code == (-32602 if target.mode == MODERN else -32002)

            got = await c.get_prompt("test_prompt_with_arguments", {"arg1": "hello", "arg2": "world"})
            assert got.messages[0].role == "user"
            assert got.messages[0].content.text == "Prompt with arguments: arg1='hello', arg2='world'"
            image = await c.get_prompt("test_prompt_with_image")
            assert image.messages[0].content.type == "image"
            embedded = await c.get_prompt("test_prompt_with_embedded_resource", {"resourceUri": "test://x"})
            assert str(embedded.messages[0].content.resource.uri) == "test://x"

            done = await c.complete(types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
                                    {"name": "arg1", "value": "te"})
            assert done.completion.values == ["test", "testing", "tested"]

    run(main)


def test_progress(target: Target) -> None:
    async def main() -> None:
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with client(target) as c:
            result = await c.call_tool("test_tool_with_progress", progress_callback=on_progress)
            assert not result.is_error
            await anyio.sleep(0.05)  # progress callbacks may be scheduled after the result
        assert [(p, t) for p, t, _ in seen] == [(0, 100), (50, 100), (100, 100)]
        assert seen[-1][2] == "step 3 of 3"

    run(main)


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # logging/setLevel: deprecated, still served
def test_logging(target: Target) -> None:
    async def main() -> None:
        logged: list[Any] = []

        async def on_log(params: Any) -> None:
            logged.append(params)

        extra: dict[str, Any] = {"log_level": "info"} if target.mode == MODERN else {}
        async with client(target, logging_callback=on_log, **extra) as c:
            if target.mode != MODERN:
                await c.set_logging_level("info")
            await c.call_tool("test_tool_with_logging")
            await anyio.sleep(0.05)
        assert [m.data for m in logged] == ["Tool execution started", "Tool processing data",
                                            "Tool execution completed"]
        assert {m.level for m in logged} == {"info"}

        if target.mode == MODERN:  # no logLevel in the request's _meta: no log messages at all
            logged.clear()
            async with client(target, logging_callback=on_log) as c:
                await c.call_tool("test_tool_with_logging")
                await anyio.sleep(0.05)
            assert logged == []

    run(main)


def test_sampling_elicitation_roots(target: Target) -> None:
    """The server asks the client: server requests (legacy) or input-required round trips (2026-07-28)."""
    async def main() -> None:
        asked: list[str] = []

        async def sampling(context: Any, params: Any) -> Any:
            asked.append(f"sampling: {params.messages[0].content.text}")
            return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="Paris"),
                                             model="test-model", stop_reason="endTurn")

        async def elicitation(context: Any, params: Any) -> Any:
            asked.append(f"elicitation: {params.message}")
            props = params.requested_schema["properties"]
            content = {"name": "Alice"} if "name" in props else {"color": "blue"} if "color" in props else \
                {key: "x" for key in props}
            return types.ElicitResult(action="accept", content=content)

        async def roots(context: Any) -> Any:
            asked.append("roots")
            return types.ListRootsResult(roots=[types.Root(uri="file:///srv/data", name="data")])

        async with client(target, sampling_callback=sampling, elicitation_callback=elicitation,
                          list_roots_callback=roots) as c:
            assert text_of(await c.call_tool("test_sampling", {"prompt": "Capital of France?"})) == \
                "LLM response: Paris"
            assert asked == ["sampling: Capital of France?"]

            elicited = text_of(await c.call_tool("test_elicitation", {"message": "Who are you?"}))
            assert elicited == "User response: action=accept, content={'username': 'x', 'email': 'x'}"

            asked.clear()
            assert text_of(await c.call_tool("test_input_required_result_multi_round")) == "Alice likes blue"
            assert asked == ["elicitation: Step 1: What is your name?",
                             "elicitation: Step 2: What is your favorite color?"]

            asked.clear()
            multiple = await c.call_tool("test_input_required_result_multiple_inputs")
            assert text_of(multiple) == "Got all 3 inputs: client_roots, greeting, user_name"
            assert sorted(asked) == ["elicitation: What is your name?", "roots", "sampling: Generate a greeting"]

            roots_text = text_of(await c.call_tool("test_input_required_result_list_roots"))
            assert roots_text == "Roots: file:///srv/data"

            prompt = await c.get_prompt("test_input_required_result_prompt")
            assert prompt.messages[0].content.text == "Use this context: x"

    run(main)


def test_missing_capability(target: Target) -> None:
    """A tool that needs sampling, called by a client without it: a JSON-RPC error, not a hang."""
    async def main() -> None:
        async with client(target) as c:
            with pytest.raises(MCPError) as err:
                await c.call_tool("test_missing_capability")
            assert err.value.error.code == -32021
            assert err.value.error.data == {"requiredCapabilities": {"sampling": {}}}

    run(main)


def test_cancellation(target: Target) -> None:
    """Cancelling a long call reaches the handler (it is cancelled, not left running); the session lives on."""
    async def main() -> None:
        tag = f"cancel-{uuid.uuid4().hex}"
        async with client(target) as c:
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    await c.call_tool("interop_wait", {"seconds": 60, "tag": tag})

                tg.start_soon(call)
                with anyio.fail_after(WAIT):
                    while not target.marker(tag).exists():
                        await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
            ended = await anyio.to_thread.run_sync(target.wait_marker, tag, "cancelled")
            assert ended == "cancelled"
            assert text_of(await c.call_tool("test_simple_text")).startswith("This is a simple")

            short = f"short-{uuid.uuid4().hex}"
            assert text_of(await c.call_tool("interop_wait", {"seconds": 0.01, "tag": short})) == "waited 0.01 s"
            assert target.marker(short).read_text() == "finished"

    run(main)


def test_audio_and_embedded(target: Target) -> None:
    async def main() -> None:
        async with client(target) as c:
            audio = (await c.call_tool("test_audio_content")).content[0]
            assert audio.type == "audio" and audio.mime_type == "audio/wav"
            assert base64.b64decode(audio.data).startswith(b"RIFF")
            embedded = (await c.call_tool("test_embedded_resource")).content[0]
            assert embedded.type == "resource"
            assert embedded.resource.text == "This is an embedded resource content."

    run(main)
