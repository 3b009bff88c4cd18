"""Hot reload on change: inotify watches on the plugin folders of the active plugins; a change (a file
written, created, removed or moved; not ``__pycache__``) schedules ``Registry.reload`` of that plugin once the
folder has been quiet for ``debounce_s`` (an editor or a package manager writes several files in a row).

The plugin folder roots (``plugin_dirs``, ``<data_dir>/plugins`` among them) are watched too: a folder created,
moved in, deleted or moved out there (not one whose name starts with ``.``, such as the installer's
``.staging``) schedules, once quiet, ``Registry.rescan``, which adds the plugins of new folders and removes those
whose folder went (:mod:`.live`). The index installer's update swaps a folder in at the same place: that is
no new folder, and the old folder's own watches reload the plugin as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mcp_edge.plugin.discovery import PluginRecord
    from mcp_edge.plugin.registry import Registry

__all__ = ["PluginWatcher"]

log = logging.getLogger("mcp_edge.plugin")

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)
_IGNORED_PARTS = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


class PluginWatcher:
    """Watches the folders of a registry's folder plugins and reloads a plugin whose files change."""

    def __init__(self, registry: Registry, *, debounce_s: float = 0.2, roots: Sequence[Path] | None = None) -> None:
        self.registry = registry
        self.debounce_s = debounce_s
        self.roots = list(registry.plugin_dirs if roots is None else roots)
        self._fd = -1
        self._wds: dict[int, str] = {}
        self._root_wds: set[int] = set()  # the roots
        self._new_wds: set[int] = set()  # new folders in them not yet a plugin's (being filled)
        self._rescan: asyncio.TimerHandle | None = None
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.reloads = 0
        self.rescans = 0

    def start(self) -> int:
        """Watch every active folder plugin (and its subfolders); how many folders are watched."""
        from mcp_edge.native import _sys
        from mcp_edge.plugin.lifecycle import PluginState

        self._fd = _sys.inotify_init()
        for rec in self.registry.records:
            if rec.state is not PluginState.ACTIVE or rec.manifest is None:
                continue
            self._watch(rec.id, rec.manifest.folder)
        for root in self.roots:
            if not (root / "plugin.toml").is_file():  # (a root that is itself a plugin's folder is watched as one)
                self._watch_root(root)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return len(self._wds)

    def _watch_root(self, folder: Path, into: set[int] | None = None) -> None:
        from mcp_edge.native import _sys

        try:
            (self._root_wds if into is None else into).add(_sys.inotify_add_watch(self._fd, folder, _sys.IN_CHANGES))
        except OSError as exc:  # (a profile's folder that does not exist on this box: not worth a warning)
            log.log(logging.DEBUG if isinstance(exc, FileNotFoundError) else logging.WARNING,
                    "plugin folder %s: not watched for plugins added or removed: %s", folder, exc.strerror)

    def _watch(self, plugin_id: str, root: Path) -> None:
        from mcp_edge.native import _sys

        for folder in _folders(root):
            try:
                self._wds[_sys.inotify_add_watch(self._fd, folder, _sys.IN_CHANGES)] = plugin_id
            except OSError as exc:
                log.warning("plugin %s: cannot watch %s for reloads: %s", plugin_id, folder, exc.strerror)

    def rewatch(self, plugin_id: str, *, reloaded: bool = False) -> None:
        """Watch the folders plugin ``plugin_id`` has now: after a reload its folder may be a new one (the plugin
        index swaps a whole folder in), and watches follow folders, not names. ``reloaded``: someone else just
        reloaded it from its new folder, so a reload scheduled by the old folder's removal is dropped."""
        rec = self.registry.get(plugin_id)
        if self._fd < 0 or rec is None or rec.manifest is None:
            return
        handle = self._pending.pop(plugin_id, None) if reloaded else None
        if handle is not None:
            handle.cancel()
        for wd in [wd for wd, pid in self._wds.items() if pid == plugin_id]:
            del self._wds[wd]  # (a folder still there gets its same watch back just below)
        self._watch(plugin_id, rec.manifest.folder)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("plugin watch: %s", exc)
            return
        at = 0
        from mcp_edge.native import _sys

        isdir = _sys.INOTIFY_MASKS["isdir"]
        while at + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, at)
            name = data[at + _EVENT.size:at + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
            at += _EVENT.size + length
            if wd in self._root_wds or (wd in self._new_wds and wd not in self._wds):
                self._root_event(wd, mask & isdir != 0, name)
                continue
            plugin_id = self._wds.get(wd)
            if plugin_id is None or name in _IGNORED_PARTS or name.endswith(_IGNORED_SUFFIXES):
                continue
            self._schedule(plugin_id)

    def _root_event(self, wd: int, isdir: bool, name: str) -> None:
        """A folder came or went in a root, or something changed in a new folder (a plugin being copied in)."""
        if wd in self._root_wds:
            if name.startswith(".") or not isdir:
                return
            for root in self.roots:  # a new folder may be filled after it appears: watched until it is a plugin
                child = root / name
                if child.is_dir() and not (child / "plugin.toml").is_file():
                    self._watch_root(child, self._new_wds)
        if self._rescan is not None:
            self._rescan.cancel()
        self._rescan = asyncio.get_running_loop().call_later(self.debounce_s, self._fire_rescan)

    def _fire_rescan(self) -> None:
        self._rescan = None
        task = asyncio.get_running_loop().create_task(self._rescan_now())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rescan_now(self) -> None:
        try:
            added, removed = await self.registry.rescan()
        except Exception as exc:
            log.warning("plugin folders: not rescanned: %s", exc)
            return
        self.rescans += 1
        self.follow(added, removed)

    def follow(self, added: Sequence[PluginRecord], removed: Sequence[str]) -> None:
        """Watch the folders of plugins just added; forget those of plugins just removed."""
        from mcp_edge.plugin.lifecycle import PluginState

        for plugin_id in removed:
            handle = self._pending.pop(plugin_id, None)
            if handle is not None:
                handle.cancel()
            for wd in [wd for wd, pid in self._wds.items() if pid == plugin_id]:
                del self._wds[wd]
        for rec in added:
            if rec.state is PluginState.ACTIVE and rec.manifest is not None and self._fd >= 0:
                self.rewatch(rec.id)
        self._new_wds -= set(self._wds)

    def _schedule(self, plugin_id: str) -> None:
        loop = asyncio.get_running_loop()
        handle = self._pending.pop(plugin_id, None)
        if handle is not None:
            handle.cancel()
        self._pending[plugin_id] = loop.call_later(self.debounce_s, self._fire, plugin_id)

    def _fire(self, plugin_id: str) -> None:
        self._pending.pop(plugin_id, None)
        task = asyncio.get_running_loop().create_task(self._reload(plugin_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self, plugin_id: str) -> None:
        rec = self.registry.get(plugin_id)
        if rec is not None and rec.manifest is not None and not (rec.manifest.folder / "plugin.toml").is_file():
            return  # its folder went: the roots' watch removes it
        try:
            await self.registry.reload(plugin_id)
            self.reloads += 1
            self.rewatch(plugin_id)
        except Exception as exc:
            log.warning("plugin %s: not reloaded: %s", plugin_id, exc)

    async def close(self) -> None:
        if self._rescan is not None:
            self._rescan.cancel()
            self._rescan = None
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


def _folders(root: Path) -> list[Path]:
    out = [root]
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_PARTS and not d.startswith(".")]
        out.extend(Path(dirpath) / d for d in dirnames)
    return out
