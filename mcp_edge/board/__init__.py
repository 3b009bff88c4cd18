"""Board profiles (``boards/*.toml`` describe each kind of box; one is picked at start) and the one ``Settings``.

The names are imported on first use (PEP 562), so ``mcp_edge.board.environ`` costs nothing more than itself:
the native extension reads its CPU-level knob through it at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_edge.board.profiles import BOARD_ENV, DEFAULT_PLUGIN_DIRS, Board, boards_dirs, detect, load, load_all
    from mcp_edge.board.settings import FIELDS, PluginSettings, Settings

__all__ = ["BOARD_ENV", "DEFAULT_PLUGIN_DIRS", "FIELDS", "Board", "PluginSettings", "Settings", "boards_dirs",
           "detect", "load", "load_all"]

_FROM_SETTINGS = frozenset({"FIELDS", "PluginSettings", "Settings"})


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'mcp_edge.board' has no attribute {name!r}")
    import importlib

    module = importlib.import_module("mcp_edge.board.settings" if name in _FROM_SETTINGS else "mcp_edge.board.profiles")
    value = getattr(module, name)
    globals()[name] = value
    return value
