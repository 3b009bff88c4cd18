"""Properties of the protocol core (``ServerConnection``): any input, handled without raising, answered well.

For any byte stream, cut into any chunks, after any handshake: ``receive_data`` / ``receive_message`` /
``receive_object`` return only well-formed events; every Reply is one JSON-RPC response (a result or an
error) whose id is the id of the message it answers or null; a response or a notification from the client
is never answered; no second response is produced for an id still in flight; and the events do not depend
on how the bytes were cut. The oracle is ``tools/fuzz/harness.py``, shared with the atheris targets.
"""

from __future__ import annotations

from typing import Any

from fuzzing import examples
from harness import FRAME_LIMITS, JsonRpcInput, check_jsonrpc_parts, check_object
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import byte_streams, deep_nesting, encode, json_values, message_values, messages

from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS

handshakes = st.one_of(st.none(), st.sampled_from(HANDSHAKE_VERSIONS))


@settings(max_examples=examples(2.0))
@given(stream=byte_streams, max_frame=st.sampled_from(FRAME_LIMITS), chunk=st.integers(min_value=0, max_value=40),
       handshake=handshakes)
def test_any_stream_in_any_chunks(stream: bytes, max_frame: int, chunk: int, handshake: str | None) -> None:
    check_jsonrpc_parts(JsonRpcInput(stream, max_frame=max_frame, chunk=chunk, handshake=handshake))


@settings(max_examples=examples(1.0))
@given(lines=st.lists(st.builds(encode, messages), min_size=1, max_size=8), handshake=handshakes,
       finish=st.integers(min_value=1, max_value=3))
def test_requests_in_flight_get_one_answer(lines: list[bytes], handshake: str | None, finish: int) -> None:
    """Ids stay in flight until the transport finishes them; duplicates in between are refused, not answered."""
    check_jsonrpc_parts(JsonRpcInput(b"\n".join(lines) + b"\n", handshake=handshake, finish=finish))


@settings(max_examples=examples(1.0))
@given(body=st.one_of(st.builds(encode, message_values), deep_nesting(), st.binary(max_size=300)),
       handshake=handshakes, modern=st.booleans())
def test_any_http_body(body: bytes, handshake: str | None, modern: bool) -> None:
    """One message as an HTTP body (``receive_message``), in either era."""
    check_jsonrpc_parts(JsonRpcInput(body, whole_message=True, handshake=handshake, modern=modern))


@settings(max_examples=examples(1.0))
@given(value=st.one_of(message_values, json_values), handshake=handshakes, modern=st.booleans())
def test_any_decoded_value(value: Any, handshake: str | None, modern: bool) -> None:
    check_object(value, handshake=handshake, modern=modern)


@settings(max_examples=examples(0.3))
@given(line=deep_nesting(), chunk=st.integers(min_value=0, max_value=512))
def test_deep_nesting(line: bytes, chunk: int) -> None:
    check_jsonrpc_parts(JsonRpcInput(line + b"\n", chunk=chunk))
