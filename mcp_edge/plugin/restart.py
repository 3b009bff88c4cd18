"""Restarting one plugin in place: the old generation of its host stopped (or released, if it had failed),
then a new one loaded, checked and started.

A lifecycle move (:mod:`.lifecycle`): ``active | failed -> restarting -> active | failed``. The old generation
stops first (a plugin being restarted is broken or stuck: its calls are refused meanwhile, ToolNotFoundError
and friends, since the routing index no longer names it); a new one then goes through what ``start`` does for
it: dependencies active and in range, names free, config resolved, initialize. A folder plugin's code is
imported again as a new package generation (the old one purged from ``sys.modules`` when it stopped).

``restart(registry, plugin_id)`` is the lifecycle's entry point for it (hot reload, beside the old version, is
``Registry.reload``); it never raises for the plugin's own fault: a failure ends in ``failed`` with the reason
on the record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mcp_edge.errors import DependencyError, McpEdgeError, PluginError
from mcp_edge.plugin.discovery import fail
from mcp_edge.plugin.lifecycle import PluginState, move

if TYPE_CHECKING:
    from mcp_edge.plugin.catalog import PluginCatalog
    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.hosts.base import PluginHost
    from mcp_edge.plugin.registry import Registry

__all__ = ["restart"]

log = logging.getLogger("mcp_edge.plugin")
_S = PluginState


async def restart(reg: Registry, plugin_id: str) -> bool:
    """Stop plugin ``plugin_id``'s host if it is active, then load and start a new generation; True when it
    is active again, False when it failed (its record says why).

    PluginError (nothing changed) for an unknown or disabled plugin, or a state with no move to ``restarting``.
    """
    rec = reg.get(plugin_id)
    if rec is None:
        raise PluginError(f"no plugin {plugin_id}")
    if rec.disabled:
        raise PluginError(f"plugin {rec.id} is disabled by configuration: it cannot be restarted")
    was_active = rec.state is _S.ACTIVE
    rec.state = move(rec.id, rec.state, _S.RESTARTING)
    pending = reg._restarts.pop(rec.id, None)  # a worker's backoff loop: this restart takes its place
    if pending is not None:
        pending.cancel()
    before = reg.catalog.remove(rec.id)
    old = rec.host
    if old is not None:
        if was_active:
            await _stop(reg, old)
        else:
            await _discard(old)
    try:
        _check_dependencies(reg, rec)
        host, catalog = await _start_generation(reg, rec, rec, None)
    except Exception as exc:
        fail(rec, exc if isinstance(exc, McpEdgeError) else PluginError(
            f"plugin {rec.id}: restart failed: {type(exc).__name__}: {exc}"))
        return False
    rec.host, rec.catalog = host, catalog
    reg.catalog.add(rec.id, catalog)
    await reg.adopt_published(rec)
    rec.restarts += 1
    rec.reason = None
    rec.error = None
    rec.state = move(rec.id, rec.state, _S.ACTIVE)
    if rec not in reg._order:
        reg._order.append(rec)
    log.info("plugin %s: restarted (restart %d)", rec.id, rec.restarts)
    await _notify(reg, _changed(before, catalog))
    return True


# --- steps ------------------------------------------------------------------------------------------------


def _check_dependencies(reg: Registry, rec: PluginRecord) -> None:
    """DependencyError unless every plugin ``rec`` requires is active at a version in range."""
    from mcp_edge.plugin.deps import version_problem

    for dep, spec in rec.requires.items():
        target = reg.get(dep)
        if target is None or target.state is not _S.ACTIVE:
            state = "not installed" if target is None else target.state.value
            raise DependencyError(f"plugin {rec.id} requires plugin {dep}, which is {state}")
        problem = version_problem(target.version, spec)
        if problem is not None:
            raise DependencyError(f"plugin {rec.id} requires {dep} {spec}, but {dep} is version "
                                  f"{target.version}{problem}")


async def _start_generation(reg: Registry, rec: PluginRecord, source: PluginRecord,
                            state: bytes | None) -> tuple[PluginHost, PluginCatalog]:
    """A new host for ``source`` (``rec`` or its re-read copy): loaded, its names checked against the other
    plugins', initialized with its resolved config (and the previous generation's state). Released again
    when any step fails."""
    from mcp_edge.plugin.config import resolve_config
    from mcp_edge.plugin.hosts import host_for

    host = host_for(source, reg)
    started = False
    try:
        t0 = time.perf_counter()
        catalog = await host.load()
        load_ms = (time.perf_counter() - t0) * 1e3
        reg.catalog.check(rec.id, catalog)
        config = resolve_config(rec.id, source.config_schema, reg.config.get(rec.id), reg.environ)
        ctx = reg._context(rec.id, config)
        if state is not None and host.kind == "process":
            await host.import_state(state)  # a worker gets it with START, after initialize
        t1 = time.perf_counter()
        try:
            await host.start(config, ctx)
        except TimeoutError:
            raise PluginError(f"initialize timed out after {reg.init_timeout:g} s") from None
        started = True
        if state is not None and host.kind != "process":
            await host.import_state(state)
    except BaseException:
        await (_stop(reg, host) if started else _discard(host))
        raise
    rec.load_ms, rec.init_ms = load_ms, (time.perf_counter() - t1) * 1e3
    return host, catalog


async def _stop(reg: Registry, host: PluginHost) -> None:
    """Shut an old generation down; what goes wrong is logged (its successor, if any, serves regardless)."""
    try:
        await asyncio.wait_for(host.stop(reg.shutdown_timeout), reg.shutdown_timeout + 5.0)
    except Exception as exc:
        log.warning("plugin %s: the old generation's shutdown failed: %s: %s", host.plugin_id,
                    type(exc).__name__, exc)


async def _discard(host: PluginHost) -> None:
    """Release a generation that never started: its imported package (in process) or its worker."""
    from mcp_edge.plugin.hosts.inproc import InprocHost

    if isinstance(host, InprocHost):
        host.release()
    else:
        await host.stop(0.0)


def _changed(old: PluginCatalog | None, new: PluginCatalog) -> set[str]:
    """The client-visible lists that differ between the old generation's offer and the new one's."""
    a = old or type(new)()
    pairs = {"tools": (a.tools, new.tools), "resources": ((a.resources, a.templates), (new.resources, new.templates)),
             "prompts": (a.prompts, new.prompts)}
    return {kind for kind, (before, after) in pairs.items() if before != after}


async def _notify(reg: Registry, changed: set[str]) -> None:
    if reg.on_list_changed is not None:
        for kind in sorted(changed):
            await reg.on_list_changed(kind)
