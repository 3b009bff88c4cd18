"""Plugins added and removed while the registry runs (mcp_edge.plugin.live): a new folder's plugin becomes
active and listed with list_changed sent, a duplicate id is refused with its reason while the others serve on,
a removed plugin finishes its running calls before it goes, one that others require is not removed, and the
folder watcher does it all on its own when folders are moved in and out of a plugin folder root (the index
installer's update, a folder swapped in at the same place, stays a reload)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from plugin_helpers import ROOT, write_plugin

from mcp_edge.board import Settings
from mcp_edge.errors import PluginError, ToolNotFoundError
from mcp_edge.plugin import NullRequestContext, PluginState, Registry
from mcp_edge.plugin.watch import PluginWatcher

RCTX = NullRequestContext()
WAIT = 20.0

SLOW = '''
import asyncio
from mcp_edge.plugin import PluginBase, tool

class Slow(PluginBase):
    @tool
    async def slow_wait(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slow done"

    @tool
    async def slow_hello(self) -> str:
        return "slow v{v}"
'''


def _text(result: Any) -> str:
    data = msgspec.json.decode(result) if isinstance(result, msgspec.Raw) else msgspec.to_builtins(result)
    text: str = data["content"][0]["text"]
    return text


def _registry(root: Path, **isolation: str) -> tuple[Registry, list[str]]:
    s = Settings.load(environ={}, plugin_dirs=(root,), entry_points=False, plugin_isolation=isolation)
    reg = Registry.from_settings(s)
    changed: list[str] = []

    async def list_changed(kind: str) -> None:
        changed.append(kind)

    reg.on_list_changed = list_changed
    return reg, changed


def _names(reg: Registry) -> set[str]:
    return {t.name for t in reg.tools()}


async def _until(check: Any, what: str) -> None:
    """Waits until check() holds (a hang guard of WAIT seconds, not a measurement), then asserts it."""
    deadline = time.monotonic() + WAIT
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert check(), what


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_a_folder_added_while_running_is_active_listed_and_announced(tmp_path: Path, isolation: str) -> None:
    root = tmp_path / "plugins"
    write_plugin(root, "alpha")

    async def go() -> None:
        reg, changed = _registry(root, beta=isolation)
        await reg.start()
        try:
            assert _names(reg) == {"alpha_tool"}
            folder = write_plugin(tmp_path / "elsewhere", "beta")
            moved = root / "beta"
            os.rename(folder, moved)
            rec = await reg.add_folder(moved)
            assert rec.state is PluginState.ACTIVE, rec.reason
            assert rec.isolation == isolation
            assert _names(reg) == {"alpha_tool", "beta_tool"}
            assert changed == ["tools"]
            assert _text(await reg.call_tool("beta_tool", {}, RCTX)) == "beta"
            assert [r["state"] for r in reg.status() if r["id"] == "beta"] == ["active"]
            with pytest.raises(PluginError, match="loaded already"):
                await reg.add_folder(moved)
        finally:
            await reg.stop()
        assert reg.get("beta") is not None and reg.get("beta").state is PluginState.STOPPED  # type: ignore[union-attr]

    asyncio.run(go())


def test_a_duplicate_id_is_refused_with_its_reason_and_the_first_serves_on(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    write_plugin(root, "alpha")

    async def go() -> None:
        reg, changed = _registry(root)
        await reg.start()
        try:
            copy = write_plugin(tmp_path / "other", "alpha", tool="impostor_tool")
            rec = await reg.add_folder(copy)
            assert rec.state is PluginState.FAILED
            assert rec.reason == f"duplicate plugin id alpha: {root / 'alpha'} has it first"
            assert reg.get("alpha") is not rec and reg.get("alpha").state is PluginState.ACTIVE  # type: ignore[union-attr]
            assert _names(reg) == {"alpha_tool"} and changed == []
            assert _text(await reg.call_tool("alpha_tool", {}, RCTX)) == "alpha"
            assert any(r["reason"] == rec.reason for r in reg.status())  # shown, as a duplicate at start is
            broken = tmp_path / "broken"
            broken.mkdir()
            (broken / "plugin.toml").write_text("[plugin\n")
            bad = await reg.add_folder(broken)
            assert bad.state is PluginState.FAILED and bad.reason
            assert _text(await reg.call_tool("alpha_tool", {}, RCTX)) == "alpha"
        finally:
            await reg.stop()

    asyncio.run(go())


def test_a_dependency_that_is_not_active_fails_the_added_plugin(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    write_plugin(root, "alpha")

    async def go() -> None:
        reg, _ = _registry(root)
        await reg.start()
        try:
            rec = await reg.add_folder(write_plugin(tmp_path / "x", "gamma", requires={"missing": ">=1"}))
            assert rec.state is PluginState.FAILED
            assert rec.reason is not None and "requires plugin missing" in rec.reason
            ok = await reg.add_folder(write_plugin(tmp_path / "x", "delta", requires={"alpha": ">=1"}))
            assert ok.state is PluginState.ACTIVE, ok.reason
            with pytest.raises(PluginError, match="required by delta"):
                await reg.remove("alpha")
            assert _text(await reg.call_tool("alpha_tool", {}, RCTX)) == "alpha"  # it serves on
            await reg.remove("delta")
            await reg.remove("alpha")
            assert _names(reg) == set()
        finally:
            await reg.stop()

    asyncio.run(go())


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_remove_finishes_the_running_call_first_then_the_plugin_is_gone(tmp_path: Path, isolation: str) -> None:
    root = tmp_path / "plugins"
    write_plugin(root, "alpha")
    write_plugin(root, "slow", code=SLOW.format(v=1))

    async def go() -> None:
        reg, changed = _registry(root, slow=isolation)
        await reg.start()
        try:
            rec = reg.get("slow")
            assert rec is not None and rec.host is not None
            host = rec.host
            running = asyncio.create_task(reg.call_tool("slow_wait", {"seconds": 0.5}, RCTX))
            await _until(lambda: host.inflight > 0, "the call is running")
            gone = await reg.remove("slow")
            assert running.done()  # remove returned only once the call had finished ...
            assert _text(running.result()) == "slow done"  # ... and it finished well
            assert gone.state is PluginState.STOPPED
            assert reg.get("slow") is None and "slow" not in {r["id"] for r in reg.status()}
            assert _names(reg) == {"alpha_tool"} and changed == ["tools"]
            with pytest.raises(ToolNotFoundError):
                await reg.call_tool("slow_hello", {}, RCTX)
            with pytest.raises(PluginError, match="not installed"):
                await reg.remove("slow")
            with pytest.raises(PluginError, match="cannot be removed"):
                await reg.remove("runtime")
            again = await reg.add_folder(root / "slow")  # and it may come back
            assert again.state is PluginState.ACTIVE, again.reason
            assert _text(await reg.call_tool("slow_hello", {}, RCTX)) == "slow v1"
        finally:
            await reg.stop()

    asyncio.run(go())


def test_rescan_adds_new_folders_and_removes_gone_ones(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    write_plugin(root, "alpha")
    write_plugin(root, "beta")

    async def go() -> None:
        reg, changed = _registry(root)
        assert await reg.rescan() == ([], [])  # not running: nothing to compare
        await reg.start()
        try:
            os.rename(root / "beta", tmp_path / "beta-away")
            write_plugin(root, "gamma")
            added, removed = await reg.rescan()
            assert [r.id for r in added] == ["gamma"] and removed == ["beta"]
            assert _names(reg) == {"alpha_tool", "gamma_tool"}
            assert sorted(changed) == ["tools", "tools"]
            assert await reg.rescan() == ([], [])
        finally:
            await reg.stop()

    asyncio.run(go())


def test_the_watcher_adds_a_folder_moved_in_removes_one_moved_out_and_reloads_one_swapped(tmp_path: Path) -> None:
    from mcp_edge.index.installer import _swap

    root = tmp_path / "plugins"
    write_plugin(root, "alpha")
    staging = root / ".staging"

    async def go() -> None:
        reg, changed = _registry(root)
        await reg.start()
        watcher = PluginWatcher(reg, debounce_s=0.05)
        watcher.start()
        try:
            # installed as the index installer does: made under .staging, then renamed into place
            made = write_plugin(staging / "w1", "slow", code=SLOW.format(v=1))
            os.rename(made, root / "slow")
            await _until(lambda: "slow_hello" in _names(reg), "the plugin moved in is listed")
            assert _text(await reg.call_tool("slow_hello", {}, RCTX)) == "slow v1"
            first = reg.get("slow")
            # updated as the installer does: the new folder swapped in at the same place
            new = write_plugin(staging / "w2", "slow", code=SLOW.format(v=2), version="2.0.0")
            _swap(new, root / "slow")
            shutil.rmtree(new)  # (the old folder, now there, removed after the swap)
            await _until(lambda: reg.get("slow") is not None and reg.get("slow").version == "2.0.0",  # type: ignore[union-attr]
                         "the swapped plugin is reloaded")
            assert reg.get("slow") is first and first is not None and first.reloads == 1  # a reload, not remove+add
            assert _text(await reg.call_tool("slow_hello", {}, RCTX)) == "slow v2"
            # copied in file by file: the folder appears empty, its files come after
            (root / "late").mkdir()
            await asyncio.sleep(0.2)
            write_plugin(root, "late")
            await _until(lambda: "late_tool" in _names(reg), "the plugin copied in is listed")
            # removed as the installer does: renamed out into .staging
            os.rename(root / "slow", staging / "gone")
            await _until(lambda: reg.get("slow") is None, "the plugin moved out is removed")
            assert _names(reg) == {"alpha_tool", "late_tool"}
            assert _text(await reg.call_tool("alpha_tool", {}, RCTX)) == "alpha"
            assert reg.get("slow") is None and watcher.rescans >= 2
        finally:
            await watcher.close()
            await reg.stop()
        assert changed.count("tools") >= 3

    asyncio.run(go())


def test_sighup_with_the_watcher_off_adds_and_removes_and_reloads_the_rest(tmp_path: Path) -> None:
    from mcp_edge.server import Server

    root = tmp_path / "plugins"
    write_plugin(root, "alpha")
    write_plugin(root, "beta")
    data = tmp_path / "data"
    s = Settings.load(environ={}, data_dir=data, plugin_dirs=(root,), entry_points=False, reload_watch=False)

    async def go() -> None:
        running = await Server.configure(s).start()
        try:
            installed = write_plugin(data / "plugins", "zeta")  # <data_dir>/plugins: absent at start
            os.rename(root / "beta", tmp_path / "beta-away")
            await running.reload(s)
            reg = running.registry
            zeta = reg.get("zeta")
            assert zeta is not None and zeta.state is PluginState.ACTIVE, zeta
            assert zeta.manifest is not None and zeta.manifest.folder == installed and zeta.reloads == 0
            assert reg.get("beta") is None and reg.get("alpha").reloads == 1  # type: ignore[union-attr]
            assert _text(await running.call_tool("zeta_tool")) == "zeta"
            with pytest.raises(ToolNotFoundError):
                await running.call_tool("beta_tool")
            assert await running.reload_plugins() == ["alpha", "zeta"]  # nothing new: every plugin reloaded
        finally:
            await running.stop()

    asyncio.run(go())


def test_a_file_plugin_added_live_over_the_plugins_folder_is_refused(tmp_path: Path) -> None:
    from mcp_edge.server import Server

    root = tmp_path / "plugins"
    write_plugin(root, "alpha")
    data = tmp_path / "data"
    s = Settings.load(environ={}, data_dir=data, plugin_dirs=(root,), entry_points=False, reload_watch=False,
                      plugin_config={"fs": {"root": str(data)}})

    async def go() -> None:
        running = await Server.configure(s).start()
        try:
            shutil.copytree(ROOT / "plugins" / "fs", data / "plugins" / "fs")
            added, _ = await running.registry.rescan()
            assert [r.id for r in added] == ["fs"]
            assert added[0].state is PluginState.FAILED
            assert added[0].reason is not None and "a client could plant or change a plugin there" in added[0].reason
            assert not any(t.name.startswith("fs_") for t in running.registry.tools())
            assert _text(await running.call_tool("alpha_tool")) == "alpha"
        finally:
            await running.stop()

    asyncio.run(go())
