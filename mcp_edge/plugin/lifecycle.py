"""A plugin's lifecycle: its states and the one table of moves between them.

Everything about the lifecycle is derived from ``TRANSITIONS``: the registry's moves are checked against it
(:func:`move`), and ``docs/plugin-lifecycle.md`` is generated from it (``python -m mcp_edge.plugin.lifecycle
> docs/plugin-lifecycle.md``; a test fails when the page and the table differ).

``failed`` and ``stopped`` are not final: a failed plugin may be restarted (its worker died, or it failed to
start and is retried), a stopped one started again. ``restarting`` is a plugin whose worker is being replaced
(its calls are refused meanwhile); ``reloading`` a plugin whose new version is loading beside the old one (the
old one still serves).
"""

from __future__ import annotations

import enum
import sys
from typing import Final

from mcp_edge.errors import PluginError

__all__ = ["TRANSITIONS", "PluginState", "move", "render_dot", "render_markdown", "render_mermaid"]


class PluginState(enum.StrEnum):
    DISCOVERED = "discovered"
    LOADED = "loaded"
    INITIALIZED = "initialized"
    ACTIVE = "active"
    RESTARTING = "restarting"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_S = PluginState

# state -> {next state: what makes the move}
TRANSITIONS: Final[dict[PluginState, dict[PluginState, str]]] = {
    _S.DISCOVERED: {_S.LOADED: "imported or dlopened (or its worker reported READY)",
                    _S.FAILED: "cannot be loaded, or a dependency is missing"},
    _S.LOADED: {_S.INITIALIZED: "initialize returned",
                _S.FAILED: "bad config, a name collision, a failed dependency, or initialize failed",
                _S.STOPPED: "stopped before it was initialized"},
    _S.INITIALIZED: {_S.ACTIVE: "its tools, resources and prompts are routed",
                     _S.FAILED: "it could not be routed",
                     _S.STOPPING: "stopped"},
    _S.ACTIVE: {_S.STOPPING: "the runtime stops, or its folder was removed",
                _S.RESTARTING: "its worker died or hung",
                _S.RELOADING: "its files changed: a new version loads beside it"},
    _S.RESTARTING: {_S.ACTIVE: "a new worker is serving",
                    _S.FAILED: "the new worker failed to start",
                    _S.STOPPING: "the runtime stops"},
    _S.RELOADING: {_S.ACTIVE: "the new version took over, or failed and the old one serves on",
                   _S.STOPPING: "the runtime stops"},
    _S.STOPPING: {_S.STOPPED: "shutdown returned",
                  _S.FAILED: "shutdown raised or timed out"},
    _S.STOPPED: {_S.LOADED: "started again"},
    _S.FAILED: {_S.RESTARTING: "retried after a backoff",
                _S.LOADED: "started again",
                _S.STOPPED: "the runtime stops"},
}


def move(plugin_id: str, current: PluginState, target: PluginState) -> PluginState:
    """``target`` if the table has the move from ``current``, else PluginError naming both."""
    if target not in TRANSITIONS[current]:
        raise PluginError(f"plugin {plugin_id}: no transition {current.value} -> {target.value}")
    return target


def render_mermaid() -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {_S.DISCOVERED.value}"]
    for state, nexts in TRANSITIONS.items():
        for target, why in nexts.items():
            lines.append(f"    {state.value} --> {target.value}: {why}")
    lines.append(f"    {_S.STOPPED.value} --> [*]")
    return "\n".join(lines)


def render_dot() -> str:
    lines = ["digraph plugin_lifecycle {", "    rankdir=LR;", "    node [shape=box, style=rounded];"]
    for state, nexts in TRANSITIONS.items():
        for target, why in nexts.items():
            lines.append(f'    "{state.value}" -> "{target.value}" [label="{why}"];')
    lines.append("}")
    return "\n".join(lines)


def render_markdown() -> str:
    """The whole page docs/plugin-lifecycle.md."""
    rows = ["| from | to | when |", "|---|---|---|"]
    for state, nexts in TRANSITIONS.items():
        for target, why in nexts.items():
            rows.append(f"| `{state.value}` | `{target.value}` | {why} |")
    return "\n".join([
        "# The plugin lifecycle",
        "",
        "Generated from `TRANSITIONS` in `mcp_edge/plugin/lifecycle.py` by "
        "`python -m mcp_edge.plugin.lifecycle > docs/plugin-lifecycle.md`; do not edit by hand.",
        "",
        "```mermaid",
        render_mermaid(),
        "```",
        "",
        *rows,
        "",
        "The same graph in Graphviz DOT:",
        "",
        "```dot",
        render_dot(),
        "```",
        "",
    ])


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
