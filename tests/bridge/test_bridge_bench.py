"""perf/bench_bridge.py: its names, and the bridge plugin it mounts (a manifest the runtime accepts, naming the
tool exactly as the direct server does, so both impls get the same requests). Nothing here looks at a figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mcp_edge
from mcp_edge.perf.harness import load_bench
from mcp_edge.plugin.manifest import read_manifest

BENCH = Path(mcp_edge.__file__).resolve().parents[1] / "perf" / "bench_bridge.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_bridge.py is not in this checkout")


def test_names() -> None:
    bench = load_bench("bridge", BENCH)
    assert bench.NAME == "bridge"
    assert bench.CASES == ("stdio-seq", "stdio-pipelined", "stdio-seq-2026", "stdio-pipelined-2026")


def test_the_mounted_plugin_keeps_the_tool_name(tmp_path: Path) -> None:
    bench = load_bench("bridge", BENCH)
    script = BENCH.parent / "peers" / "mcp_sdk_echo.py"
    bench._plugin(tmp_path / "sdk", sys.executable, script)
    manifest = read_manifest(tmp_path / "sdk")
    assert manifest.kind == "bridge" and manifest.bridge is not None
    assert manifest.bridge["command"] == [sys.executable, str(script), "--stdio"]
    assert manifest.bridge["prefix"] == ""
