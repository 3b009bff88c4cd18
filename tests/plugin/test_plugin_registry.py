"""The Registry: discovery, dependency order, version ranges, cycles, lifecycle, failures, collisions."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import FIXTURES, run, write_plugin

from mcp_edge.errors import DependencyError, PluginError, PluginLoadError, ToolNotFoundError
from mcp_edge.plugin import (
    STATUS_URI,
    DefaultPluginContext,
    NullRequestContext,
    PluginContext,
    PluginState,
    Registry,
    TextContent,
)

RCTX = NullRequestContext()


def started(dirs: list[Path], **kwargs: Any) -> Registry:
    reg = Registry(dirs, entry_points=False, environ={}, **kwargs)
    run(reg.start())
    return reg


def states(reg: Registry) -> dict[str, str]:
    return {r.id: r.state.value for r in reg.records if r.id != "runtime"}


def reason(reg: Registry, plugin_id: str) -> str:
    rec = reg.get(plugin_id)
    assert rec is not None
    return rec.reason or ""


ORDER_LOG = '''
from mcp_edge.plugin import PluginBase
import builtins

class P(PluginBase):
    async def initialize(self, config, ctx):
        builtins.ORDER.append(("init", ctx.plugin_id))

    async def shutdown(self):
        builtins.ORDER.append(("stop", self.id))
'''


@pytest.fixture
def order_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    import builtins

    log: list[tuple[str, str]] = []
    monkeypatch.setattr(builtins, "ORDER", log, raising=False)
    return log


def test_discovery_reads_manifests_without_importing(tmp_path: Path) -> None:
    write_plugin(tmp_path, "a", code="raise RuntimeError('imported at discovery')")
    (tmp_path / "not_a_plugin").mkdir()
    reg = Registry([tmp_path, tmp_path / "absent"], entry_points=False)
    recs = reg.discover()
    assert [(r.id, r.kind, r.state) for r in recs] == [
        ("runtime", "builtin", PluginState.DISCOVERED), ("a", "python", PluginState.DISCOVERED)]
    assert reg.discover() == recs  # idempotent
    assert recs[1].source == tmp_path / "a"


def test_a_plugin_folder_itself_is_a_plugin_dir() -> None:
    reg = Registry([FIXTURES / "hello"], entry_points=False)
    assert [r.id for r in reg.discover()] == ["runtime", "hello"]


def test_topological_order_and_reverse_stop(tmp_path: Path, order_log: list[tuple[str, str]]) -> None:
    # discovery order: app, db, log, net; app needs db and net, db needs log
    write_plugin(tmp_path, "app", requires={"db": ">=1", "net": ""}, code=ORDER_LOG)
    write_plugin(tmp_path, "db", requires={"log": "*"}, code=ORDER_LOG)
    write_plugin(tmp_path, "log", code=ORDER_LOG)
    write_plugin(tmp_path, "net", code=ORDER_LOG)
    reg = started([tmp_path])
    assert [pid for what, pid in order_log] == ["log", "db", "net", "app"]
    assert set(states(reg).values()) == {"active"}
    run(reg.stop())
    assert [pid for what, pid in order_log if what == "stop"] == ["app", "net", "db", "log"]
    assert set(states(reg).values()) == {"stopped"}


def test_cycle_is_an_error_naming_the_cycle(tmp_path: Path) -> None:
    write_plugin(tmp_path, "a", requires={"b": ""})
    write_plugin(tmp_path, "b", requires={"c": ""})
    write_plugin(tmp_path, "c", requires={"a": ""})
    write_plugin(tmp_path, "d", requires={"a": ""})
    write_plugin(tmp_path, "e")
    reg = started([tmp_path])
    for pid in "abc":
        assert reason(reg, pid) == "dependency cycle: a -> b -> c -> a"
        rec = reg.get(pid)
        assert rec is not None and isinstance(rec.error, DependencyError)
    assert reason(reg, "d") == "dependency a failed"
    assert states(reg) == {"a": "failed", "b": "failed", "c": "failed", "d": "failed", "e": "active"}


def test_version_constraint_failure_names_both(tmp_path: Path) -> None:
    write_plugin(tmp_path, "base", version="1.1.0")
    write_plugin(tmp_path, "needs_new", requires={"base": ">=1.2,<2"})
    write_plugin(tmp_path, "needs_old", requires={"base": ">=1.0,<1.2"})
    write_plugin(tmp_path, "bad_spec", requires={"base": "about 1"})
    reg = started([tmp_path])
    assert reason(reg, "needs_new") == "plugin needs_new requires base >=1.2,<2, but base is version 1.1.0"
    assert states(reg)["needs_old"] == "active"
    assert "'about 1' is not a valid version specifier" in reason(reg, "bad_spec")


def test_missing_dependency_names_both(tmp_path: Path) -> None:
    write_plugin(tmp_path, "lonely", requires={"ghost": ">=2"})
    reg = started([tmp_path])
    assert reason(reg, "lonely") == "plugin lonely requires plugin ghost (>=2), which is not installed"


FAILING_INIT = '''
from mcp_edge.plugin import PluginBase, tool

class P(PluginBase):
    async def initialize(self, config, ctx):
        raise OSError(19, "no such device: /dev/sensor0")

    @tool
    async def read_sensor(self) -> str:
        return "?"
'''


def test_failing_initialize_fails_it_and_its_dependents(tmp_path: Path) -> None:
    write_plugin(tmp_path, "sensor", code=FAILING_INIT)
    write_plugin(tmp_path, "dashboard", requires={"sensor": ""})
    write_plugin(tmp_path, "report", requires={"dashboard": ""})
    write_plugin(tmp_path, "other")
    reg = started([tmp_path])
    assert states(reg) == {"sensor": "failed", "dashboard": "failed", "report": "failed", "other": "active"}
    assert reason(reg, "sensor") == "initialize: OSError: [Errno 19] no such device: /dev/sensor0"
    sensor = reg.get("sensor")
    assert sensor is not None and isinstance(sensor.error, OSError) and sensor.init_ms is not None
    assert reason(reg, "dashboard") == "dependency sensor failed"
    assert reason(reg, "report") == "dependency dashboard failed"
    with pytest.raises(ToolNotFoundError):
        run(reg.call_tool("read_sensor", {}, RCTX))
    assert [t.name for t in reg.tools()] == ["other_tool"]
    run(reg.stop())
    assert states(reg)["sensor"] == "failed" and states(reg)["other"] == "stopped"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("raise ImportError('no module named smbus')",
         "plugin broken: loading failed: ImportError: no module named smbus"),
        ("x = 1", "set 'class' in"),
        ("from mcp_edge.plugin import PluginBase\nclass A(PluginBase): pass\nclass B(PluginBase): pass\n",
         "defines 2 plugin classes (A, B)"),
        ("from mcp_edge.plugin import PluginBase\nclass A(PluginBase):\n    id = 'other'\n",
         "class A says its id is 'other'"),
        ("from mcp_edge.plugin import PluginBase, tool\nclass A(PluginBase):\n    @tool\n"
         "    async def t(self, *a: int) -> str:\n        return ''\n",
         "A.t (tool 't'): parameter 'a' must be an ordinary or keyword parameter"),
    ],
)
def test_load_failures_are_recorded(tmp_path: Path, code: str, message: str) -> None:
    write_plugin(tmp_path, "broken", code=code)
    reg = started([tmp_path])
    rec = reg.get("broken")
    assert rec is not None
    assert rec.state is PluginState.FAILED
    assert message in (rec.reason or "")
    assert rec.load_ms is not None


def test_class_named_in_manifest_must_be_a_plugin(tmp_path: Path) -> None:
    write_plugin(tmp_path, "notplugin", plugin_extra='class = "A"', code="class A:\n    pass\n")
    write_plugin(tmp_path, "noclass", plugin_extra='class = "Missing"', code="x = 1\n")
    write_plugin(tmp_path, "nomodule", plugin_extra="", code="")
    (tmp_path / "nomodule" / "plugin.py").unlink()
    reg = started([tmp_path])
    assert "A is not a Plugin (it needs id, capabilities" in reason(reg, "notplugin")
    assert "module plugin has no class Missing" in reason(reg, "noclass")
    assert "no module 'plugin' in" in reason(reg, "nomodule")


def test_package_plugin_with_relative_import(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "pkg", code="")
    (folder / "plugin.py").unlink()
    (folder / "plugin").mkdir()
    (folder / "plugin" / "helpers.py").write_text("WORD = 'from a helper'\n")
    (folder / "plugin" / "__init__.py").write_text(
        "from mcp_edge.plugin import PluginBase, tool\nfrom .helpers import WORD\n"
        "class P(PluginBase):\n    @tool\n    async def word(self) -> str:\n        return WORD\n"
    )
    import sys

    before = list(sys.path)
    reg = started([tmp_path])
    assert sys.path == before  # the folder was on sys.path only while the module ran
    assert run(reg.call_tool("word", {}, RCTX)).content == [TextContent(text="from a helper")]


def test_bad_manifest_and_duplicates_are_failed_records(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write_plugin(first, "dup")
    write_plugin(second, "dup")
    write_plugin(second, "badabi", plugin_extra="")
    toml = (second / "badabi" / "plugin.toml").read_text().replace("abi = 1", "abi = 9")
    (second / "badabi" / "plugin.toml").write_text(toml)
    reg = started([first, second])
    rows = [(r["id"], r["state"], r["source"]) for r in reg.status()]
    assert ("dup", "active", str(first / "dup")) in rows
    assert ("dup", "failed", str(second / "dup")) in rows
    dup_failed = next(r for r in reg.records if r.id == "dup" and r.state is PluginState.FAILED)
    assert dup_failed.reason == f"duplicate plugin id dup: {first / 'dup'} has it first"
    assert "speaks Python plugin API version 9, this runtime speaks version 1" in reason(reg, "badabi")
    assert reg.get("dup") is not None and reg.get("dup").source == first / "dup"  # type: ignore[union-attr]


def test_lifecycle_states_through_start_and_stop(tmp_path: Path) -> None:
    seen: dict[str, str] = {}
    code = '''
from mcp_edge.plugin import PluginBase
import builtins

class P(PluginBase):
    async def initialize(self, config, ctx):
        builtins.SEEN["in initialize"] = builtins.REG.get(ctx.plugin_id).state.value

    async def shutdown(self):
        builtins.SEEN["in shutdown"] = builtins.REG.get(self.id).state.value
'''
    write_plugin(tmp_path, "life", code=code)
    reg = Registry([tmp_path], entry_points=False, environ={})
    import builtins

    builtins.SEEN = seen  # type: ignore[attr-defined]
    builtins.REG = reg  # type: ignore[attr-defined]
    try:
        reg.discover()
        assert reg.get("life").state is PluginState.DISCOVERED  # type: ignore[union-attr]
        reg.load()
        assert reg.get("life").state is PluginState.LOADED  # type: ignore[union-attr]
        run(reg.start())
        assert reg.get("life").state is PluginState.ACTIVE  # type: ignore[union-attr]
        run(reg.stop())
        assert reg.get("life").state is PluginState.STOPPED  # type: ignore[union-attr]
    finally:
        del builtins.SEEN, builtins.REG  # type: ignore[attr-defined]
    assert seen == {"in initialize": "loaded", "in shutdown": "stopping"}
    with pytest.raises(PluginError, match="is running; stop it before starting it again"):
        run(_twice(reg))


async def _twice(reg: Registry) -> None:
    await reg.start()
    try:
        await reg.start()
    finally:
        await reg.stop()


def test_a_stopped_registry_starts_again_with_fresh_plugin_code(tmp_path: Path) -> None:
    write_plugin(tmp_path, "again", code='''
from mcp_edge.plugin import PluginBase, tool
STARTS = []
class P(PluginBase):
    async def initialize(self, config, ctx):
        STARTS.append(1)
    @tool
    async def starts(self) -> int:
        return len(STARTS)
''')
    reg = Registry([tmp_path], entry_points=False, environ={})

    async def cycle() -> list[int]:
        out = []
        for _ in range(2):
            await reg.start()
            result = await reg.call_tool("starts", {}, RCTX)
            out.append(result.structuredContent["result"] if result.structuredContent else int(result.content[0].text))
            await reg.stop()
            assert reg.get("again").state is PluginState.STOPPED  # type: ignore[union-attr]
        return out

    # each start imports the folder afresh (a new package generation): module state starts over
    assert run(cycle()) == [1, 1]
    assert [n for n in sys.modules if n.startswith("mcp_edge_plugins.again.")] == []


def test_shutdown_failure_and_timeout(tmp_path: Path) -> None:
    write_plugin(tmp_path, "grumpy", code='''
from mcp_edge.plugin import PluginBase
class P(PluginBase):
    async def shutdown(self):
        raise RuntimeError("will not go")
''')
    write_plugin(tmp_path, "slow", code='''
import asyncio
from mcp_edge.plugin import PluginBase
class P(PluginBase):
    async def initialize(self, config, ctx):
        await asyncio.sleep(10)
''')
    reg = Registry([tmp_path], entry_points=False, environ={}, init_timeout=0.05)

    async def go() -> None:
        await reg.start()
        await reg.stop()

    run(go())
    assert reason(reg, "grumpy") == "shutdown: RuntimeError: will not go"
    assert reason(reg, "slow") == "initialize timed out after 0.05 s"


def test_name_collision_fails_the_later_plugin_naming_both(tmp_path: Path) -> None:
    write_plugin(tmp_path, "first", tool="shared")
    write_plugin(tmp_path, "second", tool="shared")
    reg = started([tmp_path])
    assert states(reg) == {"first": "active", "second": "failed"}
    assert reason(reg, "second") == "tool 'shared' of plugin second collides with plugin first's"
    rec = reg.get("second")
    assert rec is not None and isinstance(rec.error, PluginLoadError)
    assert run(reg.call_tool("shared", {}, RCTX)).content == [TextContent(text="first")]
    assert reg.owner_of_tool("shared") == "first"


def test_enabled_and_disabled(tmp_path: Path) -> None:
    for pid in ("a", "b", "c"):
        write_plugin(tmp_path, pid)
    write_plugin(tmp_path, "needs_b", requires={"b": ""})
    reg = started([tmp_path], disabled=["b"])
    assert states(reg) == {"a": "active", "b": "discovered", "c": "active", "needs_b": "failed"}
    assert reason(reg, "b") == "disabled by configuration"
    assert reason(reg, "needs_b") == "plugin needs_b requires plugin b, which is disabled"
    only = started([tmp_path], enabled=["c"])
    assert states(only)["c"] == "active" and states(only)["a"] == "discovered"
    assert only.get("runtime").state is PluginState.ACTIVE  # type: ignore[union-attr]


def test_config_reaches_initialize_and_bad_config_fails(tmp_path: Path) -> None:
    schema = '''
    [config.schema]
    type = "object"
    [config.schema.properties.level]
    type = "integer"
    default = 3
    maximum = 5
    '''
    code = '''
from mcp_edge.plugin import PluginBase, tool
class P(PluginBase):
    @tool
    async def level_{n}(self) -> int:
        return self.config["level"]
'''
    write_plugin(tmp_path, "cfg", schema=schema, code=code.format(n="a"))
    reg = Registry([tmp_path], entry_points=False, config={"cfg": {"level": 4}}, environ={"MCP_EDGE_CFG_LEVEL": "5"})
    run(reg.start())
    assert run(reg.call_tool("level_a", {}, RCTX)).content == [TextContent(text="5")]
    bad = Registry([tmp_path], entry_points=False, config={"cfg": {"level": 9}}, environ={})
    run(bad.start())
    assert reason(bad, "cfg") == "plugin cfg: config key 'level' must be at most 5, got 9 (from config)"


def test_capability_index(tmp_path: Path) -> None:
    write_plugin(tmp_path, "cam", plugin_extra='capabilities = ["camera", "video"]')
    write_plugin(tmp_path, "mic", plugin_extra='capabilities = ["audio"]', code=FAILING_INIT)
    reg = started([tmp_path, FIXTURES])
    index = reg.capability_index
    assert index["camera"] == ["cam"] and index["video"] == ["cam"]
    assert "audio" not in index  # failed plugins are left out
    assert index["tools"] == ["cam", "hello"]
    assert index["greetings"] == ["hello"]
    assert sorted(index["resources"]) == ["hello", "runtime"]


def test_runtime_plugin_serves_status(tmp_path: Path) -> None:
    write_plugin(tmp_path, "x", code=FAILING_INIT)
    reg = started([tmp_path, FIXTURES])
    assert any(r.uri == STATUS_URI for r in reg.resources())
    [content] = run(reg.read_resource(STATUS_URI, RCTX))
    assert content.mimeType == "application/json"
    doc = json.loads(content.text)  # type: ignore[union-attr]
    rows = {r["id"]: r for r in doc["plugins"]}
    assert rows["runtime"]["state"] == "active" and rows["runtime"]["kind"] == "builtin"
    assert rows["hello"]["version"] == "1.4.0" and rows["hello"]["tools"] == 16
    assert rows["x"]["state"] == "failed" and "no such device" in rows["x"]["reason"]
    assert set(rows["hello"]) >= {"id", "version", "kind", "state", "reason", "source", "load_ms", "init_ms"}
    assert doc["capabilities"]["greetings"] == ["hello"]


def test_context_factory_and_default_context(tmp_path: Path) -> None:
    made: list[str] = []

    class Ctx(DefaultPluginContext):
        pass

    def factory(pid: str, config: Mapping[str, Any]) -> PluginContext:
        made.append(pid)
        return Ctx(pid, data_root=tmp_path / "data")

    write_plugin(tmp_path / "p", "ctxuser", code='''
from mcp_edge.plugin import PluginBase, tool
class P(PluginBase):
    @tool
    async def where(self) -> str:
        await self.ctx.notify_list_changed("tools")
        return str(self.ctx.data_dir)
''')
    reg = started([tmp_path / "p"], context_factory=factory)
    assert made == ["runtime", "ctxuser"]
    where = str(tmp_path / "data/plugin-data/ctxuser")
    assert run(reg.call_tool("where", {}, RCTX)).content == [TextContent(text=where)]
    assert (tmp_path / "data/plugin-data/ctxuser").is_dir()

    # without a factory: notifications go to the registry's callbacks
    got: list[str] = []
    reg2 = Registry([tmp_path / "p"], entry_points=False, environ={})

    async def changed(kind: str) -> None:
        got.append(kind)

    reg2.on_list_changed = changed

    async def go(monkeypatch_dir: Path) -> None:
        await reg2.start()
        rec = reg2.get("ctxuser")
        assert rec is not None
        rec.plugin.ctx._data_root = monkeypatch_dir
        await reg2.call_tool("where", {}, RCTX)

    run(go(tmp_path / "data2"))
    assert got == ["tools"]


def test_many_calls_in_a_row(tmp_path: Path) -> None:
    """Calls in a row keep answering the same (their cost is measured by perf/bench_mcp.py, plugin-call)."""
    reg = started([FIXTURES])
    args: Mapping[str, Any] = {"text": "hi"}

    async def many(n: int) -> list[Any]:
        return [await reg.call_tool("echo", args, RCTX) for _ in range(n)]

    results = run(many(200))
    assert all(r == results[0] and not r.isError for r in results)


def test_context_factory_failure_fails_only_that_plugin(tmp_path: Path) -> None:
    write_plugin(tmp_path, "fine")
    write_plugin(tmp_path, "unlucky")

    def factory(pid: str, config: Mapping[str, Any]) -> PluginContext:
        if pid == "unlucky":
            raise RuntimeError("no data folder")
        return DefaultPluginContext(pid, data_root=tmp_path)

    reg = started([tmp_path], context_factory=factory)
    assert states(reg) == {"fine": "active", "unlucky": "failed"}
    assert reason(reg, "unlucky") == "no context for plugin unlucky: RuntimeError: no data folder"
