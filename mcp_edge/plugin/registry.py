"""The plugin registry: one host and one lifecycle per plugin, the catalog the runtime routes by.

``discover`` reads manifests and cached entry points (:mod:`.discovery`); ``load`` makes each enabled plugin's
host (:mod:`.hosts`: in process, native, or a worker process, by its isolation mode) and loads it, then checks
``requires`` (:mod:`.deps`); ``start`` initializes and activates the plugins in dependency order, adding each
one's catalog to the routing index (:mod:`.catalog`; the steps are :mod:`.activation`'s). Every move of a plugin
is one of the lifecycle table's (:mod:`.lifecycle`). A plugin that fails at any step is ``failed`` with its
reason, and so is every plugin that depends on it; the registry never raises for a plugin's fault. ``stop`` shuts
the plugins down in reverse order; ``start`` may be called again after it.

Calls go catalog -> owner -> host, through the owner's circuit breaker and bulkhead, with the call's deadline (the
request context's, else ``tool_timeout_s``). A worker that dies or hangs is restarted with backoff while the
others go on (:mod:`.supervision`, :mod:`mcp_edge.runtime.resilience`); hot reload is :mod:`.reload`, restarts
:mod:`.restart`, SIGHUP's new settings ``apply_settings``, plugins added and removed while running :mod:`.live`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import (
    ConfigError,
    InvalidArgumentsError,
    McpEdgeError,
    PluginError,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.plugin.api import PluginBase, resource
from mcp_edge.plugin.catalog import Catalog
from mcp_edge.plugin.discovery import RUNTIME_PLUGIN_ID, Discovery, PluginKind, PluginRecord, fail
from mcp_edge.plugin.lifecycle import PluginState, move
from mcp_edge.plugin.supervision import guarded

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.plugin.context import PluginContext, RequestContext
    from mcp_edge.plugin.defaults import Notifier
    from mcp_edge.plugin.hosts.base import PluginHost
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
    from mcp_edge.runtime.audit import AuditLog
    from mcp_edge.runtime.metrics import Metrics
    from mcp_edge.runtime.resilience import Backoff, Breaker, Bulkhead

__all__ = ["PLUGIN_DIRS_ENV", "RUNTIME_PLUGIN_ID", "STATUS_URI", "PluginKind", "PluginRecord", "PluginState",
           "Registry", "default_plugin_dirs"]

log = logging.getLogger("mcp_edge.plugin")

PLUGIN_DIRS_ENV = "MCP_EDGE_PLUGIN_DIRS"
STATUS_URI = "mcp-edge://plugins"
_S = PluginState


def default_plugin_dirs(settings: Settings | None = None) -> list[Path]:
    """The settings' ``plugin_dirs``: ``$MCP_EDGE_PLUGIN_DIRS`` (``:``-separated) then the board profile's."""
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
        context_factory: Callable[[str, Mapping[str, Any]], PluginContext] | None = None,
        environ: Mapping[str, str] | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        init_timeout: float = 30.0,
        shutdown_timeout: float = 10.0,
        isolation: Mapping[str, str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.plugin_dirs = [Path(p) for p in plugin_dirs]
        self.use_entry_points = entry_points
        self.config: Mapping[str, Mapping[str, Any]] = config or {}
        self.enabled = None if enabled is None else frozenset(enabled)
        self.disabled = frozenset(disabled)
        self.context_factory = context_factory
        self.environ: Mapping[str, str] = {} if environ is None else environ  # MCP_EDGE_<PLUGIN>_<KEY> overrides
        self.cache_dir = cache_dir
        self.use_cache = use_cache and cache_dir is not None
        self.init_timeout = init_timeout
        self.shutdown_timeout = shutdown_timeout
        self.isolation: Mapping[str, str] = {} if isolation is None else isolation
        self._settings = settings
        self.on_resource_updated: Notifier | None = None
        self.on_list_changed: Notifier | None = None
        import weakref

        self._early_published: weakref.WeakKeyDictionary[Any, list[ResourceDef]] = weakref.WeakKeyDictionary()
        self._found = Discovery(self.enabled, self.disabled)
        self._discovered = self._loaded = self._started = False
        self._order: list[PluginRecord] = []
        self.catalog = Catalog()
        self._breakers: dict[str, Breaker] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._backoffs: dict[str, Backoff] = {}
        self._restarts: dict[str, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._gates: dict[str, asyncio.Event] = {}
        self.psi_path = Path("/proc/pressure/memory")
        self._psi: float | None = None
        self._psi_at = -1e9
        self.metrics: Metrics | None = None  # the request meter, when Settings.metrics is on (the server sets it)
        self.audit: AuditLog | None = None  # the audit log, when Settings.audit is on (the server sets it)
        self.admit: Callable[[], None] | None = None  # the runtime's checks for a plugin added live (ConfigError)
        self._live_lock: asyncio.Lock | None = None  # one add, remove or rescan at a time (mcp_edge.plugin.live)

    @classmethod
    def from_settings(cls, settings: Settings, *,
                      context_factory: Callable[[str, Mapping[str, Any]], PluginContext] | None = None) -> Registry:
        """The registry ``settings`` describe: plugin folders, entry points, enabled/disabled, each plugin's
        config and isolation, the timeouts, the supervisor's limits."""
        return cls(list(settings.plugin_dirs), entry_points=settings.entry_points, config=settings.plugin_config,
                   enabled=settings.enabled_plugins, disabled=settings.disabled_plugins,
                   context_factory=context_factory, environ=settings.environ, cache_dir=settings.cache_dir,
                   use_cache=settings.entry_point_cache, init_timeout=settings.init_timeout_s,
                   shutdown_timeout=settings.plugin_shutdown_timeout_s, isolation=settings.plugin_isolation,
                   settings=settings)

    def apply_settings(self, settings: Settings) -> None:
        """Take re-read settings (SIGHUP): plugin config and isolation for the next (re)load of each plugin,
        timeouts, and the supervisor's limits in place (breakers and bulkheads keep their state)."""
        self._settings = settings
        self.config = settings.plugin_config
        self.isolation = settings.plugin_isolation
        self.init_timeout = settings.init_timeout_s
        self.shutdown_timeout = settings.plugin_shutdown_timeout_s
        for br in self._breakers.values():
            br.configure(settings)
        for bh in self._bulkheads.values():
            bh.configure(settings)
        self._backoffs.clear()  # the next restart backs off by the new numbers

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from mcp_edge.board import Settings

            self._settings = Settings.load()
        return self._settings

    # --- discovery and loading ---------------------------------------------------------------------

    @property
    def records(self) -> list[PluginRecord]:
        """Every plugin found, in discovery order (duplicates and broken manifests included, as failed)."""
        return list(self._found.records)

    def get(self, plugin_id: str) -> PluginRecord | None:
        return self._found.by_id.get(plugin_id)

    def discover(self) -> list[PluginRecord]:
        """Read the plugin folders' manifests and the cached entry points; idempotent. Imports no plugin."""
        if not self._discovered:
            self._discovered = True
            builtin = PluginRecord(id=RUNTIME_PLUGIN_ID, version="", kind="builtin", source="mcp_edge",
                                   description=_RuntimePlugin.description, capabilities=_RuntimePlugin.capabilities)
            self._found.run(self.plugin_dirs, builtin=builtin, entry_points=self.use_entry_points,
                            cache_dir=self.cache_dir, use_cache=self.use_cache)
        return self.records

    def load(self) -> list[PluginRecord]:
        """Discover if not done, make and load every enabled plugin's host, check ``requires``; idempotent.
        (Process plugins are only planned here: their workers start with ``start``.)"""
        if not self._loaded:
            self._loaded = True
            self.discover()
            for rec in self._found.records:
                if rec.state is _S.DISCOVERED and not rec.disabled:
                    self._plan(rec)
            from mcp_edge.plugin.deps import check_requires

            check_requires(self._found.records, self._found.by_id, fail)
        return self.records

    def _plan(self, rec: PluginRecord) -> None:
        """Choose the plugin's host; load an in-process one now (imports are cheap and show failures early)."""
        from mcp_edge.plugin.hosts import host_for

        wanted = self.isolation.get(rec.id) or (rec.manifest.isolation if rec.manifest is not None else "inproc")
        rec.isolation = "inproc" if rec.kind == "builtin" else wanted
        if rec.isolation == "inproc" and rec.manifest is not None and rec.manifest.sandbox is not None:
            log.warning("plugin %s: its [sandbox] applies only in a worker (isolation = \"process\"); it runs "
                        "unconfined in the runtime's process", rec.id)
        t0 = time.perf_counter()
        try:
            rec.host = host_for(rec, self)
            if rec.isolation == "inproc":
                self._load_now(rec)
            rec.state = move(rec.id, rec.state, _S.LOADED)
        except Exception as exc:
            fail(rec, exc if isinstance(exc, McpEdgeError) else PluginError(
                f"plugin {rec.id}: loading failed: {type(exc).__name__}: {exc}"))
        finally:
            rec.load_ms = (time.perf_counter() - t0) * 1e3

    def _load_now(self, rec: PluginRecord) -> None:
        """Load an in-process host synchronously (its load() never waits)."""
        assert rec.host is not None
        coro = rec.host.load()
        try:
            coro.send(None)
        except StopIteration as done:
            self._loaded_catalog(rec, done.value)
            return
        coro.close()
        raise PluginError(f"plugin {rec.id}: its host's load() waited")  # not reached for in-process hosts

    def _loaded_catalog(self, rec: PluginRecord, catalog: Any) -> None:
        assert rec.host is not None
        rec.catalog = catalog
        if rec.host.version and rec.kind != "python":
            rec.version = rec.host.version
        rec.capabilities = rec.capabilities | rec.host.capabilities | catalog.kinds()

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load, resolve, initialize and activate every enabled plugin (again after ``stop``)."""
        from mcp_edge.plugin.activation import activate, restart_inproc

        if self._started:
            raise PluginError("this registry is running; stop it before starting it again")
        self._started = True
        if self._loaded and any(r.state is _S.STOPPED and not r.disabled for r in self._found.records):
            for rec in self._found.records:
                if rec.state is _S.STOPPED and rec.host is not None:
                    rec.state = move(rec.id, rec.state, _S.LOADED)
                    if rec.isolation == "inproc":
                        restart_inproc(self, rec)
        self.load()
        from mcp_edge.plugin.deps import start_order

        for rec in start_order(self._found.records):
            await activate(self, rec)

    def _context(self, plugin_id: str, config: Mapping[str, Any]) -> PluginContext:
        if self.context_factory is not None:
            return self.context_factory(plugin_id, config)
        from mcp_edge.plugin.defaults import DefaultPluginContext

        async def resource_updated(uri: str) -> None:
            if self.on_resource_updated is not None:
                await self.on_resource_updated(uri)

        async def list_changed(kind: str) -> None:
            if self.on_list_changed is not None:
                await self.on_list_changed(kind)

        async def publish(source: Any, resources: list[ResourceDef]) -> None:
            await self.publish(plugin_id, resources, source)

        return DefaultPluginContext(plugin_id, settings=self._settings, config=config,
                                    on_resource_updated=resource_updated, on_list_changed=list_changed,
                                    on_publish=publish)

    async def publish(self, plugin_id: str, resources: list[ResourceDef], source: Any = None) -> None:
        """Plugin ``plugin_id``'s published resources (``PluginContext.publish_resources``): PluginError when the
        list is refused; clients told when it changed. ``source``, the publishing context, binds the list to a
        generation of the plugin: the serving host's counts at once (kept until the plugin is indexed when it
        comes from its initialize), a generation still starting (a reload, a restart) has its latest list kept
        until it takes over (``adopt_published``), and one already replaced is ignored."""
        rec = self.get(plugin_id)
        current = getattr(rec.host, "context", None) if rec is not None else None
        if source is not None and current is not None and source is not current:
            if len(resources) > self.settings.max_published_resources:
                raise PluginError(f"plugin {plugin_id} published {len(resources)} resources, over the "
                                  f"max_published_resources limit of {self.settings.max_published_resources}")
            try:
                self._early_published[source] = list(resources)  # weak: a generation that never serves goes
                return
            except TypeError:  # a context of an embedder's own that cannot be weakly referenced: taken as is
                pass
        if self.catalog.publish(plugin_id, resources, self.settings.max_published_resources) and \
                self.on_list_changed is not None:
            await self.on_list_changed("resources")

    async def adopt_published(self, rec: PluginRecord) -> None:
        """``rec``'s new host has taken over: what it published while starting becomes the plugin's list."""
        early = self._early_published.pop(getattr(rec.host, "context", None), None) \
            if getattr(rec.host, "context", None) is not None else None
        if early is None:
            return
        try:
            await self.publish(rec.id, early)
        except PluginError as exc:
            log.warning("%s", exc)

    async def stop(self) -> None:
        """Shut the plugins down in reverse activation order: stopping -> stopped (or failed)."""
        from mcp_edge.plugin.activation import stop_all

        await stop_all(self)

    async def restart(self, plugin_id: str) -> bool:
        """Stop plugin ``plugin_id`` if active (release it if failed) and start a new generation of it; True
        when active again, False when it failed (its record says why). PluginError for an unknown or disabled
        plugin, or a state the lifecycle has no restart from (:mod:`.restart`)."""
        from mcp_edge.plugin.restart import restart

        return await restart(self, plugin_id)

    # --- hot reload and supervision (mcp_edge.plugin.reload, mcp_edge.plugin.supervision) ----------

    async def reload(self, plugin_id: str) -> PluginRecord:
        """Load a new version of an active plugin beside the old one and swap (see :mod:`.reload`)."""
        from mcp_edge.plugin.reload import reload

        return await reload(self, plugin_id)

    async def add_folder(self, folder: Path | str) -> PluginRecord:
        """Add the plugin in ``folder`` to the running registry (see :mod:`.live`): its record, active or failed
        with the reason."""
        from mcp_edge.plugin.live import add_folder

        return await add_folder(self, Path(folder))

    async def remove(self, plugin_id: str) -> PluginRecord:
        """Take an installed plugin out of the running registry, its calls drained first (see :mod:`.live`)."""
        from mcp_edge.plugin.live import remove

        return await remove(self, plugin_id)

    async def rescan(self) -> tuple[list[PluginRecord], list[str]]:
        """Add the plugins in new folders, remove those whose folder went (see :mod:`.live`): (added, removed)."""
        from mcp_edge.plugin.live import rescan

        return await rescan(self)

    async def worker_lost(self, host: PluginHost, reason: str) -> None:
        """A worker died or hung (its host says so): restart it with backoff; other plugins go on."""
        from mcp_edge.plugin.supervision import worker_lost

        await worker_lost(self, host, reason)

    # --- what the runtime asks ---------------------------------------------------------------------

    @property
    def capability_index(self) -> dict[str, list[str]]:
        """Capability -> ids of the plugins declaring or providing it (failed ones left out)."""
        index: dict[str, list[str]] = {}
        for rec in self._found.records:
            if rec.state is _S.FAILED or rec.disabled or self._found.by_id.get(rec.id) is not rec:
                continue
            for cap in sorted(rec.capabilities):
                index.setdefault(cap, []).append(rec.id)
        return index

    def status(self) -> list[dict[str, Any]]:
        """One dict per record: what ``mcp-edge plugins list --json`` and ``mcp-edge://plugins`` show."""
        out = []
        for rec in self._found.records:
            row = rec.as_dict()
            br = self._breakers.get(rec.id)
            if br is not None:
                row["breaker"] = br.state
            out.append(row)
        return out

    def owner_of_tool(self, name: str) -> str | None:
        """The id of the plugin providing tool ``name`` (for routing policy: RBAC, bulkheads)."""
        return self.catalog.tool_owner(name)

    def tools(self) -> list[ToolDef]:
        return self.catalog.tools()

    def resources(self) -> list[ResourceDef]:
        return self.catalog.resources()

    def resource_templates(self) -> list[ResourceTemplateDef]:
        return self.catalog.resource_templates()

    def prompts(self) -> list[PromptDef]:
        return self.catalog.prompts()

    def _host(self, plugin_id: str) -> PluginHost:
        host = self._found.by_id[plugin_id].host
        assert host is not None
        return host

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, rctx: RequestContext | None
                        ) -> ToolResult:
        """Call tool ``name``: ToolNotFoundError, InvalidArgumentsError, or its result (``isError`` if it raised)."""
        owner = self.catalog.tool_owner(name)
        if owner is None:
            raise ToolNotFoundError(f"unknown tool: {name}")
        result: ToolResult = await guarded(self, owner, lambda h: h.call_tool(name, arguments, rctx), rctx,
                                           "tool", name)
        return result

    async def read_resource(self, uri: str, rctx: RequestContext | None) -> list[ResourceContents]:
        """Read ``uri``: a fixed resource, else the most specific matching template; ResourceNotFoundError if none."""
        owner, template = self.catalog.resource_owner(uri), None
        if owner is None:
            found = self.catalog.match(uri)
            if found is None:
                raise ResourceNotFoundError(f"resource not found: {uri}")
            owner, template = found
        result: list[ResourceContents] = await guarded(
            self, owner, lambda h: h.read_resource(uri, template, rctx), rctx, "resource", template or uri)
        return result

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None, rctx: RequestContext | None
                         ) -> GetPromptResult:
        """Get prompt ``name`` with its (string) arguments: PromptNotFoundError, InvalidArgumentsError, or it."""
        owner = self.catalog.prompt_owner(name)
        if owner is None:
            raise PromptNotFoundError(f"unknown prompt: {name}")
        result: GetPromptResult = await guarded(self, owner, lambda h: h.get_prompt(name, arguments, rctx), rctx,
                                                 "prompt", name)
        return result

    async def complete(self, ref: Mapping[str, Any], argument: Mapping[str, str],
                       context: Mapping[str, Any] | None = None) -> Completion:
        """completion/complete: ``ref`` is ``{"type": "ref/prompt", "name"}`` or ``{"type": "ref/resource", "uri"}``."""
        from mcp_edge.plugin.types import Completion

        kind = ref.get("type")
        if kind == "ref/prompt":
            key = str(ref.get("name"))
            owner = self.catalog.prompt_owner(key)
            if owner is None:
                raise PromptNotFoundError(f"unknown prompt: {key}")
            comp_kind = "prompt"
        elif kind == "ref/resource":
            key = str(ref.get("uri"))
            owner = self.catalog.template_owner(key)
            if owner is None:
                if self.catalog.resource_owner(key) is not None:
                    return Completion(values=[], total=0, hasMore=False)
                raise ResourceNotFoundError(f"no resource template {key}")
            comp_kind = "resource"
        else:
            raise InvalidArgumentsError(f"completion reference type must be ref/prompt or ref/resource, not {kind!r}")
        name = argument.get("name")
        if not isinstance(name, str):
            raise InvalidArgumentsError("completion argument needs a name")
        offer = self.catalog.offer(owner)
        if offer is None or (comp_kind, key, name) not in {tuple(c) for c in offer.completions}:
            return Completion(values=[], total=0, hasMore=False)
        args = (context or {}).get("arguments") or {}
        value = str(argument.get("value", ""))
        result: Completion = await guarded(
            self, owner, lambda h: h.complete(comp_kind, key, name, value, dict(args)), None, "completion", key)
        return result

