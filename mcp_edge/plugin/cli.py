"""What ``mcp-edge plugins list`` does: start a registry as the server would, snapshot its status, stop it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import ConfigError

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["list_plugins", "render_plugins"]


def list_plugins(
    plugin_dirs: list[Path] | None = None, *, entry_points: bool = True, init: bool = True,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Each plugin's status once started (or only loaded, without ``init``); ConfigError for a bad folder.

    The registry is the server's: ``settings`` (``Settings.load()`` when not given) give the folders, the
    plugins' config and environment overrides, which are enabled, and the entry-point cache;
    ``plugin_dirs`` replaces the folders and ``entry_points=False`` leaves installed plugins out.
    """
    from mcp_edge.plugin.defaults import DefaultPluginContext
    from mcp_edge.plugin.registry import Registry, default_plugin_dirs

    if settings is None:
        from mcp_edge.board import Settings

        settings = Settings.load()
    if plugin_dirs is None:
        dirs = default_plugin_dirs(settings)
    else:
        for d in plugin_dirs:
            if not d.is_dir():
                raise ConfigError(f"--plugin-dir {d}: not a folder")
        dirs = plugin_dirs
    s = settings
    registry = Registry(
        dirs,
        entry_points=entry_points and s.entry_points,
        config=s.plugin_config,
        enabled=s.enabled_plugins,
        disabled=s.disabled_plugins,
        context_factory=lambda plugin_id, config: DefaultPluginContext(plugin_id, settings=s, config=config),
        environ=s.environ,
        cache_dir=s.cache_dir,
        use_cache=s.entry_point_cache,
        init_timeout=s.init_timeout_s,
        shutdown_timeout=s.plugin_shutdown_timeout_s,
        isolation=s.plugin_isolation,
        settings=s,
    )
    if not init:
        registry.load()
        return registry.status()

    async def run() -> list[dict[str, Any]]:
        await registry.start()
        try:
            return registry.status()
        finally:
            await registry.stop()

    return asyncio.run(run())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_plugins(rows: list[dict[str, Any]]) -> str:
    """A table: id, version, kind, state, load and init ms, source; the reason under a plugin that has one."""
    header = ("ID", "VERSION", "KIND", "STATE", "LOAD ms", "INIT ms", "SOURCE")
    table = [header] + [
        (r["id"], r["version"] or "-", r["kind"], r["state"], _ms(r["load_ms"]), _ms(r["init_ms"]), r["source"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines: list[str] = []
    for n, row in enumerate(table):
        cells = [cell.rjust(w) if i in (4, 5) else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        reason = rows[n - 1]["reason"] if n else None
        if reason:
            lines.append(f"    reason: {reason}")
    active = sum(1 for r in rows if r["state"] == "active")
    failed = sum(1 for r in rows if r["state"] == "failed")
    lines.append(f"{len(rows)} plugins: {active} active, {failed} failed")
    return "\n".join(lines)
