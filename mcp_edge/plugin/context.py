"""What the runtime hands plugins: a context at initialize, a context per request."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mcp_edge.plugin.types import LogLevel

if TYPE_CHECKING:
    from mcp_edge.board import Board
    from mcp_edge.io import Engine

__all__ = ["PluginContext", "RequestContext"]


@runtime_checkable
class PluginContext(Protocol):
    """Given to ``Plugin.initialize``: what a plugin may use for its whole life."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def board(self) -> Board: ...
    @property
    def data_dir(self) -> Path:
        """This plugin's own folder under the runtime's data dir (created on demand)."""
        ...
    @property
    def logger(self) -> logging.Logger: ...
    def engine(self) -> Engine:
        """The process's I/O engine (io_uring or the thread fallback)."""
        ...
    async def notify_resource_updated(self, uri: str) -> None:
        """Tell subscribed clients that resource ``uri`` changed."""
        ...
    async def notify_list_changed(self, kind: str) -> None:
        """Tell clients the list of ``tools``, ``resources`` or ``prompts`` changed."""
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
    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Send notifications/progress if the client asked for it (a progress token); else nothing."""
        ...
    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        """Send notifications/message if ``level`` is at or above the client's level."""
        ...
    def engine(self) -> Engine: ...


