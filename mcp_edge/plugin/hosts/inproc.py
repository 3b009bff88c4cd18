"""A Python plugin in the runtime's process (or in a worker's): a plugin folder, an entry point, or an object
the runtime made itself (the built-in ``runtime`` plugin).

The host imports the plugin's code on ``load`` (a folder as its own package generation, see
:mod:`mcp_edge.plugin.loader`), builds the plugin class's handler table for itself (nothing is cached on the
class), and purges the generation from ``sys.modules`` on ``stop``, so a reload loads the new code beside the
old.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from mcp_edge.errors import (
    McpEdgeError,
    PluginLoadError,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.plugin.api import Plugin
from mcp_edge.plugin.catalog import PluginCatalog
from mcp_edge.plugin.hosts.base import PluginHost

if TYPE_CHECKING:
    from mcp_edge.plugin.context import PluginContext
    from mcp_edge.plugin.entrypoints import EntryPointInfo
    from mcp_edge.plugin.handlers import HandlerTable
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["InprocHost", "ToolsHost", "catalog_of", "instantiate"]

# (the plugin object, the package generation to purge at stop or None)
Loader = Callable[[], tuple[Any, "str | None"]]


def instantiate(cls: type, plugin_id: str) -> Any:
    """``cls()``, checked: its ``id`` (set from the manifest when it has none) and the Plugin protocol."""
    plugin = cls()
    declared = getattr(plugin, "id", "")
    if not declared:
        with contextlib.suppress(AttributeError):
            plugin.id = plugin_id
    elif declared != plugin_id:
        raise PluginLoadError(f"plugin {plugin_id}: class {cls.__qualname__} says its id is {declared!r}")
    if not isinstance(plugin, Plugin):
        raise PluginLoadError(
            f"plugin {plugin_id}: {cls.__qualname__} is not a Plugin (it needs id, capabilities, "
            "async initialize(config, ctx) and async shutdown(); PluginBase gives them)"
        )
    return plugin


def catalog_of(table: HandlerTable) -> PluginCatalog:
    """The plain-data offer of a handler table (completion keys include arguments that complete by their type:
    Literal and Enum choices)."""
    completions = set(table.completions)
    for name, pr in table.prompts.items():
        completions.update(("prompt", name, arg) for arg in pr.choices)
    for text, tmpl in table.templates.items():
        completions.update(("resource", text, arg) for arg in tmpl.choices)
    return PluginCatalog(
        tools=[h.definition() for h in table.tools.values()],
        resources=[h.definition for h in table.resources.values()],
        templates=[h.definition for h in table.templates.values()],
        prompts=[h.definition for h in table.prompts.values()],
        completions=sorted(completions),
    )


class InprocHost(PluginHost):
    """A Python plugin object in this process (see the module docstring)."""

    kind = "inproc"

    def __init__(self, plugin_id: str, loader: Loader, *, init_timeout: float = 30.0) -> None:
        super().__init__(plugin_id)
        import os

        self.pid = os.getpid()
        self._loader = loader
        self.init_timeout = init_timeout
        self.plugin: Any = None
        self.table: HandlerTable | None = None
        self.package: str | None = None
        self._started = False
        self._state: bytes | None = None

    @classmethod
    def from_folder(cls, manifest: Manifest, *, init_timeout: float = 30.0) -> InprocHost:
        def load() -> tuple[Any, str | None]:
            from mcp_edge.plugin.loader import class_from_folder, purge

            plugin_cls, package = class_from_folder(manifest)
            try:
                return instantiate(plugin_cls, manifest.id), package
            except BaseException:
                purge(package)
                raise

        host = cls(manifest.id, load, init_timeout=init_timeout)
        host.version = manifest.version
        return host

    @classmethod
    def from_entry_point(cls, ep: EntryPointInfo, *, init_timeout: float = 30.0,
                         adopt: Callable[[type], None] | None = None) -> InprocHost:
        """``adopt`` sees the class before it is made (the registry reads its metadata attributes)."""

        def load() -> tuple[Any, str | None]:
            from mcp_edge.plugin.loader import class_from_entry_point

            plugin_cls = class_from_entry_point(ep)
            if adopt is not None:
                adopt(plugin_cls)
            return instantiate(plugin_cls, ep.name), None

        return cls(ep.name, load, init_timeout=init_timeout)

    @classmethod
    def of(cls, plugin: Any) -> InprocHost:
        """A host for an object made by the caller (the built-in plugin)."""
        host = cls(plugin.id, lambda: (plugin, None))
        host.version = str(getattr(plugin, "version", "") or "")
        return host

    def _table(self, plugin: Any) -> HandlerTable:
        from mcp_edge.plugin.handlers import handlers_of

        return handlers_of(type(plugin))

    async def load(self) -> PluginCatalog:
        plugin, package = self._loader()
        try:
            table = self._table(plugin)
        except BaseException:
            if package is not None:
                from mcp_edge.plugin.loader import purge

                purge(package)
            raise
        self.plugin, self.table, self.package = plugin, table, package
        version = getattr(plugin, "version", None)
        if isinstance(version, str) and version and not self.version:
            self.version = version
        self.capabilities = frozenset(getattr(plugin, "capabilities", ())) | table.kinds()
        catalog = catalog_of(table)
        catalog.stateful = callable(getattr(plugin, "export_state", None))
        return catalog

    async def start(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        self.context = ctx
        await asyncio.wait_for(self.plugin.initialize(config, ctx), self.init_timeout)
        self._started = True
        state, self._state = self._state, None
        if state:
            await self.import_state(state)

    async def stop(self, timeout: float) -> None:
        try:
            if self.plugin is not None:
                await asyncio.wait_for(self.plugin.shutdown(), timeout)
        finally:
            self.release()

    def release(self) -> None:
        """Let the import system forget the plugin's package generation (nothing runs its code any more)."""
        if self.package is not None:
            from mcp_edge.plugin.loader import purge

            purge(self.package)
            self.package = None

    async def export_state(self) -> bytes | None:
        export = getattr(self.plugin, "export_state", None)
        if export is None:
            return None
        state = await export()
        return None if state is None else bytes(state)

    async def import_state(self, state: bytes) -> None:
        """Give the plugin ``state`` (after its initialize: held until ``start`` when it is not started yet)."""
        if not self._started:
            self._state = state
            return
        take = getattr(self.plugin, "import_state", None)
        if take is not None and state:
            await take(state)

    # -- calls ----------------------------------------------------------------------------------------------

    def _handlers(self) -> HandlerTable:
        if self.table is None:
            raise PluginLoadError(f"plugin {self.plugin_id} is not loaded")
        return self.table

    def runs_inline(self, op: str, name: str) -> bool:
        table = self.table
        if table is None:
            return False
        handler: Any = (table.tools.get(name) if op == "tool" else table.prompts.get(name) if op == "prompt"
                        else table.resources.get(name) if op == "resource" else None)
        return handler is not None and getattr(handler, "is_async", True) is False

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, rctx: Any) -> Any:
        handler = self._handlers().tools.get(name)
        if handler is None:
            raise ToolNotFoundError(f"unknown tool: {name}")
        return await handler.call(self.plugin, arguments, rctx)

    async def read_resource(self, uri: str, template: str | None, rctx: Any) -> Any:
        from mcp_edge.plugin.handlers import wrap_handler_error

        table = self._handlers()
        what = f"resource {uri}"
        try:
            if template is None:
                fixed = table.resources.get(uri)
                if fixed is None:
                    raise ResourceNotFoundError(f"resource not found: {uri}")
                what = fixed.what
                return await fixed.read(self.plugin, uri, rctx)
            tmpl = table.templates.get(template)
            variables = tmpl.match(uri) if tmpl is not None else None
            if tmpl is None or variables is None:
                raise ResourceNotFoundError(f"resource not found: {uri}")
            what = tmpl.what
            return await tmpl.read(self.plugin, uri, variables, rctx)
        except McpEdgeError:
            raise
        except Exception as exc:
            raise wrap_handler_error(what, self.plugin_id, exc) from exc

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None, rctx: Any) -> Any:
        from mcp_edge.plugin.handlers import wrap_handler_error

        handler = self._handlers().prompts.get(name)
        if handler is None:
            raise PromptNotFoundError(f"unknown prompt: {name}")
        try:
            return await handler.get(self.plugin, arguments, rctx)
        except McpEdgeError:
            raise
        except Exception as exc:
            raise wrap_handler_error(handler.what, self.plugin_id, exc) from exc

    async def complete(self, kind: str, ref: str, argument: str, value: str, context: Mapping[str, Any]) -> Any:
        from mcp_edge.plugin.handlers import to_completion, wrap_handler_error
        from mcp_edge.plugin.types import Completion

        table = self._handlers()
        handler = table.completions.get((kind, ref, argument))
        if handler is not None:
            try:
                return await handler.complete(self.plugin, value, dict(context))
            except McpEdgeError:
                raise
            except Exception as exc:
                raise wrap_handler_error(f"completion of {kind} {ref} {argument}", self.plugin_id, exc) from exc
        target: Any = table.prompts.get(ref) if kind == "prompt" else table.templates.get(ref)
        choices = target.choices.get(argument) if target is not None else None
        if choices:
            return to_completion([c for c in choices if c.startswith(value)])
        return Completion(values=[], total=0, hasMore=False)


class ToolsHost(InprocHost):
    """An in-process host whose plugin object brings its own table of tools (``plugin.tools``), as a native or a
    WASM plugin's loader makes it, instead of a PluginBase class's decorated methods."""

    @classmethod
    def of_loader(cls, manifest: Manifest, load: Loader, *, init_timeout: float = 30.0) -> Self:
        host = cls(manifest.id, load, init_timeout=init_timeout)
        host.version = manifest.version
        return host

    def _table(self, plugin: Any) -> HandlerTable:
        from mcp_edge.plugin.handlers import HandlerTable

        table = HandlerTable()
        table.tools.update(plugin.tools)
        return table
