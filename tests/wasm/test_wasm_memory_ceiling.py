"""The WASM ABI's packed answers are signed: a buffer at 2 GiB or above would read as an error. So no plugin's
memory goes past 2 GiB, whatever its table (a load error) or the box's settings (narrowed, logged) say."""

from __future__ import annotations

import logging

import pytest

from mcp_edge.plugin.wasm import effective


def test_the_box_cannot_lift_memory_past_what_the_abi_addresses(caplog: pytest.LogCaptureFixture) -> None:
    from mcp_edge.board import Settings

    settings = Settings.load(environ={"MCP_EDGE_WASM_MEMORY_MB": "3000", "MCP_EDGE_WASM_MEMORY_MAX_MB": "4000"})
    with caplog.at_level(logging.WARNING, logger="mcp_edge.plugin"):
        assert effective({}, settings, "big").memory_mb == 2048
        assert effective({"memory_mb": 1500}, settings, "small").memory_mb == 1500
    assert any("narrowed to 2048 MiB, the most the WASM ABI can address" in r.getMessage() for r in caplog.records)
