"""The plugin inside a worker process: the same in-process hosts the runtime uses (mcp_edge.plugin.hosts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import PluginLoadError

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.plugin.hosts.inproc import InprocHost
    from mcp_edge.worker.protocol import Init

__all__ = ["context_for", "open_host"]

Event = Callable[[str, str], Awaitable[None]]


def open_host(init: Init, settings: Settings) -> InprocHost:
    """The host for INIT's plugin (nothing is imported until its ``load``)."""
    from mcp_edge.plugin.hosts.inproc import InprocHost

    timeout = settings.init_timeout_s
    if init.kind == "entry_point":
        from mcp_edge.plugin.entrypoints import EntryPointInfo

        return InprocHost.from_entry_point(EntryPointInfo(init.plugin_id, init.source, "", ""), init_timeout=timeout)
    if init.kind not in ("python", "native", "wasm"):
        raise PluginLoadError(f"plugin {init.plugin_id}: a worker cannot run a plugin of kind {init.kind!r}")
    from mcp_edge.plugin.manifest import read_manifest

    manifest = read_manifest(Path(init.source))
    if manifest.id != init.plugin_id:
        raise PluginLoadError(f"plugin {init.plugin_id}: {init.source} now holds plugin {manifest.id}")
    board_table = getattr(settings.board, "sandbox", None) or {}
    if manifest.sandbox is not None or board_table:
        confine(manifest.folder, manifest.sandbox, settings, init.plugin_id)
    if init.kind == "native":
        from mcp_edge.plugin.hosts.native import NativeHost

        return NativeHost.from_manifest(manifest, init_timeout=timeout)
    if init.kind == "wasm":
        from mcp_edge.plugin.hosts.wasm import WasmHost

        return WasmHost.from_manifest(manifest, settings, init_timeout=timeout)
    return InprocHost.from_folder(manifest, init_timeout=timeout)


def confine(folder: Path, table: Any, settings: Settings, plugin_id: str) -> None:
    """Apply the plugin's ``[sandbox]`` (``table``; None when it declares none), narrowed by the board profile's
    ``[sandbox]``, to this worker before its code loads: its own folder, the interpreter and its data folder
    readable (the data folder writable), the extra paths both allow, both syscall deny-lists, TCP only when both
    allow it. What the kernel lacks is logged, not fatal."""
    import logging

    from mcp_edge.system.confine import apply, policy_for

    data = settings.data_dir / "plugin-data" / plugin_id
    data.mkdir(parents=True, exist_ok=True)
    policy = policy_for(plugin_id, table, getattr(settings.board, "sandbox", None) or {}, folder, data)
    if policy is None:
        return
    result = apply(policy, folder, data)
    for why in result.lacking:
        logging.getLogger("mcp_edge.worker").warning("plugin %s: sandbox: %s", plugin_id, why)


def context_for(plugin_id: str, settings: Settings, config: Any, event: Event) -> Any:
    """The plugin's context in the worker: the runtime's settings, its config; notifications go to ``event``."""
    from mcp_edge.plugin.defaults import DefaultPluginContext

    async def updated(uri: str) -> None:
        await event("resource_updated", uri)

    async def changed(kind: str) -> None:
        await event("list_changed", kind)

    async def publish(_source: Any, resources: list[Any]) -> None:
        import msgspec

        await event("published", msgspec.json.encode(resources).decode())

    return DefaultPluginContext(plugin_id, settings=settings, config=config, on_resource_updated=updated,
                                on_list_changed=changed, on_publish=publish)
