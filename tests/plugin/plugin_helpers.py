"""Helpers of the plugin-system suite: plugin folders written on the fly, paths of the fixtures and plugins."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NATIVE_HELLO = ROOT / "plugins" / "native_hello"
T = TypeVar("T")

PLAIN_PLUGIN = '''
from mcp_edge.plugin import PluginBase, tool

class P(PluginBase):
    @tool
    async def {tool}(self) -> str:
        return "{id}"
'''


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop."""
    return asyncio.run(coro)


def write_plugin(
    root: Path,
    plugin_id: str,
    *,
    version: str = "1.0.0",
    requires: Mapping[str, str] | None = None,
    code: str | None = None,
    schema: str | None = None,
    plugin_extra: str = "",
    tool: str | None = None,
) -> Path:
    """A Python plugin folder ``root/<id>``: plugin.toml and plugin.py (by default one tool named after it)."""
    folder = root / plugin_id
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[plugin]",
        f'id = "{plugin_id}"',
        f'version = "{version}"',
        "abi = 1",
        'module = "plugin"',
        plugin_extra,
    ]
    if requires:
        lines.append("[requires]")
        lines += [f'{k} = "{v}"' for k, v in requires.items()]
    if schema:
        lines.append(textwrap.dedent(schema))
    (folder / "plugin.toml").write_text("\n".join(lines) + "\n")
    body = code if code is not None else PLAIN_PLUGIN.format(tool=tool or f"{plugin_id}_tool", id=plugin_id)
    (folder / "plugin.py").write_text(textwrap.dedent(body))
    return folder
