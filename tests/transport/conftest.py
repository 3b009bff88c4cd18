"""Fixtures of the transport tests (the helpers are in transport_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from transport_helpers import ServerProcess, running_server


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path, "--http", "--port", "0") as server:
        yield server
