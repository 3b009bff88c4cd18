"""A call's log lines and progress notifications stop at wasm_notes_per_call (the rest dropped, one warning
says so): a module logging in a loop until its deadline cannot flood the runtime's log or its client. The
call itself answers, and the next call has its own allowance."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from wasm_helpers import build_c, one_tool_module, registry_of, started, write_wasm_plugin

from mcp_edge.plugin import NullRequestContext

SOURCE = one_tool_module("chatty") + r"""
ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *a, int32_t n) {
    (void)name; (void)name_len; (void)a; (void)n;
    for (int i = 0; i < 20; i++) me_log(1, "line", 4);
    for (int i = 0; i < 20; i++) me_progress(i, 20, "step", 4);
    return me_text_result("done", 4, 0);
}
"""


class _Recording(NullRequestContext):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def log(self, level: Any, data: Any, logger: str | None = None) -> None:
        self.seen.append("log")

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.seen.append("progress")


def test_notes_stop_at_the_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "chatty", build_c(SOURCE, tmp_path / "chatty.wasm"),
                               'host_functions = ["log", "progress"]\n')
    reg = registry_of([folder], tmp_path, MCP_EDGE_WASM_NOTES_PER_CALL="25")
    first, second = _Recording(), _Recording()

    async def main() -> None:
        async with started(reg, "chatty"):
            for rctx in (first, second):
                res = await reg.call_tool("chatty", {}, rctx)
                assert (res.isError, res.content[0].text) == (False, "done"), res

    with caplog.at_level(logging.WARNING, logger="mcp_edge.plugin.chatty"):
        asyncio.run(main())
    assert first.seen == ["log"] * 20 + ["progress"] * 5
    assert second.seen == first.seen
    warned = [r for r in caplog.records if "wasm_notes_per_call" in r.getMessage()]
    assert len(warned) == 2, [r.getMessage() for r in caplog.records]  # once per call
