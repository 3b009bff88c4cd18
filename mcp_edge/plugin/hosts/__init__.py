"""The hosts a plugin can run in, and which one a plugin gets (``host_for``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_edge.errors import AbiMismatchError, PluginLoadError
from mcp_edge.plugin.hosts.base import PluginHost

if TYPE_CHECKING:
    from mcp_edge.plugin.catalog import PluginCatalog
    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.registry import Registry

__all__ = ["PluginHost", "host_for"]


def host_for(rec: PluginRecord, registry: Registry) -> PluginHost:
    """The host of ``rec`` for its isolation mode (``rec.isolation``): in process (Python or native), or a
    worker process. Nothing is loaded yet."""
    timeout = registry.init_timeout
    if rec.kind == "builtin":
        from mcp_edge.plugin.hosts.inproc import InprocHost
        from mcp_edge.plugin.registry import _RuntimePlugin

        host = InprocHost.of(_RuntimePlugin(registry))
        rec.version = host.version
        return host
    if rec.kind == "bridge":  # a mounted MCP server: always a process of its own, the runtime its client
        from mcp_edge.plugin.hosts.bridge import BridgeHost, catalog_changed

        assert rec.manifest is not None
        rec.isolation = "process"  # (no worker between: it would add a hop and isolate nothing more)

        async def on_catalog(host: BridgeHost, catalog: PluginCatalog) -> None:
            await catalog_changed(registry, host, catalog)

        return BridgeHost(rec.manifest, registry.settings, on_lost=registry.worker_lost, on_catalog=on_catalog)
    if rec.isolation == "process":
        from mcp_edge.worker.host import ProcessHost, WorkerSpec

        source = str(rec.source) if rec.entry_point is None else rec.entry_point.value
        return ProcessHost(WorkerSpec(rec.id, rec.kind, source), registry.settings, on_lost=registry.worker_lost)
    if rec.isolation != "inproc":
        raise PluginLoadError(f"plugin {rec.id}: unknown isolation mode {rec.isolation!r} (inproc or process)")
    if rec.kind == "native":
        from mcp_edge.plugin.hosts.native import NativeHost

        assert rec.manifest is not None
        return NativeHost.from_manifest(rec.manifest, init_timeout=timeout)
    if rec.kind == "wasm":
        from mcp_edge.plugin.hosts.wasm import WasmHost

        assert rec.manifest is not None
        return WasmHost.from_manifest(rec.manifest, registry.settings, init_timeout=timeout)
    from mcp_edge.plugin.hosts.inproc import InprocHost

    if rec.kind == "python":
        assert rec.manifest is not None
        return InprocHost.from_folder(rec.manifest, init_timeout=timeout)
    assert rec.entry_point is not None
    return InprocHost.from_entry_point(rec.entry_point, init_timeout=timeout,
                                       adopt=lambda cls: adopt_class_metadata(rec, cls))


def adopt_class_metadata(rec: PluginRecord, cls: Any) -> None:
    """An entry-point plugin's metadata, from its class attributes (its manifest, in effect)."""
    from mcp_edge.plugin.api import PLUGIN_API_VERSION, PluginBase
    from mcp_edge.plugin.manifest import check_capabilities, check_requires

    where = f"plugin {rec.id} ({rec.source})"
    abi = getattr(cls, "abi", PLUGIN_API_VERSION)
    if abi != PLUGIN_API_VERSION:
        raise AbiMismatchError(
            f"{where} speaks Python plugin API version {abi}, this runtime speaks version {PLUGIN_API_VERSION}",
            plugin_abi=abi if isinstance(abi, int) else None, runtime_abi=PLUGIN_API_VERSION,
        )
    version = getattr(cls, "version", None)
    if isinstance(version, str) and version and version != PluginBase.version:
        rec.version = version
    description = getattr(cls, "description", "")
    rec.description = description if isinstance(description, str) else ""
    rec.requires = check_requires(getattr(cls, "requires", None), where)
    rec.capabilities = rec.capabilities | check_capabilities(list(getattr(cls, "capabilities", ())), where)
    schema = getattr(cls, "config_schema", None)
    if schema is not None:
        from mcp_edge.plugin.config import check_schema

        check_schema(schema, f"{where}: config_schema")
    rec.config_schema = schema
