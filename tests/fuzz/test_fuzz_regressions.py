"""Every input kept under ``tests/data/fuzz/<target>/`` (atheris seeds, crashes and hypothesis findings), replayed.

The formats are those of the atheris targets (``tools/fuzz/harness.py``): ``jsonrpc`` (two control bytes, then
the stream), ``http`` (one chunking byte, then the bytes of a connection), ``manifest`` (plugin.toml, NUL, a
JSON config, NUL, an environment override), ``frame`` (one fix-up byte, then a frame); ``stdio`` inputs are
written as they are to a real ``serve --stdio``. A new crash file (``crash-*``, ``timeout-*``) in any of them is
replayed here by its name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import check_frame, check_http, check_jsonrpc, check_manifest
from stdio_server import StdioServer, replay

DATA = Path(__file__).resolve().parents[1] / "data" / "fuzz"
CHECKS = {"jsonrpc": check_jsonrpc, "http": check_http, "manifest": check_manifest, "frame": check_frame}


def _inputs(target: str) -> list[Path]:
    return sorted(p for p in (DATA / target).iterdir() if p.is_file() and not p.name.startswith("."))


def test_every_target_has_inputs() -> None:
    for target in (*CHECKS, "stdio"):
        assert _inputs(target), f"no inputs under {DATA / target}"


@pytest.mark.parametrize("path", [p for t in CHECKS for p in _inputs(t)], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_replay(path: Path) -> None:
    CHECKS[path.parent.name](path.read_bytes())


@pytest.mark.parametrize("path", _inputs("stdio"), ids=lambda p: p.name)
def test_replay_stdio(stdio_server: StdioServer, path: Path) -> None:
    replay(stdio_server, path.read_bytes())
