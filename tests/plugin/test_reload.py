"""Hot reload: a new version beside the old, the swap, state carried, failures leave the old serving."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mcp_edge.board import Settings
from mcp_edge.plugin import NullRequestContext, PluginState, Registry
from mcp_edge.plugin.watch import PluginWatcher

RCTX = NullRequestContext()

MANIFEST = '[plugin]\nid = "counter"\nversion = "{v}.0.0"\nabi = 1\nmodule = "plugin"\n'
CODE = '''
import asyncio, json
from mcp_edge.plugin import PluginBase, tool
class Counter(PluginBase):
    count = 0
    @tool
    async def bump(self) -> str:
        self.count += 1
        return "v{v}:" + str(self.count)
    @tool
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "v{v} slow"
    {extra}
    async def export_state(self) -> bytes:
        return json.dumps({{"count": self.count}}).encode()
    async def import_state(self, state: bytes) -> None:
        self.count = json.loads(state)["count"]
'''


def _write(folder: Path, v: int, extra: str = "") -> None:
    folder.mkdir(exist_ok=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(v=v))
    (folder / "plugin.py").write_text(CODE.format(v=v, extra=extra))


def _text(result: Any) -> str:
    data = msgspec.json.decode(result) if isinstance(result, msgspec.Raw) else msgspec.to_builtins(result)
    text: str = data["content"][0]["text"]
    return text


def _registry(root: Path, isolation: str) -> Registry:
    s = Settings.load(environ={}, plugin_dirs=(root,), entry_points=False,
                      plugin_isolation={"counter": isolation})
    return Registry.from_settings(s)


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_reload_swaps_versions_keeps_state_and_drops_no_call(tmp_path: Path, isolation: str) -> None:
    folder = tmp_path / "counter"
    _write(folder, 1)
    changed: list[str] = []

    async def go() -> None:
        reg = _registry(tmp_path, isolation)

        async def list_changed(kind: str) -> None:
            changed.append(kind)

        reg.on_list_changed = list_changed
        await reg.start()
        try:
            assert _text(await reg.call_tool("bump", {}, RCTX)) == "v1:1"
            in_flight = asyncio.create_task(reg.call_tool("slow", {"seconds": 0.3}, RCTX))
            stop = asyncio.Event()
            answers: list[str] = []

            async def load() -> None:  # calls all through the swap: none may fail
                while not stop.is_set():
                    answers.append(_text(await reg.call_tool("bump", {}, RCTX)))
                    await asyncio.sleep(0.001)  # an in-process call never suspends: let the reload run

            loader = asyncio.create_task(load())
            await asyncio.sleep(0.05)
            _write(folder, 2, extra="@tool\n    async def added(self) -> str:\n        return 'new'")
            rec = await reg.reload("counter")
            await asyncio.sleep(0.05)
            stop.set()
            await loader
            assert rec.state is PluginState.ACTIVE and rec.reason is None and rec.version == "2.0.0"
            assert rec.reloads == 1 and isinstance(rec.reload_ms, float)
            assert _text(await in_flight) == "v1 slow"  # the old version finished its call
            versions = [a.split(":")[0] for a in answers]
            assert versions == sorted(versions) and versions[0] == "v1" and versions[-1] == "v2"
            counts = [int(a.split(":")[1]) for a in answers]
            assert counts == list(range(2, 2 + len(counts)))  # the count moved across: nothing lost or repeated
            assert _text(await reg.call_tool("added", {}, RCTX)) == "new"
            assert changed == ["tools"]
            if isolation == "inproc":
                await asyncio.sleep(0.1)  # the old generation is purged once it stopped
                gens = {n.split(".")[2] for n in sys.modules if n.startswith("mcp_edge_plugins.counter.")}
                assert len(gens) == 1
        finally:
            await reg.stop()

    asyncio.run(go())


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_a_version_that_fails_leaves_the_old_one_serving(tmp_path: Path, isolation: str) -> None:
    folder = tmp_path / "counter"
    _write(folder, 1)

    async def go() -> None:
        reg = _registry(tmp_path, isolation)
        await reg.start()
        try:
            (folder / "plugin.py").write_text("this is not python (\n")
            rec = await reg.reload("counter")
            assert rec.state is PluginState.ACTIVE and rec.version == "1.0.0" and rec.reloads == 0
            assert rec.reason is not None and rec.reason.startswith("reload failed, the previous version serves on")
            assert "SyntaxError" in rec.reason or "invalid syntax" in rec.reason or "never closed" in rec.reason
            assert _text(await reg.call_tool("bump", {}, RCTX)) == "v1:1"
        finally:
            await reg.stop()

    asyncio.run(go())


def test_the_watcher_reloads_a_plugin_whose_files_change(tmp_path: Path) -> None:
    folder = tmp_path / "counter"
    _write(folder, 1)

    async def go() -> None:
        reg = _registry(tmp_path, "inproc")
        await reg.start()
        watcher = PluginWatcher(reg, debounce_s=0.05)
        try:
            assert watcher.start() >= 1
            _write(folder, 3)
            for _ in range(300):
                if watcher.reloads:
                    break
                await asyncio.sleep(0.02)
            assert watcher.reloads == 1
            assert _text(await reg.call_tool("bump", {}, RCTX)) == "v3:1"
        finally:
            await watcher.close()
            await reg.stop()

    asyncio.run(go())
