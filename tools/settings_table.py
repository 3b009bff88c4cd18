"""Print the README's table of settings from mcp_edge.board.settings.FIELDS (a test checks the README is current).

    python tools/settings_table.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp_edge.board.schema import ELSEWHERE, table_of
from mcp_edge.board.settings import FIELDS, Settings

_SKIP = frozenset({"environ", "plugin_config"})
_BYTES = frozenset({"max_frame", "max_out_frame", "output_backlog", "max_body", "max_head", "stream_backlog",
                    "max_read"})
_UNITS = {1024 * 1024: "MiB", 1024: "KiB"}


def _shown(name: str, value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "unset"}[value]
    if isinstance(value, int) and value >= 1024 and name in _BYTES:
        for size, unit in _UNITS.items():
            if value % size == 0:
                return f"{value // size} {unit}"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (tuple, frozenset)):
        return ", ".join(sorted(str(v) for v in value)) or "none"
    return str(value)


def table() -> str:
    """The markdown table: one row per setting, grouped by section."""
    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING  # type: ignore[misc]
                and f.default_factory is not dataclasses.MISSING else f.default for f in dataclasses.fields(Settings)}
    rows = ["| setting | profile table | default | environment | what it does |", "|---|---|---|---|---|"]
    order = ["paths", "protocol", "transport", "http", "io", "ipc", "supervisor", "tls", "auth", "audit",
             "observability", "plugins"]
    for info in sorted(FIELDS, key=lambda i: order.index(i.section)):
        if info.name in _SKIP:
            continue
        default = defaults[info.name]
        shown = "from the board profile" if info.name in ("data_dir", "plugin_dirs") else _shown(info.name, default)
        where = ELSEWHERE.get(info.name) or f"[{table_of(info.name, info.section)}]"
        rows.append(f"| `{info.name}` | {where} | {shown} | `{info.env}` | {info.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
