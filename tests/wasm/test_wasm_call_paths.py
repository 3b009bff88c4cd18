"""The two ways the runtime calls into a module: the direct ctypes path (wasmtime-py's private bindings, only
under the wasmtime-py major it was written against) and the public ``Func.__call__`` it falls back to under any
other. Both give the same answers, errors included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from wasm_helpers import answer, need_wasmtime, registry_of, started, write_wasm_plugin

from mcp_edge.plugin.wasm import runtime

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("ok", {}), ("write", {"path": "a/b.txt", "text": "héllo \"x\""}), ("read", {"path": "a/b.txt"}),
    ("read", {"path": "../x"}), ("read", {"path": "missing"}), ("spin", {}), ("ok", {}), ("hog", {}),
    ("fetch", {"url": "http://127.0.0.1:9/"}), ("shout", {}), ("config", {}), ("ok", {}),
]


def _run(misbehave: Path, tmp_path: Path) -> tuple[list[tuple[bool, str]], set[bool]]:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        memory_mb = 8
        deadline_ms = 300
        host_functions = ["log", "progress", "data_read", "data_write"]
    """)
    reg = registry_of([folder], tmp_path)

    async def main() -> tuple[list[tuple[bool, str]], set[bool]]:
        async with started(reg, "misbehave"):
            out = [await answer(reg, tool, args) for tool, args in CALLS]
            rec = reg.get("misbehave")
            assert rec is not None and rec.host is not None
            plugin = rec.host.plugin  # type: ignore[attr-defined]
            paths = {inst.call._ctx is not None for inst in plugin._idle}
            return out, paths

    return asyncio.run(main())


def test_the_direct_path_engages_only_on_the_major_it_was_written_for() -> None:
    need_wasmtime()
    assert runtime._wasmtime_major() == runtime._DIRECT_MAJOR, (
        "wasmtime-py's major changed: check runtime._Direct against its private bindings, then move _DIRECT_MAJOR "
        "and the pin in pyproject.toml")


def test_the_fallback_call_gives_the_same_answers_as_the_direct_one(misbehave: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    direct, direct_paths = _run(misbehave, tmp_path / "direct")
    monkeypatch.setattr(runtime, "_DIRECT_MAJOR", -2)  # no wasmtime-py has that major: the public call
    public, public_paths = _run(misbehave, tmp_path / "public")
    assert direct_paths == {True} and public_paths == {False}, (direct_paths, public_paths)
    assert public == direct
    assert direct[0] == (False, "fine") and direct[2] == (False, "héllo \"x\"")
    assert direct[5][0] and "deadline of 300 ms passed" in direct[5][1]
    assert direct[7][0] and "of its 8 MiB cap" in direct[7][1]
    assert direct[8][0] and "host function 'http_get'" in direct[8][1]
