"""Perf suite harness behind ``mcp-edge perf``; the benchmarks themselves live in ``perf/bench_*.py``.

See :mod:`mcp_edge.perf.harness` for the bench protocol and the result format,
:mod:`mcp_edge.perf.isolation` for peers in child processes.
"""

from mcp_edge.perf.harness import (
    BENCH_DIR_ENV,
    MIN_SAMPLES,
    BenchContext,
    BenchError,
    Machine,
    Note,
    PerfResult,
    ResultRow,
    Row,
    discover,
    find_bench_dir,
    machine_info,
    run,
    select,
    write_json,
)
from mcp_edge.perf.isolation import Child, PeerFailed, PeerSkipped
from mcp_edge.perf.report import format_table
from mcp_edge.perf.timing import Call, Timer, Timing, compare, measure

__all__ = [
    "BENCH_DIR_ENV",
    "MIN_SAMPLES",
    "BenchContext",
    "BenchError",
    "Call",
    "Child",
    "Machine",
    "Note",
    "PeerFailed",
    "PeerSkipped",
    "PerfResult",
    "ResultRow",
    "Row",
    "Timer",
    "Timing",
    "compare",
    "discover",
    "find_bench_dir",
    "format_table",
    "machine_info",
    "measure",
    "run",
    "select",
    "write_json",
]
