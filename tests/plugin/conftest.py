"""Fixtures of the plugin-system suite: every test gets its own entry-point cache folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mcp_edge.plugin import entrypoints


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Entry-point caches go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("MCP_EDGE_NO_EP_CACHE", raising=False)
    monkeypatch.delenv("MCP_EDGE_PLUGIN_DIRS", raising=False)
    entrypoints.forget()
    yield
    entrypoints.forget()
