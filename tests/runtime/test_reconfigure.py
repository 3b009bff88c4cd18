"""What a re-read board profile changes (SIGHUP): applied in place, through each plugin's reload, or kept until a
restart; the merged settings keep the old values of the last kind."""

from __future__ import annotations

from typing import Any

from mcp_edge.board import Settings
from mcp_edge.runtime.reconfigure import RELOAD_FIELDS, RESTART_FIELDS, RESTART_SECTIONS, changes, merge


def _settings(**values: Any) -> Settings:
    return Settings.load(environ={}, plugin_dirs=(), entry_points=False, **values)


def test_nothing_changed_is_no_change() -> None:
    assert not changes(_settings(), _settings())


def test_each_change_is_sorted_by_how_it_applies() -> None:
    old = _settings()
    new = _settings(tool_timeout_s=5.0, plugin_concurrency=2, max_inflight=7, plugin_isolation={"fs": "process"},
                    plugin_config={"fs": {"root": "/srv"}}, worker_rlimit_nofile=64, http_port=9999, max_body=4096,
                    ring_entries=128, server_name="other", enabled_plugins=frozenset({"fs"}))
    found = changes(old, new)
    assert found.in_place == ["max_inflight", "plugin_concurrency", "tool_timeout_s"]
    assert found.with_reload == ["plugin_config", "plugin_isolation", "worker_rlimit_nofile"]
    assert found.need_restart == ["enabled_plugins", "http_port", "max_body", "ring_entries", "server_name"]
    merged = merge(old, new, found)
    # What needs a restart keeps the running value; the rest is the new one.
    assert (merged.http_port, merged.max_body, merged.ring_entries) == (old.http_port, old.max_body,
                                                                       old.ring_entries)
    assert merged.server_name == old.server_name and merged.enabled_plugins == old.enabled_plugins
    assert (merged.tool_timeout_s, merged.plugin_concurrency, merged.max_inflight) == (5.0, 2, 7)
    assert merged.plugin_isolation == {"fs": "process"} and merged.worker_rlimit_nofile == 64
    merged.validate()


def test_every_setting_has_a_kind() -> None:
    from mcp_edge.board.settings import FIELDS

    names = {f.name for f in FIELDS}
    assert names >= RELOAD_FIELDS and names >= RESTART_FIELDS  # no stale names
    assert not RELOAD_FIELDS & RESTART_FIELDS
    sections = {f.section for f in FIELDS}
    assert sections >= RESTART_SECTIONS
