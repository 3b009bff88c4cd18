"""The runtime's request metrics: series keys and the (other) row, what ``guarded`` counts for each outcome of a
call (ran, failed, error result, refused, cancelled), the exposition's text format, and metrics on without
prometheus-client."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError
from mcp_edge.runtime.metrics import BUCKETS_S, OTHER, Metrics
from mcp_edge.runtime.resilience import BulkheadFull

PLUGINS = Path(__file__).resolve().parents[1] / "transport" / "metrics_plugins"


def test_each_key_has_its_row_until_only_the_other_row_is_left() -> None:
    m = Metrics(3)
    a, b = m.slot("p", "tool", "a"), m.slot("p", "tool", "b")
    assert (a, b) == (0, 1) and m.slot("p", "tool", "a") == a
    assert not m.overflowed
    assert m.slot("p", "tool", "c") == 2 == m.slot("q", "prompt", "d")  # both share (other)
    assert m.overflowed
    m.meter.record(2, 10, False)
    keys = [key for key, _ in m.rows()]
    assert keys == [("p", "tool", "a"), ("p", "tool", "b"), (OTHER, OTHER, OTHER)]


def test_too_few_series_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 series"):
        Metrics(1)


def test_the_buckets_ascend() -> None:
    assert list(BUCKETS_S) == sorted(set(BUCKETS_S))


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings.load(data_dir=tmp_path, plugin_dirs=(PLUGINS,), entry_points=False, metrics=True,
                         reload_watch=False, **kw)


def _row(metrics: Metrics, name: str) -> tuple[int, int, int, int, tuple[int, ...]]:
    for key, row in metrics.rows():
        if key == ("meter", "tool", name):
            return row
    raise AssertionError(f"no row for {name}: {[k for k, _ in metrics.rows()]}")


@pytest.mark.parametrize("mode", ["inproc", "process"])
def test_guarded_counts_each_outcome(tmp_path: Path, mode: str) -> None:
    from mcp_edge.server import Server

    async def main() -> None:
        running = await Server.configure(_settings(tmp_path, plugin_isolation={"meter": mode},
                                                   plugin_concurrency=1, plugin_queue=0)).start()
        try:
            metrics = running.registry.metrics
            assert metrics is not None
            for _ in range(3):
                result = await running.call_tool("ok", {"text": "x"})
            assert not getattr(result, "isError", False)
            for _ in range(2):
                await running.call_tool("fail", {})  # an error result, not an exception
            hold = asyncio.ensure_future(running.call_tool("hold", {"seconds": 30}))
            while running.registry._host("meter").inflight == 0:
                await asyncio.sleep(0.01)
            with pytest.raises(BulkheadFull):
                await running.call_tool("ok", {"text": "refused"})
            hold.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hold
            ok, fail, held = _row(metrics, "ok"), _row(metrics, "fail"), _row(metrics, "hold")
            assert ok[:3] == (3, 0, 1) and sum(ok[4]) == 3 and ok[3] > 0
            assert fail[:3] == (2, 2, 0) and sum(fail[4]) == 2
            assert held[:3] == (1, 0, 0)  # cancelled by its client: not the plugin failing
        finally:
            await running.stop()

    asyncio.run(main())


def test_the_exposition_reads_the_meter_and_the_plugins(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from mcp_edge.runtime.exposition import Exposition
    from mcp_edge.server import Server

    async def main() -> dict[str, Any]:
        running = await Server.configure(_settings(tmp_path, plugin_isolation={"meter": "process"})).start()
        try:
            await running.call_tool("ok", {"text": "x"})
            await running.call_tool("fail", {})
            from mcp_edge.io.engines import get_engine

            engine = get_engine()  # the runtime's engine, as a plugin's file I/O opens it
            fd = await engine.openat(tmp_path / "io", os.O_RDWR | os.O_CREAT)
            try:
                await engine.write(fd, b"y" * 3000, 0)
            finally:
                await engine.close_fd(fd)
            assert running.registry.metrics is not None
            text = Exposition(running.registry, running.registry.metrics).render().decode()
        finally:
            await running.stop()
        return {f.name: f for f in text_string_to_metric_families(text)}

    fams = asyncio.run(main())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    ok = (("kind", "tool"), ("name", "ok"), ("plugin", "meter"))
    fail = (("kind", "tool"), ("name", "fail"), ("plugin", "meter"))
    assert samples[("mcp_edge_calls_total", ok)] == 1 and samples[("mcp_edge_call_errors_total", ok)] == 0
    assert samples[("mcp_edge_call_errors_total", fail)] == 1
    assert samples[("mcp_edge_call_duration_seconds_count", fail)] == 1
    assert samples[("mcp_edge_call_duration_seconds_bucket", tuple(sorted((*fail, ("le", "+Inf")))))] == 1
    assert samples[("mcp_edge_plugin_state", (("plugin", "meter"), ("state", "active")))] == 1
    assert samples[("mcp_edge_plugin_state", (("plugin", "meter"), ("state", "failed")))] == 0
    assert samples[("mcp_edge_plugin_breaker_state", (("plugin", "meter"), ("state", "closed")))] == 1
    assert samples[("mcp_edge_ring_published_total", (("plugin", "meter"),))] >= 2  # (a worker: its ring)
    assert any(name == "mcp_edge_slab_blocks" for name, _ in samples)
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert samples[("mcp_edge_metrics_series_overflow", ())] == 0
    engines = [labels for name, labels in samples if name == "mcp_edge_io_ops_total"]
    assert len(engines) == 1
    engine = engines[0][0][1]
    assert samples[("mcp_edge_io_bytes_total", (("direction", "written"), ("engine", engine)))] >= 3000
    assert samples[("mcp_edge_io_ops_total", (("engine", engine),))] >= 3


def test_metrics_on_without_prometheus_client_is_a_clear_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_edge import server

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "prometheus_client" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs prometheus_client.*mcp-edge\[metrics\]"):
        server._metrics(_settings(tmp_path))
