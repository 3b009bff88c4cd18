"""``update --auto`` on a systemd timer, for boxes that keep the running server's own schedule off
(``plugin_update_interval_s = 0``): a oneshot service that runs ``mcp-edge plugin update --auto`` as the
runtime's user, as confined as the runtime (read-only system but the data folder, no capabilities), and its
timer. The running server's folder watcher (``reload_watch``) sees each swapped plugin folder and hot-reloads
it; with the watcher off, ``systemctl reload mcp-edge`` (SIGHUP) does."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from mcp_edge.errors import ConfigError
from mcp_edge.system.unit import _word

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings

__all__ = ["DEFAULT_INTERVAL_S", "SERVICE", "TIMER", "timer_units"]

SERVICE: Final = "mcp-edge-plugin-update.service"
TIMER: Final = "mcp-edge-plugin-update.timer"
DEFAULT_INTERVAL_S: Final = 86400.0  # once a day when the settings give no interval


def timer_units(settings: Settings, *, exec_path: Path, user: str | None = None,
                interval_s: float | None = None) -> dict[str, str]:
    """{file name: unit text} of the update service and its timer."""
    if not exec_path.is_absolute():
        raise ConfigError(f"the unit's ExecStart needs an absolute path, got {str(exec_path)!r}")
    every = interval_s or settings.plugin_update_interval_s or DEFAULT_INTERVAL_S
    service = [
        "[Unit]",
        f"Description=mcp-edge: install newer plugins from the signed index (board {settings.board.id})",
        "After=network-online.target time-sync.target",  # (expiry checks need the clock set)
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"Environment=MCP_EDGE_BOARD={_word(settings.board.id)}",
        f"Environment=MCP_EDGE_BOARDS_DIR={_word(str(settings.board.path.parent))}",
        "ExecStart=" + " ".join(_word(a) for a in (str(exec_path), "plugin", "update", "--auto")),
        *([f"User={_word(user)}"] if user is not None else []),
        "UMask=0022",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"ReadWritePaths={_word(str(settings.data_dir))}",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "",
    ]
    timer = [
        "[Unit]",
        "Description=mcp-edge: check the signed plugin index for newer plugins",
        "",
        "[Timer]",
        f"OnBootSec={max(60, int(min(every, 900)))}",
        f"OnUnitActiveSec={max(1, int(every))}",
        f"RandomizedDelaySec={max(1, int(min(every / 10, 3600)))}",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return {SERVICE: "\n".join(service), TIMER: "\n".join(timer)}
