"""crashy: tools that behave well and badly, for the process-isolation tests."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import time
from typing import Any

from mcp_edge.plugin import PluginBase, RequestContext, resource, resource_template, tool
from mcp_edge.plugin.types import TextResourceContents

_SEEN: contextvars.ContextVar[int | None] = contextvars.ContextVar("crashy_seen", default=None)


class Crashy(PluginBase):
    @tool
    def stamp(self, n: int) -> dict[str, Any]:
        """A plain def tool: the context variable it found (each call starts with its own context), then sets it."""
        before = _SEEN.get()
        _SEEN.set(n)
        return {"before": before, "n": n}

    @tool
    def big_now(self, size: int) -> str:
        """A plain def tool with a text of ``size`` bytes."""
        return "y" * size

    @tool
    async def say(self, text: str) -> str:
        """Say text back."""
        return text

    @tool
    async def whoami(self, ctx: RequestContext | None = None) -> dict[str, Any]:
        """The principal and deadline the call arrived with, and the worker's pid."""
        principal = getattr(ctx, "principal", None)
        return {"pid": os.getpid(), "principal": getattr(principal, "id", None),
                "kind": getattr(principal, "kind", None), "deadline_ns": getattr(ctx, "deadline_ns", None)}

    @tool
    async def limits(self) -> dict[str, Any]:
        """This worker's RLIMIT_NOFILE soft limit and no_new_privs flag."""
        import resource

        from mcp_edge.native._sys import no_new_privs

        return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "no_new_privs": no_new_privs()}

    @tool
    async def progress(self, steps: int, ctx: RequestContext | None = None) -> str:
        """Report progress ``steps`` times."""
        assert ctx is not None
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return "done"

    @tool
    async def sleep(self, seconds: float) -> str:
        """Sleep (cancellable)."""
        await asyncio.sleep(seconds)
        return "slept"

    @tool
    def spin(self, seconds: float) -> str:
        """Hog the worker's event loop (no await): its heartbeats stop."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        return "spun"

    @tool
    async def crash(self) -> str:
        """Kill this worker process with SIGKILL."""
        os.kill(os.getpid(), signal.SIGKILL)
        return "unreachable"

    @tool
    async def fail(self) -> str:
        """Raise: an isError result."""
        raise RuntimeError("it broke")

    @tool
    async def big(self, size: int) -> str:
        """A text of ``size`` bytes."""
        return "x" * size

    @resource("crashy://pid", mime_type="text/plain")
    async def pid(self) -> str:
        return str(os.getpid())

    @resource_template("crashy://items/{item}")
    async def item(self, item: str) -> list[TextResourceContents]:
        return [TextResourceContents(uri=f"crashy://items/{item}", text=f"item {item}")]
