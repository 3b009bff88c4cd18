"""Fixtures of the built-in plugins' suite: each I/O engine, and folders on the work tree's filesystem."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_honesty import require_or_skip
from plugin_host import BUILD, KINDS, uring_unavailable
from podman_service import PodmanService, podman_unavailable

from mcp_edge.io import Engine, open_engine


@pytest.fixture(params=KINDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Each engine kind (io_uring skipped, with the reason, where it cannot start; a failure under CI=true)."""
    if request.param == "uring" and (why := uring_unavailable()):
        require_or_skip("io_uring", f"io_uring engine not testable here: {why}")
    eng = open_engine(request.param, entries=32)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh folder under the repository's build/ (the work tree's filesystem)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-plugins-", dir=BUILD))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def podman() -> Iterator[PodmanService]:
    """A private real Podman with its API socket and the local busybox image (tests/podman_service.py); skipped
    with the reason where this machine cannot run one (a failure under CI=true)."""
    if why := podman_unavailable():
        require_or_skip("podman", f"no Podman engine here: {why}")
    service = PodmanService().start()
    try:
        yield service
    finally:
        service.stop()
