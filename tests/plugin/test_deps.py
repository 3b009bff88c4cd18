"""mcp_edge.plugin.deps on its own: requires checks (missing, disabled, versions, cycles) and the start order."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from mcp_edge.errors import DependencyError
from mcp_edge.plugin.deps import check_requires, cycles, start_order, version_problem
from mcp_edge.plugin.discovery import PluginRecord
from mcp_edge.plugin.lifecycle import PluginState


def loaded(plugin_id: str, version: str = "1.0.0", requires: Mapping[str, str] | None = None) -> PluginRecord:
    rec = PluginRecord(plugin_id, version, "python", f"/plugins/{plugin_id}", requires=requires)
    rec.state = PluginState.LOADED
    return rec


def check(*records: PluginRecord) -> dict[str, str]:
    """Run check_requires over ``records``; {id: reason} of the ones it failed."""
    failed: dict[str, str] = {}

    def fail(rec: PluginRecord, exc: BaseException) -> None:
        assert isinstance(exc, DependencyError)
        rec.state = PluginState.FAILED
        failed[rec.id] = str(exc)

    check_requires(list(records), {r.id: r for r in records}, fail)
    return failed


@pytest.mark.parametrize(("version", "spec", "problem"), [
    ("1.4.0", ">=1.2,<2", None),
    ("1.4.0", "", None),
    ("1.4.0", "*", None),
    ("2.0.0rc1", ">=2.0.0rc1", None),  # prereleases count: a plugin's own version is what it is
    ("2.1.0", ">=1.2,<2", ""),
    ("1.0", "not a spec", " (and 'not a spec' is not a valid version specifier)"),
    ("banana", ">=1", " (not a PEP 440 version)"),
])
def test_version_problem(version: str, spec: str, problem: str | None) -> None:
    assert version_problem(version, spec) == problem


def test_missing_disabled_and_out_of_range_dependencies_fail_naming_both() -> None:
    base = loaded("base", "1.5.0")
    off = loaded("off")
    off.disabled = True
    failed = check(
        base, off,
        loaded("wants_missing", requires={"ghost": ">=1"}),
        loaded("wants_off", requires={"off": ""}),
        loaded("wants_new", requires={"base": ">=2"}),
        loaded("happy", requires={"base": ">=1.2,<2"}),
    )
    assert failed == {
        "wants_missing": "plugin wants_missing requires plugin ghost (>=1), which is not installed",
        "wants_off": "plugin wants_off requires plugin off, which is disabled",
        "wants_new": "plugin wants_new requires base >=2, but base is version 1.5.0",
    }


def test_a_cycle_fails_every_plugin_in_it_and_names_the_path() -> None:
    failed = check(loaded("a", requires={"b": ""}), loaded("b", requires={"c": ""}), loaded("c", requires={"a": ""}),
                   loaded("d", requires={"a": ""}), loaded("alone"))
    assert set(failed) == {"a", "b", "c"}
    assert failed["a"] == "dependency cycle: a -> b -> c -> a"
    assert cycles({"x": ["x"]}) == [["x", "x"]]  # a plugin requiring itself
    assert cycles({"x": ["y"], "y": ["gone"]}) == []  # edges out of the graph are not cycles


def test_start_order_puts_each_plugin_after_what_it_requires_and_keeps_discovery_order() -> None:
    recs = [loaded("app", requires={"db": "", "log": ""}), loaded("db", requires={"log": ""}), loaded("log"),
            loaded("other")]
    skipped = loaded("failed_one")
    skipped.state = PluginState.FAILED
    order = [r.id for r in start_order([*recs, skipped])]
    assert order == ["log", "db", "app", "other"]


def test_failing_a_record_is_a_move_of_the_lifecycle_table() -> None:
    from mcp_edge.errors import PluginError
    from mcp_edge.plugin.discovery import fail

    rec = loaded("x")
    fail(rec, RuntimeError("boom"))
    assert (rec.state, rec.reason) == (PluginState.FAILED, "RuntimeError: boom")
    fail(rec, DependencyError("again"))  # failed stays failed, with the newer reason
    assert rec.reason == "again"
    active = loaded("y")
    active.state = PluginState.ACTIVE
    with pytest.raises(PluginError, match="plugin y: no transition active -> failed"):
        fail(active, RuntimeError("an active plugin fails through restarting"))
    assert active.state is PluginState.ACTIVE
