"""A WASM plugin (a WebAssembly module speaking plugins/include/mcp_edge_wasm.h) in this process.

The sandbox is the WASM engine's (:mod:`mcp_edge.plugin.wasm.runtime`): the module reaches nothing but the host
functions and WASI directories its policy grants, each call runs on a thread under a wall-clock deadline and a
memory cap, and a trap ends that call only. So the default isolation of a WASM plugin is ``inproc``;
``isolation = "process"`` runs this same host in a worker. Loading (compiling the module, reading its catalog
under the deadline) is synchronous, as for every in-process host: the registry loads those without waiting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_edge.plugin.hosts.inproc import ToolsHost

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["WasmHost"]


class WasmHost(ToolsHost):
    kind = "wasm"

    @classmethod
    def from_manifest(cls, manifest: Manifest, settings: Settings, *, init_timeout: float = 30.0) -> WasmHost:
        def load() -> tuple[Any, str | None]:
            from mcp_edge.plugin.wasm import effective
            from mcp_edge.plugin.wasm.runtime import load_wasm

            return load_wasm(manifest, effective(manifest.wasm_policy, settings, manifest.id)), None

        return cls.of_loader(manifest, load, init_timeout=init_timeout)
