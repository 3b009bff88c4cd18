"""The wasm host in a registry (the runtime's own plugin machinery, in this process): deadlines, the memory
cap, host-function grants, the data folder's walls, HTTP to listed hosts, the policy table's errors, and the
box's narrowing of a plugin's policy."""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wasm_helpers import ROOT, QuietHandler, answer, build_c, registry_of, running, serving, write_wasm_plugin

from mcp_edge.errors import AbiMismatchError, InvalidArgumentsError, PluginLoadError
from mcp_edge.plugin import PluginState, Registry, read_manifest


def start(dirs: list[Path], tmp_path: Path, environ: dict[str, str] | None = None) -> Registry:
    reg = registry_of(dirs, tmp_path, **(environ or {}))
    asyncio.run(reg.start())
    return reg


def call(reg: Registry, tool: str, args: dict[str, Any] | None = None) -> tuple[bool, str]:
    return asyncio.run(answer(reg, tool, args))


@pytest.fixture
def plugin(misbehave: Path, tmp_path: Path) -> Iterator[Registry]:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        memory_mb = 8
        deadline_ms = 300
        host_functions = ["log", "progress", "data_read", "data_write"]
    """)
    with running(registry_of([folder], tmp_path), "misbehave") as reg:
        yield reg


def test_a_loop_that_never_ends_is_stopped_at_its_deadline_and_the_plugin_keeps_serving(plugin: Registry) -> None:
    assert call(plugin, "ok") == (False, "fine")
    failed, text = call(plugin, "spin")
    assert failed and "tool spin stopped: its deadline of 300 ms passed ([wasm] deadline_ms)" in text, text
    assert call(plugin, "ok") == (False, "fine")
    assert call(plugin, "spin")[0]  # a second time too: the instance that spun was thrown away
    assert call(plugin, "ok") == (False, "fine")


def test_memory_past_the_cap_fails_that_call_only(plugin: Registry) -> None:
    failed, text = call(plugin, "hog")
    assert failed and "tool hog trapped" in text and "of its 8 MiB cap" in text, text
    assert call(plugin, "ok") == (False, "fine")
    assert call(plugin, "hog")[0]
    assert call(plugin, "write", {"path": "x", "text": "still here"}) == (False, "written")
    assert call(plugin, "read", {"path": "x"}) == (False, "still here")


def test_a_host_function_not_granted_is_refused_and_the_other_tools_keep_working(plugin: Registry) -> None:
    failed, text = call(plugin, "fetch", {"url": "http://127.0.0.1:9/"})
    assert failed and "tool fetch refused: it called host function 'http_get', which this plugin is not granted" \
        in text, text
    assert call(plugin, "ok") == (False, "fine")
    assert call(plugin, "shout") == (False, "shouted")  # log and progress are granted


def test_the_data_folder_cannot_be_left(plugin: Registry, tmp_path: Path) -> None:
    data = tmp_path / "data" / "plugin-data" / "misbehave"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    assert call(plugin, "write", {"path": "notes/a.txt", "text": "A"}) == (False, "written")
    assert (data / "notes" / "a.txt").read_text() == "A"
    assert call(plugin, "read", {"path": "./notes//a.txt"}) == (False, "A")
    os.symlink(outside, data / "link")
    os.symlink(outside / "secret", data / "secret-link")
    for path in ("../outside/secret", "notes/../../outside/secret", str(outside / "secret"), "/etc/passwd",
                 "link/secret", "secret-link", ""):
        assert call(plugin, "read", {"path": path}) == (True, "Permission denied"), path
    for path in ("../escaped", "notes/../../escaped", str(outside / "escaped"), "link/escaped", "secret-link"):
        assert call(plugin, "write", {"path": path, "text": "x"}) == (True, "Permission denied"), path
    assert (outside / "secret").read_text() == "secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (tmp_path / "data" / "plugin-data" / "escaped").exists()
    assert call(plugin, "read", {"path": "missing"}) == (True, "No such file or directory")


def test_arguments_are_checked_against_the_input_schema_before_wasm_runs(plugin: Registry) -> None:
    with pytest.raises(InvalidArgumentsError, match="tool 'read': path: is required"):
        call(plugin, "read", {})


class _Hello(QuietHandler):
    def do_GET(self) -> None:
        self.reply(b"x" * 5000 if self.path == "/big" else b"hello from " + self.path.encode())


def test_http_get_reaches_listed_hosts_only(misbehave: Path, tmp_path: Path) -> None:
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)) as port:
        folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, f"""
            deadline_ms = 5000
            host_functions = ["http_get"]
            http_hosts = ["127.0.0.1:{port}"]
        """)
        reg = start([folder], tmp_path, {"MCP_EDGE_WASM_HTTP_MAX_BYTES": "4096"})
        try:
            assert call(reg, "fetch", {"url": f"http://127.0.0.1:{port}/hi"}) == (False, "200 hello from /hi")
            assert call(reg, "fetch", {"url": f"http://localhost:{port}/hi"}) == (True, "Permission denied")
            assert call(reg, "fetch", {"url": f"http://127.0.0.1:{port + 1}/hi"}) == (True, "Permission denied")
            assert call(reg, "fetch", {"url": "file:///etc/passwd"}) == (True, "Invalid argument")
            assert call(reg, "fetch", {"url": f"http://127.0.0.1:{port}/big"}) == (True, "File too large")
        finally:
            asyncio.run(reg.stop())


def test_the_box_narrows_what_a_plugin_asks_for(misbehave: Path, tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        memory_mb = 64
        host_functions = ["log", "progress", "data_read", "data_write"]
    """)
    reg = start([folder], tmp_path, {"MCP_EDGE_WASM_HOST_FUNCTIONS": "log,progress,data_read",
                                     "MCP_EDGE_WASM_MEMORY_MAX_MB": "4", "MCP_EDGE_WASM_DEADLINE_MAX_MS": "200"})
    try:
        failed, text = call(reg, "write", {"path": "x", "text": "x"})
        assert failed and "host function 'data_write', which this plugin is not granted" in text, text
        failed, text = call(reg, "hog")
        assert failed and "of its 4 MiB cap" in text, text
        failed, text = call(reg, "spin")
        assert failed and "deadline of 200 ms passed" in text, text
        assert call(reg, "ok") == (False, "fine")
    finally:
        asyncio.run(reg.stop())


@pytest.mark.parametrize(("table", "message"), [
    ("memory_mb = 0", "'memory_mb' must be an integer from 1 to 2048, got 0"),
    ("memory_mb = 4096", "'memory_mb' must be an integer from 1 to 2048, got 4096"),
    ("memory_mb = \"64\"", "'memory_mb' must be an integer from 1 to 2048, got '64'"),
    ("deadline_ms = -5", "'deadline_ms' must be an integer from 1 to"),
    ("deadline_ms = true", "'deadline_ms' must be an integer"),
    ("fuel = 100", "unknown key(s) fuel (known: memory_mb, deadline_ms, host_functions, http_hosts, preopens)"),
    ("host_functions = [\"exec\"]", "host_functions: unknown host function(s) exec (known: log, progress,"),
    ("host_functions = \"log\"", "'host_functions' must be a list of non-empty strings, got 'log'"),
    ("host_functions = [\"http_get\"]", "host_functions grants http_get but http_hosts lists no host"),
    ("http_hosts = [\"example.org\"]", "http_hosts is set but host_functions does not grant http_get"),
    ("host_functions = [\"http_get\"]\nhttp_hosts = [\"http://x/\"]", "http_hosts: 'http://x/' is not a host"),
    ("preopens = [{ guest = \"/d\", source = \"../etc\" }]", "preopens 'source' must be \"plugin\" or \"data\""),
    ("preopens = [{ guest = \"/d\", source = \"data/../..\" }]", "preopens 'source' must be"),
    ("preopens = [{ guest = \"d\", source = \"data\" }]", "preopens 'guest' must be an absolute path"),
    ("preopens = [{ guest = \"/d\", source = \"plugin\", writable = true }]", "cannot be writable"),
    ("preopens = [{ guest = \"/d\", source = \"data\", mode = \"rw\" }]", "unknown key(s) mode in a [[wasm.preopens]]"),
    ("preopens = \"data\"", "'preopens' must be an array of tables"),
])
def test_bad_wasm_tables_are_load_errors_naming_the_key(tmp_path: Path, table: str, message: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "plugin.toml").write_text(f'[plugin]\nid = "bad"\nversion = "1"\nabi = 1\nwasm = "m.wasm"\n'
                                        f"[wasm]\n{table}\n")
    with pytest.raises(PluginLoadError) as info:
        read_manifest(folder)
    assert message in str(info.value) and "plugin.toml: [wasm]" in str(info.value), str(info.value)


def test_manifest_level_errors(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "plugin.toml").write_text('[plugin]\nid = "bad"\nversion = "1"\nabi = 7\nwasm = "m.wasm"\n')
    with pytest.raises(AbiMismatchError, match="declares WASM plugin ABI 7, this runtime speaks WASM ABI 1"):
        read_manifest(folder)
    (folder / "plugin.toml").write_text('[plugin]\nid = "bad"\nversion = "1"\nabi = 1\nmodule = "x"\n'
                                        "[wasm]\nmemory_mb = 4\n")
    with pytest.raises(PluginLoadError, match=r"a \[wasm\] table goes with 'wasm"):
        read_manifest(folder)


def test_modules_that_do_not_fit_are_refused_at_load(tmp_path: Path, misbehave: Path) -> None:
    need = build_c("""
        #include <stdint.h>
        __attribute__((import_module("mcp_edge"), import_name("exec"))) int32_t exec_(int32_t);
        __attribute__((export_name("f"))) int32_t f(int32_t x) { return exec_(x); }
    """, tmp_path / "imports.wasm")
    bare = build_c("""
        __attribute__((export_name("f"))) int f(int x) { return x + 1; }
    """, tmp_path / "bare.wasm")
    old = build_c("""
        #include "mcp_edge_wasm.h"
        ME_EXPORT("mcp_abi_version") int32_t mcp_abi_version(void) { return 2; }
        ME_EXPORT("mcp_alloc") int32_t mcp_alloc(int32_t n) { return (int32_t)(uintptr_t)malloc((size_t)n); }
        ME_EXPORT("mcp_free") void mcp_free(int32_t p) { free((void *)(uintptr_t)p); }
        ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) { return 0; }
        ME_EXPORT("mcp_call") int64_t mcp_call(int32_t a, int32_t b, int32_t c, int32_t d) {
            (void)a; (void)b; (void)c; (void)d; return 0; }
    """, tmp_path / "old.wasm")
    huge = build_c("""
        #include "mcp_edge_wasm.h"
        MCP_EDGE_WASM_PLUGIN()
        static char big[4 << 20] = {1};
        ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) { return me_pack(big, 1); }
        ME_EXPORT("mcp_call") int64_t mcp_call(int32_t a, int32_t b, int32_t c, int32_t d) {
            (void)a; (void)b; (void)c; (void)d; return 0; }
    """, tmp_path / "huge.wasm")
    root = tmp_path / "plugins"
    dirs = [write_wasm_plugin(root, "imports", need), write_wasm_plugin(root, "bare", bare),
            write_wasm_plugin(root, "old", old), write_wasm_plugin(root, "huge", huge, "memory_mb = 2\n"),
            write_wasm_plugin(root, "ok", misbehave)]
    (root / "garbage").mkdir()
    (root / "garbage" / "plugin.toml").write_text('[plugin]\nid = "garbage"\nversion = "1"\nabi = 1\n'
                                                  'wasm = "module.wasm"\n')
    (root / "garbage" / "module.wasm").write_bytes(b"\0asm not really")
    dirs.append(root / "garbage")
    reg = start(dirs, tmp_path)
    try:
        reasons = {pid: (reg.get(pid).reason or "") for pid in ("imports", "bare", "old", "garbage", "huge")}  # type: ignore
        assert "imports mcp_edge::exec, which this runtime does not provide" in reasons["imports"], reasons
        assert "does not export mcp_abi_version, mcp_alloc, mcp_free, mcp_catalog, mcp_call" in reasons["bare"]
        assert "speaks WASM ABI 2, this runtime speaks WASM ABI 1" in reasons["old"], reasons
        assert "is not a valid WebAssembly module: failed to parse WebAssembly module" in reasons["garbage"], reasons
        assert "cannot instantiate its module under its 2 MiB memory cap" in reasons["huge"], reasons
        assert reg.get("ok").state is PluginState.ACTIVE  # type: ignore[union-attr]
    finally:
        asyncio.run(reg.stop())


def test_wasi_sees_only_its_preopens(misbehave: Path, tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    folder = write_wasm_plugin(root, "misbehave", misbehave, """
        [[wasm.preopens]]
        guest = "/assets"
        source = "plugin/assets"
        [[wasm.preopens]]
        guest = "/state"
        source = "data/state"
        writable = true
    """)
    (folder / "assets").mkdir()
    (folder / "assets" / "motd.txt").write_text("hello from assets")
    (tmp_path / "secret.txt").write_text("secret")
    reg = start([folder], tmp_path)
    try:
        assert call(reg, "fread", {"path": "/assets/motd.txt"}) == (False, "hello from assets")
        failed, _ = call(reg, "fwrite", {"path": "/assets/new.txt", "text": "x"})
        assert failed and not (folder / "assets" / "new.txt").exists()  # read-only
        assert call(reg, "fwrite", {"path": "/state/s.txt", "text": "kept"}) == (False, "written")
        assert (tmp_path / "data" / "plugin-data" / "misbehave" / "state" / "s.txt").read_text() == "kept"
        assert call(reg, "fread", {"path": "/state/s.txt"}) == (False, "kept")
        for path in ("/assets/../plugin.toml", "/assets/../../secret.txt", str(tmp_path / "secret.txt"),
                     "/etc/hostname", "plugin.toml"):
            failed, text = call(reg, "fread", {"path": path})
            assert failed and "secret" not in text and "[plugin]" not in text, (path, text)
    finally:
        asyncio.run(reg.stop())


def test_a_preopen_that_leads_out_by_a_link_is_refused(misbehave: Path, tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        [[wasm.preopens]]
        guest = "/assets"
        source = "plugin/assets"
    """)
    os.symlink(tmp_path, folder / "assets")
    reg = start([folder], tmp_path)
    try:
        rec = reg.get("misbehave")
        assert rec is not None and rec.state is not PluginState.ACTIVE
        assert "preopen 'plugin/assets' leaves its folder" in (rec.reason or ""), rec.reason
    finally:
        asyncio.run(reg.stop())


def test_the_config_reaches_mcp_init(misbehave: Path, tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave)
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + """
[config.schema]
type = "object"
[config.schema.properties.greeting]
type = "string"
default = "hi"
""")
    reg = start([folder], tmp_path, {"MCP_EDGE_MISBEHAVE_GREETING": "hej"})
    try:
        assert call(reg, "config") == (False, '{"greeting":"hej"}')
    finally:
        asyncio.run(reg.stop())


def test_the_sample_plugin_keeps_notes_in_its_data_folder(wasm_hello: Path, tmp_path: Path) -> None:
    reg = start([wasm_hello], tmp_path)
    try:
        assert call(reg, "note_write", {"name": "todo.txt", "text": "ship it"}) == (False, "saved")
        assert (tmp_path / "data" / "plugin-data" / "wasm_hello" / "todo.txt").read_text() == "ship it"
        assert call(reg, "note_read", {"name": "todo.txt"}) == (False, "ship it")
        assert call(reg, "note_read", {"name": "../todo.txt"}) == (True, "note_read: Permission denied")
        assert call(reg, "note_read", {"name": "nothing"}) == (True, "note_read: No such file or directory")
    finally:
        asyncio.run(reg.stop())


def test_the_compile_cache_keeps_compiled_modules_where_the_settings_say(wasm_hello: Path, tmp_path: Path) -> None:
    # the engine is made once per process: a fresh interpreter, as a runtime (or its worker) starts
    script = f"""
import asyncio
from pathlib import Path
from mcp_edge.board import Settings
from mcp_edge.plugin import Registry, NullRequestContext
env = {{"MCP_EDGE_DATA_DIR": {str(tmp_path / "data")!r}, "MCP_EDGE_CACHE_DIR": {str(tmp_path / "cache")!r},
       "MCP_EDGE_WASM_COMPILE_CACHE": "1"}}
reg = Registry([Path({str(wasm_hello)!r})], entry_points=False, environ=env, settings=Settings.load(environ=env))
async def main():
    await reg.start()
    print((await reg.call_tool("text_stats", {{"text": "a b"}}, NullRequestContext())).content[0].text)
    await reg.stop()
asyncio.run(main())
"""
    for _ in range(2):  # compiled and stored, then loaded from the cache
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
        assert out.stdout.strip() == "bytes=3 chars=3 words=2 lines=1 crc32=" + f"{zlib.crc32(b'a b'):08x}", out
    cached = [p for p in (tmp_path / "cache" / "wasmtime" / "modules").rglob("*") if p.is_file()]
    assert cached, "nothing in the compile cache"
    assert (tmp_path / "cache" / "wasmtime").stat().st_mode & 0o077 == 0


def test_a_new_module_is_hot_reloaded_and_a_broken_one_leaves_the_old_serving(tmp_path: Path) -> None:
    source = """
        #include "mcp_edge_wasm.h"
        MCP_EDGE_WASM_PLUGIN()
        ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {
            me_buf b = {0};
            me_buf_puts(&b, "{\\"tools\\":[{\\"name\\":\\"which\\",\\"inputSchema\\":{\\"type\\":\\"object\\"}}]}");
            return me_buf_answer(&b);
        }
        ME_EXPORT("mcp_call") int64_t mcp_call(int32_t a, int32_t b, int32_t c, int32_t d) {
            (void)a; (void)b; (void)c; (void)d; return me_text_result(VERSION, sizeof VERSION - 1, 0); }
    """
    v1 = build_c(source, tmp_path / "v1.wasm", ('-DVERSION="one"',))
    v2 = build_c(source, tmp_path / "v2.wasm", ('-DVERSION="two"',))
    folder = write_wasm_plugin(tmp_path / "plugins", "swap", v1)
    reg = start([folder], tmp_path)
    try:
        assert call(reg, "which") == (False, "one")
        shutil.copy(v2, folder / "module.wasm")
        asyncio.run(reg.reload("swap"))
        assert call(reg, "which") == (False, "two")
        (folder / "module.wasm").write_bytes(b"\0asm broken")
        asyncio.run(reg.reload("swap"))  # refused (logged): the running version keeps serving
        assert call(reg, "which") == (False, "two")
    finally:
        asyncio.run(reg.stop())
