"""The plugin registry: discovery, dependency order, lifecycle, and the lookups the runtime routes through.

Discovery reads every ``plugin.toml`` under the plugin folders (the folder
itself, or its subfolders) and the cached ``mcp_edge.plugins`` entry points;
nothing is imported until ``start`` (``loader`` finds the folders and imports
each as a package of its own; ``stop`` purges those packages). ``start`` loads every enabled plugin
(imports it, or dlopens it), resolves ``requires`` (missing plugins, version
ranges, cycles), then initializes and activates the plugins in topological
order. A plugin that fails at any step is ``failed`` with its reason, and so
is every plugin that depends on it; the registry itself never raises for a
plugin's fault. ``stop`` shuts the active plugins down in reverse order.

A built-in plugin ``runtime`` is always there: its resource ``mcp-edge://plugins``
is the JSON of ``status()``, so clients see the registry like any resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mcp_edge.errors import (
    AbiMismatchError,
    ConfigError,
    DependencyError,
    InvalidArgumentsError,
    McpEdgeError,
    PluginError,
    PluginLoadError,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.plugin.api import PLUGIN_API_VERSION, Plugin, PluginBase, resource
from mcp_edge.plugin.handlers import HandlerTable, handlers_of, to_completion, wrap_handler_error
from mcp_edge.plugin.loader import class_from_entry_point, class_from_folder, manifest_folders, purge
from mcp_edge.plugin.manifest import MANIFEST, Manifest, check_capabilities, check_id, check_requires, read_manifest
from mcp_edge.plugin.types import (
    Completion,
    GetPromptResult,
    PromptDef,
    ResourceContents,
    ResourceDef,
    ResourceTemplateDef,
    ToolDef,
    ToolResult,
)

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.plugin.context import PluginContext, RequestContext
    from mcp_edge.plugin.defaults import Notifier
    from mcp_edge.plugin.entrypoints import EntryPointInfo

__all__ = [
    "PLUGIN_DIRS_ENV",
    "RUNTIME_PLUGIN_ID",
    "STATUS_URI",
    "PluginKind",
    "PluginRecord",
    "PluginState",
    "Registry",
    "default_plugin_dirs",
]

log = logging.getLogger("mcp_edge.plugin")

PLUGIN_DIRS_ENV = "MCP_EDGE_PLUGIN_DIRS"
RUNTIME_PLUGIN_ID = "runtime"
STATUS_URI = "mcp-edge://plugins"

PluginKind = Literal["python", "native", "entry_point", "builtin"]


class PluginState(enum.StrEnum):
    """Where a plugin is in its life. The allowed moves are ``_TRANSITIONS``."""

    DISCOVERED = "discovered"
    LOADED = "loaded"
    INITIALIZED = "initialized"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_S = PluginState
# The lifecycle, one row per state: the states it may move to.
#   discovered  -> loaded (imported / dlopened) | failed
#   loaded      -> initialized (initialize returned) | failed | stopped (stop before it was initialized)
#   initialized -> active (its tools etc. routed) | failed | stopping
#   active      -> stopping
#   stopping    -> stopped | failed (shutdown raised or timed out)
#   stopped, failed: final
_TRANSITIONS: dict[PluginState, frozenset[PluginState]] = {
    _S.DISCOVERED: frozenset({_S.LOADED, _S.FAILED}),
    _S.LOADED: frozenset({_S.INITIALIZED, _S.FAILED, _S.STOPPED}),
    _S.INITIALIZED: frozenset({_S.ACTIVE, _S.FAILED, _S.STOPPING}),
    _S.ACTIVE: frozenset({_S.STOPPING}),
    _S.STOPPING: frozenset({_S.STOPPED, _S.FAILED}),
    _S.STOPPED: frozenset(),
    _S.FAILED: frozenset(),
}


class PluginRecord:
    """What the registry knows of one plugin; ``status()`` shows it.

    (A plain class, not a dataclass: a dataclass costs most of a millisecond
    at import, and this module is on every start's path.)
    """

    __slots__ = ("capabilities", "config_schema", "description", "disabled", "entry_point", "error", "handlers",
                 "id", "init_ms", "kind", "load_ms", "manifest", "package", "plugin", "reason", "requires", "source",
                 "state", "version")

    def __init__(
        self,
        id: str,
        version: str,
        kind: PluginKind,
        source: Path | str,
        *,
        description: str = "",
        capabilities: frozenset[str] = frozenset(),
        requires: Mapping[str, str] | None = None,
        manifest: Manifest | None = None,
        entry_point: EntryPointInfo | None = None,
        config_schema: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.version = version
        self.kind: PluginKind = kind
        self.source = source
        self.description = description
        self.capabilities = capabilities
        self.requires: Mapping[str, str] = dict(requires or {})
        self.state = PluginState.DISCOVERED
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.load_ms: float | None = None
        self.init_ms: float | None = None
        self.disabled = False
        self.manifest = manifest
        self.entry_point = entry_point
        self.plugin: Any = None
        self.package: str | None = None  # a folder plugin's package in sys.modules (loader.purge forgets it)
        self.config_schema = config_schema
        self.handlers: HandlerTable | None = None

    def __repr__(self) -> str:
        why = f", reason={self.reason!r}" if self.reason else ""
        return (f"PluginRecord(id={self.id!r}, version={self.version!r}, kind={self.kind!r}, "
                f"state={self.state.value}{why})")

    def as_dict(self) -> dict[str, Any]:
        h = self.handlers
        return {
            "id": self.id,
            "version": self.version,
            "kind": self.kind,
            "state": self.state.value,
            "reason": self.reason,
            "source": str(self.source),
            "description": self.description,
            "capabilities": sorted(self.capabilities),
            "requires": dict(self.requires),
            "load_ms": None if self.load_ms is None else round(self.load_ms, 3),
            "init_ms": None if self.init_ms is None else round(self.init_ms, 3),
            "tools": len(h.tools) if h else 0,
            "resources": len(h.resources) + len(h.templates) if h else 0,
            "prompts": len(h.prompts) if h else 0,
        }


def default_plugin_dirs(settings: Settings | None = None) -> list[Path]:
    """The settings' ``plugin_dirs``: ``$MCP_EDGE_PLUGIN_DIRS`` (``:``-separated) then the board profile's.

    A folder named in the variable must exist (ConfigError otherwise); the
    board's are searched when they exist.
    """
    if settings is None:
        from mcp_edge.board import Settings

        settings = Settings.load()
    for d in settings.plugin_dirs:
        if d not in settings.board.plugin_dirs and not d.is_dir():
            raise ConfigError(f"{PLUGIN_DIRS_ENV}: {d} is not a folder")
    return list(settings.plugin_dirs)


class _RuntimePlugin(PluginBase):
    """mcp_edge itself: the registry's status as a resource."""

    id = RUNTIME_PLUGIN_ID
    description = "mcp_edge itself: the state of every plugin"
    capabilities = frozenset({"resources"})

    def __init__(self, registry: Registry) -> None:
        from mcp_edge import __version__

        self.version = __version__
        self._registry = registry

    @resource(STATUS_URI, name="plugins", title="Plugins", mime_type="application/json")
    async def plugins(self) -> dict[str, Any]:
        """Every plugin: id, version, kind, state (and why it failed), source, capabilities, load and init times."""
        return {"plugins": self._registry.status(), "capabilities": self._registry.capability_index}


_Entry = tuple[Any, Any, "PluginRecord"]  # (handler, plugin instance, record)
_PASS_THROUGH = (McpEdgeError,)


class Registry:
    """The plugins of one runtime. See the module docstring for the flow."""

    def __init__(
        self,
        plugin_dirs: Sequence[Path | str] = (),
        *,
        entry_points: bool = True,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        enabled: Collection[str] | None = None,
        disabled: Collection[str] = (),
        context_factory: Callable[[str], PluginContext] | None = None,
        environ: Mapping[str, str] | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        init_timeout: float = 30.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.plugin_dirs = [Path(p) for p in plugin_dirs]
        self.use_entry_points = entry_points
        self.config: Mapping[str, Mapping[str, Any]] = config or {}
        self.enabled = None if enabled is None else frozenset(enabled)
        self.disabled = frozenset(disabled)
        self.context_factory = context_factory
        # The MCP_EDGE_<PLUGIN>_<KEY> overrides: the server passes settings.environ; none without it.
        self.environ: Mapping[str, str] = {} if environ is None else environ
        # The entry-point scan's cache (settings.cache_dir, settings.entry_point_cache); no cache without a folder.
        self.cache_dir = cache_dir
        self.use_cache = use_cache and cache_dir is not None
        self.init_timeout = init_timeout
        self.shutdown_timeout = shutdown_timeout
        self.on_resource_updated: Notifier | None = None
        self.on_list_changed: Notifier | None = None
        self._records: list[PluginRecord] = []
        self._by_id: dict[str, PluginRecord] = {}
        self._discovered = False
        self._loaded = False
        self._started = False
        self._order: list[PluginRecord] = []
        self._tools: dict[str, tuple[Any, Any]] = {}
        self._tool_owner: dict[str, PluginRecord] = {}
        self._resources: dict[str, _Entry] = {}
        self._templates: dict[str, _Entry] = {}
        self._template_order: list[_Entry] = []
        self._prompts: dict[str, _Entry] = {}
        self._completions: dict[tuple[str, str, str], _Entry] = {}
        self._lists: dict[str, list[Any]] = {}

    # --- discovery ---------------------------------------------------------------------------

    @property
    def records(self) -> list[PluginRecord]:
        """Every plugin found, in discovery order (duplicates and broken manifests included, as failed)."""
        return list(self._records)

    def get(self, plugin_id: str) -> PluginRecord | None:
        """The record of the plugin that owns ``plugin_id``."""
        return self._by_id.get(plugin_id)

    def discover(self) -> list[PluginRecord]:
        """Read the plugin folders' manifests and the cached entry points; idempotent. Imports no plugin."""
        if self._discovered:
            return self.records
        self._discovered = True
        self._add(PluginRecord(
            id=RUNTIME_PLUGIN_ID, version="", kind="builtin", source="mcp_edge",
            description=_RuntimePlugin.description, capabilities=_RuntimePlugin.capabilities,
        ))
        for folder in manifest_folders(self.plugin_dirs):
            self._add(self._record_from_folder(folder))
        if self.use_entry_points:
            from mcp_edge.plugin.entrypoints import scan

            for ep in scan(self.cache_dir, use_cache=self.use_cache):
                self._add(self._record_from_entry_point(ep))
        return self.records

    def _record_from_folder(self, folder: Path) -> PluginRecord:
        try:
            m = read_manifest(folder)
        except PluginError as exc:
            rec = _fallback_record(folder)
            self._set_failed(rec, exc)
            return rec
        return PluginRecord(
            id=m.id, version=m.version, kind=m.kind, source=folder, description=m.description,
            capabilities=m.capabilities, requires=m.requires, manifest=m, config_schema=m.config_schema,
        )

    def _record_from_entry_point(self, ep: EntryPointInfo) -> PluginRecord:
        rec = PluginRecord(id=ep.name, version=ep.version, kind="entry_point",
                           source=f"{ep.value} [{ep.dist} {ep.version}]", entry_point=ep)
        try:
            check_id(ep.name, f"entry point {ep.name} = {ep.value} of {ep.dist}")
        except PluginError as exc:
            self._set_failed(rec, exc)
        return rec

    def _add(self, rec: PluginRecord) -> None:
        self._records.append(rec)
        if rec.state is PluginState.FAILED and rec.id in self._by_id:
            return
        first = self._by_id.get(rec.id)
        if first is not None:
            self._set_failed(rec, PluginLoadError(f"duplicate plugin id {rec.id}: {first.source} has it first"))
            return
        self._by_id[rec.id] = rec
        if rec.id != RUNTIME_PLUGIN_ID and (
            (self.enabled is not None and rec.id not in self.enabled) or rec.id in self.disabled
        ):
            rec.disabled = True
            rec.reason = "disabled by configuration"

    # --- lifecycle ---------------------------------------------------------------------------

    def _move(self, rec: PluginRecord, state: PluginState) -> None:
        if state not in _TRANSITIONS[rec.state]:
            raise PluginError(f"plugin {rec.id}: no transition {rec.state.value} -> {state.value}")
        rec.state = state

    def _set_failed(self, rec: PluginRecord, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, McpEdgeError) else f"{type(exc).__name__}: {exc}"
        if rec.state is not PluginState.FAILED:
            self._move(rec, PluginState.FAILED)
        rec.reason = reason
        rec.error = exc
        log.warning("plugin %s failed: %s", rec.id, reason)

    def load(self) -> list[PluginRecord]:
        """Discover if not done, import/dlopen every enabled plugin and check ``requires``; idempotent.

        ``start`` does this first; on its own it shows what would start (``mcp-edge plugins list --no-init``).
        """
        if not self._loaded:
            self._loaded = True
            self.discover()
            for rec in [r for r in self._records if r.state is PluginState.DISCOVERED and not r.disabled]:
                self._load(rec)
            self._check_requires()
        return self.records

    async def start(self) -> None:
        """Load, resolve, initialize and activate every enabled plugin; failures stay in their records."""
        if self._started:
            raise PluginError("this registry was already started; make a new one to start again")
        self._started = True
        self.load()
        for rec in self._topological_order():
            await self._activate(rec)

    async def stop(self) -> None:
        """Shut the plugins down in reverse activation order: stopping -> stopped (or failed)."""
        for rec in reversed(self._order):
            if rec.state not in (PluginState.ACTIVE, PluginState.INITIALIZED):
                continue
            self._move(rec, PluginState.STOPPING)
            self._unregister(rec)
            try:
                await asyncio.wait_for(rec.plugin.shutdown(), self.shutdown_timeout)
            except TimeoutError:
                self._set_failed(rec, PluginError(f"shutdown timed out after {self.shutdown_timeout:g} s"))
                continue
            except Exception as exc:
                self._set_failed(rec, PluginError(f"shutdown: {type(exc).__name__}: {exc}"))
                continue
            self._move(rec, PluginState.STOPPED)
        self._order.clear()
        for rec in self._records:
            if rec.state is PluginState.LOADED:
                self._move(rec, PluginState.STOPPED)
            if rec.package is not None:  # nothing runs its code any more: the import system may forget it
                purge(rec.package)
                rec.package = None

    # --- loading -----------------------------------------------------------------------------

    def _load(self, rec: PluginRecord) -> None:
        t0 = time.perf_counter()
        try:
            if rec.kind == "builtin":
                plugin: Any = _RuntimePlugin(self)
                rec.version = plugin.version
            elif rec.kind == "native":
                from mcp_edge.plugin.native import load_native

                assert rec.manifest is not None
                plugin = load_native(rec.manifest)
            elif rec.kind == "python":
                assert rec.manifest is not None
                cls, rec.package = class_from_folder(rec.manifest)
                plugin = self._instantiate(cls, rec.id)
            else:
                assert rec.entry_point is not None
                cls = class_from_entry_point(rec.entry_point)
                self._adopt_class_metadata(rec, cls)
                plugin = self._instantiate(cls, rec.id)
            if rec.kind == "native":
                table = HandlerTable()
                table.tools.update(plugin.tools)
            else:
                table = handlers_of(type(plugin))
        except Exception as exc:
            rec.load_ms = (time.perf_counter() - t0) * 1e3
            if rec.package is not None:
                purge(rec.package)
                rec.package = None
            self._set_failed(rec, exc if isinstance(exc, McpEdgeError) else PluginLoadError(
                f"plugin {rec.id}: loading failed: {type(exc).__name__}: {exc}"))
            if not isinstance(exc, McpEdgeError):
                log.debug("plugin %s: loading failed", rec.id, exc_info=True)
            return
        rec.plugin = plugin
        rec.handlers = table
        rec.capabilities = rec.capabilities | frozenset(getattr(plugin, "capabilities", ())) | table.kinds()
        rec.load_ms = (time.perf_counter() - t0) * 1e3
        self._move(rec, PluginState.LOADED)

    def _instantiate(self, cls: type, plugin_id: str) -> Any:
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

    def _adopt_class_metadata(self, rec: PluginRecord, cls: type) -> None:
        """An entry-point plugin's metadata, from its class attributes."""
        where = f"plugin {rec.id} ({rec.source})"
        abi = getattr(cls, "abi", PLUGIN_API_VERSION)
        if abi != PLUGIN_API_VERSION:
            raise AbiMismatchError(
                f"{where} speaks Python plugin API version {abi}, this runtime speaks version {PLUGIN_API_VERSION}",
                plugin_abi=abi if isinstance(abi, int) else None, runtime_abi=PLUGIN_API_VERSION,
            )
        version = getattr(cls, "version", None)
        if isinstance(version, str) and version and version != PluginBase.version:
            rec.version = version
        description = getattr(cls, "description", "")
        rec.description = description if isinstance(description, str) else ""
        rec.requires = check_requires(getattr(cls, "requires", None), where)
        rec.capabilities = rec.capabilities | check_capabilities(list(getattr(cls, "capabilities", ())), where)
        schema = getattr(cls, "config_schema", None)
        if schema is not None:
            from mcp_edge.plugin.config import check_schema

            check_schema(schema, f"{where}: config_schema")
        rec.config_schema = schema

    # --- dependencies ------------------------------------------------------------------------

    def _check_requires(self) -> None:
        """Missing or out-of-range dependencies, and cycles, fail the plugins that have them."""
        loaded = [r for r in self._records if r.state is PluginState.LOADED]
        for rec in loaded:
            for dep, spec in rec.requires.items():
                target = self._by_id.get(dep)
                if target is None:
                    self._set_failed(rec, DependencyError(
                        f"plugin {rec.id} requires plugin {dep} ({spec or 'any version'}), which is not installed"))
                    break
                if target.disabled:
                    self._set_failed(rec, DependencyError(f"plugin {rec.id} requires plugin {dep}, which is disabled"))
                    break
                problem = _version_problem(target.version, spec)
                if problem is not None:
                    self._set_failed(rec, DependencyError(
                        f"plugin {rec.id} requires {dep} {spec}, but {dep} is version {target.version}{problem}"))
                    break
        graph = {r.id: list(r.requires) for r in self._records if r.state is PluginState.LOADED}
        for cycle in _cycles(graph):
            text = " -> ".join(cycle)
            for pid in cycle[:-1]:
                rec = self._by_id[pid]
                if rec.state is PluginState.LOADED:
                    self._set_failed(rec, DependencyError(f"dependency cycle: {text}"))

    def _topological_order(self) -> list[PluginRecord]:
        """The loaded plugins, each after what it requires: at each step the first ready one in discovery order."""
        nodes = [r for r in self._records if r.state is PluginState.LOADED]
        ids = {r.id for r in nodes}
        pending = {r.id: {d for d in r.requires if d in ids} for r in nodes}
        out: list[PluginRecord] = []
        while nodes:
            ready = next((r for r in nodes if not pending[r.id]), None)
            if ready is None:  # cannot happen: cycles failed above
                raise PluginError(f"unresolved dependency order among {', '.join(r.id for r in nodes)}")
            out.append(ready)
            nodes.remove(ready)
            for deps in pending.values():
                deps.discard(ready.id)
        return out

    # --- activation --------------------------------------------------------------------------

    async def _activate(self, rec: PluginRecord) -> None:
        for dep in rec.requires:
            target = self._by_id[dep]
            if target.state is not PluginState.ACTIVE:
                self._set_failed(rec, DependencyError(f"dependency {dep} failed"))
                return
        try:
            self._check_collisions(rec)
            from mcp_edge.plugin.config import resolve_config

            config = resolve_config(rec.id, rec.config_schema, self.config.get(rec.id), self.environ)
        except PluginError as exc:
            self._set_failed(rec, exc)
            return
        try:
            ctx = self.context_factory(rec.id) if self.context_factory else self._default_context(rec.id)
        except Exception as exc:
            self._set_failed(rec, PluginError(f"no context for plugin {rec.id}: {type(exc).__name__}: {exc}"))
            return
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(rec.plugin.initialize(config, ctx), self.init_timeout)
        except TimeoutError:
            rec.init_ms = (time.perf_counter() - t0) * 1e3
            self._set_failed(rec, PluginError(f"initialize timed out after {self.init_timeout:g} s"))
            return
        except Exception as exc:
            rec.init_ms = (time.perf_counter() - t0) * 1e3
            text = str(exc) if isinstance(exc, McpEdgeError) else f"{type(exc).__name__}: {exc}"
            self._set_failed(rec, PluginError(f"initialize: {text}"))
            rec.error = exc
            return
        rec.init_ms = (time.perf_counter() - t0) * 1e3
        self._move(rec, PluginState.INITIALIZED)
        self._register(rec)
        self._move(rec, PluginState.ACTIVE)
        self._order.append(rec)

    def _default_context(self, plugin_id: str) -> PluginContext:
        from mcp_edge.plugin.defaults import DefaultPluginContext

        async def resource_updated(uri: str) -> None:
            if self.on_resource_updated is not None:
                await self.on_resource_updated(uri)

        async def list_changed(kind: str) -> None:
            if self.on_list_changed is not None:
                await self.on_list_changed(kind)

        return DefaultPluginContext(plugin_id, on_resource_updated=resource_updated, on_list_changed=list_changed)

    def _check_collisions(self, rec: PluginRecord) -> None:
        h = rec.handlers
        assert h is not None
        for kind, names, taken in (
            ("tool", h.tools, {k: v for k, v in self._tool_owner.items()}),
            ("resource", h.resources, {k: v[2] for k, v in self._resources.items()}),
            ("resource template", h.templates, {k: v[2] for k, v in self._templates.items()}),
            ("prompt", h.prompts, {k: v[2] for k, v in self._prompts.items()}),
        ):
            for name in names:
                other = taken.get(name)
                if other is not None:
                    raise PluginLoadError(f"{kind} {name!r} of plugin {rec.id} collides with plugin {other.id}'s")

    def _register(self, rec: PluginRecord) -> None:
        h, inst = rec.handlers, rec.plugin
        assert h is not None
        for name, tool in h.tools.items():
            self._tools[name] = (tool, inst)
            self._tool_owner[name] = rec
        for uri, res in h.resources.items():
            self._resources[uri] = (res, inst, rec)
        for tmpl_text, tmpl in h.templates.items():
            self._templates[tmpl_text] = (tmpl, inst, rec)
        for name, pr in h.prompts.items():
            self._prompts[name] = (pr, inst, rec)
        for key, comp in h.completions.items():
            self._completions[key] = (comp, inst, rec)
        self._reindex()

    def _unregister(self, rec: PluginRecord) -> None:
        for table in (self._resources, self._templates, self._prompts, self._completions):
            for key in [k for k, v in table.items() if v[2] is rec]:
                del table[key]  # type: ignore[arg-type]
        for name in [n for n, owner in self._tool_owner.items() if owner is rec]:
            del self._tools[name]
            del self._tool_owner[name]
        self._reindex()

    def _reindex(self) -> None:
        self._lists.clear()
        # The most specific template first: the longest literal prefix, then registration order.
        entries = list(self._templates.values())
        self._template_order = sorted(entries, key=lambda e: -len(e[0].template.literal_prefix))

    # --- what the runtime asks ---------------------------------------------------------------

    @property
    def capability_index(self) -> dict[str, list[str]]:
        """Capability -> ids of the plugins declaring or providing it (failed ones left out)."""
        index: dict[str, list[str]] = {}
        for rec in self._records:
            if rec.state is PluginState.FAILED or rec.disabled or self._by_id.get(rec.id) is not rec:
                continue
            for cap in sorted(rec.capabilities):
                index.setdefault(cap, []).append(rec.id)
        return index

    def status(self) -> list[dict[str, Any]]:
        """One dict per record: what ``mcp-edge plugins list --json`` and ``mcp-edge://plugins`` show."""
        return [rec.as_dict() for rec in self._records]

    def owner_of_tool(self, name: str) -> str | None:
        """The id of the plugin providing tool ``name`` (for routing policy: RBAC, bulkheads)."""
        rec = self._tool_owner.get(name)
        return rec.id if rec else None

    def tools(self) -> list[ToolDef]:
        out = self._lists.get("tools")
        if out is None:
            out = self._lists["tools"] = [handler.definition() for handler, _ in self._tools.values()]
        return list(out)

    def resources(self) -> list[ResourceDef]:
        out = self._lists.get("resources")
        if out is None:
            out = self._lists["resources"] = [e[0].definition for e in self._resources.values()]
        return list(out)

    def resource_templates(self) -> list[ResourceTemplateDef]:
        out = self._lists.get("templates")
        if out is None:
            out = self._lists["templates"] = [e[0].definition for e in self._templates.values()]
        return list(out)

    def prompts(self) -> list[PromptDef]:
        out = self._lists.get("prompts")
        if out is None:
            out = self._lists["prompts"] = [e[0].definition for e in self._prompts.values()]
        return list(out)

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, rctx: RequestContext | None
    ) -> ToolResult:
        """Call tool ``name``: ToolNotFoundError, InvalidArgumentsError, or its result (``isError`` if it raised)."""
        try:
            handler, instance = self._tools[name]
        except KeyError:
            raise ToolNotFoundError(f"unknown tool: {name}") from None
        result: ToolResult = await handler.call(instance, arguments, rctx)
        return result

    async def read_resource(self, uri: str, rctx: RequestContext | None) -> list[ResourceContents]:
        """Read ``uri``: a fixed resource, else the most specific matching template; ResourceNotFoundError if none."""
        entry = self._resources.get(uri)
        try:
            if entry is not None:
                result: list[ResourceContents] = await entry[0].read(entry[1], uri, rctx)
                return result
            for entry in self._template_order:
                variables = entry[0].match(uri)
                if variables is not None:
                    result = await entry[0].read(entry[1], uri, variables, rctx)
                    return result
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            assert entry is not None
            raise wrap_handler_error(entry[0].what, entry[2].id, exc) from exc
        raise ResourceNotFoundError(f"resource not found: {uri}")

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None, rctx: RequestContext | None
    ) -> GetPromptResult:
        """Get prompt ``name`` with its (string) arguments: PromptNotFoundError, InvalidArgumentsError, or it."""
        entry = self._prompts.get(name)
        if entry is None:
            raise PromptNotFoundError(f"unknown prompt: {name}")
        try:
            result: GetPromptResult = await entry[0].get(entry[1], arguments, rctx)
            return result
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            raise wrap_handler_error(entry[0].what, entry[2].id, exc) from exc

    async def complete(
        self, ref: Mapping[str, Any], argument: Mapping[str, str], context: Mapping[str, Any] | None = None
    ) -> Completion:
        """completion/complete: ``ref`` is ``{"type": "ref/prompt", "name"}`` or ``{"type": "ref/resource", "uri"}``."""
        kind = ref.get("type")
        if kind == "ref/prompt":
            key = str(ref.get("name"))
            target = self._prompts.get(key)
            if target is None:
                raise PromptNotFoundError(f"unknown prompt: {key}")
            comp_kind = "prompt"
        elif kind == "ref/resource":
            key = str(ref.get("uri"))
            target = self._templates.get(key)
            if target is None:
                if key in self._resources:
                    return Completion(values=[], total=0, hasMore=False)
                raise ResourceNotFoundError(f"no resource template {key}")
            comp_kind = "resource"
        else:
            raise InvalidArgumentsError(f"completion reference type must be ref/prompt or ref/resource, not {kind!r}")
        name = argument.get("name")
        if not isinstance(name, str):
            raise InvalidArgumentsError("completion argument needs a name")
        value = str(argument.get("value", ""))
        entry = self._completions.get((comp_kind, key, name))
        if entry is not None:
            args = (context or {}).get("arguments") or {}
            try:
                result: Completion = await entry[0].complete(entry[1], value, dict(args))
                return result
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                raise wrap_handler_error(f"completion of {comp_kind} {key} {name}", entry[2].id, exc) from exc
        choices = target[0].choices.get(name)
        if choices:
            return to_completion([c for c in choices if c.startswith(value)])
        return Completion(values=[], total=0, hasMore=False)


# --- helpers ---------------------------------------------------------------------------------


def _fallback_record(folder: Path) -> PluginRecord:
    """A record for a folder whose manifest is unusable: what can still be read of it."""
    plugin_id, version, kind = folder.name, "", "python"
    try:
        table = tomllib.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("plugin", {})
        if isinstance(table.get("id"), str):
            plugin_id = table["id"]
        if isinstance(table.get("version"), str):
            version = table["version"]
        if "library" in table:
            kind = "native"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        pass
    return PluginRecord(id=plugin_id, version=version, kind=kind, source=folder)  # type: ignore[arg-type]


def _version_problem(version: str, spec: str) -> str | None:
    """None if ``version`` satisfies the PEP 440 ``spec``, else a short note (empty when simply out of range)."""
    if not spec or spec == "*":
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier:
        return f" (and {spec!r} is not a valid version specifier)"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return " (not a PEP 440 version)"
    return None if specifiers.contains(parsed, prereleases=True) else ""


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The dependency cycles of ``graph`` (id -> ids it requires), each as a closed path ``[a, b, a]``."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        color[node] = GREY
        stack.append(node)
        for dep in graph[node]:
            if dep not in graph:
                continue
            if color[dep] == GREY:
                found.append([*stack[stack.index(dep):], dep])
            elif color[dep] == WHITE:
                visit(dep)
        stack.pop()
        color[node] = BLACK

    for node in graph:
        if color[node] == WHITE:
            visit(node)
    return found
