"""What data_read and data_write open in the plugin's data folder: regular files with one name only. A FIFO is
refused at once (it would hold the call's thread past any deadline), a device or a directory too, and a hard
link (a second name of a file that may live outside the folder) is neither read nor written: a write checks
before it truncates."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wasm_helpers import answer, registry_of, running, write_wasm_plugin

from mcp_edge.plugin import Registry

WAIT = 60.0  # only to end a broken test, never a timing assertion


@pytest.fixture
def reg(misbehave: Path, tmp_path: Path) -> Iterator[Registry]:
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, """
        deadline_ms = 2000
        host_functions = ["data_read", "data_write"]
    """)
    with running(registry_of([folder], tmp_path), "misbehave") as registry:
        yield registry


def call(reg: Registry, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    async def bounded() -> tuple[bool, str]:
        return await asyncio.wait_for(answer(reg, tool, args), WAIT)

    return asyncio.run(bounded())


def test_a_fifo_is_refused_without_waiting_for_a_writer(reg: Registry, tmp_path: Path) -> None:
    data = tmp_path / "data" / "plugin-data" / "misbehave"
    data.mkdir(parents=True, exist_ok=True)
    os.mkfifo(data / "pipe")
    try:
        assert call(reg, "read", {"path": "pipe"}) == (True, "Permission denied")
        # no reader: the write end does not open (ENXIO) instead of waiting for one
        assert call(reg, "write", {"path": "pipe", "text": "x"}) == (True, "No such device or address")
    finally:
        # a runtime that waited on the FIFO is let go, so the test ends either way
        with contextlib.suppress(OSError):
            os.close(os.open(data / "pipe", os.O_WRONLY | os.O_NONBLOCK))
    assert call(reg, "write", {"path": "dir/f", "text": "x"}) == (False, "written")
    assert call(reg, "read", {"path": "dir"}) == (True, "Is a directory")


def test_a_hard_link_to_a_file_outside_is_neither_read_nor_written(reg: Registry, tmp_path: Path) -> None:
    data = tmp_path / "data" / "plugin-data" / "misbehave"
    data.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    os.link(outside, data / "linked")
    assert call(reg, "read", {"path": "linked"}) == (True, "Permission denied")
    assert call(reg, "write", {"path": "linked", "text": "x"}) == (True, "Permission denied")
    assert outside.read_text() == "keep me"  # not even truncated
    assert call(reg, "write", {"path": "own", "text": "one"}) == (False, "written")
    assert call(reg, "write", {"path": "own", "text": "two"}) == (False, "written")
    assert call(reg, "read", {"path": "own"}) == (False, "two")
