"""What the demo scripts share: the suite's private Podman (tests/podman_service.py), settings for this
machine's board, and ``Demo.call``, which calls one tool through the registry and prints one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the test engine of the suite: tests/podman_service.py
import podman_service  # noqa: E402

from mcp_edge.board import Board, Settings, detect  # noqa: E402
from mcp_edge.errors import ConfigError  # noqa: E402
from mcp_edge.plugin import Registry  # noqa: E402
from mcp_edge.plugin.types import TextContent, ToolResult  # noqa: E402

__all__ = ["ROOT", "Demo", "demo_settings", "podman_service"]


def demo_settings(data_dir: Path) -> Settings:
    """This machine's board (a bare one where none matches), the environment left out, ``data_dir``."""
    try:
        board = detect()
    except ConfigError:
        board = Board(id="demo", name="demo", data_dir=data_dir, path=Path("/dev/null"))
    return Settings.load(board=board, environ={}, data_dir=data_dir)


class Demo:
    """Calls tools through ``registry`` and prints ``tool -> what it gave`` (or the error, shortened)."""

    def __init__(self, registry: Registry, width: int = 220) -> None:
        self.registry = registry
        self.width = width

    async def call(self, tool: str, args: dict[str, Any], show: Callable[[dict[str, Any]], str],
                   rctx: Any = None) -> dict[str, Any]:
        result: ToolResult = await self.registry.call_tool(tool, args, rctx)
        if result.isError:
            first = result.content[0]
            text = first.text if isinstance(first, TextContent) else str(first)
            shown = text if len(text) <= self.width else f"{text[:self.width - 90]} … {text[-80:]}"
            print(f"{tool} -> error: {shown}")
            return {}
        data = result.structuredContent or {}
        print(f"{tool} -> {show(data)}")
        return data
