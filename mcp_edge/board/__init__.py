"""Board profiles: ``boards/*.toml`` describe each kind of box; one is picked at start."""

from mcp_edge.board.profiles import BOARD_ENV, DEFAULT_PLUGIN_DIRS, Board, boards_dirs, detect, load, load_all

__all__ = ["BOARD_ENV", "DEFAULT_PLUGIN_DIRS", "Board", "boards_dirs", "detect", "load", "load_all"]
