"""Older protocol revisions (issue 7, case 8): 2024-11-05 negotiated, results shaped to the client's revision,
JSON-RPC batches in 2025-03-26 sessions only.

The shaping table is checked against what each revision's schema (``schema/<rev>/schema.ts`` of the MCP
specification) has; the transports are driven as real ``mcp-edge serve`` processes over pipes and loopback
HTTP, serving ``tests/adversarial/plugins/revisions`` (one of each thing later revisions added).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from transport_helpers import (
    WAIT,
    HttpClient,
    initialize,
    notification,
    probe_command,
    request,
    running_server,
    server_env,
)

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import Batch, ConnState, Reply, Request, ServerConnection, ServerInfo
from mcp_edge.mcp.revisions import shape, shaped_versions
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE, negotiate

PLUGINS = Path(__file__).resolve().parent / "plugins"
SETTINGS = {"plugin_dirs": [str(PLUGINS)]}
OLD = "2024-11-05"
BATCHES = "2025-03-26"

# --- the table, per revision ------------------------------------------------------------------------------

TOOL = {
    "name": "weather", "title": "Weather", "description": "d",
    "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
    "outputSchema": {"type": "object", "properties": {"celsius": {"type": "integer"}}},
    "annotations": {"readOnlyHint": True}, "icons": [{"src": "https://x/i.png"}],
    "execution": {"taskSupport": "optional"}, "_meta": {"k": 1},
}
CALL = {
    "content": [
        {"type": "text", "text": '{"celsius":21}', "annotations": {"priority": 1, "lastModified": "2025-01-01"}},
        {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
        {"type": "resource_link", "uri": "rev://log", "name": "log", "mimeType": "text/plain"},
        {"type": "resource", "resource": {"uri": "rev://x", "text": "x", "_meta": {"a": 1}}, "_meta": {"b": 2}},
    ],
    "structuredContent": {"celsius": 21},
}
INIT = {
    "protocolVersion": "x",
    "capabilities": {"logging": {}, "completions": {}, "tools": {"listChanged": True}, "tasks": {"list": {}}},
    "serverInfo": {"name": "s", "version": "1", "title": "S", "icons": [], "websiteUrl": "https://x",
                   "description": "d"},
}


def test_2024_11_05_is_negotiated_and_every_older_revision_is_shaped() -> None:
    assert negotiate(OLD) == OLD
    assert OLD in HANDSHAKE_VERSIONS
    assert shaped_versions() == set(HANDSHAKE_VERSIONS) - {LATEST_HANDSHAKE}


def test_the_newest_revision_is_not_touched() -> None:
    for method, result in (("tools/list", {"tools": [TOOL]}), ("tools/call", CALL), ("initialize", INIT)):
        assert shape(method, result, LATEST_HANDSHAKE) is result


@pytest.mark.parametrize(("version", "kept"), [
    ("2024-11-05", {"name", "description", "inputSchema"}),
    ("2025-03-26", {"name", "description", "inputSchema", "annotations"}),
    ("2025-06-18", {"name", "description", "inputSchema", "annotations", "title", "outputSchema", "_meta"}),
])
def test_tools_list_per_revision(version: str, kept: set[str]) -> None:
    out = shape("tools/list", {"tools": [TOOL], "nextCursor": "c"}, version)
    assert set(out["tools"][0]) == kept and out["nextCursor"] == "c"
    assert set(TOOL) > kept  # the caller's object is left as it was


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18"])
def test_initialize_result_per_revision(version: str) -> None:
    out = shape("initialize", INIT, version)
    caps, info = set(out["capabilities"]), set(out["serverInfo"])
    assert "tasks" not in caps and not info & {"icons", "websiteUrl", "description"}
    assert ("completions" in caps) == (version != "2024-11-05")
    assert ("title" in info) == (version == "2025-06-18")


def test_tools_call_for_2024_11_05() -> None:
    out = shape("tools/call", CALL, OLD)
    assert "structuredContent" not in out
    text, audio, link, embedded = out["content"]
    assert text == {"type": "text", "text": '{"celsius":21}', "annotations": {"priority": 1}}
    assert audio["type"] == "text" and "audio" in audio["text"]
    assert link["type"] == "text" and "rev://log" in link["text"]
    assert embedded == {"type": "resource", "resource": {"uri": "rev://x", "text": "x"}}
    # structured output with no text beside it still reaches the client, as text
    bare = shape("tools/call", {"content": [], "structuredContent": {"a": 1}}, OLD)
    assert bare == {"content": [{"type": "text", "text": '{"a":1}'}]}


def test_tools_call_for_2025_03_26_keeps_audio_and_2025_06_18_keeps_everything_but_icons() -> None:
    types = [b["type"] for b in shape("tools/call", CALL, BATCHES)["content"]]
    assert types == ["text", "audio", "text", "resource"]
    assert shape("tools/call", CALL, "2025-06-18") == CALL


def test_resources_prompts_and_reads_per_revision() -> None:
    res = {"uri": "rev://log", "name": "log", "title": "The log", "icons": [], "annotations": {"priority": 1}}
    prompt = {"name": "greet", "title": "Greeting", "arguments": [{"name": "who", "title": "Who", "required": True}]}
    listed = shape("resources/list", {"resources": [res]}, OLD)["resources"][0]
    assert listed == {"uri": "rev://log", "name": "log", "annotations": {"priority": 1}}
    templ = shape("resources/templates/list", {"resourceTemplates": [{**res, "uriTemplate": "t/{x}"}]}, OLD)
    assert "title" not in templ["resourceTemplates"][0]
    assert shape("prompts/list", {"prompts": [prompt]}, OLD)["prompts"][0] == {
        "name": "greet", "arguments": [{"name": "who", "required": True}]}
    assert shape("prompts/list", {"prompts": [prompt]}, "2025-06-18")["prompts"][0] == prompt
    got = shape("prompts/get", {"messages": [{"role": "user", "content": CALL["content"][1]}]}, OLD)
    assert got["messages"][0]["content"]["type"] == "text"
    read = shape("resources/read", {"contents": [{"uri": "u", "text": "t", "_meta": {}}]}, BATCHES)
    assert read == {"contents": [{"uri": "u", "text": "t"}]}


def test_the_shaping_module_does_no_io() -> None:
    src = (Path(__file__).resolve().parents[2] / "mcp_edge" / "mcp" / "revisions.py").read_text()
    for mod in ("socket", "asyncio", "os"):
        assert f"import {mod}\n" not in src and f"from {mod} " not in src


# --- the protocol core: initialize and batches -------------------------------------------------------------

INFO = ServerInfo("test", "1.0", {"tools": {}, "completions": {}}, title="Test")


def _open(version: str) -> ServerConnection:
    c = ServerConnection(INFO)
    [reply] = c.receive_object(initialize(1, version))
    assert isinstance(reply, Reply)
    c.receive_object(notification("notifications/initialized"))
    assert c.state is ConnState.READY
    return c


def test_initialize_2024_11_05_is_answered_in_that_revision() -> None:
    c = ServerConnection(INFO)
    [reply] = c.receive_object(initialize(1, OLD))
    assert isinstance(reply, Reply)
    result = json.loads(reply.data)["result"]
    assert result["protocolVersion"] == OLD and c.version == OLD
    assert "completions" not in result["capabilities"] and "title" not in result["serverInfo"]


@pytest.mark.parametrize(("version", "kept"), [
    ("2024-11-05", {"sampling"}), ("2025-03-26", {"sampling"}), ("2025-06-18", {"sampling", "elicitation"}),
    ("2025-11-25", {"sampling", "elicitation", "tasks"}),
])
def test_a_client_offers_only_what_its_revision_has(version: str, kept: set[str]) -> None:
    c = ServerConnection(INFO)
    msg = initialize(1, version)
    msg["params"]["capabilities"] = {"sampling": {}, "elicitation": {}, "tasks": {}}
    c.receive_object(msg)
    assert set(c.client_capabilities) == kept  # so a handler requiring elicitation refuses a 2024-11-05 client


def test_a_batch_in_a_2025_03_26_session() -> None:
    c = _open(BATCHES)
    [batch] = c.receive_object([
        request(2, "tools/list"), request(3, "ping"), notification("notifications/cancelled", {"requestId": 99}),
        {"jsonrpc": "2.0", "id": "srv-1", "result": {}}, 5, [], request(4, "initialize", initialize()["params"]),
    ])
    assert isinstance(batch, Batch)
    assert [type(e).__name__ for e in batch.events] == ["Request", "CancelRequest", "ClientResult"]
    assert batch.waiting == {2}
    answers = [json.loads(a) for a in batch.answers]
    assert answers[0] == {"jsonrpc": "2.0", "id": 3, "result": {}}
    assert [a["error"]["code"] for a in answers[1:]] == [jsonrpc.INVALID_REQUEST] * 3
    assert answers[-1]["id"] == 4 and "batch" in answers[-1]["error"]["message"]
    assert not batch.done
    batch.settle(2, jsonrpc.result(2, {"tools": []}))
    assert batch.done
    out = json.loads(batch.encode() or b"")
    assert isinstance(out, list) and len(out) == 5 and {"jsonrpc": "2.0", "id": 2, "result": {"tools": []}} in out


@pytest.mark.parametrize("first", ["ping", "tools/list"])
def test_an_id_used_twice_in_one_batch_is_answered_once(first: str) -> None:
    """The core answers ping itself and never marks its id in flight: a second use of that id in the same batch
    must still not get a second answer (it is refused with id null)."""
    [batch] = _open(BATCHES).receive_object([request(2, first), request(2, "tools/list")])
    assert isinstance(batch, Batch)
    answers = [json.loads(a) for a in batch.answers]
    with_id_2 = [a for a in answers if a["id"] == 2] + [2 for rid in batch.waiting if rid == 2]
    assert len(with_id_2) == 1
    refused = [a for a in answers if a["id"] is None]
    assert len(refused) == 1
    assert "used twice" in refused[0]["error"]["message"] or "in use" in refused[0]["error"]["message"]


def test_a_batch_of_notifications_has_no_answer() -> None:
    [batch] = _open(BATCHES).receive_object([notification("notifications/progress", {"progressToken": 1})])
    assert isinstance(batch, Batch) and batch.done and batch.encode() is None


@pytest.mark.parametrize("version", [None, "2024-11-05", "2025-06-18", "2025-11-25"])
def test_batches_are_refused_outside_2025_03_26(version: str | None) -> None:
    c = ServerConnection(INFO) if version is None else _open(version)
    batch = [initialize(1, BATCHES)] if version is None else [request(2, "ping")]
    [reply] = c.receive_object(batch)
    assert isinstance(reply, Reply) and reply.request_id is None
    assert json.loads(reply.data)["error"]["code"] == jsonrpc.INVALID_REQUEST
    assert c.version == version  # an initialize inside a batch negotiated nothing


def test_an_empty_batch_is_invalid() -> None:
    [reply] = _open(BATCHES).receive_object([])
    assert isinstance(reply, Reply) and json.loads(reply.data)["error"]["code"] == jsonrpc.INVALID_REQUEST


def test_a_duplicate_id_inside_a_batch_is_not_answered_twice() -> None:
    [batch] = _open(BATCHES).receive_object([request(7, "tools/list"), request(7, "tools/list")])
    assert isinstance(batch, Batch)
    assert [e.id for e in batch.events if isinstance(e, Request)] == [7]
    assert [json.loads(a)["id"] for a in batch.answers] == [None]


# --- over stdio ---------------------------------------------------------------------------------------------


class Stdio:
    """``mcp-edge serve --stdio`` with the revisions plugin, over real pipes."""

    def __init__(self, tmp_path: Path) -> None:
        self.proc = subprocess.Popen(probe_command("--stdio"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=server_env(tmp_path, SETTINGS), cwd=tmp_path)
        self._buf = b""

    def send(self, msg: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def recv(self) -> Any:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + WAIT
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            assert left > 0, "no answer from the server"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 20)
                assert chunk, f"server closed stdout (exit {self.proc.poll()})"
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, rid: int, method: str, params: dict[str, Any] | None = None) -> Any:
        self.send(request(rid, method, params))
        while not (isinstance(msg := self.recv(), dict) and msg.get("id") == rid):
            pass
        return msg

    def handshake(self, version: str) -> Any:
        reply = self.call(1, "initialize", initialize(1, version)["params"])
        self.send(notification("notifications/initialized"))
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def stdio(tmp_path: Path) -> Iterator[Stdio]:
    client = Stdio(tmp_path)
    try:
        yield client
    finally:
        client.close()


def _weather(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return next(t for t in tools if t["name"] == "weather")


def test_stdio_2024_11_05_client_gets_its_revision(stdio: Stdio) -> None:
    init = stdio.handshake(OLD)["result"]
    assert init["protocolVersion"] == OLD
    assert "completions" not in init["capabilities"] and "title" not in init["serverInfo"]
    tools = stdio.call(2, "tools/list")["result"]["tools"]
    weather = _weather(tools)
    assert not {"outputSchema", "annotations", "title"} & set(weather) and weather["inputSchema"]["type"] == "object"
    called = stdio.call(3, "tools/call", {"name": "weather", "arguments": {"city": "Oslo"}})["result"]
    assert "structuredContent" not in called
    assert json.loads(called["content"][0]["text"]) == {"city": "Oslo", "celsius": 21}
    [audio] = stdio.call(4, "tools/call", {"name": "clip"})["result"]["content"]
    assert audio["type"] == "text"
    blocks = stdio.call(5, "tools/call", {"name": "link"})["result"]["content"]
    assert [b["type"] for b in blocks] == ["text", "text"] and "rev://log" in blocks[1]["text"]
    res = stdio.call(6, "resources/list")["result"]["resources"]
    assert all("title" not in r for r in res)
    prompts = stdio.call(7, "prompts/list")["result"]["prompts"]
    assert prompts and all("title" not in p for p in prompts)


def test_stdio_2025_11_25_client_gets_everything(stdio: Stdio) -> None:
    assert stdio.handshake(LATEST_HANDSHAKE)["result"]["serverInfo"].get("title")
    weather = _weather(stdio.call(2, "tools/list")["result"]["tools"])
    assert {"outputSchema", "annotations", "title"} <= set(weather)
    called = stdio.call(3, "tools/call", {"name": "weather", "arguments": {"city": "Oslo"}})["result"]
    assert called["structuredContent"] == {"city": "Oslo", "celsius": 21}


def test_stdio_batch_in_a_2025_03_26_session(stdio: Stdio) -> None:
    stdio.handshake(BATCHES)
    # nap 0.3 s finishes after nap 0.05 s: one line still carries both, when both are done
    stdio.send([request(2, "tools/call", {"name": "nap", "arguments": {"seconds": 0.3}}),
                request(3, "tools/call", {"name": "nap", "arguments": {"seconds": 0.05}}),
                notification("notifications/progress", {"progressToken": "x", "progress": 1}),
                request(4, "ping")])
    answer = stdio.recv()
    assert isinstance(answer, list) and sorted(m["id"] for m in answer) == [2, 3, 4]
    assert all("result" in m for m in answer)
    # a batch of notifications only gets nothing: the next line is the ping's answer
    stdio.send([notification("notifications/progress", {"progressToken": "x", "progress": 2})])
    assert stdio.call(5, "ping") == {"jsonrpc": "2.0", "id": 5, "result": {}}
    stdio.send([])
    empty = stdio.recv()
    assert isinstance(empty, dict) and empty["error"]["code"] == jsonrpc.INVALID_REQUEST


def test_stdio_batch_cancelling_its_own_request(stdio: Stdio) -> None:
    """A request cancelled in the same batch, before its task ever ran: no entry, the rest still answered."""
    stdio.handshake(BATCHES)
    stdio.send([request(2, "tools/call", {"name": "nap", "arguments": {"seconds": 5}}), request(3, "ping"),
                notification("notifications/cancelled", {"requestId": 2})])
    assert stdio.recv() == [{"jsonrpc": "2.0", "id": 3, "result": {}}]
    assert stdio.call(2, "ping")["result"] == {}  # id 2 is free again


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_stdio_batch_refused_in_later_sessions(stdio: Stdio, version: str) -> None:
    stdio.handshake(version)
    stdio.send([request(2, "ping"), request(3, "ping")])
    refused = stdio.recv()
    assert isinstance(refused, dict) and refused["id"] is None
    assert refused["error"]["code"] == jsonrpc.INVALID_REQUEST
    assert stdio.call(4, "ping")["result"] == {}  # the session lives on


def test_stdio_batch_before_initialize_refused(stdio: Stdio) -> None:
    stdio.send([initialize(1, BATCHES)])
    refused = stdio.recv()
    assert isinstance(refused, dict) and refused["error"]["code"] == jsonrpc.INVALID_REQUEST
    assert stdio.handshake(BATCHES)["result"]["protocolVersion"] == BATCHES  # nothing was negotiated before


# --- over HTTP ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_server(tmp_path_factory.mktemp("revisions-http"), "--http", "--host", "127.0.0.1", "--port", "0",
                        settings=SETTINGS) as server:
        yield server.port


@pytest.fixture
def http(http_port: int) -> Iterator[HttpClient]:
    client = HttpClient(http_port)
    try:
        yield client
    finally:
        client.close()


def _http_session(client: HttpClient, version: str) -> dict[str, Any]:
    reply = client.post(initialize(1, version), session=False)
    assert reply.status == 200, reply
    client.session = reply.headers["mcp-session-id"]
    assert client.post(notification("notifications/initialized"), {"MCP-Protocol-Version": version}).status == 202
    result: dict[str, Any] = reply.json()["result"]
    return result


def test_http_2024_11_05_client_gets_its_revision(http: HttpClient) -> None:
    init = _http_session(http, OLD)
    assert init["protocolVersion"] == OLD and "title" not in init["serverInfo"]
    hdr = {"MCP-Protocol-Version": OLD}
    weather = _weather(http.post(request(2, "tools/list"), hdr).json()["result"]["tools"])
    assert not {"outputSchema", "annotations", "title"} & set(weather)
    called = http.post(request(3, "tools/call", {"name": "weather", "arguments": {"city": "Oslo"}}), hdr).json()
    assert "structuredContent" not in called["result"] and called["result"]["content"][0]["type"] == "text"


def test_http_batch_in_a_2025_03_26_session(http: HttpClient) -> None:
    _http_session(http, BATCHES)
    hdr = {"MCP-Protocol-Version": BATCHES}
    reply = http.post([request(2, "tools/call", {"name": "nap", "arguments": {"seconds": 0.2}}),
                       request(3, "ping"), notification("notifications/progress", {"progressToken": 1})], hdr)
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    answer = reply.json()
    assert isinstance(answer, list) and sorted(m["id"] for m in answer) == [2, 3]
    only_notes = http.post([notification("notifications/progress", {"progressToken": 1})], hdr)
    assert only_notes.status == 202 and only_notes.body == b""
    empty = http.post([], hdr)
    assert empty.status == 400 and empty.json()["error"]["code"] == jsonrpc.INVALID_REQUEST


def test_http_batch_with_notifications_turns_into_sse(http: HttpClient) -> None:
    _http_session(http, BATCHES)
    hdr = {"MCP-Protocol-Version": BATCHES}
    reply = http.post([request(2, "tools/call", {"name": "steps", "_meta": {"progressToken": "p"}}),
                       request(3, "ping")], hdr)
    assert reply.status == 200
    *progress, answer = reply.events()
    assert [m["method"] for m in progress] == ["notifications/progress"] * 2
    assert isinstance(answer, list) and sorted(m["id"] for m in answer) == [2, 3]


def test_http_batch_cancelling_its_own_request(http: HttpClient) -> None:
    _http_session(http, BATCHES)
    hdr = {"MCP-Protocol-Version": BATCHES}
    reply = http.post([request(2, "tools/call", {"name": "nap", "arguments": {"seconds": 5}}), request(3, "ping"),
                       notification("notifications/cancelled", {"requestId": 2})], hdr)
    assert reply.status == 200 and reply.json() == [{"jsonrpc": "2.0", "id": 3, "result": {}}]
    assert http.post(request(2, "ping"), hdr).json()["result"] == {}  # id 2 is free again


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_http_batch_refused_in_later_sessions(http: HttpClient, version: str) -> None:
    _http_session(http, version)
    refused = http.post([request(2, "ping")], {"MCP-Protocol-Version": version})
    assert refused.status == 400 and refused.json()["error"]["code"] == jsonrpc.INVALID_REQUEST
    assert http.post(request(3, "ping"), {"MCP-Protocol-Version": version}).json()["result"] == {}


def test_http_batch_without_a_session_refused(http: HttpClient) -> None:
    refused = http.post([initialize(1, BATCHES)], session=False)
    assert refused.status == 400 and refused.json()["error"]["code"] == jsonrpc.INVALID_REQUEST
