"""The runtime's figures in the Prometheus text format, with prometheus-client (imported by this module only,
and this module only when ``Settings.metrics`` is on).

One custom collector reads everything at scrape time, so the hot path pays nothing for the exposition: the
request meter's rows (:mod:`mcp_edge.runtime.metrics`), each plugin's state, restarts, calls in flight and
breaker state, each worker's ring pair (descriptors unread, slab blocks in use per size class of the runtime's
arena for that worker) and the I/O engine's counters when one is open; prometheus-client's process collector
adds RSS, open fds and CPU time.

Families (the ``_total``, ``_bucket``, ``_sum`` and ``_count`` suffixes are the text format's):

- ``mcp_edge_calls_total{plugin,kind,name}``: calls that ran (kind: tool, resource, prompt, completion);
- ``mcp_edge_call_errors_total{plugin,kind,name}``: of those, failed or answered with an error result;
- ``mcp_edge_calls_refused_total{plugin,kind,name}``: refused before they ran (breaker, bulkhead, memory);
- ``mcp_edge_call_duration_seconds{plugin,kind,name}``: histogram of the calls that ran;
- ``mcp_edge_plugin_state{plugin,state}``: 1 for the plugin's state; ``mcp_edge_plugin_restarts_total``,
  ``mcp_edge_plugin_reloads_total``, ``mcp_edge_plugin_inflight``; ``mcp_edge_plugin_breaker_state{plugin,
  state}``: 1 for the breaker's state (closed, open, half_open);
- ``mcp_edge_ring_unread{plugin}``: call descriptors the worker has not read yet;
  ``mcp_edge_ring_published_total{plugin}``; ``mcp_edge_slab_in_use{plugin,size}`` and
  ``mcp_edge_slab_blocks{plugin,size}``: blocks of each size class in use and in all, in the arena the runtime
  sends to that worker through;
- ``mcp_edge_io_pending{engine}``, ``mcp_edge_io_ops_total{engine}``, ``mcp_edge_io_bytes_total{engine,
  direction}`` (read, written) and ``mcp_edge_io_events_total{engine,event}`` (io_uring_enter calls,
  wake-ups, page-cache hits): the I/O engine the runtime opened, if it opened one;
- ``mcp_edge_metrics_series_overflow``: 1 when ``metrics_max_series`` is too small and series share
  ``(other)``;
- ``process_*`` from prometheus-client (RSS, virtual memory, open and max fds, CPU seconds, start time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from mcp_edge.atomic import replace_file
from mcp_edge.plugin.lifecycle import PluginState
from mcp_edge.runtime.metrics import BUCKETS_S

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.plugin.registry import Registry
    from mcp_edge.runtime.metrics import Metrics

__all__ = ["CONTENT_TYPE", "Exposition", "RuntimeCollector", "textfile_path"]

log = logging.getLogger("mcp_edge.metrics")

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_LABELS: Final = ["plugin", "kind", "name"]
_BOUNDS: Final = [repr(float(b)) for b in BUCKETS_S] + ["+Inf"]  # the "le" labels
_PLUGIN_STATES: Final = tuple(s.value for s in PluginState)
_BREAKER_STATES: Final = ("closed", "open", "half_open")


class RuntimeCollector(Collector):
    """Reads the meter, the plugin registry, the workers' rings and the I/O engine at each scrape."""

    def __init__(self, registry: Registry, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._calls()
        yield from self._plugins()
        yield from self._rings()
        yield from self._io()

    def _calls(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("mcp_edge_calls", "Plugin calls that ran, by plugin and tool, resource, "
                                    "prompt or completion.", labels=_LABELS)
        errors = CounterMetricFamily("mcp_edge_call_errors", "Plugin calls that failed or answered an error "
                                     "result.", labels=_LABELS)
        refused = CounterMetricFamily("mcp_edge_calls_refused", "Plugin calls refused before they ran (breaker "
                                      "open, bulkhead full, memory pressure).", labels=_LABELS)
        took = HistogramMetricFamily("mcp_edge_call_duration_seconds", "How long plugin calls ran.", labels=_LABELS)
        for key, (n, failed, refusals, sum_ns, buckets) in self.metrics.rows():
            labels = list(key)
            calls.add_metric(labels, n)
            errors.add_metric(labels, failed)
            refused.add_metric(labels, refusals)
            running, cumulative = 0, []
            for bound, count in zip(_BOUNDS, buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            took.add_metric(labels, cumulative, sum_ns / 1e9)
        overflow = GaugeMetricFamily("mcp_edge_metrics_series_overflow", "1 when series share the '(other)' "
                                     "series (metrics_max_series is smaller than the catalogs).")
        overflow.add_metric([], 1 if self.metrics.overflowed else 0)
        yield from (calls, errors, refused, took, overflow)

    def _plugins(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("mcp_edge_plugin_state", "1 for each plugin's lifecycle state.",
                                  labels=["plugin", "state"])
        restarts = CounterMetricFamily("mcp_edge_plugin_restarts", "Worker restarts of each plugin.",
                                       labels=["plugin"])
        reloads = CounterMetricFamily("mcp_edge_plugin_reloads", "Hot reloads of each plugin.", labels=["plugin"])
        inflight = GaugeMetricFamily("mcp_edge_plugin_inflight", "Calls running in each plugin now.",
                                     labels=["plugin"])
        breaker = GaugeMetricFamily("mcp_edge_plugin_breaker_state", "1 for the state of each plugin's circuit "
                                    "breaker.", labels=["plugin", "state"])
        for row in self.registry.status():
            pid = str(row["id"])
            for name in _PLUGIN_STATES:
                state.add_metric([pid, name], 1 if row.get("state") == name else 0)
            restarts.add_metric([pid], int(row.get("restarts") or 0))
            reloads.add_metric([pid], int(row.get("reloads") or 0))
            br = row.get("breaker")
            if br is not None:
                for name in _BREAKER_STATES:
                    breaker.add_metric([pid, name], 1 if str(br).replace("-", "_") == name else 0)
        for rec in self.registry.records:
            host = rec.host
            if host is not None:
                inflight.add_metric([rec.id], getattr(host, "inflight", 0))
        yield from (state, restarts, reloads, inflight, breaker)

    def _rings(self) -> Iterator[Metric]:
        unread = GaugeMetricFamily("mcp_edge_ring_unread", "Descriptors sent to a worker not read by it yet.",
                                   labels=["plugin"])
        published = CounterMetricFamily("mcp_edge_ring_published", "Descriptors sent to a worker.",
                                        labels=["plugin"])
        in_use = GaugeMetricFamily("mcp_edge_slab_in_use", "Slab blocks in use, per size class of the arena the "
                                   "runtime sends to a worker through.", labels=["plugin", "size"])
        blocks = GaugeMetricFamily("mcp_edge_slab_blocks", "Slab blocks of each size class of that arena.",
                                   labels=["plugin", "size"])
        for rec in self.registry.records:
            stats_of = getattr(rec.host, "ring_stats", None)
            stats = stats_of() if stats_of is not None else None
            if not stats:
                continue
            unread.add_metric([rec.id], stats.get("unread") or 0)
            published.add_metric([rec.id], stats.get("published") or 0)
            for cls in (stats.get("arena") or {}).get("classes", ()):
                in_use.add_metric([rec.id, str(cls["size"])], cls["in_use"])
                blocks.add_metric([rec.id, str(cls["size"])], cls["count"])
        yield from (unread, published, in_use, blocks)

    def _io(self) -> Iterator[Metric]:
        from mcp_edge.io import engines

        pending = GaugeMetricFamily("mcp_edge_io_pending", "I/O operations handed to the engine and not done.",
                                    labels=["engine"])
        ops = CounterMetricFamily("mcp_edge_io_ops", "I/O operations the engine completed.", labels=["engine"])
        moved = CounterMetricFamily("mcp_edge_io_bytes", "Bytes the engine's reads and writes moved.",
                                    labels=["engine", "direction"])
        events = CounterMetricFamily("mcp_edge_io_events", "The engine's own counters (io_uring_enter calls, "
                                     "wake-ups, page-cache hits and misses of inline reads, polls).",
                                     labels=["engine", "event"])
        engine = engines._default  # the one open, if any: a scrape never opens one
        if engine is not None and not engine.closed:
            name = engine.name
            counters = engine.counters()
            pending.add_metric([name], engine.pending)
            ops.add_metric([name], counters.pop("ops", 0))
            moved.add_metric([name, "read"], counters.pop("read_bytes", 0))
            moved.add_metric([name, "written"], counters.pop("written_bytes", 0))
            for event in sorted(counters):
                events.add_metric([name, event], counters[event])
        yield from (pending, ops, moved, events)


class Exposition:
    """The collector registry of one running server: the runtime's collector and the process collector."""

    def __init__(self, registry: Registry, metrics: Metrics) -> None:
        self.collectors = CollectorRegistry(auto_describe=False)
        self.collectors.register(RuntimeCollector(registry, metrics))
        ProcessCollector(registry=self.collectors)

    def render(self) -> bytes:
        """The text format, now."""
        return generate_latest(self.collectors)

    def write(self, path: Path) -> None:
        """Replace ``path`` with the text format, atomically (a temporary file beside it, then a rename)."""
        replace_file(path, self.render())


def textfile_path(settings: Settings) -> Path:
    """Where stdio and unix-socket serving write the metrics: ``metrics_textfile``, else under the data dir."""
    if settings.metrics_textfile:
        return Path(settings.metrics_textfile).expanduser()
    return Path(settings.data_dir) / "metrics" / "mcp-edge.prom"
