"""The native suite's summary: which CRC32C kernels were tested and which were skipped (by name)."""

from __future__ import annotations

import pytest

_ran: set[str] = set()
_skipped: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    kernel = dict(report.user_properties).get("crc32c_kernel")
    if not isinstance(kernel, str):
        return
    if report.skipped and isinstance(report.longrepr, tuple):
        _skipped[kernel] = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif report.when == "call":
        _ran.add(kernel)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (_ran or _skipped):
        return
    line = f"CRC32C kernels tested: {', '.join(sorted(_ran)) or 'none'}"
    if _skipped:
        line += "; skipped: " + "; ".join(why for _, why in sorted(_skipped.items()))
    terminalreporter.write_line(line)
