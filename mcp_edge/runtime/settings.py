"""One Settings object for the runtime, from the board profile, the environment and the caller."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mcp_edge.board import Board, detect
from mcp_edge.errors import ConfigError
from mcp_edge.mcp.connection import DEFAULT_MAX_FRAME

__all__ = ["Settings"]

DEFAULT_HTTP_PORT = 8765


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None


@dataclass(frozen=True)
class Settings:
    """Everything the runtime is configured with; immutable, so a running server's view cannot drift."""

    board: Board
    data_dir: Path
    plugin_dirs: tuple[Path, ...]
    plugin_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    enabled_plugins: frozenset[str] | None = None
    disabled_plugins: frozenset[str] = frozenset()
    entry_points: bool = True
    server_name: str = "mcp-edge"
    instructions: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    allowed_origins: tuple[str, ...] = ()
    max_frame: int = DEFAULT_MAX_FRAME
    max_body: int = DEFAULT_MAX_FRAME
    page_size: int = 100
    session_idle_s: float = 600.0
    max_sessions: int = 1024

    @classmethod
    def load(cls, board: Board | None = None, **overrides: Any) -> Settings:
        """Settings for this box: its board profile, ``MCP_EDGE_*`` variables, then ``overrides``."""
        board = board or detect()
        data_dir = Path(os.environ.get("MCP_EDGE_DATA_DIR") or board.data_dir)
        dirs = tuple(getattr(board, "plugin_dirs", ()) or ())
        extra = os.environ.get("MCP_EDGE_PLUGIN_DIRS")
        if extra:
            dirs = tuple(Path(p) for p in extra.split(os.pathsep) if p) + dirs
        origins = os.environ.get("MCP_EDGE_ALLOWED_ORIGINS", "")
        base = cls(
            board=board,
            data_dir=data_dir,
            plugin_dirs=dirs,
            http_host=os.environ.get("MCP_EDGE_HTTP_HOST", "127.0.0.1"),
            http_port=_env_int("MCP_EDGE_HTTP_PORT", DEFAULT_HTTP_PORT),
            allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            max_frame=_env_int("MCP_EDGE_MAX_FRAME", DEFAULT_MAX_FRAME),
            max_body=_env_int("MCP_EDGE_MAX_BODY", DEFAULT_MAX_FRAME),
            session_idle_s=float(_env_int("MCP_EDGE_SESSION_IDLE_S", 600)),
            max_sessions=_env_int("MCP_EDGE_MAX_SESSIONS", 1024),
        )
        settings = replace(base, **overrides)
        settings.validate()
        return settings

    def validate(self) -> None:
        """ConfigError naming the first bad value."""
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(f"http_port must be 0..65535, got {self.http_port}")
        if self.max_frame < 1024 or self.max_body < 1024:
            raise ConfigError("max_frame and max_body must be at least 1024 bytes")
        if self.session_idle_s <= 0 or self.max_sessions < 1:
            raise ConfigError("session_idle_s and max_sessions must be positive")
        if self.page_size < 1:
            raise ConfigError(f"page_size must be positive, got {self.page_size}")
