"""The router under odd input (issue 7: cases 3, 15, 16, 22, the unknown-method mutation survivor).

Most tests drive ``Router.handle`` in this process with the transport tests' ``probe`` plugin and
``stream_plugins/asker``; the HTTP ones run a real ``mcp-edge serve --http``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import socket
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.mcp import ServerConnection, ServerInfo
from mcp_edge.mcp.connection import META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, ClientResult, Request
from mcp_edge.mcp.jsonrpc import encode_outcome
from mcp_edge.plugin import Registry
from mcp_edge.runtime.outcome import Failure
from mcp_edge.runtime.principal import Principal
from mcp_edge.runtime.router import Router, Session

from .stream_helpers import PROBE_PLUGINS, STREAM_PLUGINS, WAIT, stream_env

INFO = ServerInfo(name="t", version="0", capabilities={})
HANDSHAKE = "2025-11-25"
STATELESS = "2026-07-28"
META = {META_PROTOCOL_VERSION: STATELESS, META_CLIENT_CAPABILITIES: {"elicitation": {}}}

T = TypeVar("T")


def with_router(tmp_path: Path, body: Callable[[Router], Awaitable[T]], **settings: Any) -> T:
    """Run ``body(router)`` with the probe and asker plugins started (data_dir under tmp_path unless given)."""
    settings.setdefault("data_dir", tmp_path / "data")

    async def main() -> T:
        registry = Registry([PROBE_PLUGINS, STREAM_PLUGINS], entry_points=False)
        registry.discover()
        await registry.start()
        try:
            # bounded: a round trip whose answer is lost would otherwise wait for ever
            return await asyncio.wait_for(body(Router(registry, INFO, Settings.load(**settings))), WAIT)
        finally:
            await registry.stop()

    return asyncio.run(main())


def handshake_req(rid: Any, method: str, params: dict[str, Any] | None = None) -> Request:
    return Request(rid, method, params or {}, HANDSHAKE, False)


def stateless_req(rid: Any, method: str, params: dict[str, Any] | None = None) -> Request:
    return Request(rid, method, {**(params or {}), "_meta": META}, STATELESS, True, META)


async def answer(router: Router, req: Request, session: Session | None = None,
                 emit: Callable[[bytes], Awaitable[None]] | None = None) -> dict[str, Any]:
    data = encode_outcome(await router.handle(req, session or Session(ServerConnection(INFO)), emit))
    out: dict[str, Any] = json.loads(data)
    return out


# -- unknown methods: -32601 in both eras, and 404 over stateless HTTP ------------------------------------------


def test_unknown_method_is_method_not_found_in_both_eras(tmp_path: Path) -> None:
    async def body(router: Router) -> list[dict[str, Any]]:
        return [await answer(router, handshake_req(1, "tools/frobnicate")),
                await answer(router, stateless_req(2, "tools/frobnicate"))]

    old, new = with_router(tmp_path, body)
    assert old["id"] == 1 and old["error"]["code"] == -32601 and "tools/frobnicate" in old["error"]["message"]
    assert new["id"] == 2 and new["error"]["code"] == -32601


def test_unknown_method_over_stateless_http_is_404_with_32601(tmp_path: Path) -> None:
    from transport_helpers import HttpClient, running_server

    with running_server(tmp_path, "--http", "--port", "0") as server:
        client = HttpClient(server.port)
        try:
            reply = client.stateless(7, "tools/frobnicate")
        finally:
            client.close()
    assert reply.status == 404
    body = reply.json()
    assert body["id"] == 7 and body["error"]["code"] == -32601


# -- case 3: a malformed error response from the client -------------------------------------------------------------


@pytest.mark.parametrize("error", [{"code": "x", "message": "m"}, {"code": 2.5, "message": "m"}, {"code": 1},
                                   [1, 2], "text", 0])
def test_resolve_never_raises_and_fails_only_that_request(error: Any) -> None:
    async def main() -> BaseException | None:
        session = Session(ServerConnection(INFO))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        session.pending["mcp-edge-1"] = fut
        assert session.resolve(ClientResult("mcp-edge-1", None, error)) is True
        return fut.exception()

    exc = asyncio.run(main())
    assert exc is not None and getattr(exc, "code", None) == -32603
    assert "malformed" in str(exc)


def test_handshake_round_with_a_malformed_error_answers_the_call(tmp_path: Path) -> None:
    async def body(router: Router) -> dict[str, Any]:
        session = Session(ServerConnection(INFO))

        async def emit(data: bytes) -> None:
            ask = json.loads(data)
            reply = ClientResult(ask["id"], None, {"code": "not a number", "message": "nope"})
            asyncio.get_running_loop().call_soon(session.resolve, reply)

        return await answer(router, handshake_req(1, "tools/call", {"name": "greet"}), session, emit)

    out = with_router(tmp_path, body)
    assert out["error"]["code"] == -32603 and "malformed" in out["error"]["message"]


@contextmanager
def _http_server(tmp_path: Path) -> Iterator[int]:
    from transport_helpers import ServerProcess, probe_command

    proc = subprocess.Popen(probe_command("--http", "--port", "0"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=stream_env(tmp_path), cwd=tmp_path)
    server = ServerProcess(proc)
    try:
        server.wait_ready("serving MCP over")
        yield server.port
    finally:
        server.stop()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _sse_messages(sock: socket.socket, buf: bytearray, want: int) -> list[dict[str, Any]]:
    """Read an SSE response body until ``want`` data: messages have arrived (chunk sizes are skipped)."""
    deadline = time.monotonic() + WAIT
    while True:
        found = [json.loads(line[5:]) for line in bytes(buf).split(b"\n") if line.startswith(b"data:")]
        if len(found) >= want:
            return found
        left = deadline - time.monotonic()
        assert left > 0, f"no SSE message within {WAIT} s: {bytes(buf)[-400:]!r}"
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the stream"
            buf += chunk.replace(b"\r\n", b"\n")


def test_http_malformed_error_response_is_accepted_and_the_call_answered(tmp_path: Path) -> None:
    from transport_helpers import HttpClient, initialize

    with _http_server(tmp_path) as port:
        client = HttpClient(port)
        init = initialize()
        init["params"]["capabilities"] = {"elicitation": {}}
        reply = client.post(init, session=False)
        client.session = reply.headers["mcp-session-id"]
        assert client.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status == 202
        body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                           "params": {"name": "greet", "arguments": {}}}).encode()
        head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Accept: application/json, text/event-stream\r\nMcp-Session-Id: {client.session}\r\n"
                f"MCP-Protocol-Version: {HANDSHAKE}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as stream:
            stream.sendall(head + body)
            buf = bytearray()
            (ask,) = _sse_messages(stream, buf, 1)
            assert ask["method"] == "elicitation/create"
            posted = client.post({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": "oops", "message": "x"}},
                                 {"MCP-Protocol-Version": HANDSHAKE})
            assert posted.status == 202  # before: 500, and the call below waited forever
            final = _sse_messages(stream, buf, 2)[1]
        client.close()
    assert final["id"] == 2 and final["error"]["code"] == -32603 and "malformed" in final["error"]["message"]


# -- max_input_rounds comes from Settings ------------------------------------------------------------------------


def test_input_rounds_are_capped_by_settings(tmp_path: Path) -> None:
    asked: list[str] = []

    async def body(router: Router) -> dict[str, Any]:
        session = Session(ServerConnection(INFO))

        async def emit(data: bytes) -> None:
            ask = json.loads(data)
            asked.append(ask["method"])
            reply = ClientResult(ask["id"], {"action": "accept", "content": {"name": "Ada"}})
            asyncio.get_running_loop().call_soon(session.resolve, reply)

        return await answer(router, handshake_req(1, "tools/call", {"name": "nag"}), session, emit)

    out = with_router(tmp_path, body, max_input_rounds=2)
    assert asked == ["elicitation/create"] * 2
    assert out["error"]["code"] == -32603 and "after 2 rounds" in out["error"]["message"]


# -- case 15: outgoing frames are bounded -------------------------------------------------------------------------


def test_a_response_over_max_out_frame_becomes_an_error_naming_the_limit(tmp_path: Path) -> None:
    async def body(router: Router) -> tuple[dict[str, Any], dict[str, Any], int]:
        small = await answer(router, handshake_req(1, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}))
        call = handshake_req(2, "tools/call", {"name": "echo", "arguments": {"text": "x" * 100_000}})
        big = encode_outcome(await router.handle(call, Session(ServerConnection(INFO)), None))
        return small, json.loads(big), len(big)

    small, big, size = with_router(tmp_path, body, max_out_frame=80_000, max_read=1024)
    assert small["result"]["content"][0]["text"] == "hi"
    assert size <= 80_000
    assert big["id"] == 2 and big["error"]["code"] == -32600
    assert "80000" in big["error"]["message"] and "max_out_frame" in big["error"]["message"]
    assert "ranges" in big["error"]["message"]


def test_a_notification_over_max_out_frame_is_dropped_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sent: list[bytes] = []

    async def emit(data: bytes) -> None:
        sent.append(data)

    async def body(router: Router) -> list[dict[str, Any]]:
        out = []
        for rid, text in ((1, "short"), (2, "y" * 100_000)):  # shout logs {"shout": text} at info, returns text
            out.append(await answer(router, handshake_req(rid, "tools/call",
                                                          {"name": "shout", "arguments": {"text": text}}),
                                     emit=emit))
        return out

    with caplog.at_level(logging.WARNING, logger="mcp_edge.runtime"):
        replies = with_router(tmp_path, body, max_out_frame=80_000, max_read=1024)
    assert [json.loads(m)["params"]["data"]["shout"] for m in sent] == ["short"]  # the big one was dropped
    assert all(len(m) <= 80_000 for m in sent)
    assert replies[0]["result"]["content"][0]["text"] == "short"
    assert replies[1]["error"]["code"] == -32600  # and its response too big as well: an error
    assert any("dropped" in r.getMessage() and "notification" in r.getMessage() for r in caplog.records)


# -- case 16: the listener cap -----------------------------------------------------------------------------------------


def test_listen_streams_are_capped_per_server(tmp_path: Path) -> None:
    async def body(router: Router) -> tuple[list[bytes], dict[str, Any], dict[str, Any]]:
        acks: list[bytes] = []

        async def emit(data: bytes) -> None:
            acks.append(data)

        params = {"notifications": {"toolsListChanged": True}}
        first = asyncio.create_task(router.handle(stateless_req(1, "subscriptions/listen", params),
                                                  Session(ServerConnection(INFO)), emit))
        await asyncio.sleep(0)
        second = await answer(router, stateless_req(2, "subscriptions/listen", params), emit=emit)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        third = asyncio.create_task(router.handle(stateless_req(3, "subscriptions/listen", params),
                                                  Session(ServerConnection(INFO)), emit))
        await asyncio.sleep(0)
        third_done = third.done()
        third.cancel()
        await asyncio.gather(third, return_exceptions=True)
        return acks, second, {"third_done": third_done}

    acks, second, third = with_router(tmp_path, body, max_listeners=1, retry_after_s=3.0)
    assert second["error"]["code"] == -32010 and second["error"]["data"] == {"retryAfterMs": 3000}
    assert "max_listeners" in second["error"]["message"]
    assert len(acks) == 2  # the first and (once the first closed) the third were acknowledged
    assert third == {"third_done": False}  # the third is an open stream, not a refusal


def test_in_flight_cap_is_a_session_check_transports_share(tmp_path: Path) -> None:
    async def body(router: Router) -> tuple[Failure | None, Failure | None]:
        session = Session(ServerConnection(INFO))
        free = router.over_capacity(handshake_req(1, "ping"), session)
        session.running[1] = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
        return free, router.over_capacity(handshake_req(2, "tools/list"), session)

    free, busy = with_router(tmp_path, body, max_inflight=1)
    assert free is None and busy is not None
    assert busy.code == -32010 and busy.retry_after_s is not None  # typed: HTTP needs no parsing
    assert json.loads(encode_outcome(busy))["error"]["code"] == -32010


# -- case 22: requestState is bound to the call, the client and an expiry; its key lives in data_dir ---------------


async def _first_state(router: Router, session: Session, args: dict[str, Any]) -> str:
    first = await answer(router, stateless_req(1, "tools/call", {"name": "greet", "arguments": args}), session)
    assert first["result"]["resultType"] == "input_required"
    state: str = first["result"]["requestState"]
    return state


async def _retry(router: Router, session: Session, args: dict[str, Any], state: str) -> dict[str, Any]:
    params = {"name": "greet", "arguments": args, "requestState": state,
              "inputResponses": {"who": {"action": "accept", "content": {"name": "Bo"}}}}
    return await answer(router, stateless_req(2, "tools/call", params), session)


def test_request_state_is_bound_to_the_arguments(tmp_path: Path) -> None:
    async def body(router: Router) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        session = Session(ServerConnection(INFO))
        state = await _first_state(router, session, {"punctuation": "!"})
        same = await _retry(router, session, {"punctuation": "!"}, state)
        other = await _retry(router, session, {"punctuation": "?"}, state)
        altered = await _retry(router, session, {"punctuation": "!"}, state[:-2] + ("AA" if state[-2:] != "AA"
                                                                                      else "BB"))
        return same, other, altered

    same, other, altered = with_router(tmp_path, body)
    assert same["result"]["content"][0]["text"] == "Hello, Bo! (asked)"
    assert other["error"]["code"] == -32602 and "integrity" in other["error"]["message"]
    assert altered["error"]["code"] == -32602


def test_request_state_is_bound_to_the_principal(tmp_path: Path) -> None:
    async def body(router: Router) -> tuple[dict[str, Any], dict[str, Any]]:
        alice = Session(ServerConnection(INFO), principal=Principal("uid:1000", "unix-peer", uid=1000))
        state = await _first_state(router, alice, {})
        mallory = Session(ServerConnection(INFO), principal=Principal("uid:1001", "unix-peer", uid=1001))
        return await _retry(router, alice, {}, state), await _retry(router, mallory, {}, state)

    mine, theirs = with_router(tmp_path, body)
    assert mine["result"]["resultType"] == "complete"
    assert theirs["error"]["code"] == -32602


def test_request_state_expires(tmp_path: Path) -> None:
    async def body(router: Router) -> tuple[dict[str, Any], dict[str, Any]]:
        session = Session(ServerConnection(INFO))
        state = await _first_state(router, session, {})
        fresh = await _retry(router, session, {}, state)
        later = time.time() + 61.0
        router._now = lambda: later  # the clock the state's expiry is read against
        return fresh, await _retry(router, session, {}, state)

    fresh, late = with_router(tmp_path, body, request_state_ttl_s=60.0)
    assert fresh["result"]["resultType"] == "complete"
    assert late["error"]["code"] == -32602 and "expired" in late["error"]["message"]


def test_request_state_key_survives_a_restart_and_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def sign(router: Router) -> str:
        return await _first_state(router, Session(ServerConnection(INFO)), {})

    def retry_with(state: str) -> Callable[[Router], Awaitable[dict[str, Any]]]:
        async def body(router: Router) -> dict[str, Any]:
            return await _retry(router, Session(ServerConnection(INFO)), {}, state)
        return body

    state = with_router(tmp_path, sign, data_dir=data)
    key = data / "keys" / "request-state.key"  # the box's keys in one place (mcp_edge.runtime.keys)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    again = with_router(tmp_path, retry_with(state), data_dir=data)  # a new Router: a restart
    assert again["result"]["resultType"] == "complete"
    elsewhere = with_router(tmp_path, retry_with(state), data_dir=tmp_path / "other")
    assert elsewhere["error"]["code"] == -32602  # another key: not accepted


def test_unwritable_data_dir_falls_back_to_a_process_key_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    async def body(router: Router) -> tuple[dict[str, Any], dict[str, Any]]:
        session = Session(ServerConnection(INFO))
        state = await _first_state(router, session, {})
        ok = await _retry(router, session, {}, state)
        return ok, await _retry(router, session, {}, await _first_state(router, session, {}))

    with caplog.at_level(logging.WARNING, logger="mcp_edge.runtime"):
        first, second = with_router(tmp_path, body, data_dir=blocker / "data")
    assert first["result"]["resultType"] == second["result"]["resultType"] == "complete"
    warnings = [r for r in caplog.records if "requestState key" in r.getMessage()]
    assert len(warnings) == 1
    assert not os.path.exists(blocker / "data")
