"""The runtime's request metrics on the hot path: one C meter (``mcp_edge.native._metrics``) row per plugin and
tool, resource, prompt or completion, recorded around each call (about 0.1 µs a call); nothing here imports
prometheus-client, which only the exposition (:mod:`mcp_edge.runtime.exposition`) loads, and only when metrics
are on (``Settings.metrics``).

A row is one series: its key is (plugin id, kind, name), where the name comes from the plugin's catalog (a
tool's or prompt's name, a resource's URI or the template a URI matched), so the series are as many as the
catalog's entries, never one per URI a client makes up. Past ``Settings.metrics_max_series`` - 1 keys, every
new key shares the last row, labelled ``(other)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from mcp_edge.native._metrics import Meter

__all__ = ["BUCKETS_S", "OTHER", "Metrics"]

# Upper bounds of the latency histogram's buckets in seconds (then +Inf): from a 50 µs in-process call to a
# minute-long tool (the default tool_timeout_s).
BUCKETS_S: Final = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OTHER: Final = "(other)"


class Metrics:
    """The request meter and the series keys of its rows."""

    __slots__ = ("_keys", "_slots", "meter", "overflowed")

    def __init__(self, max_series: int) -> None:
        if max_series < 2:
            raise ValueError(f"metrics need at least 2 series (one for '{OTHER}'), got {max_series}")
        self.meter = Meter(max_series, [round(b * 1e9) for b in BUCKETS_S])
        self._slots: dict[tuple[str, str, str], int] = {}
        self._keys: list[tuple[str, str, str]] = []
        self.overflowed = False  # a key got the shared (other) row: metrics_max_series is too small

    def slot(self, plugin: str, kind: str, name: str) -> int:
        """The row of (plugin, kind, name): its own while rows are left, else the shared ``(other)`` row."""
        key = (plugin, kind, name)
        found = self._slots.get(key)
        if found is not None:
            return found
        last = self.meter.series - 1
        if len(self._keys) >= last:
            self.overflowed = True
            return last
        slot = len(self._keys)
        self._keys.append(key)
        self._slots[key] = slot
        return slot

    def rows(self) -> Iterator[tuple[tuple[str, str, str], tuple[int, int, int, int, tuple[int, ...]]]]:
        """(key, (calls, errors, refused, sum_ns, buckets)) of every row in use, ``(other)`` last if used."""
        read = self.meter.read
        for slot, key in enumerate(list(self._keys)):
            yield key, read(slot)
        if self.overflowed:
            yield (OTHER, OTHER, OTHER), read(self.meter.series - 1)
