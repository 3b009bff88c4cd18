"""The compile cache holds native code the engine runs as it finds it: a cache folder others may write in (or
that belongs to someone else) is not used; the plugin loads and answers all the same, compiled at load."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from wasm_helpers import ROOT

SCRIPT = """
import asyncio, sys
from pathlib import Path
from mcp_edge.board import Settings
from mcp_edge.plugin import Registry, NullRequestContext
data, cache, plugin = sys.argv[1:4]
env = {"MCP_EDGE_DATA_DIR": data, "MCP_EDGE_CACHE_DIR": cache, "MCP_EDGE_WASM_COMPILE_CACHE": "1"}
reg = Registry([Path(plugin)], entry_points=False, environ=env, settings=Settings.load(environ=env))
async def main():
    await reg.start()
    print((await reg.call_tool("text_stats", {"text": "a b"}, NullRequestContext())).content[0].text)
    await reg.stop()
asyncio.run(main())
"""


def _cases() -> list[str]:
    return ["group-writable", "world-writable-holder"] + (["someone-elses"] if os.geteuid() == 0 else [])


@pytest.mark.parametrize("case", _cases())
def test_a_cache_folder_others_can_write_is_not_used(wasm_hello: Path, tmp_path: Path, case: str) -> None:
    cache = tmp_path / "cache"
    folder = cache / "wasmtime"
    folder.mkdir(parents=True, mode=0o700)
    if case == "group-writable":
        folder.chmod(0o770)
    elif case == "world-writable-holder":
        cache.chmod(0o777)  # without the sticky bit: anyone could swap the wasmtime folder for theirs
    else:
        os.chown(folder, 54321, -1)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data"), str(cache), str(wasm_hello)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "bytes=3 chars=3 words=2 lines=1 crc32=" + f"{zlib.crc32(b'a b'):08x}", out
    assert "WASM compile cache off: cannot use" in out.stderr, out.stderr
    assert not (folder / "modules").exists() and not (folder / "cache.toml").exists()


def test_a_sticky_shared_holder_is_fine(wasm_hello: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o1777)  # like /tmp
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data"), str(cache), str(wasm_hello)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "compile cache off" not in out.stderr, out.stderr
    assert [p for p in (cache / "wasmtime" / "modules").rglob("*") if p.is_file()]
