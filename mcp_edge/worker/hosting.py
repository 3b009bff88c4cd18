"""The plugin inside a worker process: loaded and called the way the runtime does it in process.

``open_host(init, settings)`` gives the object the worker's loop drives: ``load()`` (the catalog, plain data),
``start(config, ctx)``, the four call operations, ``stop``, and the optional state export/import of hot
reload. A Python plugin folder is imported as its own package generation, an entry point by its module, a
native plugin dlopened, each through the same loader functions the registry uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import McpEdgeError, PluginLoadError, PromptNotFoundError, ResourceNotFoundError
from mcp_edge.errors import ToolNotFoundError as _ToolNotFound

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.plugin.handlers import HandlerTable
    from mcp_edge.worker.protocol import Init

__all__ = ["LocalHost", "open_host"]

Event = Callable[[str, str], Awaitable[None]]


def open_host(init: Init, settings: Settings) -> LocalHost:
    """The host for INIT's plugin (nothing is imported until ``load``)."""
    if init.kind not in ("python", "native", "entry_point"):
        raise PluginLoadError(f"plugin {init.plugin_id}: a worker cannot run a plugin of kind {init.kind!r}")
    return LocalHost(init.plugin_id, init.kind, init.source, settings)


class LocalHost:
    """One plugin loaded in this (worker) process."""

    def __init__(self, plugin_id: str, kind: str, source: str, settings: Settings) -> None:
        self.plugin_id = plugin_id
        self.kind = kind
        self.source = source
        self.settings = settings
        self.version = ""
        self.capabilities: frozenset[str] = frozenset()
        self.plugin: Any = None
        self.table: HandlerTable | None = None
        self._package: str | None = None

    async def load(self) -> dict[str, Any]:
        """Import (or dlopen) the plugin and build its handlers; its catalog as plain data."""
        import msgspec

        from mcp_edge.plugin.handlers import HandlerTable, handlers_of

        if self.kind == "entry_point":
            from mcp_edge.plugin.entrypoints import EntryPointInfo
            from mcp_edge.plugin.loader import class_from_entry_point

            cls = class_from_entry_point(EntryPointInfo(self.plugin_id, self.source, "", ""))
            plugin = cls()
            self.version = str(getattr(cls, "version", "") or "")
        else:
            from mcp_edge.plugin.manifest import read_manifest

            manifest = read_manifest(Path(self.source))
            if manifest.id != self.plugin_id:
                raise PluginLoadError(f"plugin {self.plugin_id}: {self.source} now holds plugin {manifest.id}")
            self.version = manifest.version
            if self.kind == "native":
                from mcp_edge.plugin.native import load_native

                plugin = load_native(manifest)
            else:
                from mcp_edge.plugin.loader import class_from_folder

                cls, self._package = class_from_folder(manifest)
                plugin = cls()
                if not getattr(plugin, "id", ""):
                    plugin.id = self.plugin_id
            self.capabilities = frozenset(manifest.capabilities)
        if self.kind == "native":
            table = HandlerTable()
            table.tools.update(plugin.tools)
        else:
            table = handlers_of(type(plugin))
        self.plugin, self.table = plugin, table
        self.capabilities = self.capabilities | frozenset(getattr(plugin, "capabilities", ())) | table.kinds()
        catalog = {
            "tools": [h.definition() for h in table.tools.values()],
            "resources": [h.definition for h in table.resources.values()],
            "templates": [h.definition for h in table.templates.values()],
            "prompts": [h.definition for h in table.prompts.values()],
            "completions": [list(key) for key in table.completions],
        }
        return dict(msgspec.to_builtins(catalog))

    def context(self, settings: Settings, event: Event) -> Any:
        from mcp_edge.plugin.defaults import DefaultPluginContext

        async def updated(uri: str) -> None:
            await event("resource_updated", uri)

        async def changed(kind: str) -> None:
            await event("list_changed", kind)

        return DefaultPluginContext(self.plugin_id, settings=settings, on_resource_updated=updated,
                                    on_list_changed=changed)

    async def start(self, config: Mapping[str, Any], ctx: Any) -> None:
        await asyncio.wait_for(self.plugin.initialize(config, ctx), self.settings.init_timeout_s)

    async def stop(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.plugin.shutdown(), self.settings.plugin_shutdown_timeout_s)
        finally:
            if self._package is not None:
                from mcp_edge.plugin.loader import purge

                purge(self._package)
                self._package = None

    async def export_state(self) -> bytes | None:
        export = getattr(self.plugin, "export_state", None)
        if export is None:
            return None
        state = await export()
        return None if state is None else bytes(state)

    async def import_state(self, state: bytes) -> None:
        receive = getattr(self.plugin, "import_state", None)
        if receive is not None and state:
            await receive(state)

    # -- calls ----------------------------------------------------------------------------------------------

    def _handlers(self) -> HandlerTable:
        assert self.table is not None
        return self.table

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, rctx: Any) -> Any:
        handler = self._handlers().tools.get(name)
        if handler is None:
            raise _ToolNotFound(f"unknown tool: {name}")
        return await handler.call(self.plugin, arguments, rctx)

    async def read_resource(self, uri: str, template: str | None, rctx: Any) -> Any:
        from mcp_edge.plugin.handlers import wrap_handler_error

        table = self._handlers()
        try:
            if template is None:
                fixed = table.resources.get(uri)
                if fixed is None:
                    raise ResourceNotFoundError(f"resource not found: {uri}")
                return await fixed.read(self.plugin, uri, rctx)
            tmpl = table.templates.get(template)
            variables = tmpl.match(uri) if tmpl is not None else None
            if tmpl is None or variables is None:
                raise ResourceNotFoundError(f"resource not found: {uri}")
            return await tmpl.read(self.plugin, uri, variables, rctx)
        except McpEdgeError:
            raise
        except Exception as exc:
            raise wrap_handler_error(f"resource {uri}", self.plugin_id, exc) from exc

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
