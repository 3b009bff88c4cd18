"""The start-up refusal that keeps clients from planting plugins: no plugin that serves files to clients may have its
root over the folder the index installs plugins into (``<data_dir>/plugins``), nor inside it. A root that contains
the folder would let a client write a ``plugin.toml`` and code that the runtime then loads (live, or at its next
start); one inside it would let a client rewrite an installed plugin. The same holds for the two folders the index's
trust rests on: the trusted keys (``trust_dir``: a client would add its own key) and ``<data_dir>/plugin-index`` (a
client would reset the last trusted version and open the door to a rollback)."""

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
    """ConfigError when an enabled file-serving plugin's root overlaps a guarded folder (above). ``config``: the
    plugin configuration to check (default: the registry's; SIGHUP passes the re-read one before it applies)."""
    from mcp_edge.board.settings import installed_plugins_dir
    from mcp_edge.plugin.config import resolve_config
    from mcp_edge.plugin.lifecycle import PluginState

    plugin_config = registry.config if config is None else config
    data = Path(settings.data_dir).expanduser()
    guarded = [  # (folder, what it is, what a client that writes there could do)
        (installed_plugins_dir(data).resolve(strict=False), "the folder plugins are installed into",
         "plant or change a plugin there"),
        ((data / "plugin-index").resolve(strict=False), "where the box keeps the plugin index it last trusted",
         "reset it and roll the index back"),
        (Path(settings.trust_dir).expanduser().resolve(strict=False), "the folder of the keys the box trusts",
         "add its own key and sign its own index"),
    ]
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
            root = data / "plugin-data" / plugin_id / root
        root = root.resolve(strict=False)
        for folder, what, could in guarded:
            if folder == root or folder.is_relative_to(root) or root.is_relative_to(folder):
                where = "is" if folder == root else "contains" if folder.is_relative_to(root) else "lies inside"
                raise ConfigError(
                    f"plugin {plugin_id}: its {key} {root} {where} {folder}, {what}: a client could {could}. "
                    f"Refused (at start and on SIGHUP); set {plugin_id}'s {key} "
                    f"(MCP_EDGE_{plugin_id.upper()}_{key.upper()}) to a folder apart from it")
