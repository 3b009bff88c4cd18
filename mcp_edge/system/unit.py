"""A hardened systemd unit for this board's runtime (what ``mcp-edge systemd-unit`` prints).

Every value that has a setting comes from ``Settings``: the data folder is the one writable path, the stop timeout
covers the shutdown budget plus the plugins' own, the watchdog matches what the supervisor pings at half of.
The sandbox is systemd's (read-only system, no home, private /tmp, no capabilities, no new privileges, three
address families, the system-service syscall set) plus the calls a worker needs to confine itself further.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mcp_edge.errors import ConfigError

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings

__all__ = ["DEFAULT_WATCHDOG_S", "NOFILE_FLOOR", "STOP_MARGIN_S", "service_nofile", "unit_text"]

# Seconds systemd waits beyond the runtime's own budgets before it sends SIGKILL: time to log, flush and exit.
STOP_MARGIN_S: Final = 5.0
START_MARGIN_S: Final = 30.0
# The watchdog timeout when Settings has none of its own (the supervisor pings at half of it).
DEFAULT_WATCHDOG_S: Final = 30.0
# The service's open-file limit never goes below this (the asyncio loop, logs, plugin files).
NOFILE_FLOOR: Final = 8192
# Calls a worker makes to confine itself (confine.apply) that @system-service leaves out.
CONFINE_SYSCALLS: Final = ("seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self")

_PLAIN = re.compile(r"[A-Za-z0-9/._:=,+@-]+")


def service_nofile(settings: Settings) -> int:
    """LimitNOFILE: room for every HTTP connection and listener stream (a few descriptors each) plus one worker's
    worth, never below NOFILE_FLOOR."""
    need = 4 * (settings.max_connections + settings.max_listeners) + settings.worker_rlimit_nofile
    return max(NOFILE_FLOOR, need)


def _word(value: str) -> str:
    """One word of a unit line: systemd's specifiers and variables escaped, quoted when it has spaces."""
    if "\n" in value or "\0" in value:
        raise ConfigError(f"a systemd unit value cannot hold a newline or NUL: {value!r}")
    escaped = value.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(value: float) -> str:
    return str(max(1, math.ceil(value)))


def unit_text(settings: Settings, *, exec_path: str | Path, user: str | None = None,
              serve_args: Sequence[str] = (), watchdog_s: float | None = None,
              memory_max: int | None = None) -> str:
    """The unit file text for ``settings``' board.

    ``exec_path``: the ``mcp-edge`` executable; ``serve_args``: options after ``serve`` (default: HTTP as the
    settings say); ``user``: run as this user and its primary group (None: root, still with no capabilities);
    ``watchdog_s``: WatchdogSec (default: the settings' ``watchdog_s``, else DEFAULT_WATCHDOG_S);
    ``memory_max``: MemoryMax in bytes for the whole service (default: the settings' ``service_memory_max``;
    0: none).
    """
    board = settings.board
    if watchdog_s is None:
        watchdog_s = float(getattr(settings, "watchdog_s", DEFAULT_WATCHDOG_S))
    if memory_max is None:
        memory_max = int(settings.service_memory_max)
    exec_path = Path(exec_path)
    if not exec_path.is_absolute():
        raise ConfigError(f"the unit's ExecStart needs an absolute path, got {str(exec_path)!r}")
    data_dir = settings.data_dir
    stop_s = settings.shutdown_timeout_s + settings.plugin_shutdown_timeout_s + STOP_MARGIN_S
    start_s = settings.init_timeout_s + START_MARGIN_S
    delegate = settings.worker_memory_max > 0  # workers get memory.max in sub-cgroups of the service's

    unit = [
        "[Unit]",
        f"Description=mcp-edge MCP runtime (board {board.id})",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"Environment=MCP_EDGE_BOARD={_word(board.id)}",
        f"Environment=MCP_EDGE_BOARDS_DIR={_word(str(board.path.parent))}",
        # Settings put the entry-point cache under $XDG_CACHE_HOME/mcp-edge: the CacheDirectory below.
        "Environment=XDG_CACHE_HOME=/var/cache",
        # Logs straight to the journal, with their fields (priority, logger, request id), not as stderr lines.
        "Environment=MCP_EDGE_LOG_TARGET=journald",
        "ExecStart=" + " ".join(_word(a) for a in (str(exec_path), "serve", *serve_args)),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2",
        f"TimeoutStartSec={_seconds(start_s)}",
        f"TimeoutStopSec={_seconds(stop_s)}",
        f"WatchdogSec={_seconds(watchdog_s)}",
        # SIGTERM to the supervisor alone, which stops its workers itself; SIGKILL to all at the timeout.
        "KillMode=mixed",
    ]
    if user is not None:
        unit.append(f"User={_word(user)}")  # and its primary group
    unit += [
        "UMask=0077",
        f"LimitNOFILE={service_nofile(settings)}",
    ]
    if memory_max > 0:
        unit.append(f"MemoryMax={memory_max}")
    if delegate:
        unit.append("Delegate=yes")
    unit += [
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"ReadWritePaths={_word(str(data_dir))}",
    ]
    if data_dir.is_relative_to("/var/lib") and data_dir != Path("/var/lib"):
        unit.append(f"StateDirectory={_word(str(data_dir.relative_to('/var/lib')))}")  # created, owned by User
    unit += [
        "CacheDirectory=mcp-edge",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
    ]
    if not delegate:
        unit.append("ProtectControlGroups=yes")
    unit += [
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=" + " ".join(CONFINE_SYSCALLS),
        "SystemCallErrorNumber=EPERM",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(unit)
