"""What the runtime hands plugins: a context at initialize, a context per request."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mcp_edge.plugin.types import LogLevel, ResourceDef

if TYPE_CHECKING:
    from mcp_edge.board import Board, Settings
    from mcp_edge.io import Engine
    from mcp_edge.runtime.principal import Principal

__all__ = ["PluginContext", "RequestContext"]


@runtime_checkable
class PluginContext(Protocol):
    """Given to ``Plugin.initialize``: what a plugin may use for its whole life."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def settings(self) -> Settings:
        """The runtime's settings: the limits a plugin should honour (max_read, max_regex, ...)."""
        ...
    @property
    def board(self) -> Board: ...
    @property
    def data_dir(self) -> Path:
        """This plugin's own folder under the runtime's data dir (created on demand)."""
        ...
    @property
    def logger(self) -> logging.Logger: ...
    @property
    def config(self) -> Mapping[str, Any]:
        """This plugin's resolved config (the same mapping ``initialize`` gets)."""
        ...

    def engine(self) -> Engine:
        """The process's I/O engine (io_uring or the thread fallback)."""
        ...

    def pool(self) -> Any:
        """The process's slab pool for large payloads (blocks in shared memory; see mcp_edge.native._slab)."""
        ...
    async def notify_resource_updated(self, uri: str) -> None:
        """Tell subscribed clients that resource ``uri`` changed."""
        ...
    async def notify_list_changed(self, kind: str) -> None:
        """Tell clients the list of ``tools``, ``resources`` or ``prompts`` changed."""
        ...
    async def publish_resources(self, resources: Sequence[ResourceDef]) -> None:
        """Replace the concrete resources this plugin lists in ``resources/list`` besides its fixed ones (one per
        container, per Kubernetes object...). Each URI must match one of the plugin's own resource templates
        (reads go through that template's handler) and be neither a fixed resource nor given twice; at most
        ``settings.max_published_resources``. Clients get ``notifications/resources/list_changed`` when the list
        changed. A bad list is refused whole (PluginError in process; a warning in the runtime's log from a
        worker) and the last good one stays. Publish at initialize too: after a reload or a restart the list is
        the new instance's (what the replaced one publishes no longer counts), and until the new one publishes,
        the old list stays at most as far as the new templates still match it."""
        ...


@runtime_checkable
class RequestContext(Protocol):
    """Given to a handler that declares a parameter annotated with it (left out of the schema).

    Cancellation: a cancelled request cancels the handler's task (``CancelledError``
    at its next ``await``); long CPU loops check ``cancelled``.
    """

    @property
    def request_id(self) -> str | int | None: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def protocol_version(self) -> str:
        """The revision this request is served under (``2026-07-28`` or a handshake-era version)."""
        ...
    @property
    def stateless(self) -> bool:
        """True for a 2026-07-28 request: no server-to-client requests; ask with InputRequired instead."""
        ...
    @property
    def client_capabilities(self) -> dict[str, Any]:
        """What the client declared: per request (2026-07-28) or at initialize."""
        ...
    @property
    def input_responses(self) -> dict[str, Any] | None:
        """The client's answers to this handler's InputRequired, on a retry (2026-07-28)."""
        ...
    @property
    def request_state(self) -> str | None:
        """The requestState this handler returned with its InputRequired, verified untampered."""
        ...
    @property
    def principal(self) -> Principal:
        """Who asks: the session's principal (mcp_edge.runtime.principal)."""
        ...
    @property
    def deadline_ns(self) -> int | None:
        """When the call must be over (``time.monotonic_ns()``): the client's ``_meta`` timeout or the box's
        ``tool_timeout_s``; past it the call is cancelled. None outside a client request."""
        ...

    def require_capability(self, name: str) -> None:
        """Raise the protocol's missing-capability error unless the client declared ``name``."""
        ...
    async def send_request(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the client (handshake era only: sampling/createMessage, elicitation/create, roots/list)
        and wait for its result; the protocol error it answered with is raised."""
        ...
    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Send notifications/progress if the client asked for it (a progress token); else nothing."""
        ...
    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        """Send notifications/message if ``level`` is at or above the client's level."""
        ...
    def engine(self) -> Engine: ...


