"""A native plugin (a shared object speaking plugins/include/mcp_edge_plugin.h) in this process.

dlopened through cffi on ``load`` (:mod:`mcp_edge.plugin.native`); its tools are called inline on the event
loop, or on a thread for ``x-blocking`` tools. A crash in its C code ends the process that hosts it: run
native plugins with ``process`` isolation (a worker hosts this same class) unless they are trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_edge.plugin.hosts.inproc import ToolsHost

if TYPE_CHECKING:
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["NativeHost"]


class NativeHost(ToolsHost):
    kind = "native"

    @classmethod
    def from_manifest(cls, manifest: Manifest, *, init_timeout: float = 30.0) -> NativeHost:
        def load() -> tuple[Any, str | None]:
            from mcp_edge.plugin.native import load_native

            return load_native(manifest), None

        return cls.of_loader(manifest, load, init_timeout=init_timeout)
