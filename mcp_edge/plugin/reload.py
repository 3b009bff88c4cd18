"""Hot reload of one plugin: a new version loaded beside the running one, swapped in once initialized; the old
one finishes its calls and stops. A version that fails leaves the old one serving, with the reason on the
record. A stateful plugin (``export_state``) has its calls held at a gate while the old version drains and
hands its state over, so no call is lost or counted twice."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mcp_edge.errors import McpEdgeError, PluginError
from mcp_edge.plugin.lifecycle import PluginState, move

if TYPE_CHECKING:
    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.hosts.base import PluginHost
    from mcp_edge.plugin.registry import Registry

__all__ = ["quietly_stop", "reload", "retire"]

log = logging.getLogger("mcp_edge.plugin")
_S = PluginState


async def reload(registry: Registry, plugin_id: str) -> PluginRecord:
    """Load a new version of an active plugin beside the old one and swap: new calls go to the new one once
    it is initialized, the old one finishes its calls and stops. A version that fails to load or start
    leaves the old one serving, with ``reason`` saying why. The record (``reload_ms``: the swap's time)."""
    from mcp_edge.plugin.config import resolve_config
    from mcp_edge.plugin.hosts import host_for

    rec = registry._found.by_id.get(plugin_id)
    if rec is None or rec.state is not _S.ACTIVE or rec.host is None:
        raise PluginError(f"plugin {plugin_id} cannot be reloaded: it is "
                          f"{rec.state.value if rec else 'not installed'}")
    rec.state = move(rec.id, rec.state, _S.RELOADING)
    old = rec.host
    old_isolation = rec.isolation
    t0 = time.perf_counter()
    new: PluginHost | None = None
    try:
        if rec.manifest is not None:
            from mcp_edge.plugin.manifest import read_manifest

            manifest = read_manifest(rec.manifest.folder)
            if manifest.id != rec.id:
                raise PluginError(f"{rec.manifest.folder} now holds plugin {manifest.id}")
            rec.manifest = manifest
        if rec.kind != "builtin":  # the board's isolation (re-read by SIGHUP) or the manifest's, as at start
            rec.isolation = registry.isolation.get(rec.id) or (
                rec.manifest.isolation if rec.manifest is not None else "inproc")
        new = host_for(rec, registry)
        catalog = await new.load()
        registry.catalog.check(rec.id, catalog)
        config = resolve_config(rec.id, rec.manifest.config_schema if rec.manifest else rec.config_schema,
                                registry.config.get(rec.id), registry.environ)
        await new.start(config, registry._context(rec.id, config))
    except Exception as exc:
        text = str(exc) if isinstance(exc, McpEdgeError) else f"{type(exc).__name__}: {exc}"
        rec.isolation = old_isolation
        rec.reason = f"reload failed, the previous version serves on: {text}"
        log.warning("plugin %s: %s", rec.id, rec.reason)
        if registry.audit is not None:
            registry.audit.plugin(rec.id, "reload-failed", rec.reason)
        if new is not None:
            await quietly_stop(new)
        rec.state = move(rec.id, rec.state, _S.ACTIVE)
        return rec
    stateful = rec.catalog is not None and rec.catalog.stateful
    if stateful:  # hold new calls while the old version finishes its own and hands its state over
        gate = registry._gates[rec.id] = asyncio.Event()
        try:
            deadline = time.monotonic() + registry.shutdown_timeout
            while old.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            state = await old.export_state()
            if state:
                await new.import_state(state)
        except Exception as exc:
            log.warning("plugin %s: its state did not move to the new version: %s: %s", rec.id,
                        type(exc).__name__, exc)
        finally:
            del registry._gates[rec.id]
            gate.set()
    changed = registry.catalog.replace(rec.id, catalog)
    rec.host, rec.catalog, rec.reason = new, catalog, None
    await registry.adopt_published(rec)
    rec.version = rec.manifest.version if rec.manifest is not None else new.version or rec.version
    rec.capabilities = rec.capabilities | new.capabilities | catalog.kinds()
    rec.reload_ms = (time.perf_counter() - t0) * 1e3
    rec.reloads += 1
    rec.state = move(rec.id, rec.state, _S.ACTIVE)
    log.warning("plugin %s: reloaded (version %s) in %.1f ms", rec.id, rec.version, rec.reload_ms)
    if registry.audit is not None:
        registry.audit.plugin(rec.id, "reloaded", f"version {rec.version}")
    for kind in sorted(changed):
        if registry.on_list_changed is not None:
            await registry.on_list_changed(kind)
    retire(registry, old)
    return rec

def retire(registry: Registry, old: PluginHost) -> None:
    """Let a replaced host finish its calls (up to the shutdown budget), then stop it."""
    async def drain() -> None:
        deadline = time.monotonic() + registry.shutdown_timeout
        while old.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await quietly_stop(old, registry.shutdown_timeout)

    task = asyncio.get_running_loop().create_task(drain())
    registry._retiring.add(task)
    task.add_done_callback(registry._retiring.discard)


async def quietly_stop(host: PluginHost, timeout: float = 1.0) -> None:
    """Stop a host nobody routes to any more; its failure is logged, not raised."""
    try:
        await asyncio.wait_for(host.stop(timeout), timeout + 5.0)
    except Exception as exc:
        log.warning("plugin %s: stopping a replaced or failed version: %s: %s", host.plugin_id,
                    type(exc).__name__, exc)
