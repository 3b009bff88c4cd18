"""``mcp-edge`` as the transport tests run it: the real CLI, with one test-only hook.

``MCP_EDGE_TEST_SETTINGS`` (JSON) adds Settings overrides that have no environment
variable (``plugin_dirs`` alone, ``session_idle_s``, ``max_sessions``, ``max_body``...).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _install_hooks() -> None:
    overrides: dict[str, Any] = json.loads(os.environ.get("MCP_EDGE_TEST_SETTINGS") or "{}")
    if "plugin_dirs" in overrides:
        overrides["plugin_dirs"] = tuple(Path(p) for p in overrides["plugin_dirs"])
    if overrides:
        from mcp_edge.board.settings import Settings

        original = Settings.load.__func__  # type: ignore[attr-defined]

        def load(cls: type[Settings], board: Any = None, **kw: Any) -> Settings:
            return original(cls, board, **{**overrides, **kw})  # type: ignore[no-any-return]

        Settings.load = classmethod(load)  # type: ignore[assignment,method-assign]


if __name__ == "__main__":
    _install_hooks()
    from mcp_edge.cli import main

    sys.argv[0] = "mcp-edge"
    main()
