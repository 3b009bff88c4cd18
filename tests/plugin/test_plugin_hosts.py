"""The pieces around the hosts: the manifest's isolation key, the host a plugin gets, handler tables built per
host (nothing left on the class), an in-process host driven on its own, the context's config and slab pool, and
Registry.from_settings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import run, write_plugin

from mcp_edge.board import Settings
from mcp_edge.errors import PluginLoadError, ToolNotFoundError
from mcp_edge.plugin import DefaultPluginContext, NullRequestContext, PluginBase, PluginState, Registry, tool
from mcp_edge.plugin.catalog import PluginCatalog
from mcp_edge.plugin.handlers import handlers_of
from mcp_edge.plugin.hosts.inproc import InprocHost
from mcp_edge.plugin.manifest import read_manifest

CONFIGURED = '''
from mcp_edge.plugin import PluginBase, tool

class Configured(PluginBase):
    async def initialize(self, config, ctx):
        self.seen = (dict(config), dict(ctx.config))

    @tool
    async def configured_seen(self) -> str:
        return repr([sorted(c.items()) for c in self.seen])
'''
SCHEMA = '''
[config.schema]
type = "object"
[config.schema.properties.level]
type = "integer"
default = 3
[config.schema.properties.name]
type = "string"
'''


def native_manifest(tmp_path: Path, extra: str = "") -> Path:
    folder = tmp_path / "nat"
    folder.mkdir()
    (folder / "plugin.toml").write_text(
        f'[plugin]\nid = "nat"\nversion = "1.0.0"\nabi = 1\nlibrary = "nat.so"\n{extra}\n')
    return folder


def test_the_manifest_isolation_key_and_its_defaults(tmp_path: Path) -> None:
    assert read_manifest(write_plugin(tmp_path, "py")).isolation == "inproc"
    assert read_manifest(write_plugin(tmp_path, "iso", plugin_extra='isolation = "process"')).isolation == "process"
    # native code defaults to a worker of its own: a crash in C ends the worker, not the runtime
    assert read_manifest(native_manifest(tmp_path)).isolation == "process"
    bad = write_plugin(tmp_path, "bad", plugin_extra='isolation = "thread"')
    with pytest.raises(PluginLoadError, match=r"'isolation' must be \"inproc\" or \"process\", got 'thread'"):
        read_manifest(bad)


def test_an_unknown_isolation_mode_fails_that_plugin_only(tmp_path: Path) -> None:
    write_plugin(tmp_path, "odd")
    write_plugin(tmp_path, "fine")

    async def main() -> None:
        reg = Registry([tmp_path], entry_points=False, isolation={"odd": "sandbox"})
        await reg.start()
        odd, fine = reg.get("odd"), reg.get("fine")
        assert odd is not None and odd.state is PluginState.FAILED
        assert "unknown isolation mode 'sandbox'" in str(odd.reason)
        assert fine is not None and fine.state is PluginState.ACTIVE and fine.isolation == "inproc"
        await reg.stop()

    run(main())


def test_handler_tables_are_built_per_call_and_leave_nothing_on_the_class() -> None:
    class P(PluginBase):
        id = "p"

        @tool
        async def ping(self) -> str:
            return "pong"

    before = set(vars(P))
    first, second = handlers_of(P), handlers_of(P)
    assert first is not second and list(first.tools) == list(second.tools) == ["ping"]
    assert first.tools["ping"] is not second.tools["ping"]
    assert set(vars(P)) == before


def test_an_inproc_host_on_its_own(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "solo", version="2.1.0")
    manifest = read_manifest(folder)

    async def main() -> None:
        host = InprocHost.from_folder(manifest)
        assert host.kind == "inproc" and host.version == "2.1.0"
        with pytest.raises(PluginLoadError, match="plugin solo is not loaded"):
            await host.call_tool("solo_tool", {}, None)
        catalog = await host.load()
        assert isinstance(catalog, PluginCatalog) and [t.name for t in catalog.tools] == ["solo_tool"]
        assert PluginCatalog.decode(catalog.encode()) == catalog  # what a worker would send
        package = host.package
        assert package is not None and f"{package}.plugin" in sys.modules
        await host.start({}, DefaultPluginContext("solo", data_root=tmp_path))
        result = await host.call_tool("solo_tool", {}, NullRequestContext())
        assert result.content[0].text == "solo"
        with pytest.raises(ToolNotFoundError):
            await host.call_tool("other", {}, None)
        assert await host.export_state() is None  # PluginBase keeps no state across a reload
        await host.stop(1.0)
        assert host.package is None and not [m for m in sys.modules if m.startswith(package)]

    run(main())


def test_the_context_carries_the_resolved_config(tmp_path: Path) -> None:
    write_plugin(tmp_path, "configured", code=CONFIGURED, schema=SCHEMA)

    async def main() -> Any:
        reg = Registry([tmp_path], entry_points=False, config={"configured": {"name": "box"}})
        await reg.start()
        try:
            result = await reg.call_tool("configured_seen", {}, NullRequestContext())
            return result.content[0].text  # type: ignore[union-attr]
        finally:
            await reg.stop()

    seen = [("level", 3), ("name", "box")]
    assert run(main()) == repr([seen, seen])


def test_the_context_pool_is_the_process_slab_pool_made_once(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, slab_sizes=(64, 4096), slab_counts=(8, 2), slab_numa=False)
    a = DefaultPluginContext("a", settings=settings, data_root=tmp_path)
    b = DefaultPluginContext("b", settings=settings, data_root=tmp_path)
    pool = a.pool()
    assert b.pool() is pool and pool.sizes == (64, 4096)
    with pool.alloc(1000) as block:
        assert len(block) == 1000 and block.capacity == 4096
        memoryview(block)[:3] = b"abc"


def test_registry_from_settings_reads_folders_plugins_and_their_config(tmp_path: Path) -> None:
    write_plugin(tmp_path, "configured", code=CONFIGURED, schema=SCHEMA)
    write_plugin(tmp_path, "skipped")
    settings = Settings.load(environ={}, plugin_dirs=(tmp_path,), entry_points=False,
                             disabled_plugins=frozenset({"skipped"}),
                             plugin_config={"configured": {"level": 7}}, init_timeout_s=5.0)

    async def main() -> Any:
        reg = Registry.from_settings(settings)
        assert reg.init_timeout == 5.0 and reg.plugin_dirs == [tmp_path]
        await reg.start()
        try:
            assert reg.get("skipped").disabled  # type: ignore[union-attr]
            result = await reg.call_tool("configured_seen", {}, NullRequestContext())
            return result.content[0].text  # type: ignore[union-attr]
        finally:
            await reg.stop()

    seen = [("level", 7)]
    assert run(main()) == repr([seen, seen])
