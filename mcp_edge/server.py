"""The typed lifecycle API for embedding: Server -> ConfiguredServer -> RunningServer -> StoppedServer.

Each state is its own class with only the methods valid in it, so misuse (calling
a tool on a server that is not running, starting one twice) is a ``mypy --strict``
error, not a run-time surprise::

    configured = Server.configure(Settings.load())
    running = await configured.start()
    result = await running.call_tool("sysinfo_summary", {})
    await running.serve_stdio()
    stopped = await running.stop()

Process policy (signals, systemd notify, health phases) is the supervisor's (``mcp_edge.supervisor``):
``serve_*`` called without a ``StopToken`` installs its handlers for the time it serves (first SIGTERM/SIGINT
runs the shutdown sequence within ``Settings.shutdown_timeout_s``, a second exits 1); called with the embedding
program's own token, it installs none and stops when that token is set (the same sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from mcp_edge import __version__
from mcp_edge.board.settings import Settings
from mcp_edge.errors import McpEdgeError
from mcp_edge.mcp.connection import Request, ServerConnection, ServerInfo
from mcp_edge.runtime.principal import EMBEDDED
from mcp_edge.runtime.router import Router, Session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from mcp_edge.health import Health
    from mcp_edge.index.auto import AutoUpdater
    from mcp_edge.plugin import Registry
    from mcp_edge.plugin.types import ResourceDef, ToolResult
    from mcp_edge.plugin.watch import PluginWatcher
    from mcp_edge.runtime.metrics import Metrics
    from mcp_edge.runtime.reconfigure import Changes
    from mcp_edge.runtime.stop import StopToken
    from mcp_edge.runtime.tracing import Tracing

__all__ = ["ConfiguredServer", "RunningServer", "Server", "ServerStateError", "StoppedServer"]

log = logging.getLogger("mcp_edge.server")


class ServerStateError(McpEdgeError, RuntimeError):
    """A server object was used after it moved on to its next state."""


@final
class Server:
    """Entry point: ``Server.configure(settings)`` gives a ConfiguredServer."""

    def __init__(self) -> None:
        raise TypeError("use Server.configure(settings)")

    @staticmethod
    def configure(settings: Settings | None = None) -> ConfiguredServer:
        return ConfiguredServer(settings or Settings.load())


@final
class ConfiguredServer:
    """Configured, not started: plugins are discovered but not loaded."""

    def __init__(self, settings: Settings) -> None:
        settings.validate()
        self._settings = settings
        self._used = False

    @property
    def settings(self) -> Settings:
        return self._settings

    async def start(self) -> RunningServer:
        """Load and initialize the plugins (in dependency order) and return the running server."""
        if self._used:
            raise ServerStateError("this ConfiguredServer was already started")
        self._used = True
        from mcp_edge.plugin import DefaultPluginContext, Registry

        s = self._settings
        from mcp_edge.board.settings import env_setting, field_default

        if s.io_engine != env_setting("io_engine", s.environ) or s.io_uring_entries != field_default(
                "io_uring_entries"):
            from mcp_edge.io.engines import configure_default  # else no I/O imports at start: the engine finds

            configure_default(s.io_engine, s.io_uring_entries)  # the same by itself
        router_ref: list[Router] = []

        async def resource_updated(uri: str) -> None:
            if router_ref:
                await router_ref[0].resource_updated(uri)

        async def list_changed(kind: str) -> None:
            if router_ref:
                await router_ref[0].list_changed(kind)

        def context(plugin_id: str, config: Mapping[str, Any]) -> DefaultPluginContext:
            async def publish(source: Any, resources: list[ResourceDef]) -> None:
                await registry.publish(plugin_id, resources, source)

            return DefaultPluginContext(plugin_id, settings=s, config=config,
                                        on_resource_updated=resource_updated, on_list_changed=list_changed,
                                        on_publish=publish)

        registry = Registry.from_settings(s, context_factory=context)
        registry.on_list_changed = list_changed
        if s.metrics:
            registry.metrics = _metrics(s)
        registry.discover()
        from mcp_edge.index.guard import check_file_roots

        check_file_roots(s, registry)  # no client-writable root over <data_dir>/plugins: refused before any start
        await registry.start()
        info = ServerInfo(
            name=s.server_name,
            version=__version__,
            capabilities=Router.capabilities(registry),
            title="mcp_edge",
            instructions=s.instructions,
        )
        router = Router(registry, info, s)
        if s.tracing:
            router.tracing = _tracing(s)
        _apply_policy(router, s)
        if s.audit:
            from mcp_edge.runtime.audit import AuditLog

            audit = registry.audit = AuditLog(s)
            for row in registry.status():
                if not row["disabled"]:
                    audit.plugin(row["id"], "loaded" if row["state"] == "active" else row["state"], row["reason"])
            audit.start()
        router_ref.append(router)
        return RunningServer(s, registry, router)


@final
class RunningServer:
    """Plugins active: serves clients and calls tools."""

    def __init__(self, settings: Settings, registry: Registry, router: Router) -> None:
        self._settings = settings
        self._registry = registry
        self._router = router
        self._stopped = False
        self._session = Session(ServerConnection(router.info), principal=EMBEDDED)
        from mcp_edge.board.settings import installed_plugins_dir

        installed = installed_plugins_dir(settings.data_dir)  # where `plugin install` puts plugins
        if all(d.expanduser().resolve() != installed.resolve() for d in registry.plugin_dirs):
            registry.plugin_dirs.append(installed)  # (absent at start: scanned once it is there)
        from mcp_edge.index.guard import check_file_roots

        registry.admit = lambda: check_file_roots(self._settings, registry)  # for a plugin added live, as at start
        self._watcher: PluginWatcher | None = None
        if settings.reload_watch:  # hot reload when a plugin's files change
            from mcp_edge.plugin.watch import PluginWatcher

            with contextlib.suppress(OSError):  # watched for plugins installed or removed (mcp_edge.plugin.live)
                installed.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._watcher = PluginWatcher(registry)
            try:
                self._watcher.start()
            except OSError as exc:
                log.warning("plugin folders are not watched for reloads: %s", exc)
                self._watcher = None
        self._updater: AutoUpdater | None = None
        if settings.plugin_update_interval_s > 0:  # update --auto in the runtime (mcp_edge.index.auto)
            from mcp_edge.index.auto import AutoUpdater

            watcher = self._watcher
            self._updater = AutoUpdater(registry, on_reloaded=None if watcher is None else
                                        lambda plugin_id: watcher.rewatch(plugin_id, reloaded=True))
            self._updater.start()

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def router(self) -> Router:
        return self._router

    def _check(self) -> None:
        if self._stopped:
            raise ServerStateError("this server was stopped")

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> ToolResult:
        """Call a tool in-process, as a client would through tools/call."""
        self._check()
        from mcp_edge.runtime.router import RequestContextImpl

        req = Request(0, "tools/call", {"name": name, "arguments": dict(arguments or {})}, "embedded", True)
        return await self._registry.call_tool(name, dict(arguments or {}), RequestContextImpl(req, self._session, None))

    async def _supervised(self, stop: StopToken | None, what: str, on_ready: Callable[[str], None] | None,
                          serve: Callable[[StopToken, Health | None, Callable[[str], None]], Awaitable[None]]) -> None:
        """``serve(token, health, ready)``: the caller's token as it is, or a new one fed by the supervisor's
        signal handlers, which also tells systemd and the health probes once ``ready(where)`` is called."""
        if stop is not None:
            await serve(stop, None, on_ready or _nothing)
            return
        from mcp_edge.supervisor import Supervisor

        supervisor = Supervisor(budget_s=self._settings.shutdown_timeout_s)
        supervisor.on_reload = self.reload

        def ready(where: str) -> None:
            supervisor.serving(self._registry.status, what)
            if on_ready is not None:
                on_ready(where)

        with supervisor as token:
            await serve(token, supervisor.health, ready)

    async def serve_stdio(self, *, stop: StopToken | None = None) -> None:
        """Serve one client over stdin/stdout until EOF, ``stop`` (or a signal), or the parent's death."""
        self._check()
        from mcp_edge.transport.stdio import serve_stdio

        async def serve(token: StopToken, _: Health | None, ready: Callable[[str], None]) -> None:
            ready("stdio")
            async with self._textfile():
                await serve_stdio(self._router, self._settings, stop=token)

        await self._supervised(stop, "stdio", None, serve)

    async def serve_http(self, host: str | None = None, port: int | None = None, *,
                         on_ready: Callable[[str], None] | None = None, stop: StopToken | None = None,
                         health: Health | None = None) -> None:
        """Serve Streamable HTTP at /mcp until ``stop`` (or a signal) or cancelled; ``on_ready`` gets the URL
        once listening; ``/healthz/*`` report ``health`` (default: the supervisor's, or running as is)."""
        self._check()
        from mcp_edge.transport.http import serve_http

        await self._supervised(stop, "Streamable HTTP", on_ready, lambda token, sup_health, ready: serve_http(
            self._router, self._settings, host=host, port=port, on_ready=ready, stop=token,
            health=health or sup_health))

    async def serve_unix(self, path: Path, *, on_ready: Callable[[str], None] | None = None,
                         stop: StopToken | None = None) -> None:
        """Serve newline-delimited JSON-RPC on a unix socket, one session per connection, until ``stop`` (or a
        signal) or cancelled."""
        self._check()
        from mcp_edge.transport.unix import serve_unix

        async def serve(token: StopToken, _: Health | None, ready: Callable[[str], None]) -> None:
            async with self._textfile():
                await serve_unix(self._router, self._settings, path, on_ready=ready, stop=token)

        await self._supervised(stop, "a unix socket", on_ready, serve)

    @contextlib.asynccontextmanager
    async def _textfile(self) -> AsyncIterator[None]:
        """With metrics on, the metrics file (``metrics_textfile``) rewritten every ``metrics_interval_s``
        while serving, and once more at the end (a failed write is logged, never fatal)."""
        metrics = self._registry.metrics
        if metrics is None:
            yield
            return
        from mcp_edge.runtime.exposition import Exposition, textfile_path

        exposition, path = Exposition(self._registry, metrics), textfile_path(self._settings)

        def write() -> None:
            try:
                exposition.write(path)
            except OSError as exc:
                log.warning("metrics: cannot write %s: %s", path, exc)

        async def rewrite() -> None:
            while True:
                write()
                await asyncio.sleep(self._settings.metrics_interval_s)

        task = asyncio.get_running_loop().create_task(rewrite())
        log.info("metrics: written to %s every %g s", path, self._settings.metrics_interval_s)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            write()

    async def reload(self, settings: Settings | Callable[[], Settings] | None = None) -> Changes:
        """SIGHUP: read the settings again (``settings``, or what a callable gives; default: the board profile
        file again, with the same environment), apply what changed (:mod:`mcp_edge.runtime.reconfigure`:
        limits in place, plugin changes through the hot reload of every plugin, which also picks up changed
        plugin files), and say what needs a restart. A profile that does not load leaves everything as it
        was (ConfigError). The changes found."""
        from mcp_edge.runtime.reconfigure import changes, merge

        self._check()
        if callable(settings):
            settings = settings()
        elif settings is None:
            settings = _reread(self._settings)
        found = changes(self._settings, settings)
        merged = merge(self._settings, settings, found)
        merged.validate()
        from mcp_edge.index.guard import check_file_roots

        check_file_roots(merged, self._registry, merged.plugin_config)  # SIGHUP may not open a root over plugins
        if found.need_restart:
            log.warning("reload: %s changed; the running server keeps the old value%s until it restarts",
                        ", ".join(found.need_restart), "s" if len(found.need_restart) > 1 else "")
        if found.in_place:
            log.warning("reload: applied in place: %s", ", ".join(found.in_place))
        if found.with_reload:
            log.warning("reload: applied through each plugin's reload: %s", ", ".join(found.with_reload))
        _apply_policy(self._router, merged)  # (a policy file that does not load raises here: nothing changed)
        if self._router.audit is not None:  # recorded once it is sure to apply
            self._router.audit.config([*found.in_place, *found.with_reload, *found.need_restart])
        self._settings = merged
        self._router.settings = merged
        self._router.page_size = merged.page_size
        self._registry.apply_settings(merged)
        await self.reload_plugins()
        return found

    async def reload_plugins(self) -> list[str]:
        """SIGHUP: add the plugins of new folders and remove those whose folder went (:mod:`mcp_edge.plugin.live`),
        then hot-reload every other active folder plugin: each new version beside its old one, swapped once it
        is initialized; a version that fails leaves the old one serving. The ids reloaded."""
        from mcp_edge.plugin.lifecycle import PluginState

        added, removed = await self._registry.rescan()
        if self._watcher is not None:
            self._watcher.follow(added, removed)
        fresh = {id(rec) for rec in added}
        done = []
        for rec in self._registry.records:
            if rec.state is PluginState.ACTIVE and rec.manifest is not None and id(rec) not in fresh:
                await self._registry.reload(rec.id)
                if rec.reason is None:
                    done.append(rec.id)
        return done

    async def stop(self) -> StoppedServer:
        """Shut the plugins down in reverse dependency order."""
        self._check()
        self._stopped = True
        if self._updater is not None:
            await self._updater.close()
            self._updater = None
        if self._watcher is not None:
            await self._watcher.close()
            self._watcher = None
        await self._registry.stop()
        audit = self._router.audit
        if audit is not None:
            for rec in self._registry.records:
                if not rec.disabled:
                    audit.plugin(rec.id, "unloaded")
            await audit.close()  # the last records written, fsynced (and signed with audit_sign)
        if self._router.tracing is not None:
            self._router.tracing.shutdown()  # what is left exported, the exporter closed
        return StoppedServer(self._registry)


def _nothing(_: str) -> None:
    pass


def _apply_policy(router: Router, settings: Settings) -> None:
    """The authorization policy and rate limits of ``settings`` on ``router`` (ConfigError for a bad policy
    file, leaving the router as it was)."""
    policy = None
    if settings.auth_policy_file:
        from mcp_edge.runtime.policy import Policy

        policy = Policy.load(Path(settings.auth_policy_file).expanduser())
    limits = None
    if settings.rate_limit_rps > 0 or settings.tool_rate_limit_rps > 0:
        from mcp_edge.runtime.policy import RateLimits

        limits = RateLimits.from_settings(settings)
    router.policy, router.limits = policy, limits


def _require(modules: list[str], setting: str, extra: str) -> None:
    """ConfigError naming the extra to install when one of ``modules`` is missing (nothing is imported)."""
    import importlib.util

    from mcp_edge.errors import ConfigError

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # (its parent package is missing)
            found = False
        if not found:
            raise ConfigError(f"{setting} = true needs {module}, which is not installed: "
                              f"pip install 'mcp-edge[{extra}]' (or turn {setting} off)")


def _metrics(settings: Settings) -> Metrics:
    """The request meter, once prometheus-client is known to be there for the exposition."""
    _require(["prometheus_client"], "metrics", "metrics")
    from mcp_edge.runtime.metrics import Metrics

    return Metrics(settings.metrics_max_series)


def _tracing(settings: Settings) -> Tracing:
    """The runtime's tracing, once OpenTelemetry (and the OTLP exporter, for otlp) is known to be there."""
    _require(["opentelemetry.sdk", *(["opentelemetry.exporter.otlp.proto.http"]
                                      if settings.tracing_exporter == "otlp" else [])], "tracing", "tracing")
    from mcp_edge.runtime.tracing import Tracing

    return Tracing(settings)


def _reread(settings: Settings) -> Settings:
    """The settings again: the same board profile read from its file, the same environment."""
    from mcp_edge.board.profiles import load

    board = settings.board
    if board.path is not None and Path(board.path).is_file():
        board = load(Path(board.path))
    return Settings.load(board, environ=dict(settings.environ))


@final
class StoppedServer:
    """Stopped: only its final plugin states remain to look at."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def status(self) -> list[dict[str, Any]]:
        return list(self._registry.status())


