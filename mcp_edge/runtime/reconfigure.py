"""What a re-read board profile changes in a running server (SIGHUP), and how each change is applied.

Three kinds of setting:

- applied in place: the protocol's and the supervisor's limits (``max_inflight``, ``tool_timeout_s``, breaker
  and bulkhead thresholds, backoffs, memory shedding ...): the router and the registry take the new settings
  object, breakers and bulkheads take the new numbers without losing their state;
- applied through the plugins' hot reload, which SIGHUP runs for every active plugin anyway: a plugin's config
  and isolation, its init and shutdown budgets, the limits a plugin reads from its context, a worker's
  rlimits and the board's ``[sandbox]`` (each plugin's new version starts with them);
- read once at start, kept until a restart (and said so in the log): the transports and their limits, paths,
  the I/O engine, the rings' and slabs' layout, discovery (plugin folders, enabled/disabled, entry points),
  the server's name and instructions, the shutdown budget and the systemd watchdog.

Sans-I/O: :func:`changes` compares two ``Settings``; :func:`merge` gives what the server runs with next.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["Changes", "changes", "merge"]

# Sections read once at start: every field in them needs a restart.
RESTART_SECTIONS: Final = frozenset({"paths", "transport", "http", "io", "ipc"})
# Fields of other sections read once at start.
RESTART_FIELDS: Final = frozenset({
    "server_name", "instructions",  # the initialize answer sessions already have
    "enabled_plugins", "disabled_plugins", "entry_points", "entry_point_cache", "cache_dir",  # discovery
    "environ",  # the process's environment cannot change under it
    "shutdown_timeout_s", "watchdog_s", "service_memory_max",  # the supervisor's and systemd's, set at start
    "reload_watch",  # the folder watcher runs or not from the start
    "plugin_update_interval_s",  # the index's auto-update task runs or not from the start (mcp_edge.index.auto)
    "malloc_mmap_threshold", "malloc_keep",  # the C library's, set once at start
})
# Fields a plugin sees through its new version (hot reload): its config, isolation and the limits it reads.
RELOAD_FIELDS: Final = frozenset({
    "plugin_config", "plugin_isolation", "init_timeout_s", "plugin_shutdown_timeout_s", "native_drain_s",
    "max_read", "max_large_reads", "max_regex", "worker_rlimit_as", "worker_rlimit_nofile", "worker_memory_max",
})


class Changes:
    """The settings that differ, by how they are applied (names, sorted)."""

    __slots__ = ("in_place", "need_restart", "with_reload")

    def __init__(self, in_place: list[str], with_reload: list[str], need_restart: list[str]) -> None:
        self.in_place = in_place
        self.with_reload = with_reload
        self.need_restart = need_restart

    def __bool__(self) -> bool:
        return bool(self.in_place or self.with_reload or self.need_restart)

    def as_dict(self) -> dict[str, list[str]]:
        return {"in_place": self.in_place, "with_reload": self.with_reload, "need_restart": self.need_restart}

    def __repr__(self) -> str:
        return f"Changes({self.as_dict()!r})"


def changes(old: Settings, new: Settings) -> Changes:
    """What differs between the settings a server runs with and a re-read of them."""
    from mcp_edge.board.settings import FIELDS

    in_place: list[str] = []
    with_reload: list[str] = []
    restart: list[str] = []
    for info in FIELDS:
        if getattr(old, info.name) == getattr(new, info.name):
            continue
        if info.section in RESTART_SECTIONS or info.name in RESTART_FIELDS:
            restart.append(info.name)
        elif info.name in RELOAD_FIELDS:
            with_reload.append(info.name)
        else:
            in_place.append(info.name)
    if getattr(old.board, "sandbox", None) != getattr(new.board, "sandbox", None):
        with_reload.append("sandbox")  # the board's [sandbox]: each plugin's new worker reads the profile again
    return Changes(sorted(in_place), sorted(with_reload), sorted(restart))


def merge(old: Settings, new: Settings, found: Changes) -> Settings:
    """``new``, less what needs a restart (those keep ``old``'s values)."""
    return replace(new, **{name: getattr(old, name) for name in found.need_restart})
