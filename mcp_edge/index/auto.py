"""``update --auto`` inside the runtime: every ``plugin_update_interval_s`` a task of the running server asks
the index for newer versions of the plugins installed from it, installs them (download, verify, unpack beside,
swap: :mod:`mcp_edge.index.installer`, in a thread so the event loop keeps serving) and hot-reloads each one
through the registry (:mod:`mcp_edge.plugin.reload`: the new version loads beside the old one and takes the new
calls once initialized; the old one finishes its calls), so no call fails. A refused index or artifact is
logged and changes nothing; the next round tries again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_edge.errors import McpEdgeError

if TYPE_CHECKING:
    from mcp_edge.index.installer import Change
    from mcp_edge.plugin.registry import Registry

__all__ = ["AutoUpdater"]

log = logging.getLogger("mcp_edge.index")


class AutoUpdater:
    """The auto-update task of one running server (``registry.settings`` read at each round: SIGHUP changes the
    index, keys and limits it uses; the interval is set at start)."""

    def __init__(self, registry: Registry, *, on_reloaded: Callable[[str], None] | None = None) -> None:
        self.registry = registry
        self.on_reloaded = on_reloaded
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()  # close(): the round's thread stops at its next read
        self._inflight: asyncio.Future[list[Change]] | None = None
        self.rounds = 0

    def start(self) -> None:
        """Start the task; ConfigError (the server does not start) when cryptography is missing."""
        import importlib.util

        if importlib.util.find_spec("cryptography") is None:
            from mcp_edge.errors import ConfigError

            raise ConfigError("plugin_update_interval_s > 0 needs cryptography, which is not installed: "
                              "pip install 'mcp-edge[index]' (or set plugin_update_interval_s = 0)")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mcp-edge plugin auto-update")
        log.info("plugin index: checking %s every %g s for newer plugins", self.registry.settings.plugin_index,
                 self.registry.settings.plugin_update_interval_s)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(self.registry.settings.plugin_update_interval_s, 0.1))
            try:
                await self.run_once()
            except Exception:  # never the end of the task: the next round tries again
                log.exception("plugin index: the auto-update round failed")

    async def run_once(self) -> list[Change]:
        """One round: install what is newer, reload each plugin that runs from the folder it was installed in."""
        from mcp_edge.index.installer import Installer
        from mcp_edge.plugin.lifecycle import PluginState

        settings = self.registry.settings
        self.rounds += 1
        if not settings.plugin_index:
            return []
        installer = Installer(settings, stop=self._stop)
        self._inflight = asyncio.get_running_loop().run_in_executor(None, installer.update)
        try:
            changes = await asyncio.shield(self._inflight)  # (cancelled, the round's thread goes on: close waits)
        except (McpEdgeError, OSError) as exc:
            log.warning("plugin index: no update: %s", exc)
            return []
        for change in changes:
            rec = self.registry.get(change.id)
            running = rec is not None and rec.state is PluginState.ACTIVE and rec.manifest is not None and \
                Path(rec.manifest.folder).resolve() == change.folder.resolve()
            if rec is None or rec.state is PluginState.FAILED:
                # new here (added live, as the watcher would), or failed (the new version may mend it)
                try:
                    if rec is not None:
                        await self.registry.remove(change.id)
                    added = await self.registry.add_folder(change.folder)
                except McpEdgeError as exc:
                    log.warning("plugin index: %s; not loaded: %s", change, exc)
                    continue
                if added.state is not PluginState.ACTIVE:
                    log.warning("plugin index: %s; it failed to start: %s", change, added.reason)
                continue
            if not running:
                log.warning("plugin index: %s; plugin %s is %s: the new version loads at the next start",
                            change, change.id, rec.state.value)
                continue
            try:
                await self.registry.reload(change.id)
            except McpEdgeError as exc:  # (a reload already running, from the folder watcher: it loads the same)
                log.info("plugin %s: %s", change.id, exc)
                continue
            if self.on_reloaded is not None:
                self.on_reloaded(change.id)
        return changes

    async def close(self) -> None:
        """Stop the task, and the round's thread at its next read (a download cut short leaves what is installed
        as it was); returns once that thread is done, so nothing of an install outlives the server."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._inflight
            self._inflight = None
