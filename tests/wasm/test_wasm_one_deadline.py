"""A call has one deadline for all of it: making its instance (the module's mcp_init, with any host function
that waits in it) spends from the same time as the tool's code, so a slow mcp_init cannot double a call's
wall-clock limit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from wasm_helpers import build_c, one_tool_module, registry_of, started, write_wasm_plugin

from mcp_edge.plugin import NullRequestContext

SOURCE = one_tool_module("ok") + r"""
ME_EXPORT("mcp_init") int32_t mcp_init(const char *cfg, int32_t len) {
    (void)cfg; (void)len;
    me_log(1, "starting", 8);  /* the host waits for the client's log notification to go out */
    return 0;
}
ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *a, int32_t n) {
    (void)name; (void)name_len; (void)a; (void)n;
    return me_text_result("fine", 4, 0);
}
"""


class _StuckLog(NullRequestContext):
    """A client whose log notifications never go out: the host waits for each until the call's time is up."""

    async def log(self, level: Any, data: Any, logger: str | None = None) -> None:
        await asyncio.Event().wait()


def test_mcp_init_spends_from_the_calls_deadline(tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "slowinit", build_c(SOURCE, tmp_path / "slowinit.wasm"), """
        deadline_ms = 300
        host_functions = ["log"]
    """)
    reg = registry_of([folder], tmp_path)

    async def main() -> None:
        async with started(reg, "slowinit"):
            res = await reg.call_tool("ok", {}, _StuckLog())
            assert res.isError and "tool ok stopped: its deadline of 300 ms passed" in res.content[0].text, res
            # a client whose notifications go out: the same plugin answers (the stuck instance was not kept)
            res = await reg.call_tool("ok", {}, NullRequestContext())
            assert (res.isError, res.content[0].text) == (False, "fine"), res

    asyncio.run(main())
