"""Fixtures of the storage-engine suite: each engine, and folders on ext4 (the work tree) and tmpfs.

Every engine test runs once per engine (uvloop-style: one suite, both sides);
the io_uring run is skipped, with the reason, only where io_uring cannot start,
and fails there instead under CI=true (tests/ci_honesty.py).
Files live under the repository's build/ folder (ext4 here, where O_DIRECT
enforces alignment) and /dev/shm (tmpfs, which accepts O_DIRECT at any
alignment on this kernel), never in /tmp, which may be tmpfs.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_honesty import require_or_skip

from mcp_edge.io import Engine, open_engine
from mcp_edge.io.alignment import O_DIRECT, mount_of

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
KINDS = ["uring", "threads"]
_uring_reason: list[str | None] = []


def uring_unavailable() -> str | None:
    """Why io_uring cannot start here, or None when it can (probed once)."""
    if not _uring_reason:
        from mcp_edge.io.engines import uring_unavailable_reason

        try:
            from mcp_edge.io.uring_engine import UringEngine

            UringEngine(4).close()
            _uring_reason.append(None)
        except (OSError, ImportError) as exc:
            _uring_reason.append(uring_unavailable_reason(exc))
    return _uring_reason[0]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each engine kind; "uring" is skipped with the reason where io_uring cannot start (fails under CI=true)."""
    k: str = request.param
    if k == "uring" and (why := uring_unavailable()):
        require_or_skip("io_uring", f"io_uring engine not testable here: {why}")
    return k


@pytest.fixture
def engine(kind: str) -> Iterator[Engine]:
    """An engine of each kind with a small ring (8 SQ / 16 CQ entries), so queues fill up in every test."""
    eng = open_engine(kind, entries=8)
    try:
        yield eng
    finally:
        eng.close()


def _tempdir(parent: Path) -> Iterator[Path]:
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-io-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh folder under the repository's build/ (the work tree's filesystem)."""
    yield from _tempdir(BUILD)


def _enforces_alignment(folder: Path) -> bool:
    probe = folder / ".align-probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | O_DIRECT, 0o600)
    except OSError:
        return False
    buf = mmap.mmap(-1, 8192)
    try:
        os.pwritev(fd, [memoryview(buf)[:4096]], 0)
        try:
            os.preadv(fd, [memoryview(buf)[:512]], 100)  # a misaligned offset
        except OSError as exc:
            return exc.errno == errno.EINVAL
        return False
    finally:
        os.close(fd)
        probe.unlink()
        buf.close()


@pytest.fixture
def directdir(workdir: Path) -> Path:
    """``workdir`` where O_DIRECT really enforces alignment (ext4, xfs...); skipped elsewhere."""
    if not _enforces_alignment(workdir):
        pytest.skip(f"{workdir} is on {mount_of(os.stat(workdir).st_dev)[1]}, which does not enforce O_DIRECT "
                    f"alignment: alignment tests need a disk filesystem")
    return workdir


@pytest.fixture
def shmdir() -> Iterator[Path]:
    """A fresh folder on tmpfs (/dev/shm)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or mount_of(os.stat(shm).st_dev)[1] != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs here")
    yield from _tempdir(shm)
