"""A module's progress values reach the client as JSON numbers or not at all: NaN or infinity as the progress is
dropped (JSON has neither; it would go out as null), as the total it becomes 'unknown'."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from wasm_helpers import build_c, one_tool_module, registry_of, started, write_wasm_plugin

from mcp_edge.plugin import NullRequestContext

SOURCE = one_tool_module("steps") + r"""
ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *a, int32_t n) {
    (void)name; (void)name_len; (void)a; (void)n;
    me_progress(__builtin_nan(""), 2, "nan", 3);
    me_progress(__builtin_inf(), 2, "inf", 3);
    me_progress(1, __builtin_nan(""), "nan total", 9);
    me_progress(1.5, -__builtin_inf(), "minus inf total", 15);
    me_progress(2, 2, "done", 4);
    return me_text_result("ok", 2, 0);
}
"""


class _Recording(NullRequestContext):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Any, Any, Any]] = []

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.seen.append((progress, total, message))


def test_non_finite_progress_values(tmp_path: Path) -> None:
    folder = write_wasm_plugin(tmp_path / "plugins", "steps", build_c(SOURCE, tmp_path / "steps.wasm"),
                               'host_functions = ["progress"]\n')
    reg = registry_of([folder], tmp_path)
    rctx = _Recording()

    async def main() -> None:
        async with started(reg, "steps"):
            res = await reg.call_tool("steps", {}, rctx)
            assert not res.isError and res.content[0].text == "ok", res

    asyncio.run(main())
    assert rctx.seen == [(1.0, None, "nan total"), (1.5, None, "minus inf total"), (2.0, 2.0, "done")]
