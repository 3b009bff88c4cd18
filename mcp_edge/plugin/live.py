"""Plugins added and removed while the runtime runs: a plugin folder that appears under a plugin folder root (the
index installer's rename, a copy) is discovered, planned, checked and activated through the steps ``start``
uses for each plugin; one whose folder went away is taken out of the routing, its calls drained, its host
stopped. Clients are told through ``list_changed``. The folder watcher (:mod:`.watch`) and SIGHUP call
``rescan``, which compares the folders on disk with the records and does both.

A plugin that others (still running) require is not removed: it serves on, with a warning, until they are
removed; a plugin whose ``requires`` are not active fails with the reason, as at start. A plugin that failed at
start because one it requires was missing stays failed when that one is added later (a restart of it, or of the
runtime, starts it)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_edge.errors import ConfigError, PluginError
from mcp_edge.plugin.discovery import RUNTIME_PLUGIN_ID, fail, record_from_folder
from mcp_edge.plugin.lifecycle import PluginState, move

if TYPE_CHECKING:
    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.registry import Registry

__all__ = ["add_folder", "remove", "rescan"]

log = logging.getLogger("mcp_edge.plugin")
_S = PluginState
_LISTS = frozenset({"tools", "resources", "prompts"})
_BUSY = (_S.RELOADING, _S.RESTARTING)


def _lock(registry: Registry) -> asyncio.Lock:
    if registry._live_lock is None:
        registry._live_lock = asyncio.Lock()
    return registry._live_lock


async def _tell(registry: Registry, kinds: set[str]) -> None:
    for kind in sorted(kinds & _LISTS):
        if registry.on_list_changed is not None:
            await registry.on_list_changed(kind)


async def add_folder(registry: Registry, folder: Path) -> PluginRecord:
    """Discover, load, check and activate the plugin in ``folder`` on a running registry. Its record: active,
    or failed with the reason (a duplicate id, a broken manifest, a missing dependency, a failed initialize),
    the others serving on as they were. PluginError when the registry is not running or has ``folder``."""
    async with _lock(registry):
        return await _add(registry, Path(folder))


async def _add(registry: Registry, folder: Path) -> PluginRecord:
    from mcp_edge.plugin.activation import activate
    from mcp_edge.plugin.deps import check_requires

    if not registry._started:
        raise PluginError("the registry is not running: its start() finds the plugins in the folders")
    for known in registry._found.records:
        if isinstance(known.source, Path) and known.source == folder:
            raise PluginError(f"{folder} is loaded already, as plugin {known.id}")
    rec = record_from_folder(folder)
    registry._found.add(rec)  # a duplicate id fails here with the reason it has at start
    if rec.state is _S.DISCOVERED and not rec.disabled and registry.admit is not None:
        try:
            registry.admit()  # the runtime's own checks over every plugin (a file root over <data_dir>/plugins)
        except ConfigError as exc:
            fail(rec, exc)
    if rec.state is _S.DISCOVERED and not rec.disabled:
        registry._plan(rec)
    if rec.state is _S.LOADED:
        check_requires([rec], registry._found.by_id, fail)
    if rec.state is _S.LOADED:
        await activate(registry, rec)
    audit = registry.audit
    if rec.state is _S.ACTIVE:
        assert rec.catalog is not None
        log.warning("plugin %s: added (version %s) from %s", rec.id, rec.version, folder)
        if audit is not None:
            audit.plugin(rec.id, "loaded", f"added from {folder}")
        await _tell(registry, rec.catalog.kinds() | ({"resources"} if registry.catalog.published(rec.id) else set()))
    elif rec.disabled:
        log.warning("plugin %s: found in %s, not started: %s", rec.id, folder, rec.reason)
    elif audit is not None:
        audit.plugin(rec.id, rec.state.value, rec.reason)
    return rec


async def remove(registry: Registry, plugin_id: str) -> PluginRecord:
    """Take plugin ``plugin_id`` out of a running registry: no new call reaches it, the calls it is running
    finish (up to ``shutdown_timeout``), its host stops, its record goes. The record as it was last.
    PluginError for an unknown id, the runtime itself, or a plugin that running plugins require."""
    async with _lock(registry):
        return await _remove(registry, plugin_id)


async def _remove(registry: Registry, plugin_id: str) -> PluginRecord:
    rec = registry._found.by_id.get(plugin_id)
    if rec is None:
        raise PluginError(f"plugin {plugin_id} is not installed")
    if rec.id == RUNTIME_PLUGIN_ID:
        raise PluginError("the runtime's own plugin cannot be removed")
    users = sorted(r.id for r in registry._found.by_id.values()
                   if r is not rec and plugin_id in r.requires and not r.disabled
                   and r.state not in (_S.FAILED, _S.STOPPED))
    if users:
        raise PluginError(f"plugin {plugin_id} is required by {', '.join(users)}: it serves on until "
                          f"{'they are' if len(users) > 1 else 'that one is'} removed")
    deadline = time.monotonic() + registry.shutdown_timeout
    while rec.state in _BUSY and time.monotonic() < deadline:  # a reload or a restart under way ends first
        await asyncio.sleep(0.01)
    if rec.state in _BUSY:
        raise PluginError(f"plugin {plugin_id} is {rec.state.value}: not removed, try again")
    task = registry._restarts.pop(plugin_id, None)
    if task is not None:
        task.cancel()
    if rec.state is _S.ACTIVE:
        rec.state = move(rec.id, rec.state, _S.STOPPING)
        published = bool(registry.catalog.published(plugin_id))
        cat = registry.catalog.remove(plugin_id)  # no new call is routed to it from here
        await _tell(registry, (cat.kinds() if cat is not None else set()) | ({"resources"} if published else set()))
        host = rec.host
        assert host is not None
        while host.inflight and time.monotonic() < deadline:  # the calls it runs finish, as a reload's retire
            await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(host.stop(registry.shutdown_timeout), registry.shutdown_timeout + 5.0)
            rec.state = move(rec.id, rec.state, _S.STOPPED)
        except TimeoutError:
            fail(rec, PluginError(f"shutdown timed out after {registry.shutdown_timeout:g} s"))
        except Exception as exc:
            fail(rec, PluginError(f"shutdown: {type(exc).__name__}: {exc}"))
    else:
        registry.catalog.remove(plugin_id)
        _release(rec)
    _forget(registry, rec)
    log.warning("plugin %s: removed", plugin_id)
    if registry.audit is not None:
        registry.audit.plugin(plugin_id, "unloaded", "removed")
    return rec


def _release(rec: PluginRecord) -> None:
    """What a loaded but never started in-process host took (a failed one released it already)."""
    if rec.state is _S.LOADED and rec.isolation == "inproc":
        release = getattr(rec.host, "release", None)
        if release is not None:
            release()


def _forget(registry: Registry, rec: PluginRecord) -> None:
    found = registry._found
    if rec in found.records:
        found.records.remove(rec)
    if found.by_id.get(rec.id) is rec:
        del found.by_id[rec.id]
        registry._breakers.pop(rec.id, None)
        registry._bulkheads.pop(rec.id, None)
        registry._backoffs.pop(rec.id, None)
    if rec in registry._order:
        registry._order.remove(rec)


async def rescan(registry: Registry) -> tuple[list[PluginRecord], list[str]]:
    """Compare the plugin folders on disk with the records: remove the plugins whose folder went (dependents
    first; one still required serves on, logged), add those in new folders. (A folder swapped in at the same
    place, the index's update, is neither: the watcher reloads it.) The records added, the ids removed."""
    from mcp_edge.plugin.loader import manifest_folders

    async with _lock(registry):
        if not registry._started:
            return [], []
        present = manifest_folders(registry.plugin_dirs)
        there = set(present)
        order = {id(r): i for i, r in enumerate(registry._order)}
        gone = [r for r in registry._found.records if isinstance(r.source, Path) and r.source not in there]
        gone.sort(key=lambda r: -order.get(id(r), len(order)))  # not started ones first, then the last started
        removed: list[str] = []
        for rec in gone:
            if registry._found.by_id.get(rec.id) is rec:
                try:
                    await _remove(registry, rec.id)
                    removed.append(rec.id)
                except PluginError as exc:
                    log.warning("plugin %s: its folder %s is gone, but %s", rec.id, rec.source, exc)
            else:  # a duplicate or a broken manifest: only its failed record was there
                _forget(registry, rec)
        known = {r.source for r in registry._found.records if isinstance(r.source, Path)}
        added = [await _add(registry, folder) for folder in present if folder not in known]
        return added, removed
