"""The interface between the runtime and one plugin, whatever runs it: ``PluginHost``.

One host per kind: in-process Python (:mod:`.inproc`, also the built-in ``runtime`` plugin), a native
shared object in process (:mod:`.native`), a worker process (:mod:`.process`, either of the others behind a
ring pair); a WASM host fits the same shape. The registry sees only this interface: it loads a host (its
catalog, plain data), starts it with the plugin's config and context, routes calls to it by the catalog,
and stops it. A host never raises for the plugin's own bugs where a result can say it (a tool's exception is
an ``isError`` result); it raises the runtime's errors (``ToolNotFoundError``, ``InvalidArgumentsError``,
``PluginError`` ...) as the router expects.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_edge.plugin.catalog import PluginCatalog
    from mcp_edge.plugin.context import PluginContext

__all__ = ["PluginHost"]


class PluginHost(abc.ABC):
    """One plugin as the registry drives it."""

    #: inproc | native | process
    kind: str = ""
    #: a worker process's pid (process hosts), else this process's
    pid: int = 0

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.version = ""
        self.capabilities: frozenset[str] = frozenset()
        self.inflight = 0  # calls in it now (the registry counts): a replaced host drains to 0 before it stops
        self.context: Any = None  # the PluginContext it was started with: whose publishes count (publish_resources)

    @abc.abstractmethod
    async def load(self) -> PluginCatalog:
        """Import / dlopen / spawn the plugin; what it offers. Raises PluginLoadError (or the plugin's
        import error) when it cannot."""

    @abc.abstractmethod
    async def start(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        """Initialize the loaded plugin with its resolved config."""

    @abc.abstractmethod
    async def stop(self, timeout: float) -> None:
        """Shut the plugin down (its ``shutdown`` within ``timeout`` seconds) and release what loading took."""

    @abc.abstractmethod
    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, rctx: Any) -> Any:
        """tools/call: a ToolResult, or InputRequired; or the JSON the client gets as msgspec.Raw, already shaped
        for the request's protocol revision (``rctx.protocol_version``): the runtime embeds it as it is."""

    @abc.abstractmethod
    async def read_resource(self, uri: str, template: str | None, rctx: Any) -> Any:
        """resources/read of a fixed resource (``template`` None) or of ``uri`` through ``template``."""

    @abc.abstractmethod
    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None, rctx: Any) -> Any:
        """prompts/get."""

    @abc.abstractmethod
    async def complete(self, kind: str, ref: str, argument: str, value: str, context: Mapping[str, Any]) -> Any:
        """completion/complete for argument ``argument`` of prompt or template ``ref``: a Completion."""

    def runs_inline(self, op: str, name: str) -> bool:
        """True when the call ``op`` (tool | resource | prompt) of ``name`` runs its plugin code synchronously (a
        plain ``def`` handler): a worker may then run it to its end at once, with no task of its own, and it
        cannot be interrupted half way. False when unknown."""
        return False

    async def export_state(self) -> bytes | None:
        """The plugin's state for the version that replaces it (hot reload); None: it keeps none."""
        return None

    async def import_state(self, state: bytes) -> None:
        """Take the state the previous version exported (before the first call)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin_id!r}, version={self.version!r})"
