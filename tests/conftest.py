"""Shared pytest set-up: capability markers, the seed of randomized tests, and CI honesty.

A suite skipped because something is missing fails instead under CI=true: use
``require_or_skip`` / ``importorskip`` from tests/ci_honesty.py (importable as
``ci_honesty`` from any test module) for every such skip.
"""

from __future__ import annotations

import os
import random

import pytest
from ci_honesty import MAY_SKIP_ENV, under_ci


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_isa(level): skip unless this CPU runs the ISA level")


def pytest_report_header(config: pytest.Config) -> str:
    if under_ci():
        allowed = os.environ.get(MAY_SKIP_ENV) or "nothing"
        return f"CI=true: a missing requirement fails instead of skipping (allowed to skip: {allowed})"
    return "not CI: a missing requirement (io_uring, interop clients...) skips its suite; CI=true makes it fail"


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_isa"):
        from mcp_edge.native import cpu

        level = mark.args[0]
        if level not in cpu.levels():
            pytest.skip(f"this CPU cannot run ISA level {level} (it runs {', '.join(cpu.levels())})")


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A seeded RNG; the seed is printed, and MCP_EDGE_TEST_SEED replays a run."""
    seed = int(os.environ.get("MCP_EDGE_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{request.node.nodeid}: seed {seed} (replay with MCP_EDGE_TEST_SEED={seed})")
    return random.Random(seed)
