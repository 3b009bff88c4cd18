"""Finding plugins: every ``plugin.toml`` under the plugin folders and the cached ``mcp_edge.plugins`` entry
points, as ``PluginRecord``s. Imports no plugin: a broken manifest gives a failed record with what could be
read of it, and the second plugin of an id already found fails naming the first."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mcp_edge.errors import McpEdgeError, PluginError, PluginLoadError
from mcp_edge.plugin.lifecycle import PluginState

if TYPE_CHECKING:
    from mcp_edge.plugin.catalog import PluginCatalog
    from mcp_edge.plugin.entrypoints import EntryPointInfo
    from mcp_edge.plugin.hosts.base import PluginHost
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["RUNTIME_PLUGIN_ID", "Discovery", "PluginKind", "PluginRecord"]

RUNTIME_PLUGIN_ID = "runtime"

PluginKind = Literal["python", "native", "wasm", "bridge", "entry_point", "builtin"]


class PluginRecord:
    """What the registry knows of one plugin; ``status()`` shows it.

    (A plain class, not a dataclass: a dataclass costs most of a millisecond at import, and this module is on
    every start's path.)
    """

    __slots__ = ("capabilities", "catalog", "config_schema", "description", "disabled", "entry_point", "error",
                 "host", "id", "init_ms", "isolation", "kind", "load_ms", "manifest", "reason", "reload_ms",
                 "reloads", "requires", "restarts", "source", "state", "version")

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
        self.config_schema = config_schema
        self.host: PluginHost | None = None
        self.catalog: PluginCatalog | None = None
        self.isolation = "inproc"
        self.restarts = 0
        self.reloads = 0
        self.reload_ms: float | None = None

    def __repr__(self) -> str:
        why = f", reason={self.reason!r}" if self.reason else ""
        return (f"PluginRecord(id={self.id!r}, version={self.version!r}, kind={self.kind!r}, "
                f"state={self.state.value}{why})")

    @property
    def plugin(self) -> Any:
        """The plugin object of an in-process plugin (None for a worker's, or before it loaded)."""
        return getattr(self.host, "plugin", None)

    def as_dict(self) -> dict[str, Any]:
        c = self.catalog
        return {
            "id": self.id,
            "version": self.version,
            "kind": self.kind,
            "isolation": self.isolation,
            "state": self.state.value,
            "disabled": self.disabled,
            "reason": self.reason,
            "source": str(self.source),
            "description": self.description,
            "capabilities": sorted(self.capabilities),
            "requires": dict(self.requires),
            "load_ms": None if self.load_ms is None else round(self.load_ms, 3),
            "init_ms": None if self.init_ms is None else round(self.init_ms, 3),
            "tools": len(c.tools) if c else 0,
            "resources": len(c.resources) + len(c.templates) if c else 0,
            "prompts": len(c.prompts) if c else 0,
            "pid": getattr(self.host, "pid", None) if self.host is not None else None,
            "rss_bytes": _rss(getattr(self.host, "pid", None)) if self.isolation == "process" else None,
            "restarts": self.restarts,
            "reloads": self.reloads,
            "reload_ms": None if self.reload_ms is None else round(self.reload_ms, 3),
        }


class Discovery:
    """The records of one discovery pass, in order (failed ones included); ``by_id`` the first of each id."""

    def __init__(self, enabled: Collection[str] | None, disabled: Collection[str]) -> None:
        self.enabled = None if enabled is None else frozenset(enabled)
        self.disabled = frozenset(disabled)
        self.records: list[PluginRecord] = []
        self.by_id: dict[str, PluginRecord] = {}

    def run(self, plugin_dirs: Sequence[Path], *, builtin: PluginRecord | None, entry_points: bool,
            cache_dir: Path | None, use_cache: bool) -> list[PluginRecord]:
        from mcp_edge.plugin.loader import manifest_folders

        if builtin is not None:
            self.add(builtin)
        for folder in manifest_folders(list(plugin_dirs)):
            self.add(record_from_folder(folder))
        if entry_points:
            from mcp_edge.plugin.entrypoints import scan

            for ep in scan(cache_dir, use_cache=use_cache):
                self.add(record_from_entry_point(ep))
        return self.records

    def add(self, rec: PluginRecord) -> None:
        self.records.append(rec)
        if rec.state is PluginState.FAILED and rec.id in self.by_id:
            return
        first = self.by_id.get(rec.id)
        if first is not None:
            fail(rec, PluginLoadError(f"duplicate plugin id {rec.id}: {first.source} has it first"))
            return
        self.by_id[rec.id] = rec
        if rec.id != RUNTIME_PLUGIN_ID and (
            (self.enabled is not None and rec.id not in self.enabled) or rec.id in self.disabled
        ):
            rec.disabled = True
            rec.reason = "disabled by configuration"


def fail(rec: PluginRecord, exc: BaseException) -> None:
    """Mark ``rec`` failed with ``exc`` as its reason: a move of the lifecycle table like any other (discovery,
    load, start, restart and shutdown may fail; an active plugin fails only through ``restarting``)."""
    import logging

    from mcp_edge.plugin.lifecycle import move

    reason = str(exc) if isinstance(exc, McpEdgeError) else f"{type(exc).__name__}: {exc}"
    if rec.state is not PluginState.FAILED:
        rec.state = move(rec.id, rec.state, PluginState.FAILED)
    rec.reason = reason
    rec.error = exc
    logging.getLogger("mcp_edge.plugin").warning("plugin %s failed: %s", rec.id, reason)


def record_from_folder(folder: Path) -> PluginRecord:
    from mcp_edge.plugin.manifest import read_manifest

    try:
        m = read_manifest(folder)
    except PluginError as exc:
        rec = _fallback_record(folder)
        fail(rec, exc)
        return rec
    return PluginRecord(
        id=m.id, version=m.version, kind=m.kind, source=folder, description=m.description,
        capabilities=m.capabilities, requires=m.requires, manifest=m, config_schema=m.config_schema,
    )


def record_from_entry_point(ep: EntryPointInfo) -> PluginRecord:
    from mcp_edge.plugin.manifest import check_id

    rec = PluginRecord(id=ep.name, version=ep.version, kind="entry_point",
                       source=f"{ep.value} [{ep.dist} {ep.version}]", entry_point=ep)
    try:
        check_id(ep.name, f"entry point {ep.name} = {ep.value} of {ep.dist}")
    except PluginError as exc:
        fail(rec, exc)
    return rec


def _fallback_record(folder: Path) -> PluginRecord:
    """A record for a folder whose manifest is unusable: what can still be read of it."""
    from mcp_edge.plugin.manifest import MANIFEST

    plugin_id, version, kind = folder.name, "", "python"
    try:
        data = tomllib.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        table = data.get("plugin", {})
        if isinstance(table.get("id"), str):
            plugin_id = table["id"]
        if isinstance(table.get("version"), str):
            version = table["version"]
        if "library" in table:
            kind = "native"
        elif "wasm" in table:
            kind = "wasm"
        elif "bridge" in data:
            kind = "bridge"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        pass
    return PluginRecord(id=plugin_id, version=version, kind=kind, source=folder)  # type: ignore[arg-type]


def _rss(pid: int | None) -> int | None:
    """A worker's resident memory in bytes (/proc/<pid>/statm), or None when it is gone."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


_PAGE = os.sysconf("SC_PAGE_SIZE")
