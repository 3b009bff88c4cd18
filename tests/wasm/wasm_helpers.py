"""Helpers of the WASM plugin tests: the test module built from C with clang, plugin folders written on the fly,
and a registry or a real server running them."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import shutil
import subprocess
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ci_honesty import importorskip, require_or_skip

from mcp_edge.plugin import NullRequestContext, PluginState, Registry

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WASM_HELLO = ROOT / "plugins" / "wasm_hello"
TWIN = FIXTURES / "text_stats_py"
HEADER_DIR = ROOT / "plugins" / "include"
CFLAGS = ["--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wall", "-Wextra", "-Werror",
          f"-I{HEADER_DIR}"]


def need_wasmtime() -> None:
    importorskip("wasmtime", "wasmtime", "the WASM plugin tests need wasmtime (pip install -e '.[test]')")


def build_c(source: Path | str, out: Path, extra: tuple[str, ...] = ()) -> Path:
    """``source`` (a path, or C text) compiled to ``out`` with clang for wasm32-wasi; skipped (failed under CI)
    when the toolchain is missing."""
    clang = shutil.which("clang")
    if clang is None:
        require_or_skip("clang", "the WASM tests build their modules with clang (apt-get install clang lld wasi-libc "
                        "libclang-rt-dev-wasm32; make deps does)")
    if not isinstance(source, Path):
        path = out.with_suffix(".c")
        path.write_text(textwrap.dedent(source))
        source = path
    proc = subprocess.run([clang, *CFLAGS, *extra, "-o", str(out), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        if "wasm32-wasi" in proc.stderr and ("not found" in proc.stderr or "No such file" in proc.stderr):
            require_or_skip("clang", f"clang cannot build for wasm32-wasi here (wasi-libc, lld, "
                                     f"libclang-rt-dev-wasm32 missing?): {proc.stderr.strip()}")
        raise AssertionError(f"clang failed on {source}:\n{proc.stderr}")
    return out


def write_wasm_plugin(root: Path, plugin_id: str, module: Path, wasm_table: str = "", plugin_extra: str = "",
                      abi: int = 1) -> Path:
    """A WASM plugin folder ``root/<id>`` with ``module`` copied in and the given ``[wasm]`` table body."""
    folder = root / plugin_id
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(module, folder / "module.wasm")
    text = f'[plugin]\nid = "{plugin_id}"\nversion = "1.0.0"\nabi = {abi}\nwasm = "module.wasm"\n{plugin_extra}\n'
    if wasm_table:
        text += "[wasm]\n" + textwrap.dedent(wasm_table)
    (folder / "plugin.toml").write_text(text)
    return folder


def one_tool_module(tool: str) -> str:
    """The start of a test module's C text: the header, the plugin's boilerplate and ``mcp_catalog`` listing one
    tool ``tool`` (any arguments); the test adds its ``mcp_call`` (and what else it needs)."""
    return (
        '#include "mcp_edge_wasm.h"\n'
        "MCP_EDGE_WASM_PLUGIN()\n"
        f'static const char CATALOG[] = "{{\\"tools\\":[{{\\"name\\":\\"{tool}\\",'
        '\\"inputSchema\\":{\\"type\\":\\"object\\"}}]}";\n'
        'ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {\n'
        "    me_buf b = {0};\n"
        "    me_buf_put(&b, CATALOG, sizeof CATALOG - 1);\n"
        "    return me_buf_answer(&b);\n"
        "}\n")


def registry_of(folders: list[Path], tmp: Path, **environ: str) -> Registry:
    """A registry of the plugin ``folders`` only, its data folder ``tmp/data``, with ``environ``'s MCP_EDGE_*
    settings."""
    from mcp_edge.board import Settings

    env = {"MCP_EDGE_DATA_DIR": str(tmp / "data"), **environ}
    return Registry(folders, entry_points=False, environ=env, settings=Settings.load(environ=env))


@contextlib.asynccontextmanager
async def started(reg: Registry, plugin_id: str) -> AsyncIterator[Registry]:
    """``reg`` started, its plugin ``plugin_id`` checked active, for the ``async with`` block; stopped after."""
    await reg.start()
    try:
        rec = reg.get(plugin_id)
        assert rec is not None and rec.state is PluginState.ACTIVE, rec.reason if rec else None
        yield reg
    finally:
        await reg.stop()


@contextlib.contextmanager
def running(reg: Registry, plugin_id: str) -> Iterator[Registry]:
    """``started`` for a test without a loop of its own: each step in its own ``asyncio.run``."""
    asyncio.run(reg.start())
    try:
        rec = reg.get(plugin_id)
        assert rec is not None and rec.state is PluginState.ACTIVE, rec.reason if rec else None
        yield reg
    finally:
        asyncio.run(reg.stop())


async def answer(reg: Registry, tool: str, args: dict[str, Any] | None = None) -> tuple[bool, str]:
    """Tool ``tool`` called through ``reg``: whether it failed, and its first text ('' when it has none)."""
    res = await reg.call_tool(tool, args or {}, NullRequestContext())
    return res.isError, res.content[0].text if res.content else ""


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A test server's handler base: no log line per request, and ``reply`` for a whole answer."""

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, body: bytes) -> None:
        """200 with ``body`` (its Content-Length given)."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    """``server`` answering in a thread for the ``with`` block, shut down and closed after; yields its port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
