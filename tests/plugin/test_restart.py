"""Registry.restart(id): a failed plugin started again, an active one replaced by a new generation of its code,
and the moves the lifecycle table refuses."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import run, write_plugin

from mcp_edge.errors import PluginError, ToolNotFoundError
from mcp_edge.plugin import NullRequestContext, PluginState, Registry

# initialize fails while the folder holds a file named "broken"; every shutdown is counted in "shutdowns".
FLAKY = '''
from pathlib import Path
from mcp_edge.plugin import PluginBase, tool
import helpers

HERE = Path(__file__).parent

class Flaky(PluginBase):
    async def initialize(self, config, ctx):
        if (HERE / "broken").exists():
            raise RuntimeError("the sensor is unplugged")

    async def shutdown(self):
        with open(HERE / "shutdowns", "a") as f:
            f.write("x")

    @tool
    async def flaky_read(self) -> str:
        return helpers.WORD
'''


def flaky(tmp_path: Path, *, broken: bool, word: str = "first") -> Path:
    folder = write_plugin(tmp_path, "flaky", code=FLAKY)
    (folder / "helpers.py").write_text(f"WORD = {word!r}\n")
    if broken:
        (folder / "broken").write_text("")
    return folder


def package_of(reg: Registry, plugin_id: str) -> str:
    rec = reg.get(plugin_id)
    assert rec is not None and rec.plugin is not None
    return str(type(rec.plugin).__module__.rpartition(".")[0])


def modules_under(package: str) -> list[str]:
    return [name for name in sys.modules if name == package or name.startswith(package + ".")]


async def text_of(reg: Registry, tool: str) -> Any:
    result = await reg.call_tool(tool, {}, NullRequestContext())
    assert not result.isError, result
    return result.content[0].text  # type: ignore[union-attr]


def test_a_failed_plugin_restarts_once_its_cause_is_gone(tmp_path: Path) -> None:
    folder = flaky(tmp_path, broken=True)

    async def main() -> None:
        reg = Registry([tmp_path], entry_points=False)
        await reg.start()
        rec = reg.get("flaky")
        assert rec is not None and rec.state is PluginState.FAILED
        assert "the sensor is unplugged" in str(rec.reason)
        assert await reg.restart("flaky") is False  # still broken: failed again, with the reason
        assert rec.state is PluginState.FAILED and "the sensor is unplugged" in str(rec.reason)
        (folder / "broken").unlink()
        assert await reg.restart("flaky") is True
        assert rec.state is PluginState.ACTIVE and rec.reason is None and rec.restarts == 1
        assert await text_of(reg, "flaky_read") == "first"
        await reg.stop()
        assert rec.state is PluginState.STOPPED
        assert (folder / "shutdowns").read_text() == "x"  # the restarted generation was shut down at stop

    run(main())


def test_restarting_an_active_plugin_stops_the_old_generation_and_imports_its_code_again(tmp_path: Path) -> None:
    folder = flaky(tmp_path, broken=False)
    changed: list[str] = []

    async def on_list_changed(kind: str) -> None:
        changed.append(kind)

    async def main() -> None:
        reg = Registry([tmp_path], entry_points=False)
        reg.on_list_changed = on_list_changed
        await reg.start()
        old_package, old_plugin = package_of(reg, "flaky"), reg.get("flaky").plugin  # type: ignore[union-attr]
        assert await text_of(reg, "flaky_read") == "first"
        (folder / "helpers.py").write_text("WORD = 'second'\n")
        (folder / "plugin.py").write_text((folder / "plugin.py").read_text() + (
            "\n    @tool\n    async def flaky_more(self) -> str:\n        return 'more'\n"))
        assert await reg.restart("flaky") is True
        assert (folder / "shutdowns").read_text() == "x"  # the old one was shut down first
        assert reg.get("flaky").plugin is not old_plugin  # type: ignore[union-attr]
        assert package_of(reg, "flaky") != old_package and not modules_under(old_package)
        assert await text_of(reg, "flaky_read") == "second" and await text_of(reg, "flaky_more") == "more"
        assert changed == ["tools"]
        await reg.stop()

    run(main())


def test_a_restart_that_fails_leaves_the_plugin_failed_and_unrouted(tmp_path: Path) -> None:
    folder = flaky(tmp_path, broken=False)

    async def main() -> None:
        reg = Registry([tmp_path], entry_points=False)
        await reg.start()
        old_package = package_of(reg, "flaky")
        (folder / "broken").write_text("")
        assert await reg.restart("flaky") is False
        rec = reg.get("flaky")
        assert rec is not None and rec.state is PluginState.FAILED
        assert "the sensor is unplugged" in str(rec.reason)
        assert not modules_under(old_package)
        with pytest.raises(ToolNotFoundError):
            await reg.call_tool("flaky_read", {}, NullRequestContext())
        assert [t.name for t in reg.tools()] == []
        await reg.stop()

    run(main())


def test_a_restart_needs_its_dependencies_active(tmp_path: Path) -> None:
    write_plugin(tmp_path, "base", code='''
from mcp_edge.plugin import PluginBase

class Base(PluginBase):
    async def initialize(self, config, ctx):
        raise RuntimeError("base is down")
''')
    write_plugin(tmp_path, "user", requires={"base": ">=1"})

    async def main() -> None:
        reg = Registry([tmp_path], entry_points=False)
        await reg.start()
        assert reg.get("user").state is PluginState.FAILED  # type: ignore[union-attr]
        assert await reg.restart("user") is False
        assert "requires plugin base, which is failed" in str(reg.get("user").reason)  # type: ignore[union-attr]
        await reg.stop()

    run(main())


def test_moves_the_lifecycle_has_no_restart_from_are_refused(tmp_path: Path) -> None:
    flaky(tmp_path, broken=False)
    write_plugin(tmp_path, "off")

    async def main() -> None:
        reg = Registry([tmp_path], entry_points=False, disabled=["off"])
        with pytest.raises(PluginError, match="no plugin nobody"):
            await reg.restart("nobody")
        await reg.start()
        with pytest.raises(PluginError, match="plugin off is disabled"):
            await reg.restart("off")
        await reg.stop()
        with pytest.raises(PluginError, match="plugin flaky: no transition stopped -> restarting"):
            await reg.restart("flaky")
        assert reg.get("flaky").state is PluginState.STOPPED  # type: ignore[union-attr]

    run(main())


def test_a_process_plugin_restarts_in_a_new_worker(tmp_path: Path) -> None:
    from mcp_edge.board import Settings

    write_plugin(tmp_path, "remote")
    settings = Settings.load(environ={}, plugin_dirs=(tmp_path,), entry_points=False,
                             plugin_isolation={"remote": "process"})

    async def main() -> None:
        reg = Registry.from_settings(settings)
        await reg.start()
        try:
            rec = reg.get("remote")
            assert rec is not None and rec.state is PluginState.ACTIVE and rec.isolation == "process", rec
            first = rec.host
            assert first is not None and first.pid != os.getpid()
            assert await reg.restart("remote") is True
            assert rec.state is PluginState.ACTIVE and rec.host is not first and rec.host.pid != first.pid
            result = await reg.call_tool("remote_tool", {}, NullRequestContext())
            assert b'"remote"' in bytes(result)  # the worker's JSON, embedded as is
        finally:
            await reg.stop()

    run(main())
