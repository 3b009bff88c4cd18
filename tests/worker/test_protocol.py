"""The RESULT body between a worker and the runtime: JSON made once in the worker, checked (not decoded) by the
runtime before it is embedded in a response, so a worker cannot break the runtime's framing or envelope."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_edge.native import _frame
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


@pytest.mark.parametrize("result", [
    {"content": [{"type": "text", "text": "it broke"}], "isError": True},
    msgspec.json.decode(b'{"content":[],"isError":true}'),
])
def test_an_error_result_says_so_in_its_tag_and_crosses_the_same(result: Any) -> None:
    from mcp_edge.plugin.types import TextContent, ToolResult

    struct = ToolResult(content=[TextContent(text=t["text"]) for t in result["content"]], isError=True)
    for value in (result, struct):
        body = p.encode_result(value)
        assert body[0] == p.RESULT_JSON_ERROR  # the runtime's metrics count it without decoding the JSON
        raw = p.decode_result(bytes(body))
        assert isinstance(raw, msgspec.Raw) and msgspec.json.decode(raw)["isError"] is True
    assert p.encode_result({"content": [], "isError": False})[0] == p.RESULT_JSON


def test_input_required_crosses_as_msgpack() -> None:
    body = p.encode_result(InputRequired(inputRequests={"q": {"method": "elicitation/create"}}, requestState="s"))
    assert body[0] == p.RESULT_INPUT_REQUIRED
    back = p.decode_result(bytes(body))
    assert isinstance(back, InputRequired) and back.requestState == "s"


@pytest.mark.parametrize("json_bytes, why", [
    (b'{"content":[]}\n{"jsonrpc":"2.0","id":7,"result":{}}', "raw line break"),  # a second message on stdio
    (b'{"content":[],\r"x":1}', "raw line break"),
    (b'{"content":[]}, "id": 99', "more after the value"),  # leaves the result object: a second "id"
    (b'{"content":[]} {}', "more after the value"),
    (b'{"content":[]}}', "more after the value"),
    (b'{"content":[', "brackets that do not match"),
    (b'{"content":[}', "brackets that do not match"),
    (b'{"t":"abc', "string is not closed"),
    (b'{"t":"a\\qb"}', "bad escape"),
    (b'{"t":"\x00"}', "control character"),
    (b'{"t":"\xc3\x28"}', "not UTF-8"),
    (b'"just a string"', "does not start with an object or an array"),
    (b"", "does not start with an object or an array"),
])
def test_a_result_that_would_break_the_framing_or_the_envelope_is_refused(json_bytes: bytes, why: str) -> None:
    with pytest.raises(msgspec.DecodeError, match=why):
        p.decode_result(bytes((p.RESULT_JSON,)) + json_bytes)


# -- the check against a plain Python statement of its rules ----------------------------------------------------

_SCALAR = frozenset(b"0123456789-+.eE" + bytes(range(ord("a"), ord("z") + 1)))
_ESCAPES = frozenset(b'"\\/bfnrt')


def _reference(data: bytes) -> bool:
    """The rules of _frame.check_json_value, byte by byte (slow, obviously right)."""
    i, n, stack = 0, len(data), []
    while i < n and data[i] in b" \t":
        i += 1
    if i == n or data[i] not in b"{[":
        return False
    while i < n:
        c = data[i]
        if c == 0x22:
            j = i + 1
            while True:
                if j >= n:
                    return False
                ch = data[j]
                if ch == 0x22:
                    break
                if ch == 0x5C:
                    if j + 1 >= n:
                        return False
                    if data[j + 1] == ord("u"):
                        if not all(chr(x) in "0123456789abcdefABCDEF" for x in data[j + 2:j + 6]) or j + 5 >= n:
                            return False
                        j += 6
                    elif data[j + 1] in _ESCAPES:
                        j += 2
                    else:
                        return False
                    continue
                if ch < 0x20:
                    return False
                if ch >= 0x80:
                    for size in (2, 3, 4):
                        try:
                            data[j:j + size].decode("utf-8")
                        except UnicodeDecodeError:
                            continue
                        j += size
                        break
                    else:
                        return False
                    continue
                j += 1
            i = j + 1
            continue
        if c in b"{[":
            if len(stack) == 1024:
                return False
            stack.append(b"}" if c == ord("{") else b"]")
        elif c in b"}]":
            if not stack or stack.pop()[0] != c:
                return False
            if not stack:
                return data[i + 1:].strip(b" \t") == b""
        elif c not in b",: \t" and c not in _SCALAR:
            return False
        i += 1
    return False


def _check(data: bytes) -> bool:
    try:
        _frame.check_json_value(data)
    except ValueError:
        return False
    return True


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=5) | st.lists(_JSON, max_size=5))
def test_every_object_or_array_msgspec_writes_passes(value: Any) -> None:
    data = msgspec.json.encode(value)
    assert _check(data) and _reference(data)
    # Long runs of text (the wide loop) and every byte value around it.
    wide = msgspec.json.encode({"t": "x" * 100 + "\u00e9\"\\\n\x01" + "y" * 70, "v": value})
    assert _check(wide) and _reference(wide)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=40), _JSON, max_size=4), st.data())
def test_the_check_agrees_with_its_rules_on_damaged_json(value: Any, data: st.DataObject) -> None:
    raw = bytearray(msgspec.json.encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at + data.draw(st.integers(0, 2))] = data.draw(st.binary(max_size=3))
    damaged = bytes(raw)
    ok = _check(damaged)
    assert ok == _reference(damaged)
    if ok:  # what passes can be embedded: one line, and the envelope keeps its own members
        assert b"\n" not in damaged and b"\r" not in damaged
        damaged.decode("utf-8")


def test_a_result_without_its_tag_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError, match="tag byte"):
        p.decode_result(b"")
    with pytest.raises(msgspec.DecodeError, match="tag byte"):
        p.decode_result(b"\x07{}")
