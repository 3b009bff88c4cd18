"""PluginContext.publish_resources: a plugin's concrete resources (one per container, per Kubernetes object)
listed by resources/list beside its fixed ones, read through its template, checked by the catalog, told to
clients with list_changed; in process and from a worker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import run, write_plugin

from mcp_edge.board import Settings
from mcp_edge.errors import PluginError
from mcp_edge.plugin import NullRequestContext, PluginState, Registry
from mcp_edge.plugin.catalog import Catalog, PluginCatalog
from mcp_edge.plugin.types import ResourceDef, ResourceTemplateDef

# Publishes box://things/<name> for each name the "things" tool is given; reads any of them through the template.
THINGS = '''
from mcp_edge.plugin import PluginBase, resource, resource_template, tool
from mcp_edge.plugin.types import ResourceDef

class Things(PluginBase):
    async def initialize(self, config, ctx):
        await super().initialize(config, ctx)
        await ctx.publish_resources([ResourceDef(uri="box://things/first", name="first")])

    @tool
    async def things_set(self, names: list[str]) -> str:
        try:
            await self.ctx.publish_resources([ResourceDef(uri=f"box://things/{n}", name=n) for n in names])
        except Exception as exc:
            return f"refused: {exc}"
        return "ok"

    @resource("box://index")
    async def index(self) -> str:
        return "index"

    @resource_template("box://things/{name}")
    async def thing(self, name: str) -> str:
        return f"thing {name}"
'''


class _Generation:
    """Stands for the context of a plugin generation that is not the serving one."""


def things(tmp_path: Path) -> None:
    write_plugin(tmp_path, "things", code=THINGS, plugin_extra='capabilities = ["tools", "resources"]')


def uris(reg: Registry) -> list[str]:
    return [r.uri for r in reg.resources() if r.uri.startswith("box://")]


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_published_resources_are_listed_read_and_announced(tmp_path: Path, isolation: str) -> None:
    things(tmp_path)
    settings = Settings.load(environ={}, plugin_dirs=(tmp_path,), entry_points=False,
                             plugin_isolation={"things": isolation}, max_published_resources=3)
    changed: list[str] = []

    async def list_changed(kind: str) -> None:
        changed.append(kind)

    async def until(cond: Any) -> None:
        for _ in range(500):  # a worker's publish arrives as a notification: wait for it, bounded
            if cond():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never: {uris(reg)} {changed}")

    reg = Registry.from_settings(settings)
    reg.on_list_changed = list_changed

    async def main() -> None:
        await reg.start()
        try:
            rec = reg.get("things")
            assert rec is not None and rec.state is PluginState.ACTIVE and rec.isolation == isolation, rec
            await until(lambda: "box://things/first" in uris(reg))
            assert uris(reg) == ["box://index", "box://things/first"]  # fixed ones first
            result = await reg.call_tool("things_set", {"names": ["a", "b"]}, NullRequestContext())
            assert "ok" in str(bytes(result) if isolation == "process" else result)
            await until(lambda: uris(reg) == ["box://index", "box://things/a", "box://things/b"])
            assert "resources" in changed
            contents = await reg.read_resource("box://things/b", NullRequestContext())
            assert "thing b" in str(bytes(contents) if isolation == "process" else contents)
            # refused whole (over the limit; a URI no template of the plugin matches): the last good list stays
            before = len(changed)
            for bad in (["w", "x", "y", "z"], ["ok", "../escape/x"]):
                await reg.call_tool("things_set", {"names": bad}, NullRequestContext())
            # the same list again changes nothing and tells nobody
            await reg.call_tool("things_set", {"names": ["a", "b"]}, NullRequestContext())
            # a barrier: publishes from one worker arrive in order, so once this list shows, the ones above
            # have been dealt with
            await reg.call_tool("things_set", {"names": ["a", "b", "c"]}, NullRequestContext())
            await until(lambda: uris(reg) == ["box://index", "box://things/a", "box://things/b", "box://things/c"])
            assert len(changed) == before + 1  # the bad lists and the repeated one told nobody
            await reg.call_tool("things_set", {"names": ["a", "b"]}, NullRequestContext())
            await until(lambda: uris(reg) == ["box://index", "box://things/a", "box://things/b"])
            # an empty list leaves the fixed resources
            await reg.call_tool("things_set", {"names": []}, NullRequestContext())
            await until(lambda: uris(reg) == ["box://index"])
            # a restart starts with what the new instance publishes at initialize
            await reg.call_tool("things_set", {"names": ["a"]}, NullRequestContext())
            await until(lambda: uris(reg) == ["box://index", "box://things/a"])
            assert await reg.restart("things") is True
            await until(lambda: uris(reg) == ["box://index", "box://things/first"])
        finally:
            await reg.stop()
        assert uris(reg) == []

    run(main())



def test_the_inproc_plugin_sees_why_its_list_was_refused(tmp_path: Path) -> None:
    things(tmp_path)
    settings = Settings.load(environ={}, plugin_dirs=(tmp_path,), entry_points=False, max_published_resources=2)

    async def main() -> None:
        reg = Registry.from_settings(settings)
        await reg.start()
        try:
            said = str(await reg.call_tool("things_set", {"names": ["a", "b", "c"]}, NullRequestContext()))
            assert "over the max_published_resources limit of 2" in said
            said = str(await reg.call_tool("things_set", {"names": ["a/b"]}, NullRequestContext()))
            assert "none of its resource templates matches" in said  # {name} is one segment
            said = str(await reg.call_tool("things_set", {"names": ["a", "a"]}, NullRequestContext()))
            assert "twice" in said
        finally:
            await reg.stop()

    run(main())


def test_the_catalog_refuses_another_plugins_uris_and_fixed_ones() -> None:
    cat = Catalog()
    cat.add("a", PluginCatalog(resources=[ResourceDef(uri="x://fixed/1", name="f")],
                               templates=[ResourceTemplateDef(uriTemplate="x://fixed/{n}", name="t")]))
    cat.add("b", PluginCatalog(templates=[ResourceTemplateDef(uriTemplate="y://{n}", name="t")]))
    with pytest.raises(PluginError, match="none of its resource templates"):
        cat.publish("a", [ResourceDef(uri="y://1", name="other's")], 10)
    with pytest.raises(PluginError, match="fixed resource"):
        cat.publish("a", [ResourceDef(uri="x://fixed/1", name="dup")], 10)
    assert cat.publish("c", [ResourceDef(uri="z://1", name="early")], 10) is False  # kept until c is added
    cat.add("c", PluginCatalog(templates=[ResourceTemplateDef(uriTemplate="z://{n}", name="t")]))
    assert [r.uri for r in cat.resources()] == ["x://fixed/1", "z://1"]
    cat.remove("c")
    assert cat.publish("b", [ResourceDef(uri="y://1", name="one")], 10) is True
    assert cat.publish("b", [ResourceDef(uri="y://1", name="one")], 10) is False
    assert [r.uri for r in cat.resources()] == ["x://fixed/1", "y://1"]
    assert cat.match("y://1") == ("b", "y://{n}")
    cat.remove("b")
    assert [r.uri for r in cat.resources()] == ["x://fixed/1"]


def test_under_a_policy_resources_list_shows_the_published_ones_the_caller_may_read(tmp_path: Path) -> None:
    import json

    from mcp_edge.mcp.connection import Request, ServerConnection
    from mcp_edge.runtime.outcome import Failure, Result
    from mcp_edge.runtime.principal import Principal
    from mcp_edge.runtime.router import Session
    from mcp_edge.server import Server

    root = tmp_path / "plugins"
    things(root)
    (tmp_path / "policy.toml").write_text(
        '[roles.one]\nresources = ["box://things/first"]\ntools = ["*"]\n'
        '[roles.all]\nresources = ["box://things/{name}"]\n'
        '[principals]\n"token:one" = ["one"]\n"token:all" = ["all"]\n"token:none" = []\n')
    settings = Settings.load(environ={}, data_dir=tmp_path, plugin_dirs=(root,), entry_points=False,
                             reload_watch=False, auth_policy_file=str(tmp_path / "policy.toml"))

    async def main() -> dict[str, Any]:
        running = await Server.configure(settings).start()
        seen: dict[str, Any] = {}
        try:
            router = running.router
            for who in ("one", "all", "none"):
                session = Session(ServerConnection(router.info), principal=Principal(who, "token"))
                out = await router.handle(Request(1, "resources/list", {}, "2025-11-25", False), session, None)
                assert isinstance(out, Result), out
                seen[who] = sorted(r["uri"] for r in json.loads(out.encoded)["result"]["resources"])
                read = await router.handle(Request(2, "resources/read", {"uri": "box://things/first"},
                                                   "2025-11-25", False), session, None)
                seen[who + "-read"] = isinstance(read, Result)
                assert isinstance(read, Result | Failure)
        finally:
            await running.stop()
        return seen

    seen = asyncio.run(main())
    assert seen["one"] == ["box://things/first"] and seen["one-read"]
    assert seen["all"] == ["box://things/first"] and seen["all-read"]  # allowed through the template's text
    assert seen["none"] == [] and not seen["none-read"]


def test_a_replaced_generations_publishes_stop_counting(tmp_path: Path) -> None:
    """The list belongs to the host that serves: a generation still starting has its list kept until it takes
    over, and once replaced, what the old one publishes is ignored (a reload's old instance drains meanwhile)."""
    things(tmp_path)
    settings = Settings.load(environ={}, plugin_dirs=(tmp_path,), entry_points=False, max_published_resources=5)

    def defs(*names: str) -> list[ResourceDef]:
        return [ResourceDef(uri=f"box://things/{n}", name=n) for n in names]

    async def main() -> None:
        reg = Registry.from_settings(settings)
        await reg.start()
        try:
            rec = reg.get("things")
            assert rec is not None and rec.host is not None
            old, new = rec.host.context, _Generation()
            assert old is not None
            await reg.publish("things", defs("new1"), new)  # a generation still starting: kept aside
            assert uris(reg) == ["box://index", "box://things/first"]
            await reg.publish("things", defs("old1"), old)  # the serving one still counts
            assert uris(reg) == ["box://index", "box://things/old1"]
            rec.host.context = new  # the new generation takes over (reload/restart swap the host)
            await reg.adopt_published(rec)
            assert uris(reg) == ["box://index", "box://things/new1"]
            await reg.publish("things", defs("old2"), old)  # the replaced one: ignored
            assert uris(reg) == ["box://index", "box://things/new1"]
            with pytest.raises(PluginError, match="max_published_resources"):
                await reg.publish("things", defs(*"abcdef"), _Generation())
            rec.host.context = old
        finally:
            await reg.stop()

    run(main())
