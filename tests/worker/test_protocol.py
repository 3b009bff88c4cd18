"""The RESULT body between a worker and the runtime: JSON made once in the worker, checked (not decoded) by the
runtime before it is embedded in a response, so a worker cannot break the runtime's framing or envelope."""

from __future__ import annotations

import msgspec
import pytest

from mcp_edge.plugin.types import InputRequired
from mcp_edge.worker import protocol as p


def test_a_result_crosses_as_the_json_the_client_gets() -> None:
    result = {"content": [{"type": "text", "text": "line one\nline two \u00e9"}], "isError": False}
    body = p.encode_result(result)
    assert body[0] == p.RESULT_JSON
    raw = p.decode_result(bytes(body))
    assert isinstance(raw, msgspec.Raw)
    assert msgspec.json.decode(raw) == result
    # Embedded as it is: the response carries the worker's bytes.
    assert bytes(raw) in msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "result": raw})


def test_input_required_crosses_as_msgpack() -> None:
    body = p.encode_result(InputRequired(inputRequests={"q": {"method": "elicitation/create"}}, requestState="s"))
    assert body[0] == p.RESULT_INPUT_REQUIRED
    back = p.decode_result(bytes(body))
    assert isinstance(back, InputRequired) and back.requestState == "s"


@pytest.mark.parametrize("json_bytes, why", [
    (b'{"content":[]}\n{"jsonrpc":"2.0","id":7,"result":{}}', "line break"),  # a second message on stdio
    (b'{"content":[],\r"x":1}', "line break"),
    (b'{"content":[]}, "id": 99', "malformed"),  # leaves the result object: rewrites the envelope's id
    (b'{"content":[', "truncated"),
    (b'{"content":[]} {}', "malformed"),
    (b"", "truncated"),
])
def test_a_result_that_would_break_the_framing_or_the_envelope_is_refused(json_bytes: bytes, why: str) -> None:
    with pytest.raises(msgspec.DecodeError, match=why):
        p.decode_result(bytes((p.RESULT_JSON,)) + json_bytes)


def test_a_result_without_its_tag_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError, match="tag byte"):
        p.decode_result(b"")
    with pytest.raises(msgspec.DecodeError, match="tag byte"):
        p.decode_result(b"\x07{}")
