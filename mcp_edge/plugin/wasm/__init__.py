"""WASM plugins: the ABI version, the ``[wasm]`` policy table of ``plugin.toml``, and the box's narrowing of it.

This module imports nothing heavy (the manifest reader uses it); the engine (wasmtime) is imported by
:mod:`.runtime` when a WASM plugin loads. docs/wasm-plugins.md is the reference of the ABI and the policy.

::

    [wasm]
    memory_mb = 16                    # the module's linear memory cap (default: settings.wasm_memory_mb)
    deadline_ms = 2000                # each call's wall-clock limit (default: settings.wasm_deadline_ms)
    host_functions = ["log", "data_read", "data_write", "http_get", "progress"]   # default: none
    http_hosts = ["api.example.org", "127.0.0.1:8080"]   # where http_get may go (with http_get only)
    [[wasm.preopens]]                 # WASI directories (default: none)
    guest = "/assets"                 # the path the module opens
    source = "plugin/assets"          # "plugin[/sub]" (read-only) or "data[/sub]" (its data folder)
    writable = false

What the box allows (settings ``wasm_memory_max_mb``, ``wasm_deadline_max_ms``, ``wasm_host_functions``)
narrows what a plugin asks for: the smaller limit, the host functions both name (:func:`effective`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from mcp_edge.errors import PluginLoadError

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["HOST_FUNCTIONS", "WASM_ABI_VERSION", "Preopen", "WasmPolicy", "check_table", "effective"]

WASM_ABI_VERSION = 1
"""The WASM plugin ABI this runtime speaks: ``MCP_EDGE_WASM_ABI`` in ``plugins/include/mcp_edge_wasm.h``."""

HOST_FUNCTIONS = ("log", "progress", "data_read", "data_write", "http_get")
"""The host functions of module ``mcp_edge`` a plugin can be granted."""

_KEYS = ("memory_mb", "deadline_ms", "host_functions", "http_hosts", "preopens")
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")
# wasm32 addresses 4 GiB, but the ABI's packed answers are signed i64s whose negative values are errors: a buffer
# at 2 GiB or above would read as one. So 2 GiB, whatever the table or the box says.
_MAX_MEMORY_MB = 2048
log = logging.getLogger("mcp_edge.plugin")


class Preopen(NamedTuple):
    """A WASI directory: ``source`` ("plugin[/sub]" or "data[/sub]") seen by the module as ``guest``."""

    guest: str
    source: str
    writable: bool = False


class WasmPolicy(NamedTuple):
    """What one WASM plugin may use, after the box's narrowing."""

    memory_mb: int
    deadline_ms: int
    host_functions: frozenset[str]
    http_hosts: tuple[str, ...]
    http_max_bytes: int
    preopens: tuple[Preopen, ...]
    idle_instances: int
    cache_dir: Path | None = None  # wasmtime's compile cache (settings.wasm_compile_cache), else None
    threads: int = 8  # settings.wasm_threads
    data_max_bytes: int = 64 << 20  # settings.wasm_data_max_mb: what data_write may fill the data folder to
    notes_per_call: int = 1000  # settings.wasm_notes_per_call: log lines and progress notifications per call


def _int(table: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise PluginLoadError(f"{where}: '{key}' must be an integer from {lo} to {hi}, got {value!r}")
    return value


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PluginLoadError(f"{where}: '{key}' must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _preopen(item: object, where: str) -> Preopen:
    if not isinstance(item, Mapping):
        raise PluginLoadError(f"{where}: each [[wasm.preopens]] entry must be a table, got {item!r}")
    unknown = set(item) - {"guest", "source", "writable"}
    if unknown:
        raise PluginLoadError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in a [[wasm.preopens]] entry "
                              "(known: guest, source, writable)")
    guest, source, writable = item.get("guest"), item.get("source"), item.get("writable", False)
    if not isinstance(guest, str) or not guest.startswith("/") or "\0" in guest:
        raise PluginLoadError(f"{where}: preopens 'guest' must be an absolute path like \"/data\", got {guest!r}")
    if not isinstance(writable, bool):
        raise PluginLoadError(f"{where}: preopens 'writable' must be true or false, got {writable!r}")
    parts = source.split("/") if isinstance(source, str) else []
    if not parts or parts[0] not in ("plugin", "data") or any(p in ("", ".", "..") or "\0" in p for p in parts[1:]):
        raise PluginLoadError(
            f"{where}: preopens 'source' must be \"plugin\" or \"data\", optionally followed by /subfolder (no '..', "
            f"no absolute paths), got {source!r}"
        )
    assert isinstance(source, str)
    if writable and parts[0] == "plugin":
        raise PluginLoadError(f"{where}: preopens source {source!r} cannot be writable (only the data folder is)")
    return Preopen(guest.rstrip("/") or "/", source, writable)


def check_table(table: object, where: str) -> Mapping[str, Any]:
    """The ``[wasm]`` table of a manifest, checked: unknown keys, types and ranges are a PluginLoadError naming
    ``where`` and the key. Values absent from the table are absent (or empty) in the answer."""
    if not isinstance(table, Mapping):
        raise PluginLoadError(f"{where}: must be a table, got {table!r}")
    unknown = set(table) - set(_KEYS)
    if unknown:
        raise PluginLoadError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(_KEYS)})")
    out: dict[str, Any] = {}
    for key, hi in (("memory_mb", _MAX_MEMORY_MB), ("deadline_ms", 24 * 3600 * 1000)):
        value = _int(table, key, where, 1, hi)
        if value is not None:
            out[key] = value
    functions = _strings(table, "host_functions", where)
    bad = [f for f in functions if f not in HOST_FUNCTIONS]
    if bad:
        raise PluginLoadError(f"{where}: host_functions: unknown host function(s) {', '.join(bad)} "
                              f"(known: {', '.join(HOST_FUNCTIONS)})")
    hosts = tuple(h.lower() for h in _strings(table, "http_hosts", where))
    bad = [h for h in hosts if not _HOST.match(h)]
    if bad:
        raise PluginLoadError(f"{where}: http_hosts: {', '.join(map(repr, bad))} is not a host or host:port")
    if hosts and "http_get" not in functions:
        raise PluginLoadError(f"{where}: http_hosts is set but host_functions does not grant http_get")
    if "http_get" in functions and not hosts:
        raise PluginLoadError(f"{where}: host_functions grants http_get but http_hosts lists no host it may reach")
    preopens = table.get("preopens", [])
    if not isinstance(preopens, list):
        raise PluginLoadError(f"{where}: 'preopens' must be an array of tables ([[wasm.preopens]]), got {preopens!r}")
    checked = tuple(_preopen(p, where) for p in preopens)
    guests = [p.guest for p in checked]
    if len(set(guests)) != len(guests):
        raise PluginLoadError(f"{where}: preopens: a guest path is named twice ({', '.join(guests)})")
    out["host_functions"] = frozenset(functions)
    out["http_hosts"] = hosts
    out["preopens"] = checked
    return MappingProxyType(out)


def effective(table: Mapping[str, Any] | None, settings: Settings, plugin_id: str) -> WasmPolicy:
    """The policy a plugin runs under: its checked ``[wasm]`` table narrowed by the box's settings."""
    table = table or {}
    memory = int(table.get("memory_mb", settings.wasm_memory_mb))
    deadline = int(table.get("deadline_ms", settings.wasm_deadline_ms))
    if memory > settings.wasm_memory_max_mb:
        log.warning("plugin %s: [wasm] memory_mb %d narrowed to the box's wasm_memory_max_mb %d", plugin_id, memory,
                    settings.wasm_memory_max_mb)
        memory = settings.wasm_memory_max_mb
    if memory > _MAX_MEMORY_MB:
        log.warning("plugin %s: memory %d MiB narrowed to %d MiB, the most the WASM ABI can address", plugin_id,
                    memory, _MAX_MEMORY_MB)
        memory = _MAX_MEMORY_MB
    if deadline > settings.wasm_deadline_max_ms:
        log.warning("plugin %s: [wasm] deadline_ms %d narrowed to the box's wasm_deadline_max_ms %d", plugin_id,
                    deadline, settings.wasm_deadline_max_ms)
        deadline = int(settings.wasm_deadline_max_ms)
    asked = frozenset(table.get("host_functions", ()))
    granted = asked & frozenset(settings.wasm_host_functions)
    if asked - granted:
        log.warning("plugin %s: host function(s) %s withheld: the box's wasm_host_functions does not allow them",
                    plugin_id, ", ".join(sorted(asked - granted)))
    return WasmPolicy(
        memory_mb=memory,
        deadline_ms=deadline,
        host_functions=granted,
        http_hosts=tuple(table.get("http_hosts", ())),
        http_max_bytes=settings.wasm_http_max_bytes,
        preopens=tuple(table.get("preopens", ())),
        idle_instances=settings.wasm_idle_instances,
        cache_dir=settings.cache_dir / "wasmtime" if settings.wasm_compile_cache else None,
        threads=settings.wasm_threads,
        data_max_bytes=settings.wasm_data_max_mb << 20,
        notes_per_call=settings.wasm_notes_per_call,
    )
