"""Fuzz tests: hypothesis profiles, the seed, and the path to the shared oracles in tools/fuzz/harness.py.

``HYPOTHESIS_PROFILE=long`` (``make fuzz``) runs many more examples than the default profile of ``make test``.
The seed is printed (with ``-s``, and with a failure); ``MCP_EDGE_TEST_SEED=N`` or ``--hypothesis-seed=N``
replays a run. Failing inputs are not kept in a hypothesis database: save them under ``tests/data/fuzz/<target>/``
where ``test_fuzz_regressions.py`` replays them.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, core, settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "fuzz"))  # harness.py: the oracles shared with the atheris targets
sys.path.insert(0, str(ROOT / "tests" / "transport"))  # transport_helpers.py: a real server in a subprocess

from stdio_server import StdioServer  # noqa: E402 - needs the paths above

settings.register_profile(
    "default", max_examples=60, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=3000, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "default")

# One seed for the whole run, printed, so that a failure can be replayed (hypothesis's own option wins).
if core.global_force_seed is None:  # type: ignore[attr-defined]
    core.global_force_seed = int(  # type: ignore[attr-defined]
        os.environ.get("MCP_EDGE_TEST_SEED") or random.SystemRandom().randrange(2**32))
SEED = core.global_force_seed  # type: ignore[attr-defined]
EXAMPLES = settings().max_examples


def examples(share: float) -> int:
    """``share`` of the profile's example count (at least 5): slow properties run fewer examples."""
    return max(5, int(EXAMPLES * share))


@pytest.fixture(autouse=True)
def _print_seed(request: pytest.FixtureRequest) -> None:
    print(f"{request.node.nodeid}: hypothesis seed {SEED} (replay with MCP_EDGE_TEST_SEED={SEED}), "
          f"profile {os.environ.get('HYPOTHESIS_PROFILE') or 'default'}")


@pytest.fixture(scope="module")
def stdio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StdioServer]:
    """One ``serve --stdio`` process for a module's examples (respawned when an input killed it)."""
    srv = StdioServer(tmp_path_factory.mktemp("stdio-fuzz"))
    try:
        yield srv
    finally:
        srv.close()
