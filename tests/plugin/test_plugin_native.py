"""Native plugins: plugins/native_hello (built by setup.py) end to end, ABI checks, the cffi module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_helpers import NATIVE_HELLO, ROOT, run

from mcp_edge.errors import AbiMismatchError, InvalidArgumentsError
from mcp_edge.plugin import NullRequestContext, PluginState, Registry, TextContent, ToolAnnotations, read_manifest
from mcp_edge.plugin.native import load_native

RCTX = NullRequestContext()
HEADER_DIR = ROOT / "plugins" / "include"
SO = NATIVE_HELLO / "native_hello.so"
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")


@pytest.fixture(scope="module")
def built() -> Path:
    if not SO.is_file():
        pytest.fail(f"{SO} is missing: setup.py builds it (make setup, or python setup.py build_ext --inplace)")
    return SO


class _AllInproc(dict[str, str]):
    """Every plugin in process."""

    def get(self, key: str, default: object = None) -> str:  # type: ignore[override]
        return "inproc"


def start(dirs: list[Path], environ: dict[str, str] | None = None, **kwargs: object) -> Registry:
    """A registry with native_hello in this process (these tests look at the in-process native host; a native
    plugin's default, a worker process, is tested in tests/worker)."""
    kwargs.setdefault("isolation", _AllInproc())
    reg = Registry(dirs, entry_points=False, environ=environ or {}, **kwargs)  # type: ignore[arg-type]
    run(reg.start())
    return reg


def test_native_hello_end_to_end(built: Path) -> None:
    reg = start([NATIVE_HELLO], environ={"MCP_EDGE_NATIVE_HELLO_PREFIX": ">> "})
    rec = reg.get("native_hello")
    assert rec is not None and rec.state is PluginState.ACTIVE, rec.reason
    assert (rec.kind, rec.version, rec.load_ms is not None) == ("native", "1.0.0", True)
    tools = {t.name: t for t in reg.tools()}
    assert set(tools) == {"native_echo", "native_add"}
    assert tools["native_echo"].inputSchema["required"] == ["text"]
    assert tools["native_add"].outputSchema == {
        "type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]}
    assert tools["native_add"].annotations == ToolAnnotations(readOnlyHint=True, idempotentHint=True)

    echo = run(reg.call_tool("native_echo", {"text": 'héllo "world"\n\u2603 \U0001f600'}, RCTX))
    assert echo.content == [TextContent(text='>> héllo "world"\n\u2603 \U0001f600')]
    add = run(reg.call_tool("native_add", {"a": 1.5, "b": 2}, RCTX))
    assert add.content == [TextContent(text="3.5")] and add.structuredContent == {"sum": 3.5}
    assert not add.isError

    # checked against the inputSchema before C runs
    with pytest.raises(InvalidArgumentsError, match="tool 'native_echo': text: is required"):
        run(reg.call_tool("native_echo", {}, RCTX))
    with pytest.raises(InvalidArgumentsError, match="tool 'native_add': a: expected number, got string '1'"):
        run(reg.call_tool("native_add", {"a": "1", "b": 2}, RCTX))
    overflow = run(reg.call_tool("native_add", {"a": 1e308, "b": 1e308}, RCTX))
    assert overflow.isError and overflow.content == [
        TextContent(text="OSError: [ERANGE] native_add: the sum is out of range")]
    run(reg.stop())
    assert rec.state is PluginState.STOPPED


def test_bad_native_config_is_refused(built: Path) -> None:
    reg = start([NATIVE_HELLO], config={"native_hello": {"prefix": 3}})
    assert reg.get("native_hello").reason == (  # type: ignore[union-attr]
        "plugin native_hello: config key 'prefix' expected string, got integer 3 (from config)")


def compile_so(tmp_path: Path, name: str, source: str) -> Path:
    (tmp_path / f"{name}.c").write_text(textwrap.dedent(source))
    out = tmp_path / f"{name}.so"
    proc = subprocess.run(
        ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-fPIC", "-shared",
         f"-I{HEADER_DIR}", "-o", str(out), str(tmp_path / f"{name}.c")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def native_folder(tmp_path: Path, plugin_id: str, source: str) -> Path:
    folder = tmp_path / plugin_id
    folder.mkdir()
    compile_so(folder, plugin_id, source)
    (folder / "plugin.toml").write_text(
        f'[plugin]\nid = "{plugin_id}"\nversion = "0.1.0"\nabi = 1\nlibrary = "{plugin_id}.so"\n')
    return folder


WRONG_ABI = """
    #include "mcp_edge_plugin.h"
    static const struct mcp_edge_plugin_v1 T = {.abi_version = 2, .id = "wrongabi", .version = "0.1.0"};
    MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void) { return &T; }
"""

FUTURE_SYMBOL = """
    #include <stddef.h>
    __attribute__((visibility("default"))) const void *mcp_edge_plugin_v2(void) { return NULL; }
"""

WRONG_ID = """
    #include "mcp_edge_plugin.h"
    static const struct mcp_edge_plugin_v1 T = {.abi_version = MCP_EDGE_PLUGIN_ABI, .id = "someone_else"};
    MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void) { return &T; }
"""

FAILING_INIT = """
    #include <errno.h>
    #include "mcp_edge_plugin.h"
    static int init(const char *config, void **state) { (void)config; (void)state; return -ENODEV; }
    static const struct mcp_edge_plugin_v1 T = {.abi_version = MCP_EDGE_PLUGIN_ABI, .id = "badinit",
                                                .tools_json = "[]", .init = init};
    MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void) { return &T; }
"""

BLOCKING = r"""
    #define _POSIX_C_SOURCE 200809L
    #include <errno.h>
    #include <stdlib.h>
    #include <string.h>
    #include <time.h>
    #include "mcp_edge_plugin.h"
    static int call(void *st, const char *name, const char *a, size_t n, char **out, size_t *len) {
        (void)st; (void)name; (void)a; (void)n;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        const char *r = "{\"content\":[{\"type\":\"text\",\"text\":\"slept\"}]}";
        *out = malloc(strlen(r) + 1);
        memcpy(*out, r, strlen(r) + 1);
        *len = strlen(r);
        return 0;
    }
    static void release(char *p) { free(p); }
    static const struct mcp_edge_plugin_v1 T = {
        .abi_version = MCP_EDGE_PLUGIN_ABI, .id = "sleeper",
        .tools_json = "[{\"name\":\"nap\",\"inputSchema\":{\"type\":\"object\"},\"x-blocking\":true}]",
        .call_tool = call, .free_result = release};
    MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void) { return &T; }
"""


@needs_cc
def test_wrong_abi_version_refused_naming_both(tmp_path: Path) -> None:
    folder = native_folder(tmp_path, "wrongabi", WRONG_ABI)
    with pytest.raises(AbiMismatchError) as info:
        load_native(read_manifest(folder))
    assert "speaks native ABI 2, this runtime speaks native ABI 1" in str(info.value)
    assert (info.value.plugin_abi, info.value.runtime_abi) == (2, 1)
    reg = start([tmp_path])
    assert "speaks native ABI 2, this runtime speaks native ABI 1" in str(reg.get("wrongabi").reason)  # type: ignore[union-attr]


@needs_cc
def test_other_entry_symbol_refused_naming_both(tmp_path: Path) -> None:
    folder = native_folder(tmp_path, "future", FUTURE_SYMBOL)
    with pytest.raises(AbiMismatchError, match=r"exports mcp_edge_plugin_v2 \(native ABI 2\), this runtime speaks "
                                               r"native ABI 1 \(mcp_edge_plugin_v1\)"):
        load_native(read_manifest(folder))


@needs_cc
def test_wrong_id_and_failing_init(tmp_path: Path) -> None:
    native_folder(tmp_path, "wrongid", WRONG_ID)
    native_folder(tmp_path, "badinit", FAILING_INIT)
    reg = start([tmp_path])
    assert "says its id is 'someone_else', plugin.toml says 'wrongid'" in str(reg.get("wrongid").reason)  # type: ignore[union-attr]
    assert "init returned -19 (No such device)" in str(reg.get("badinit").reason)  # type: ignore[union-attr]


@needs_cc
def test_blocking_tool_runs_in_a_thread(tmp_path: Path) -> None:
    import asyncio
    import threading

    native_folder(tmp_path, "sleeper", BLOCKING)
    reg = start([tmp_path])
    instance = reg.get("sleeper").plugin  # type: ignore[union-attr]
    threads: set[int] = set()
    real = instance.call_raw

    def spy(name: bytes, args: bytes) -> tuple[int, bytes]:
        threads.add(threading.get_ident())
        return real(name, args)  # type: ignore[no-any-return]

    instance.call_raw = spy

    async def four_at_once() -> None:
        results = await asyncio.gather(*(reg.call_tool("nap", {}, RCTX) for _ in range(4)))
        assert all(r.content == [TextContent(text="slept")] for r in results)

    run(four_at_once())
    assert threads and threading.get_ident() not in threads  # in worker threads, never on the loop's


def test_missing_library(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text('[plugin]\nid = "ghost"\nversion = "1"\nabi = 1\nlibrary = "ghost.so"\n')
    reg = start([tmp_path])
    assert "ghost.so does not exist" in str(reg.get("ghost").reason)  # type: ignore[union-attr]


def test_ffi_module_is_current() -> None:
    pytest.importorskip("cffi")
    from mcp_edge.plugin import _gen_ffi

    assert _gen_ffi.MODULE.read_text() == _gen_ffi.generate(), "run python -m mcp_edge.plugin._gen_ffi"


def test_cffi_not_imported_until_a_native_plugin_loads() -> None:
    code = (
        "import sys, asyncio\n"
        "from pathlib import Path\n"
        "from mcp_edge.plugin import Registry\n"
        f"r = Registry([Path({str(ROOT / 'tests/plugin/fixtures')!r})], entry_points=False)\n"
        "asyncio.run(r.start())\n"
        "bad = [m for m in ('cffi', '_cffi_backend', 'pycparser', 'jsonschema', 'pydantic', 'packaging',"
        " 'importlib.metadata') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_result_json_decoding() -> None:
    from mcp_edge.plugin import BlobResourceContents, EmbeddedResource, ImageContent, TextResourceContents
    from mcp_edge.plugin.native import _decode_result

    result = _decode_result(
        b'{"content":[{"type":"text","text":"t"},{"type":"image","data":"AA==","mimeType":"image/png"},'
        b'{"type":"resource","resource":{"uri":"x://a","text":"hi"}},'
        b'{"type":"resource","resource":{"uri":"x://b","blob":"AA==","mimeType":"a/b"}}],"isError":true}'
    )
    assert result.isError
    assert result.content == [
        TextContent(text="t"),
        ImageContent(data="AA==", mimeType="image/png"),
        EmbeddedResource(resource=TextResourceContents(uri="x://a", text="hi")),
        EmbeddedResource(resource=BlobResourceContents(uri="x://b", blob="AA==", mimeType="a/b")),
    ]
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="unknown content type 'video'"):
        _decode_result(b'{"content":[{"type":"video"}]}')
