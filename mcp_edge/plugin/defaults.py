"""Plain implementations of the contexts, for a registry used without a runtime (CLI, tests, embedding).

The runtime passes its own ``context_factory`` to the Registry; these are what a
Registry uses when none is given, and what tests hand to ``call_tool``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_edge.plugin.types import LogLevel, ResourceDef

if TYPE_CHECKING:
    from mcp_edge.board import Board, Settings
    from mcp_edge.io import Engine
    from mcp_edge.runtime.principal import Principal

__all__ = ["DefaultPluginContext", "Notifier", "NullRequestContext", "Publisher"]

Notifier = Callable[[str], Awaitable[None]]
Publisher = Callable[[Any, list[ResourceDef]], Awaitable[None]]  # (the publishing context, its resources)


class DefaultPluginContext:
    """A PluginContext: the runtime's settings (``Settings.load()`` when none are given), the folder
    ``<data_dir>/plugin-data/<id>``, logger ``mcp_edge.plugin.<id>``.

    ``notify_*`` and ``publish_resources`` call the given callbacks, or do nothing without them.
    """

    def __init__(
        self,
        plugin_id: str,
        *,
        settings: Settings | None = None,
        data_root: Path | None = None,
        config: Mapping[str, Any] | None = None,
        on_resource_updated: Notifier | None = None,
        on_list_changed: Notifier | None = None,
        on_publish: Publisher | None = None,
    ) -> None:
        self._id = plugin_id
        self._settings = settings
        self.config: Mapping[str, Any] = {} if config is None else config
        self._data_root = data_root
        self._data_dir: Path | None = None
        self._logger = logging.getLogger(f"mcp_edge.plugin.{plugin_id}")
        self._on_resource_updated = on_resource_updated
        self._on_list_changed = on_list_changed
        self._on_publish = on_publish

    @property
    def plugin_id(self) -> str:
        return self._id

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from mcp_edge.board import Settings

            self._settings = Settings.load()
        return self._settings

    @property
    def board(self) -> Board:
        return self.settings.board

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            root = self._data_root if self._data_root is not None else self.settings.data_dir
            path = root / "plugin-data" / self._id
            path.mkdir(parents=True, exist_ok=True)
            self._data_dir = path
        return self._data_dir

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def engine(self) -> Engine:
        from mcp_edge.io import get_engine

        return get_engine()

    def pool(self) -> Any:
        """The process's slab pool (mcp_edge.native._slab.Pool) for large payloads, made on first use from the
        settings' ``slab_sizes``/``slab_counts``/``slab_numa``: one per process, shared by its plugins."""
        return process_pool(self.settings)

    async def notify_resource_updated(self, uri: str) -> None:
        if self._on_resource_updated is not None:
            await self._on_resource_updated(uri)

    async def notify_list_changed(self, kind: str) -> None:
        if self._on_list_changed is not None:
            await self._on_list_changed(kind)

    async def publish_resources(self, resources: Sequence[ResourceDef]) -> None:
        if self._on_publish is not None:
            await self._on_publish(self, list(resources))


_pools: dict[tuple[Any, ...], Any] = {}


def process_pool(settings: Settings) -> Any:
    """The slab pool of this process for ``settings``' slab layout (made once, kept for the process's life)."""
    key = (tuple(settings.slab_sizes), tuple(settings.slab_counts), settings.slab_numa)
    pool = _pools.get(key)
    if pool is None:
        from mcp_edge.native._slab import Pool

        pool = _pools[key] = Pool(sizes=settings.slab_sizes, counts=settings.slab_counts, numa=settings.slab_numa)
    return pool


class NullRequestContext:
    """A RequestContext for calls made outside a client request: no progress, logs to Python logging."""

    def __init__(self, request_id: str | int | None = None) -> None:
        from mcp_edge.runtime.principal import EMBEDDED

        self._request_id = request_id
        self.cancel_requested = False
        self.principal: Principal = EMBEDDED
        self.deadline_ns: int | None = None

    @property
    def request_id(self) -> str | int | None:
        return self._request_id

    @property
    def cancelled(self) -> bool:
        return self.cancel_requested

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        levels = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO, "warning": logging.WARNING}
        logging.getLogger(logger or "mcp_edge.plugin").log(levels.get(level, logging.ERROR), "%s", data)

    def engine(self) -> Engine:
        from mcp_edge.io import get_engine

        return get_engine()
