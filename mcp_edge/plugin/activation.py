"""Starting and stopping the registry's plugins: each one activated in dependency order (a worker's loaded,
its config resolved, initialized), failed with its reason when a step fails, and all shut down in reverse order.
The registry (:mod:`.registry`) calls these; the state table is :mod:`.lifecycle`'s."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from mcp_edge.errors import McpEdgeError, PluginError
from mcp_edge.plugin.discovery import fail
from mcp_edge.plugin.lifecycle import PluginState, move

if TYPE_CHECKING:
    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.registry import Registry

__all__ = ["abandon", "activate", "restart_inproc", "stop_all"]

_S = PluginState


def restart_inproc(registry: Registry, rec: PluginRecord) -> None:
    """A stopped in-process plugin started again: a new host (a new package generation), loaded now."""
    from mcp_edge.plugin.hosts import host_for

    try:
        rec.host = host_for(rec, registry)
        registry._load_now(rec)
    except Exception as exc:
        fail(rec, exc)


async def activate(registry: Registry, rec: PluginRecord) -> None:
    """Load (a worker's), check, configure and initialize one plugin whose dependencies are active; failed
    with its reason otherwise."""
    for dep in rec.requires:
        if registry._found.by_id[dep].state is not _S.ACTIVE:
            fail(rec, PluginError(f"dependency {dep} failed"))
            return
    host = rec.host
    assert host is not None
    try:
        if rec.isolation != "inproc":
            t0 = time.perf_counter()
            registry._loaded_catalog(rec, await host.load())
            rec.load_ms = (time.perf_counter() - t0) * 1e3
        assert rec.catalog is not None
        registry.catalog.check(rec.id, rec.catalog)
        from mcp_edge.plugin.config import resolve_config

        config = resolve_config(rec.id, rec.config_schema, registry.config.get(rec.id), registry.environ)
    except Exception as exc:
        await abandon(registry, rec, exc)
        return
    try:
        ctx = registry._context(rec.id, config)
    except Exception as exc:
        await abandon(registry, rec, PluginError(f"no context for plugin {rec.id}: {type(exc).__name__}: {exc}"))
        return
    t0 = time.perf_counter()
    try:
        await host.start(config, ctx)
    except TimeoutError:
        await abandon(registry, rec, PluginError(f"initialize timed out after {registry.init_timeout:g} s"), t0)
        return
    except Exception as exc:
        text = str(exc) if isinstance(exc, McpEdgeError) else f"{type(exc).__name__}: {exc}"
        await abandon(registry, rec, PluginError(text if text.startswith("initialize") else f"initialize: {text}"),
                            t0)
        rec.error = exc
        return
    rec.init_ms = (time.perf_counter() - t0) * 1e3
    rec.state = move(rec.id, rec.state, _S.INITIALIZED)
    registry.catalog.add(rec.id, rec.catalog)
    rec.state = move(rec.id, rec.state, _S.ACTIVE)
    registry._order.append(rec)


async def abandon(registry: Registry, rec: PluginRecord, exc: BaseException, t0: float | None = None) -> None:
    """Mark ``rec`` failed with ``exc`` and release what its host took."""
    if t0 is not None:
        rec.init_ms = (time.perf_counter() - t0) * 1e3
    fail(rec, exc)
    registry.catalog.drop_staged(rec.id)  # what it published from its initialize goes with it
    if rec.host is not None and rec.isolation != "inproc":
        await rec.host.stop(0.0)
    elif rec.host is not None:
        release = getattr(rec.host, "release", None)
        if release is not None:
            release()


async def stop_all(registry: Registry) -> None:
    """Shut the plugins down in reverse activation order: stopping -> stopped (or failed)."""
    for task in registry._restarts.values():
        task.cancel()
    registry._restarts.clear()
    if registry._retiring:
        await asyncio.gather(*registry._retiring, return_exceptions=True)
    for rec in reversed(registry._order):
        if rec.state not in (_S.ACTIVE, _S.INITIALIZED, _S.RESTARTING, _S.RELOADING):
            continue
        rec.state = move(rec.id, rec.state, _S.STOPPING)
        registry.catalog.remove(rec.id)
        assert rec.host is not None
        try:
            await asyncio.wait_for(rec.host.stop(registry.shutdown_timeout), registry.shutdown_timeout + 5.0)
        except TimeoutError:
            fail(rec, PluginError(f"shutdown timed out after {registry.shutdown_timeout:g} s"))
            continue
        except Exception as exc:
            fail(rec, PluginError(f"shutdown: {type(exc).__name__}: {exc}"))
            continue
        rec.state = move(rec.id, rec.state, _S.STOPPED)
    registry._order.clear()
    for rec in registry._found.records:
        if rec.state is _S.LOADED:
            rec.state = move(rec.id, rec.state, _S.STOPPED)
            release = getattr(rec.host, "release", None)
            if release is not None:
                release()
    registry._started = False
