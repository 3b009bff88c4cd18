"""Keeping plugins up and the box safe from them: a dead or hung worker restarted with backoff, and every call
through its plugin's circuit breaker and bulkhead, with its deadline, shed first under memory pressure
(the policies are :mod:`mcp_edge.runtime.resilience`; every threshold a ``Settings`` field)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import (
    InvalidArgumentsError,
    PluginError,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.plugin.discovery import fail
from mcp_edge.plugin.lifecycle import PluginState, move

if TYPE_CHECKING:
    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.hosts.base import PluginHost
    from mcp_edge.plugin.registry import Registry
    from mcp_edge.runtime.resilience import Breaker, Bulkhead

__all__ = ["breaker", "bulkhead", "guarded", "restart_worker", "worker_lost"]

log = logging.getLogger("mcp_edge.plugin")
_S = PluginState
# Errors that are the client's (a bad name or argument), not the plugin failing: they do not count against it.
_CLIENT_ERRORS = (ToolNotFoundError, ResourceNotFoundError, PromptNotFoundError, InvalidArgumentsError)


async def worker_lost(registry: Registry, host: PluginHost, reason: str) -> None:
    """A worker died or hung (its host says so): restart it with backoff; other plugins go on."""
    rec = registry._found.by_id.get(host.plugin_id)
    if rec is None or rec.host is not host or rec.state is not _S.ACTIVE:
        return
    rec.state = move(rec.id, rec.state, _S.RESTARTING)
    rec.reason = f"worker {reason}"
    if rec.id not in registry._restarts:
        registry._restarts[rec.id] = asyncio.get_running_loop().create_task(restart_worker(registry, rec))

async def restart_worker(registry: Registry, rec: PluginRecord) -> None:
    from mcp_edge.runtime.resilience import Backoff

    backoff = registry._backoffs.setdefault(rec.id, Backoff.from_settings(registry.settings))
    try:
        while rec.state in (_S.RESTARTING, _S.FAILED):
            await asyncio.sleep(backoff.next_delay())
            if rec.state is _S.FAILED:
                rec.state = move(rec.id, rec.state, _S.RESTARTING)
            host = rec.host
            assert host is not None
            try:
                catalog = await host.restart()  # type: ignore[attr-defined]
                changed = registry.catalog.replace(rec.id, catalog)
            except Exception as exc:
                fail(rec, PluginError(f"restart {backoff.attempts} failed: {exc}"))
                continue
            rec.catalog = catalog
            rec.restarts += 1
            rec.reason = None
            rec.state = move(rec.id, rec.state, _S.ACTIVE)
            log.warning("plugin %s: worker restarted (pid %d, restart %d)", rec.id, host.pid, rec.restarts)
            if registry.audit is not None:
                registry.audit.plugin(rec.id, "restarted", f"worker pid {host.pid}")
            for kind in sorted(changed):
                if registry.on_list_changed is not None:
                    await registry.on_list_changed(kind)
            asyncio.get_running_loop().call_later(registry.settings.restart_backoff_cap_s, healthy, registry, rec,
                                                  rec.restarts)
    finally:
        registry._restarts.pop(rec.id, None)

def healthy(registry: Registry, rec: PluginRecord, restarts: int) -> None:
    """Still up since restart ``restarts``: the next crash starts the backoff from its base."""
    if rec.restarts == restarts and rec.state is _S.ACTIVE and rec.id in registry._backoffs:
        registry._backoffs[rec.id].reset()

def breaker(registry: Registry, plugin_id: str) -> Breaker:
    br = registry._breakers.get(plugin_id)
    if br is None:
        from mcp_edge.runtime.resilience import Breaker

        br = registry._breakers[plugin_id] = Breaker.from_settings(plugin_id, registry.settings)
    return br

def bulkhead(registry: Registry, plugin_id: str) -> Bulkhead:
    bh = registry._bulkheads.get(plugin_id)
    if bh is None:
        from mcp_edge.runtime.resilience import Bulkhead

        bh = registry._bulkheads[plugin_id] = Bulkhead.from_settings(plugin_id, registry.settings)
    return bh


async def guarded(registry: Registry, plugin_id: str, op: Callable[[PluginHost], Any], rctx: Any,
                  kind: str = "tool", name: str = "") -> Any:
    """Run ``call`` (a coroutine) through the plugin's breaker, bulkhead and the request's deadline; the
    host it runs in counts it (a host replaced by a reload drains its calls before it stops). With metrics on
    (``registry.metrics``), the call is counted in the row of (plugin, ``kind``, ``name``): refused before it
    ran, or ran for so long and failed or not (an error result, ``isError``, counts as failed)."""
    metrics = registry.metrics
    slot = -1 if metrics is None else metrics.slot(plugin_id, kind, name)
    gate = registry._gates.get(plugin_id)
    if gate is not None:  # a stateful plugin's swap is under way: wait for the new version
        await gate.wait()
    try:
        if registry.settings.memory_pressure_shed > 0:
            shed_if_pressed(registry, plugin_id, rctx)
        br = breaker(registry, plugin_id)
        probe = br.before_call()
        bh = bulkhead(registry, plugin_id)
        await bh.enter()
    except PluginError:  # the breaker is open, the bulkhead full, the box short of memory
        if metrics is not None:
            metrics.meter.refuse(slot)
        raise
    ok = False
    failed = True
    host = registry._host(plugin_id)  # the host of this moment: the call is made on it, and counted there
    call = op(host)
    host.inflight += 1
    start = time.monotonic_ns()
    try:
        deadline = getattr(rctx, "deadline_ns", None)
        timeout = registry.settings.tool_timeout_s if deadline is None else (deadline - start) / 1e9
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                result = await call
        except TimeoutError:
            raise PluginError(f"plugin {plugin_id}: the call passed its deadline ({timeout:.3g} s) and was "
                              "cancelled") from None
        ok = True
        if metrics is not None:  # (only the meter asks whether the result was an error one)
            failed = getattr(result, "isError", False) is True or getattr(rctx, "result_error", False) is True
        return result
    except _CLIENT_ERRORS:
        ok = True
        raise
    except asyncio.CancelledError:  # the client gave up: not the plugin failing
        failed = False
        raise
    finally:
        host.inflight -= 1
        bh.leave()
        br.record(ok, probe)
        if metrics is not None:
            metrics.meter.record(slot, time.monotonic_ns() - start, failed)


def shed_if_pressed(registry: Registry, plugin_id: str, rctx: Any) -> None:
    """Under memory pressure (PSI some avg10 above ``memory_pressure_shed``, read at most once a second),
    refuse low-priority calls (priority below 128) with the retryable busy error."""
    now = time.monotonic()
    if now - registry._psi_at >= 1.0:
        from mcp_edge.runtime.resilience import memory_pressure

        registry._psi_at, registry._psi = now, memory_pressure(registry.psi_path)
    priority = getattr(rctx, "priority", 128)
    if registry._psi is not None and registry._psi > registry.settings.memory_pressure_shed and priority < 128:
        from mcp_edge.runtime.resilience import Shed

        raise Shed(f"plugin {plugin_id}: the box is short of memory (pressure {registry._psi:.1f}% > "
                   f"memory_pressure_shed {registry.settings.memory_pressure_shed:g}%): low-priority calls are "
                   "refused for now", registry.settings.retry_after_s)
