"""The router's typed outcome, its JSON-RPC encoding, and the HTTP status mapping (sans-I/O)."""

from __future__ import annotations

import json

import pytest

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import HEADER_MISMATCH, MISSING_CAPABILITY, UNSUPPORTED_VERSION
from mcp_edge.mcp.refusals import BUSY, Refusal, refusal_error, refusal_failure
from mcp_edge.runtime.outcome import Failure, Result
from mcp_edge.transport.http_status import http_status, http_status_for_error


def test_a_result_encodes_as_a_jsonrpc_result_once() -> None:
    outcome = Result(7, {"content": []})
    data = jsonrpc.encode_outcome(outcome)
    assert json.loads(data) == {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
    assert outcome.encoded is data and jsonrpc.encode_outcome(outcome) is data  # encoded once, kept


def test_a_failure_encodes_as_a_jsonrpc_error_with_its_data() -> None:
    assert json.loads(jsonrpc.encode_outcome(Failure("a", -32602, "bad", {"uri": "x"}))) == {
        "jsonrpc": "2.0", "id": "a", "error": {"code": -32602, "message": "bad", "data": {"uri": "x"}}}
    assert "data" not in json.loads(jsonrpc.encode_outcome(Failure(1, -32601, "no")))["error"]


def test_encode_outcome_refuses_what_is_not_an_outcome() -> None:
    with pytest.raises(TypeError, match="not an outcome"):
        jsonrpc.encode_outcome(b"{}")  # type: ignore[arg-type]


def test_outcomes_compare_by_value() -> None:
    assert Result(1, {"a": 1}) == Result(1, {"a": 1}) != Result(2, {"a": 1})
    assert Failure(1, -1, "m", retry_after_s=2.0) == Failure(1, -1, "m", retry_after_s=2.0)
    assert Failure(1, -1, "m") != Failure(1, -1, "m", retry_after_s=2.0)
    assert Result(1, None) != Failure(1, -1, "m")


def test_a_busy_refusal_is_typed_and_keeps_its_wait() -> None:
    busy = refusal_failure(Refusal.BUSY, 3, "full", 2.5)
    assert (busy.code, busy.retry_after_s, busy.data) == (BUSY, 2.5, {"retryAfterMs": 2500})
    assert refusal_error(Refusal.BUSY, 3, "full", 2.5) == jsonrpc.encode_outcome(busy)
    too_big = refusal_failure(Refusal.TOO_LARGE, 4, "big", 9.0)
    assert (too_big.code, too_big.data, too_big.retry_after_s) == (jsonrpc.INVALID_REQUEST, None, None)


# -- http_status: the whole table ----------------------------------------------------------------------------


@pytest.mark.parametrize("modern", [False, True])
def test_a_result_is_200_in_both_eras(modern: bool) -> None:
    assert http_status(Result(1, {}), modern) == (200, [])


@pytest.mark.parametrize(("code", "status"), [
    (jsonrpc.PARSE_ERROR, 400), (jsonrpc.INVALID_REQUEST, 400), (jsonrpc.INVALID_PARAMS, 400),
    (HEADER_MISMATCH, 400), (MISSING_CAPABILITY, 400), (UNSUPPORTED_VERSION, 400),
    (jsonrpc.METHOD_NOT_FOUND, 404), (BUSY, 503),
    (jsonrpc.INTERNAL_ERROR, 200), (jsonrpc.RESOURCE_NOT_FOUND, 200), (-1, 200),
])
def test_modern_errors_get_the_revisions_status(code: int, status: int) -> None:
    assert http_status(Failure(1, code, "m"), True) == (status, [])


@pytest.mark.parametrize("code", [jsonrpc.PARSE_ERROR, jsonrpc.METHOD_NOT_FOUND, BUSY, jsonrpc.INTERNAL_ERROR])
def test_handshake_era_errors_are_200_unless_tied_to_no_request(code: int) -> None:
    assert http_status(Failure(1, code, "m", retry_after_s=1.0), False) == (200, [])
    assert http_status(Failure(None, code, "m"), False) == (400, [])


@pytest.mark.parametrize(("wait", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (2.5, "3"), (30.0, "30")])
def test_a_modern_busy_refusal_says_when_to_retry_in_whole_seconds(wait: float, header: str) -> None:
    busy = refusal_failure(Refusal.BUSY, 1, "full", wait)
    assert http_status(busy, True) == (503, [("retry-after", header)])


def test_only_a_busy_refusal_gets_retry_after() -> None:
    assert http_status(Failure(1, jsonrpc.INVALID_PARAMS, "m", retry_after_s=5.0), True) == (400, [])
    assert http_status_for_error(BUSY, 1, True) == (503, [])  # a busy code with no wait given: no header
