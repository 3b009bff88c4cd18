"""What ``mcp-edge plugin ...`` and ``mcp-edge index ...`` print: the commands' bodies, behind the click
declarations in :mod:`mcp_edge.commands`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp_edge.index.format import Entry
from mcp_edge.index.installer import Change, Installer

__all__ = ["installer", "render_changes", "render_entries", "split_spec"]


def installer(index: str | None) -> Installer:
    from mcp_edge.board.settings import Settings

    return Installer(Settings.load(), source=index)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``id`` or ``id==version``."""
    plugin_id, sep, version = spec.partition("==")
    return plugin_id.strip(), (version.strip() or None) if sep else None


def render_entries(entries: list[Entry], as_json: bool) -> str:
    if as_json:
        return json.dumps([e.as_dict() for e in entries], indent=2)
    if not entries:
        return "no plugin found"
    return "\n".join(f"{e.id}\t{e.version}\t{e.kind}\t{e.arch}\t{e.description}" for e in entries)


def render_changes(changes: list[Change], as_json: bool, none: str) -> str:
    if as_json:
        return json.dumps([{"id": c.id, "old": c.old, "new": c.new, "folder": str(c.folder)} for c in changes],
                          indent=2)
    return "\n".join(str(c) for c in changes) if changes else none


def render_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str]) -> str:
    return json.dumps(rows, indent=2) if as_json else "\n".join(line(r) for r in rows)
