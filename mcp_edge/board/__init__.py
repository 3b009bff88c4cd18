"""Board profiles (``boards/*.toml`` describe each kind of box; one is picked at start) and the one ``Settings``."""

from mcp_edge.board.profiles import BOARD_ENV, DEFAULT_PLUGIN_DIRS, Board, boards_dirs, detect, load, load_all
from mcp_edge.board.settings import FIELDS, Settings

__all__ = ["BOARD_ENV", "DEFAULT_PLUGIN_DIRS", "FIELDS", "Board", "Settings", "boards_dirs", "detect", "load",
           "load_all"]
