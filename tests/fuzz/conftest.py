"""Fixtures and hooks of the fuzz tests (the set-up they share is in fuzzing.py)."""

from __future__ import annotations

import platform
from collections.abc import Iterator

import pytest
from fuzzing import FUZZ_SUMMARY, PROFILE, SEED
from stdio_server import StdioServer

# atheris has wheels for x86_64 only: elsewhere its short run is not part of the suite.
collect_ignore = [] if platform.machine() == "x86_64" else ["test_atheris_short.py"]


@pytest.fixture(autouse=True)
def _print_seed(request: pytest.FixtureRequest) -> None:
    print(f"{request.node.nodeid}: hypothesis seed {SEED} (replay with MCP_EDGE_TEST_SEED={SEED}), "
          f"profile {PROFILE}")


@pytest.fixture(scope="module")
def stdio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StdioServer]:
    """One ``serve --stdio`` process for a module's examples (respawned when an input killed it)."""
    srv = StdioServer(tmp_path_factory.mktemp("stdio-fuzz"))
    try:
        yield srv
    finally:
        srv.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FUZZ_SUMMARY:
        terminalreporter.section("atheris executions")
        for line in FUZZ_SUMMARY:
            terminalreporter.write_line(line)
