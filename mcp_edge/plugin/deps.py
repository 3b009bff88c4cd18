"""Dependencies between plugins: ``requires`` checked (missing, disabled, out of range, cycles) and the order
plugins start in. Pure functions over the registry's records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from mcp_edge.errors import DependencyError, PluginError

if TYPE_CHECKING:
    from mcp_edge.plugin.registry import PluginRecord

__all__ = ["check_requires", "cycles", "start_order", "version_problem"]


def check_requires(records: Sequence[PluginRecord], by_id: Mapping[str, PluginRecord],
                   fail: Callable[[PluginRecord, BaseException], None]) -> None:
    """Fail (through ``fail``) each loaded record whose dependency is missing, disabled, out of range, or
    part of a cycle."""
    from mcp_edge.plugin.lifecycle import PluginState

    loaded = [r for r in records if r.state is PluginState.LOADED]
    for rec in loaded:
        for dep, spec in rec.requires.items():
            target = by_id.get(dep)
            if target is None:
                fail(rec, DependencyError(
                    f"plugin {rec.id} requires plugin {dep} ({spec or 'any version'}), which is not installed"))
                break
            if target.disabled:
                fail(rec, DependencyError(f"plugin {rec.id} requires plugin {dep}, which is disabled"))
                break
            problem = version_problem(target.version, spec)
            if problem is not None:
                fail(rec, DependencyError(
                    f"plugin {rec.id} requires {dep} {spec}, but {dep} is version {target.version}{problem}"))
                break
    graph = {r.id: list(r.requires) for r in records if r.state is PluginState.LOADED}
    for cycle in cycles(graph):
        text = " -> ".join(cycle)
        for pid in cycle[:-1]:
            rec = by_id[pid]
            if rec.state is PluginState.LOADED:
                fail(rec, DependencyError(f"dependency cycle: {text}"))


def start_order(records: Sequence[PluginRecord]) -> list[PluginRecord]:
    """The loaded records, each after what it requires: at each step the first ready one in discovery order."""
    from mcp_edge.plugin.lifecycle import PluginState

    nodes = [r for r in records if r.state is PluginState.LOADED]
    ids = {r.id for r in nodes}
    pending = {r.id: {d for d in r.requires if d in ids} for r in nodes}
    out: list[PluginRecord] = []
    while nodes:
        ready = next((r for r in nodes if not pending[r.id]), None)
        if ready is None:  # cannot happen: cycles failed in check_requires
            raise PluginError(f"unresolved dependency order among {', '.join(r.id for r in nodes)}")
        out.append(ready)
        nodes.remove(ready)
        for deps in pending.values():
            deps.discard(ready.id)
    return out


def version_problem(version: str, spec: str) -> str | None:
    """None if ``version`` satisfies the PEP 440 ``spec``, else a short note (empty when simply out of range)."""
    if not spec or spec == "*":
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier:
        return f" (and {spec!r} is not a valid version specifier)"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return " (not a PEP 440 version)"
    return None if specifiers.contains(parsed, prereleases=True) else ""


def cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The dependency cycles of ``graph`` (id -> ids it requires), each as a closed path ``[a, b, a]``."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        color[node] = grey
        stack.append(node)
        for dep in graph[node]:
            if dep not in graph:
                continue
            if color[dep] == grey:
                found.append([*stack[stack.index(dep):], dep])
            elif color[dep] == white:
                visit(dep)
        stack.pop()
        color[node] = black

    for node in graph:
        if color[node] == white:
            visit(node)
    return found
