"""Pointers and lengths a module hands the host are its own to get wrong, never the host's: a span outside its
memory (or wrapping past 2 GiB as a negative i32) is -EFAULT, a negative length -EINVAL, a buffer its mcp_alloc
answers outside its memory fails that call with the reason, and nothing of it surfaces as a Python traceback or
in another call. Through both call paths (direct and public)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from wasm_helpers import answer, build_c, registry_of, started, write_wasm_plugin

from mcp_edge.plugin.wasm import runtime

SOURCE = r"""
#include <stdio.h>
#include "mcp_edge_wasm.h"
MCP_EDGE_WASM_PLUGIN()

#define T(n) "{\"name\":\"" n "\",\"inputSchema\":{\"type\":\"object\"}}"
static const char CATALOG[] = "{\"tools\":[" T("oob") "," T("wrap") "," T("negative") "," T("huge") ","
    T("write_oob") "," T("status_oob") "," T("log_oob") "," T("ok") "]}";

ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {
    me_buf b = {0};
    me_buf_put(&b, CATALOG, sizeof CATALOG - 1);
    return me_buf_answer(&b);
}

static int64_t number(int64_t rc) {
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", (long long)rc);
    return me_text_result(text, (size_t)n, 0);
}

#define IS(s) (name_len == (int32_t)(sizeof s - 1) && !memcmp(name, s, sizeof s - 1))

ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *args, int32_t args_len) {
    (void)args; (void)args_len;
    const char *far = (const char *)(uintptr_t)0x7ffffff0u;   /* far past its memory */
    const char *wrap = (const char *)(uintptr_t)0xfffffff0u;  /* a negative i32: -16 */
    if (IS("oob")) return number(me_data_read(far, 8));
    if (IS("wrap")) return number(me_data_read(wrap, 8));
    if (IS("negative")) return number(me_data_read("x", -1));
    if (IS("huge")) return number(me_data_read("x", 0x7fffffff));
    if (IS("write_oob")) return number(me_data_write("x", 1, far, 1 << 20, 0));
    if (IS("status_oob")) return number(me_http_get("http://127.0.0.1:9/", 19, (int32_t *)(uintptr_t)0xfffffffeu));
    if (IS("log_oob")) { me_log(1, far, 100); return me_text_result("logged", 6, 0); }
    if (IS("ok")) return me_text_result("fine", 4, 0);
    return me_error("no such tool");
}
"""

BAD_ALLOC = r"""
#include "mcp_edge_wasm.h"
ME_EXPORT("mcp_abi_version") int32_t mcp_abi_version(void) { return MCP_EDGE_WASM_ABI; }
ME_EXPORT("mcp_alloc") int32_t mcp_alloc(int32_t len) { (void)len; return (int32_t)0x7ffffff0; }  /* past it */
ME_EXPORT("mcp_free") void mcp_free(int32_t ptr) { (void)ptr; }
static const char CATALOG[] = "{\"tools\":[{\"name\":\"t\",\"inputSchema\":{\"type\":\"object\"}}]}";
ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) { return me_pack(CATALOG, sizeof CATALOG - 1); }
ME_EXPORT("mcp_call") int64_t mcp_call(int32_t a, int32_t b, int32_t c, int32_t d) {
    (void)a; (void)b; (void)c; (void)d; return me_pack(CATALOG, 0); }
"""

# wasi-libc's errno numbers
EFAULT, EINVAL, ENAMETOOLONG = 21, 28, 37


def _calls(folder: Path, tmp_path: Path, tools: list[str]) -> list[tuple[bool, str]]:
    reg = registry_of([folder], tmp_path)

    async def main() -> list[tuple[bool, str]]:
        async with started(reg, folder.name):
            out = []
            for tool in tools:
                out.append(await answer(reg, tool))
            return out

    return asyncio.run(main())


@pytest.fixture(params=["direct", "public"])
def path(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "public":
        monkeypatch.setattr(runtime, "_DIRECT_MAJOR", -2)
    return str(request.param)


def test_spans_outside_the_module_memory_are_efault(path: str, tmp_path: Path) -> None:
    module = build_c(SOURCE, tmp_path / "pointers.wasm")
    folder = write_wasm_plugin(tmp_path / "plugins", "pointers", module, """
        host_functions = ["log", "data_read", "data_write", "http_get"]
        http_hosts = ["127.0.0.1:9"]
    """)
    tools = ["oob", "wrap", "negative", "huge", "write_oob", "status_oob", "log_oob", "ok"]
    out = _calls(folder, tmp_path, tools)
    assert dict(zip(tools, out, strict=True)) == {
        "oob": (False, str(-EFAULT)),
        "wrap": (False, str(-EFAULT)),  # not the last 16 bytes of its memory
        "negative": (False, str(-EINVAL)),
        "huge": (False, str(-ENAMETOOLONG)),
        "write_oob": (False, str(-EFAULT)),
        "status_oob": (False, str(-EFAULT)),  # checked before any request goes out
        "log_oob": (False, "logged"),
        "ok": (False, "fine"),
    }


def test_an_alloc_answering_outside_its_memory_fails_the_call_with_the_reason(path: str, tmp_path: Path) -> None:
    module = build_c(BAD_ALLOC, tmp_path / "badalloc.wasm")
    folder = write_wasm_plugin(tmp_path / "plugins", "badalloc", module)
    out = _calls(folder, tmp_path, ["t", "t"])
    for failed, text in out:
        assert failed and "its mcp_alloc answered a buffer outside its memory (0x7ffffff0" in text, text


TRAPPING_ALLOC = r"""
#include "mcp_edge_wasm.h"
static int trap_next;
ME_EXPORT("mcp_abi_version") int32_t mcp_abi_version(void) { return MCP_EDGE_WASM_ABI; }
ME_EXPORT("mcp_alloc") int32_t mcp_alloc(int32_t len) {
    if (trap_next) __builtin_trap();
    return (int32_t)(uintptr_t)malloc(len > 0 ? (size_t)len : 1);
}
ME_EXPORT("mcp_free") void mcp_free(int32_t ptr) { free((void *)(uintptr_t)ptr); }
static const char CATALOG[] = "{\"tools\":[{\"name\":\"read\",\"inputSchema\":{\"type\":\"object\"}},"
    "{\"name\":\"ok\",\"inputSchema\":{\"type\":\"object\"}}]}";
ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {
    me_buf b = {0};
    me_buf_put(&b, CATALOG, sizeof CATALOG - 1);
    return me_buf_answer(&b);
}
ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *a, int32_t n) {
    (void)name; (void)a; (void)n;
    if (name_len == 2) return me_text_result("fine", 4, 0);
    trap_next = 1;  /* the host's data_read hands the file over through mcp_alloc, which now traps */
    int64_t got = me_data_read("f", 1);
    trap_next = 0;
    return me_text_result(got < 0 ? "refused" : "read", got < 0 ? 7 : 4, 0);
}
"""


def test_a_trap_inside_a_host_function_fails_that_call_only(path: str, tmp_path: Path) -> None:
    module = build_c(TRAPPING_ALLOC, tmp_path / "trapalloc.wasm")
    folder = write_wasm_plugin(tmp_path / "plugins", "trapalloc", module, 'host_functions = ["data_read"]\n')
    data = tmp_path / "data" / "plugin-data" / "trapalloc"
    data.mkdir(parents=True)
    (data / "f").write_text("content")
    out = _calls(folder, tmp_path, ["read", "ok", "read", "ok"])
    for failed, text in out[::2]:
        assert failed and "tool read host function data_read failed: " in text, text
    assert out[1::2] == [(False, "fine")] * 2
