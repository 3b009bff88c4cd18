"""The start-up refusal that keeps clients from planting plugins: no plugin that serves files to clients may have
its root over the folder the index installs plugins into (``<data_dir>/plugins``), nor inside it. A root that
contains the folder would let a client write a ``plugin.toml`` and code that the next start runs; one inside it
would let a client rewrite an installed plugin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.errors import ConfigError, McpEdgeError

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.plugin.registry import Registry

__all__ = ["FILE_ROOTS", "check_file_roots"]

# Plugins that serve a folder to clients: plugin id -> the config key naming that folder's root.
FILE_ROOTS: Final = {"fs": "root"}


def check_file_roots(settings: Settings, registry: Registry,
                     config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """ConfigError when an enabled file-serving plugin's root overlaps ``<data_dir>/plugins``. ``config``: the
    plugin configuration to check (default: the registry's; SIGHUP passes the re-read one before it applies)."""
    from mcp_edge.plugin.config import resolve_config
    from mcp_edge.plugin.lifecycle import PluginState

    plugin_config = registry.config if config is None else config
    installed = (Path(settings.data_dir) / "plugins").expanduser().resolve(strict=False)  # installer.plugins_folder
    for plugin_id, key in FILE_ROOTS.items():
        rec = registry.get(plugin_id)
        if rec is None or rec.disabled or rec.state is PluginState.FAILED:
            continue
        schema = rec.manifest.config_schema if rec.manifest is not None else rec.config_schema
        try:
            resolved = resolve_config(plugin_id, schema, plugin_config.get(plugin_id), registry.environ)
        except McpEdgeError:
            continue  # the plugin fails with its own reason when it starts
        root = Path(str(resolved.get(key) or "files")).expanduser()
        if not root.is_absolute():  # as the plugin takes it: beneath its data folder
            root = Path(settings.data_dir) / "plugin-data" / plugin_id / root
        root = root.resolve(strict=False)
        if installed == root or installed.is_relative_to(root) or root.is_relative_to(installed):
            where = "contains" if installed.is_relative_to(root) and installed != root else (
                "is" if installed == root else "lies inside")
            raise ConfigError(
                f"plugin {plugin_id}: its {key} {root} {where} {installed}, the folder plugins are installed "
                f"into: a client could plant or change a plugin there. Refused (at start and on SIGHUP); set "
                f"{plugin_id}'s {key} (MCP_EDGE_{plugin_id.upper()}_{key.upper()}) to a folder apart from it")
