"""The built-in plugins' test host: loads ``plugins/<id>`` through the Registry and calls it as the runtime does.

``Host`` starts a ``Registry`` over the repository's ``plugins/`` with one
plugin enabled, its config resolved against the manifest's schema (the
environment left out unless a test passes one), initialized with
``FakePluginContext``; tools and resources are called through the registry, so
arguments are validated and results converted exactly as for a client. ``FakeRequest``
is the per-request context: it records progress and log notifications and can
be cancelled. Files live under the repository's build/ folder (ext4 here, where
O_DIRECT is real), never in /tmp.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_edge.board import Board, Settings, detect
from mcp_edge.errors import ConfigError
from mcp_edge.io import Engine, open_engine
from mcp_edge.plugin import PluginState, Registry
from mcp_edge.plugin.types import ResourceContents, TextContent, ToolDef, ToolResult

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
BUILD = ROOT / "build"
KINDS = ["uring", "threads"]
_uring: list[str | None] = []


def uring_unavailable() -> str | None:
    """Why io_uring cannot start here, or None (probed once)."""
    if not _uring:
        try:
            open_engine("uring", entries=4).close()
            _uring.append(None)
        except OSError as exc:
            _uring.append(str(exc))
    return _uring[0]


def _board() -> Board:
    try:
        return detect()
    except ConfigError:
        return Board(id="test", name="test board", data_dir=Path("/var/lib/mcp-edge"), path=Path("/dev/null"))


class CountingEngine:
    """Passes everything to an engine and counts the operations asked of it (to see the plugin used it)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._engine, name)
        if callable(value):
            self.calls[name] = self.calls.get(name, 0) + 1
        return value


@dataclass
class FakePluginContext:
    """A PluginContext: this test's board, data folder, engine; records notifications."""

    plugin_id: str
    data_dir: Path
    io: Any
    board: Board = field(default_factory=_board)
    updated: list[str] = field(default_factory=list)
    list_changed: list[str] = field(default_factory=list)
    published: list[Any] = field(default_factory=list)
    publishes: int = 0
    registry: Any = None
    # The runtime's settings: defaults for this board (the environment left out), data_dir this test's folder,
    # and ``settings`` overrides (max_read, max_regex...).
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = Settings.load(board=self.board, environ={}, **{"data_dir": self.data_dir, **self.overrides})

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"mcp_edge.plugins.{self.plugin_id}")

    def engine(self) -> Any:
        return self.io

    async def notify_resource_updated(self, uri: str) -> None:
        self.updated.append(uri)

    async def notify_list_changed(self, kind: str) -> None:
        self.list_changed.append(kind)

    async def publish_resources(self, resources: Any) -> None:
        """Through the registry, as in the runtime (``Host`` sets ``registry``): the URIs checked against the
        plugin's templates, then listed by ``registry.resources()``; kept as ``published`` too."""
        if self.registry is not None:
            await self.registry.publish(self.plugin_id, list(resources))
        self.published = list(resources)
        self.publishes += 1


@dataclass
class FakeRequest:
    """A RequestContext that records progress and log notifications.

    ``on_progress`` runs after each progress notification (a test cancels from there);
    ``cancel_after`` sets ``cancelled`` once that many notifications were sent.
    """

    io: Any = None
    request_id: str | int | None = 1
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    logs: list[tuple[str, Any]] = field(default_factory=list)
    on_progress: Callable[[], Awaitable[None] | None] | None = None
    cancel_after: int | None = None
    _cancelled: bool = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.progress.append((progress, total, message))
        if self.cancel_after is not None and len(self.progress) >= self.cancel_after:
            self._cancelled = True
        if self.on_progress is not None:
            got = self.on_progress()
            if got is not None:
                await got

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        self.logs.append((level, data))

    def engine(self) -> Any:
        return self.io


class Host:
    """One plugin folder loaded, initialized and called through a real ``Registry``, as the runtime does."""

    def __init__(self, plugin_id: str, config: Mapping[str, Any], ctx: FakePluginContext,
                 environ: Mapping[str, str] | None = None) -> None:
        self.id = plugin_id
        self.ctx = ctx
        self.registry = Registry([PLUGINS], entry_points=False, config={plugin_id: dict(config)},
                                 enabled=[plugin_id], context_factory=lambda _pid, _config: ctx,
                                 environ=dict(environ or {}))
        ctx.registry = self.registry
        self.plugin: Any = None

    @property
    def module(self) -> Any:
        return sys.modules[type(self.plugin).__module__]

    async def start(self) -> Host:
        """Start the registry; the plugin's own exception if it failed to load or initialize."""
        await self.registry.start()
        rec = self.registry.get(self.id)
        assert rec is not None
        if rec.state is not PluginState.ACTIVE:
            if rec.error is not None:
                raise rec.error
            raise AssertionError(f"plugin {self.id} is {rec.state.value}: {rec.reason}")
        self.plugin = rec.plugin
        return self

    async def stop(self) -> None:
        await self.registry.stop()

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None, rctx: Any = None) -> ToolResult:
        return await self.registry.call_tool(name, dict(arguments or {}), rctx)

    async def read(self, uri: str, rctx: Any = None) -> list[ResourceContents]:
        return await self.registry.read_resource(uri, rctx)

    def tool_defs(self) -> dict[str, ToolDef]:
        return {d.name: d for d in self.registry.tools() if self.registry.owner_of_tool(d.name) == self.id}


def run(coro: Awaitable[Any]) -> Any:
    """Run one test coroutine on a fresh event loop."""
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


def ok(result: ToolResult) -> dict[str, Any]:
    """The structured content of a tool result that succeeded."""
    assert not result.isError, result
    assert result.structuredContent is not None
    return result.structuredContent


def error_of(result: ToolResult) -> str:
    """The message of a tool result that failed."""
    assert result.isError, result
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text
