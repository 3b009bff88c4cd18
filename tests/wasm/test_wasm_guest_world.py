"""What a module sees of the host besides its grants (no environment, no arguments, an empty stdin, a stdout
and stderr that go nowhere), and what the host makes of results that are not CallToolResults (a clear tool
error naming the plugin and the tool, never a traceback; the plugin keeps serving)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from wasm_helpers import answer, build_c, registry_of, started, write_wasm_plugin

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mcp_edge_wasm.h"
MCP_EDGE_WASM_PLUGIN()
extern char **environ;

#define T(n) "{\"name\":\"" n "\",\"inputSchema\":{\"type\":\"object\"}}"
static const char CATALOG[] = "{\"tools\":[" T("world") "," T("utf8") "," T("list") "," T("number") ","
    T("kind") "," T("resource") "," T("text") "," T("garbage") "," T("ok") "]}";
ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {
    me_buf b = {0};
    me_buf_put(&b, CATALOG, sizeof CATALOG - 1);
    return me_buf_answer(&b);
}

static int64_t raw(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    return me_pack(p, n);
}
#define RAW(s) raw(s, sizeof s - 1)
#define IS(s) (name_len == (int32_t)(sizeof s - 1) && !memcmp(name, s, sizeof s - 1))

ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *a, int32_t n) {
    (void)a; (void)n;
    if (IS("world")) {
        int envs = 0;
        for (char **e = environ; e && *e; e++) envs++;
        printf("GUEST-STDOUT-MARK\n");
        fflush(stdout);
        fprintf(stderr, "GUEST-STDERR-MARK\n");
        int c = getchar();
        me_buf b = {0};
        me_buf_puts(&b, "env=");
        me_buf_uint(&b, (uint64_t)envs);
        me_buf_puts(&b, c == EOF ? " stdin=eof" : " stdin=data");
        int64_t r = me_text_result(b.data, b.len, 0);
        free(b.data);
        return r;
    }
    if (IS("utf8")) return RAW("{\"content\":[{\"type\":\"text\",\"text\":\"\xff\xfe\"}]}");
    if (IS("list")) return RAW("[]");
    if (IS("number")) return RAW("{\"content\":[1]}");
    if (IS("kind")) return RAW("{\"content\":[{\"type\":\"nope\"}]}");
    if (IS("resource")) return RAW("{\"content\":[{\"type\":\"resource\",\"resource\":5}]}");
    if (IS("text")) return RAW("{\"content\":[{\"type\":\"text\",\"text\":7}]}");
    if (IS("garbage")) return RAW("not json at all");
    if (IS("ok")) return me_text_result("fine", 4, 0);
    return me_error("no such tool");
}
"""


def test_the_guest_world_and_results_that_are_not_results(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    module = build_c(SOURCE, tmp_path / "world.wasm")
    folder = write_wasm_plugin(tmp_path / "plugins", "world", module)
    reg = registry_of([folder], tmp_path)

    async def call(tool: str) -> tuple[bool, str]:
        return await answer(reg, tool, {})

    async def main() -> None:
        async with started(reg, "world"):
            assert await call("world") == (False, "env=0 stdin=eof")
            for tool in ("utf8", "list", "number", "kind", "resource", "text", "garbage"):
                failed, text = await call(tool)
                assert failed and text.startswith(f"PluginError: wasm plugin world returned an invalid result for "
                                                  f"{tool}: "), (tool, text)
                assert await call("ok") == (False, "fine")

    asyncio.run(main())
    out, err = capfd.readouterr()
    assert "GUEST-STDOUT-MARK" not in out + err and "GUEST-STDERR-MARK" not in out + err
