"""``mcp-edge serve`` options parsed without click, and what falls back to click."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_edge.cli import parse_serve


def test_defaults() -> None:
    assert parse_serve([]) == {"stdio": False, "http": False, "unix_path": None, "host": None, "port": None,
                               "quiet": False, "sets": [], "board": None}


@pytest.mark.parametrize(("args", "want"), [
    (["--stdio"], {"stdio": True}),
    (["--stdio", "-q"], {"stdio": True, "quiet": True}),
    (["--http", "--host", "0.0.0.0", "--port=0", "--quiet"], {"http": True, "host": "0.0.0.0", "port": "0",
                                                              "quiet": True}),
    (["--unix", "/run/x.sock"], {"unix_path": Path("/run/x.sock")}),
    (["--board", "raspberry-pi-5", "--stdio"], {"board": "raspberry-pi-5", "stdio": True}),
    (["--stdio", "--http"], {"stdio": True, "http": True}),  # run_serve refuses the pair, with its message
])
def test_parsed(args: list[str], want: dict[str, object]) -> None:
    got = parse_serve(args)
    assert got is not None
    assert {k: v for k, v in got.items() if v not in (None, False, [])} == want


def test_set_is_repeatable() -> None:
    got = parse_serve(["--stdio", "--set", "max_inflight=8", "--set=drain_timeout_s=0.5"])
    assert got is not None and got["sets"] == ["max_inflight=8", "drain_timeout_s=0.5"]
    assert parse_serve(["--set", "novalue"]) is None  # click explains FIELD=VALUE


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--stdoi"], ["--port"], ["--port", "--stdio"],
                                  ["--stdio", "--stdio"], ["--stdio=1"], ["extra"]])
def test_left_to_click(args: list[str]) -> None:
    assert parse_serve(args) is None
