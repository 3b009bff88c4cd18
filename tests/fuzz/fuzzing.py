"""Set-up shared by the fuzz tests: hypothesis profiles, the seed, paths (imported by conftest.py first).

``HYPOTHESIS_PROFILE=long`` (``make fuzz``) runs many more examples than the default profile of ``make test``.
One seed serves the whole run and is printed; ``MCP_EDGE_TEST_SEED=N`` or ``--hypothesis-seed=N`` replays it.
Failing inputs are not kept in a hypothesis database: save them under ``tests/data/fuzz/<target>/`` where
``test_fuzz_regressions.py`` replays them.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from hypothesis import HealthCheck, core, settings

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "tools" / "fuzz", ROOT / "tests" / "transport"):  # harness.py; transport_helpers.py
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

for name, count in (("default", 60), ("long", 3000)):
    settings.register_profile(
        name, max_examples=count, deadline=None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or "default"
settings.load_profile(PROFILE)

if core.global_force_seed is None:  # type: ignore[attr-defined]  # --hypothesis-seed wins
    core.global_force_seed = int(  # type: ignore[attr-defined]
        os.environ.get("MCP_EDGE_TEST_SEED") or random.SystemRandom().randrange(2**32))
SEED: int = core.global_force_seed  # type: ignore[attr-defined]

FUZZ_SUMMARY: list[str] = []  # the executions the atheris targets reached, shown at the end of the run


def examples(share: float) -> int:
    """``share`` of the profile's example count (at least 5): slow properties run fewer examples."""
    return max(5, int(settings().max_examples * share))
