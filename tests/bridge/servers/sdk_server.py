"""A mounted server for the bridge tests, built with the official ``mcp`` SDK (``MCPServer``): stdio by default,
``--http PORT`` for Streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TypedDict

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("bridge-fixture-sdk")
subscribed: set[str] = set()


async def on_subscribe(ctx: object, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscribed.add(str(params.uri))
    return types.EmptyResult()


# MCPServer has no decorator for resources/subscribe: its low-level server takes the handler.
server._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, on_subscribe)


@server.completion()
async def complete(ref: object, argument: types.CompletionArgument, context: object) -> types.Completion | None:
    """Names for greet's ``name``, ids for the item template's ``item_id``."""
    choices = {"name": ["Ada", "Alan", "Grace"], "item_id": ["1", "12", "2"]}.get(argument.name, [])
    return types.Completion(values=[c for c in choices if c.startswith(argument.value)])


class Sum(TypedDict):
    total: int
    parts: list[int]


@server.tool()
def echo(text: str) -> str:
    """Say ``text`` back."""
    return text


@server.tool()
def add(a: int, b: int) -> Sum:
    """Add two numbers (structured output)."""
    return {"total": a + b, "parts": [a, b]}


@server.tool(name="ns/odd name")
def odd() -> str:
    """A tool whose name no client accepts as it is."""
    return "odd but reachable"


@server.tool()
def whoami() -> str:
    """This server's process id."""
    return str(os.getpid())


@server.tool()
async def slow(seconds: float, marker: str = "") -> str:
    """Sleep, then answer; cancelled (notifications/cancelled), write "cancelled" to the file ``marker``."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if marker:
            with open(marker, "w") as f:
                f.write("cancelled")
        raise
    return f"slept {seconds}"


@server.tool()
def environ(name: str) -> str:
    """The value of variable ``name`` in this server's environment ("" when unset)."""
    return os.environ.get(name, "")


@server.tool()
def confinement() -> dict[str, int]:
    """This process's open-file limit and whether it leads its own process group."""
    import resource

    return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "own_group": int(os.getpgid(0) == os.getpid())}


@server.tool()
async def count(steps: int, ctx: Context) -> str:
    """Report progress ``steps`` times."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
    return f"counted {steps}"


def extra(word: str) -> str:
    """A tool added at run time."""
    return word.upper()


@server.tool()
async def grow(ctx: Context) -> str:
    """Add the tool ``extra`` and say the tool list changed."""
    server.add_tool(extra, name="extra")
    if ctx.protocol_version == "2026-07-28":  # to subscriptions/listen streams
        await ctx.notify_tools_changed()
    else:
        await ctx.session.send_tool_list_changed()
    return "grown"


@server.tool()
async def touch(uri: str, ctx: Context) -> str:
    """Send resources/updated for ``uri``: to a client that subscribed to it (handshake era), or to the
    subscriptions/listen streams that name it (2026-07-28)."""
    if ctx.protocol_version == "2026-07-28":
        await ctx.notify_resource_updated(uri)
        return "sent"
    if uri not in subscribed:
        return "not subscribed"
    await ctx.session.send_resource_updated(uri)
    return "sent"


@server.tool()
def big(size: int) -> str:
    """A text of ``size`` bytes."""
    return "x" * size


@server.tool()
async def chatty(ctx: Context) -> str:
    """Log two messages during the call, then answer."""
    await ctx.info("working on it")
    await ctx.warning("almost there")
    return "done"


@server.tool()
async def roots(ctx: Context) -> str:
    """Ask the client for its roots (roots/list, a request from the server); say what came back."""
    try:
        got = await ctx.session.list_roots()
    except Exception as exc:
        return f"refused: {exc}"
    return f"roots: {len(got.roots)}"


@server.tool()
def fail() -> str:
    """Raise (an isError result)."""
    raise ValueError("this tool fails on purpose")


@server.resource("fixture://greeting", mime_type="text/plain")
def greeting() -> str:
    """A fixed resource."""
    return "hello from the fixture"


@server.resource("fixture://item/{item_id}")
def item(item_id: str) -> str:
    """A templated resource."""
    return f"item {item_id}"


@server.prompt()
def greet(name: str) -> str:
    """A prompt with one argument."""
    return f"Please greet {name} warmly."


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
