"""Skips for a missing requirement, which fail instead under CI (``CI=true``).

A suite that skips as a whole because something is not installed, or the
machine lacks a facility (io_uring), passes silently: fine on a laptop, a lie
in CI, where the run must test what it claims to. Under ``CI=true`` (set by
GitHub Actions, GitLab and most CI systems) ``require_or_skip`` fails the test
instead, unless the requirement is named in ``MCP_EDGE_TEST_MAY_SKIP``
(comma-separated, e.g. ``io_uring`` on a runner whose seccomp profile blocks
it), so that a CI configuration says in writing what it does not test.

Capabilities of the CPU (a kernel for an ISA level this CPU lacks) are not
requirements: they stay plain skips, named in the reason.

Tests may read os.environ; the runtime package may not (its settings come from
mcp_edge.board.settings).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

CI_ENV = "CI"
MAY_SKIP_ENV = "MCP_EDGE_TEST_MAY_SKIP"


def under_ci() -> bool:
    """Whether this run is a CI run (``CI=true``, any case, or ``CI=1``)."""
    return os.environ.get(CI_ENV, "").strip().lower() in ("true", "1")


def may_skip(requirement: str) -> bool:
    """Whether ``requirement`` may be missing in this run: always outside CI, in CI only when allowed."""
    allowed = {r.strip() for r in os.environ.get(MAY_SKIP_ENV, "").split(",") if r.strip()}
    return not under_ci() or requirement in allowed


def require_or_skip(requirement: str, reason: str) -> NoReturn:
    """Skip (the whole module, when called at import) because ``requirement`` is missing; under CI=true,
    fail instead unless MCP_EDGE_TEST_MAY_SKIP names it."""
    if not may_skip(requirement):
        pytest.fail(f"{reason} [{CI_ENV}=true: a missing requirement fails in CI; if this runner cannot have "
                    f"{requirement}, say so with {MAY_SKIP_ENV}={requirement}]", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def importorskip(modname: str, requirement: str, reason: str) -> ModuleType:
    """``pytest.importorskip`` that fails under CI=true (see ``require_or_skip``)."""
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        require_or_skip(requirement, f"{reason} ({exc})")
