"""In the 2026-07-28 revision a request's Mcp-Name header says the tool, prompt or URI it is about: a name an
HTTP header cannot hold as it is (UTF-8, blanks at its ends, the base64 form's own look) goes in the
=?base64?...?= form, which httpx accepts and our own server reads back as the name (a UTF-8 tool name made
httpx refuse the request)."""

from __future__ import annotations

import pytest
from ci_honesty import importorskip

from mcp_edge.plugin.bridge.client import routing_value
from mcp_edge.transport.http import _header_value

httpx = importorskip("httpx", "bridge", "the HTTP bridge tests need httpx (pip install -e '.[test]')")

NAMES = ["echo", "ns.tool-2", "météo", "天気", " padded ", "tab\tin", "=?base64?x?=", "file:///a b.txt", ""]


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_a_name_crosses_as_a_header(name: str) -> None:
    value = routing_value(name)
    request = httpx.Request("POST", "http://127.0.0.1/mcp", headers={"Mcp-Name": value})
    assert _header_value(request.headers["mcp-name"]) == name


def test_a_plain_name_is_sent_as_it_is() -> None:
    assert routing_value("weather_forecast") == "weather_forecast"
