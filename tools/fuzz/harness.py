"""What must hold for any input: the oracles shared by the atheris targets, the hypothesis tests and the replays.

Three surfaces, each a function of one byte string that returns when the input was handled as it should be
and raises ``FuzzFinding`` (or anything else: that is a crash) when it was not:

``check_jsonrpc(data)``
    The protocol core's framing: the first two bytes choose the frame limit, the chunking, an optional
    handshake first (with which revision) and the entry point (``receive_data`` or ``receive_message``);
    the rest is what the client sends.
``check_http(data)``
    One HTTP connection of the real application (``McpHttpApp`` behind ``http_wire.HttpConnection``) with
    a fake transport: the first byte chooses the chunking, the rest is what the client sends before it
    half-closes.
``check_manifest(data)``
    ``plugin.toml`` text, then (after a NUL) a JSON config value and (after another NUL) the text of an
    environment override of its first property: read the manifest, then resolve the config against its schema.
``check_frame(data)``
    The wire-format decoder (``mcp_edge.native._frame``): the first byte says whether to put the right magic
    and version in and to fix the CRC up (so the checks after it are reached); the rest is the frame's bytes.

The ``check_*_parts`` functions take the same inputs already split, for the hypothesis strategies.
Nothing here imports atheris or hypothesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from mcp_edge.errors import PluginConfigError, PluginLoadError
from mcp_edge.mcp import connection as _connection
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import (
    DEFAULT_MAX_FRAME,
    CancelRequest,
    ClientResult,
    Event,
    Notification,
    Reply,
    Request,
    ServerConnection,
    ServerInfo,
)
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, SUPPORTED_VERSIONS

Batch: Any = getattr(_connection, "Batch", None)  # JSON-RPC batches (2025-03-26), when the core has them

__all__ = [
    "FRAME_LIMITS",
    "INFO",
    "FuzzFinding",
    "JsonRpcInput",
    "check_frame",
    "check_http",
    "check_http_parts",
    "check_jsonrpc",
    "check_jsonrpc_parts",
    "check_manifest",
    "check_manifest_parts",
    "check_response_message",
    "parse_http_responses",
    "preload",
]


class FuzzFinding(AssertionError):
    """An input broke a property: the message says which."""


INFO = ServerInfo(name="fuzz", version="0", capabilities={"tools": {}, "logging": {}})
FRAME_LIMITS = (64, 1024, 4096, DEFAULT_MAX_FRAME)
_decoder = msgspec.json.Decoder()


def preload(target: str) -> None:
    """Import what ``check_<target>`` uses lazily (for the atheris targets, inside their instrumentation block)."""
    if target == "http":
        import mcp_edge.plugin
        import mcp_edge.runtime.router
        import mcp_edge.transport.http
        import mcp_edge.transport.http_wire
    elif target == "frame":
        import mcp_edge.native._frame
    elif target == "manifest":
        import tomllib  # noqa: F401 - its pure-Python parser, instrumented too

        import mcp_edge.plugin.config
        import mcp_edge.plugin.manifest  # noqa: F401


# --- JSON-RPC -------------------------------------------------------------------------------------------


def _valid_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def check_response_message(msg: object, where: str = "reply") -> None:
    """``msg`` (decoded) is one JSON-RPC 2.0 response: a result or an error, with a string, integer or null id."""
    if not isinstance(msg, dict):
        raise FuzzFinding(f"{where} is not a JSON object: {msg!r:.200}")
    assert isinstance(msg, dict)
    if msg.get("jsonrpc") != "2.0":
        raise FuzzFinding(f"{where} lacks jsonrpc 2.0: {msg!r:.200}")
    if not ("id" in msg and (msg["id"] is None or _valid_id(msg["id"]))):
        raise FuzzFinding(f"{where} has no valid id: {msg!r:.200}")
    if not (("result" in msg) != ("error" in msg)):
        raise FuzzFinding(f"{where} needs exactly one of result, error: {msg!r:.200}")
    if not (set(msg) <= {"jsonrpc", "id", "result", "error"}):
        raise FuzzFinding(f"{where} has extra members: {msg!r:.200}")
    if "error" in msg:
        err = msg["error"]
        if not isinstance(err, dict):
            raise FuzzFinding(f"{where}: error is not an object: {msg!r:.200}")
        code = err.get("code")
        if not (isinstance(code, int) and not isinstance(code, bool)):
            raise FuzzFinding(f"{where}: error code is not an integer: {msg!r:.200}")
        if not isinstance(err.get("message"), str):
            raise FuzzFinding(f"{where}: error message is not a string: {msg!r:.200}")
        if not (set(err) <= {"code", "message", "data"}):
            raise FuzzFinding(f"{where}: error has extra members: {msg!r:.200}")


def _reply_messages(reply: Reply) -> list[dict[str, Any]]:
    """The responses in a Reply (one, or a batch's): each checked."""
    if not isinstance(reply.data, bytes):
        raise FuzzFinding(f"Reply.data is not bytes: {reply.data!r:.200}")
    if b"\n" in reply.data:
        raise FuzzFinding(f"Reply holds a newline, which breaks line framing: {reply.data!r:.200}")
    try:
        msg = _decoder.decode(reply.data)
    except Exception as exc:  # any failure to parse our own output is the finding
        raise FuzzFinding(f"Reply is not JSON ({exc}): {reply.data!r:.200}") from None
    if isinstance(msg, list):  # a batch's responses (revisions with batches)
        if not msg:
            raise FuzzFinding("Reply is an empty batch")
        for i, m in enumerate(msg):
            check_response_message(m, f"reply batch[{i}]")
        return msg
    check_response_message(msg)
    assert isinstance(msg, dict)
    if not (msg["id"] == reply.request_id or (msg["id"] is None and reply.request_id is None)):
        raise FuzzFinding(f"Reply.request_id {reply.request_id!r} differs from its message's id {msg['id']!r}")
    if reply.is_error != ("error" in msg):
        raise FuzzFinding(f"Reply.is_error {reply.is_error} disagrees with {msg!r:.200}")
    return [msg]


def _check_event(ev: Event) -> None:
    if isinstance(ev, Request):
        if not _valid_id(ev.id):
            raise FuzzFinding(f"Request with invalid id {ev.id!r}")
        if not isinstance(ev.method, str):
            raise FuzzFinding(f"Request with method {ev.method!r}")
        if not isinstance(ev.params, dict):
            raise FuzzFinding(f"Request with params {ev.params!r:.200}")
        if ev.version not in SUPPORTED_VERSIONS:
            raise FuzzFinding(f"Request under unknown version {ev.version!r}")
        if not (ev.meta is None or isinstance(ev.meta, dict)):
            raise FuzzFinding(f"Request with _meta {ev.meta!r:.200}")
    elif isinstance(ev, Notification):
        if not (isinstance(ev.method, str) and isinstance(ev.params, dict)):
            raise FuzzFinding(f"malformed {ev!r:.200}")
    elif isinstance(ev, CancelRequest):
        if not _valid_id(ev.request_id):
            raise FuzzFinding(f"CancelRequest with id {ev.request_id!r}")
        if not (ev.reason is None or isinstance(ev.reason, str)):
            raise FuzzFinding(f"CancelRequest reason {ev.reason!r}")
    elif isinstance(ev, ClientResult):
        if not _valid_id(ev.id):
            raise FuzzFinding(f"ClientResult with id {ev.id!r}")
    elif isinstance(ev, Reply):
        _reply_messages(ev)
    elif Batch is not None and isinstance(ev, Batch):
        for inner in ev.events:
            if isinstance(inner, Reply | Batch):
                raise FuzzFinding(f"a batch holds {type(inner).__name__} among its events: {ev!r:.300}")
            _check_event(inner)
        for i, data in enumerate(ev.answers):
            try:
                answer = _decoder.decode(data)
            except Exception as exc:
                raise FuzzFinding(f"a batch answer is not JSON ({exc}): {data!r:.200}") from None
            check_response_message(answer, f"batch answer[{i}]")
        if ev.waiting != {e.id for e in ev.events if isinstance(e, Request)}:
            raise FuzzFinding(f"batch waits for {ev.waiting!r:.200}, its requests are other ids: {ev!r:.300}")
    else:
        raise FuzzFinding(f"unknown event {ev!r:.200}")


@dataclass
class _Kind:
    """What one incoming message is, as the client meant it (decoded here, independently of the core)."""

    parsed: bool
    value: Any = None

    @property
    def ids(self) -> set[Any]:
        """Ids a reply to this message may carry (besides null)."""
        items = self.value if isinstance(self.value, list) else [self.value]
        return {m.get("id") for m in items if isinstance(m, dict) and _valid_id(m.get("id"))}

    @property
    def is_response(self) -> bool:
        v = self.value
        return isinstance(v, dict) and "method" not in v and ("result" in v or "error" in v)

    @property
    def is_notification(self) -> bool:
        v = self.value
        return (isinstance(v, dict) and v.get("jsonrpc") == "2.0" and isinstance(v.get("method"), str)
                and "id" not in v)


def _kind(raw: bytes) -> _Kind:
    try:
        return _Kind(True, _decoder.decode(raw))
    except Exception:  # malformed, or nested too deep for msgspec: the core must cope
        return _Kind(False)


@dataclass
class _Model:
    """The client's view of one connection: which request ids have a response coming."""

    conn: ServerConnection
    inflight: set[Any] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)

    def after(self, kind: _Kind | None, events: Sequence[Event]) -> None:
        """Check the events one message (``kind``; None: unknown, e.g. at EOF) produced."""
        if not isinstance(events, list):
            raise FuzzFinding(f"events are a {type(events).__name__}, not a list")
        replies = batch_replies = 0
        for ev in events:
            _check_event(ev)
            if Batch is not None and isinstance(ev, Batch):
                batch_replies += self._batch(kind, ev)
            elif isinstance(ev, Reply):
                replies += 1
                for msg in _reply_messages(ev):
                    self._answered(kind, msg["id"], ev.data)
            elif isinstance(ev, Request):
                self._request(kind, ev)
        if kind is None:
            return
        if kind.is_response and replies:
            raise FuzzFinding(f"the core answered a response: {kind.value!r:.200} -> {events!r:.300}")
        if kind.is_notification and replies:
            raise FuzzFinding(f"the core answered a notification: {kind.value!r:.200} -> {events!r:.300}")
        # Where batches are refused the array gets one error; where they are taken, it is a batch, and a
        # batch of responses and notifications gets no answer.
        if (isinstance(kind.value, list) and batch_replies
                and all(_Kind(True, v).is_response or _Kind(True, v).is_notification for v in kind.value)):
            raise FuzzFinding(f"the core answered a batch of responses and notifications: {kind.value!r:.200}")

    def _answered(self, kind: _Kind | None, rid: Any, data: bytes) -> None:
        if rid is not None and rid in self.inflight:
            raise FuzzFinding(f"a second response for in-flight request id {rid!r}: {data!r:.200}")
        if kind is not None and rid is not None and rid not in kind.ids:
            raise FuzzFinding(f"reply id {rid!r} is not the id of the message it answers ({kind.value!r:.200})")

    def _request(self, kind: _Kind | None, ev: Request) -> None:
        if ev.id in self.inflight:
            raise FuzzFinding(f"Request id {ev.id!r} emitted twice while in flight")
        if kind is not None and ev.id not in kind.ids:
            raise FuzzFinding(f"Request id {ev.id!r} not in the message {kind.value!r:.200}")
        self.inflight.add(ev.id)
        self.requests.append(ev)

    def _batch(self, kind: _Kind | None, batch: Any) -> int:
        """A batch's events and answers, then the transport's part: answer its requests, send the array."""
        for data in batch.answers:
            self._answered(kind, _decoder.decode(data).get("id"), data)
        for ev in batch.events:
            if isinstance(ev, Request):
                self._request(kind, ev)
        for rid in list(batch.waiting):  # the transport answers each request of the batch ...
            batch.settle(rid, jsonrpc.result(rid, {}))
            self.inflight.discard(rid)
            finished = getattr(self.conn, "finished", None)
            if finished is not None:
                finished(rid)
        if not batch.done:
            raise FuzzFinding(f"batch not done after all its requests were settled: {batch!r:.300}")
        out = batch.encode()  # ... and sends one array, or nothing
        if out is None:
            return 0
        try:
            msgs = _decoder.decode(out)
        except Exception as exc:
            raise FuzzFinding(f"a batch's answer is not JSON ({exc}): {out!r:.200}") from None
        if not isinstance(msgs, list) or not msgs:
            raise FuzzFinding(f"a batch's answer is not a non-empty array: {out!r:.200}")
        for i, m in enumerate(msgs):
            check_response_message(m, f"batch answer[{i}]")
        return 1

    def finish_some(self, pick: int) -> None:
        """The transport answered some requests: tell the core (when it keeps an in-flight set)."""
        done = [rid for i, rid in enumerate(sorted(self.inflight, key=repr)) if (pick >> (i % 8)) & 1]
        finished = getattr(self.conn, "finished", None)
        for rid in done:
            self.inflight.discard(rid)
            if finished is not None:
                finished(rid)


def _handshake(version: str) -> bytes:
    init = jsonrpc.request(1 << 40, "initialize", {"protocolVersion": version, "capabilities": {},
                                                   "clientInfo": {"name": "fuzz", "version": "0"}})
    return init + b"\n" + jsonrpc.notification("notifications/initialized") + b"\n"


@dataclass(frozen=True)
class JsonRpcInput:
    """One decoded ``check_jsonrpc`` input."""

    stream: bytes
    max_frame: int = DEFAULT_MAX_FRAME
    chunk: int = 0  # 0: all at once
    handshake: str | None = None
    whole_message: bool = False  # receive_message(stream) instead of receive_data
    modern: bool = False
    finish: int = 0  # which in-flight requests the transport "answers" between lines (a bit mask)

    @classmethod
    def from_bytes(cls, data: bytes) -> JsonRpcInput:
        c0 = data[0] if data else 0
        c1 = data[1] if len(data) > 1 else 0
        versions = (None, *HANDSHAKE_VERSIONS)
        return cls(
            stream=data[2:],
            max_frame=FRAME_LIMITS[c0 & 3],
            chunk=(c1 & 0x3F),
            handshake=versions[((c0 >> 2) & 0x0F) % len(versions)],
            whole_message=bool(c0 & 0x40),
            modern=bool(c0 & 0x80),
            finish=c1 >> 6,
        )


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    if size <= 0:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _normal(events: Sequence[Event]) -> list[Any]:
    """Events, with a Reply reduced to what does not depend on how the bytes were cut (not the error text)."""
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, Reply):
            msgs = _reply_messages(ev)
            out.append(("reply", [(m["id"], (m.get("error") or {}).get("code")) for m in msgs]))
        elif Batch is not None and isinstance(ev, Batch):
            answers = [_decoder.decode(a) for a in ev.answers]
            out.append(("batch", _normal(ev.events), [(m.get("id"), (m.get("error") or {}).get("code"))
                                                      for m in answers]))
        else:
            out.append(ev)
    return out


def check_jsonrpc_parts(inp: JsonRpcInput) -> None:
    """Feed ``inp`` to fresh connections; FuzzFinding if anything it produced is malformed or misdirected."""
    if inp.whole_message:
        model = _Model(ServerConnection(INFO, max_frame=inp.max_frame))
        if inp.handshake:
            for line in _handshake(inp.handshake).splitlines():
                model.after(_kind(line), model.conn.receive_message(line))
        kind = _kind(inp.stream) if len(inp.stream) <= inp.max_frame else None
        model.after(kind, model.conn.receive_message(inp.stream, inp.modern))
        return
    prefix = _handshake(inp.handshake) if inp.handshake else b""
    data = prefix + inp.stream
    # Line by line, each message's events checked against what that message was.
    by_line = _Model(ServerConnection(INFO, max_frame=inp.max_frame))
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: a line without one
    per_line: list[Event] = []
    for line in lines:
        kind = _kind(line) if len(line) <= inp.max_frame else None
        events = by_line.conn.receive_data(line + b"\n")
        by_line.after(kind, events)
        per_line.extend(events)
        if inp.finish:
            by_line.finish_some(inp.finish)
    tail_events: list[Event] = []
    if tail:
        events = by_line.conn.receive_data(tail)
        by_line.after(None, events)
        per_line.extend(events)
    eof = getattr(by_line.conn, "receive_eof", None)
    if eof is not None:
        tail_events = eof()
        by_line.after(_kind(tail) if tail and len(tail) <= inp.max_frame else None, tail_events)
        per_line.extend(tail_events)
    if inp.finish:
        return  # the chunked run below cannot finish requests at the same points
    # In chunks: the same events, however the bytes were cut.
    chunked = _Model(ServerConnection(INFO, max_frame=inp.max_frame))
    got: list[Event] = []
    for piece in _chunks(data, inp.chunk):
        events = chunked.conn.receive_data(piece)
        chunked.after(None, events)
        got.extend(events)
    eof = getattr(chunked.conn, "receive_eof", None)
    if eof is not None:
        events = eof()
        chunked.after(None, events)
        got.extend(events)
    if _normal(got) != _normal(per_line):
        raise FuzzFinding(f"chunks of {inp.chunk} bytes gave other events than whole lines:\n"
        f"  {_normal(got)!r:.600}\n  {_normal(per_line)!r:.600}")


def check_jsonrpc(data: bytes) -> None:
    check_jsonrpc_parts(JsonRpcInput.from_bytes(data))


def check_object(value: Any, *, handshake: str | None = None, modern: bool = False) -> None:
    """``receive_object`` on any decoded JSON value."""
    model = _Model(ServerConnection(INFO))
    if handshake:
        for line in _handshake(handshake).splitlines():
            model.after(_kind(line), model.conn.receive_message(line))
    model.after(_Kind(True, value), model.conn.receive_object(value, modern))


# --- HTTP -----------------------------------------------------------------------------------------------


_STATUS = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [^\r\n]*")


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool = True


def _chunked_body(data: bytes, pos: int) -> tuple[bytes, int, bool]:
    """A chunked body from ``pos``: (body, position after it, complete)."""
    out = bytearray()
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), len(data), False
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9a-fA-F]+", size_text):
            raise FuzzFinding(f"bad chunk size line {data[pos:eol]!r:.100}")
        size = int(size_text, 16)
        start = eol + 2
        if size == 0:
            if data[start:start + 2] not in (b"\r\n", b"\r", b""):
                raise FuzzFinding("chunked body ends without CRLF")
            return bytes(out), start + 2, len(data) >= start + 2
        if len(data) < start + size + 2:
            return bytes(out + data[start:]), len(data), False
        out += data[start:start + size]
        if data[start + size:start + size + 2] != b"\r\n":
            raise FuzzFinding("chunk not followed by CRLF")
        pos = start + size + 2


def parse_http_responses(data: bytes, *, closed: bool) -> list[HttpResponse]:
    """The responses in what a server wrote; FuzzFinding if it is not a sequence of HTTP/1.1 responses.

    Only the last may be unfinished (a stream still open, or cut by ``closed``).
    """
    out: list[HttpResponse] = []
    pos = 0
    while pos < len(data):
        if out and not out[-1].complete:
            raise FuzzFinding(f"bytes after an unfinished response: {data[pos:pos + 80]!r}")
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            raise FuzzFinding(f"a response head without its blank line: {data[pos:pos + 200]!r}")
        head = data[pos:end].split(b"\r\n")
        m = _STATUS.fullmatch(head[0])
        if not m:
            raise FuzzFinding(f"not an HTTP/1.1 status line: {head[0]!r:.200}")
        assert m is not None
        status = int(m.group(1))
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(b":")
            if not (sep and re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name)):
                raise FuzzFinding(f"malformed response header line {line!r:.200}")
            if b"\r" in value or b"\n" in value:
                raise FuzzFinding(f"CR/LF inside header {line!r:.200}")
            headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()
        pos = end + 4
        if status < 200 or status in (204, 304):
            out.append(HttpResponse(status, headers, b""))
            continue
        if "content-length" in headers:
            if not headers["content-length"].isdigit():
                raise FuzzFinding(f"content-length {headers['content-length']!r}")
            n = int(headers["content-length"])
            body = data[pos:pos + n]
            complete = len(body) == n
            if not complete and not closed:
                raise FuzzFinding("a content-length body cut short")
            pos += n
            out.append(HttpResponse(status, headers, body, complete))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body, pos, complete = _chunked_body(data, pos)
            out.append(HttpResponse(status, headers, body, complete))
        else:  # close-delimited (HTTP/1.0 streams)
            out.append(HttpResponse(status, headers, data[pos:], closed))
            pos = len(data)
    return out


class _FakeTransport(asyncio.Transport):
    """The socket side of one connection, in memory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self.out = bytearray()
        self.closed = False
        self.eof_written = False
        self.paused = False
        self._lost_sent = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.eof_written:
            raise FuzzFinding("write after write_eof")
        if not self.closed:
            self.out += data

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def _lose(self) -> None:
        if not self._lost_sent:
            self._lost_sent = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._lose()

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)


class _Trap(logging.Handler):
    """Records log records that carry a traceback: an exception the code did not expect."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


class _HttpWorld:
    """One event loop and one application for every input (built on first use)."""

    def __init__(self) -> None:
        from mcp_edge.board.settings import Settings
        from mcp_edge.plugin import Registry
        from mcp_edge.runtime.router import Router
        from mcp_edge.transport.http import McpHttpApp

        self.loop = asyncio.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.errors.append(ctx))
        self.trap = _Trap()
        logging.getLogger("mcp_edge").addHandler(self.trap)
        # Small limits, so that short inputs reach the 413 and 431 paths.
        self.settings = Settings.load(environ={}, plugin_dirs=(), entry_points=False, max_body=2048, max_head=2048)
        registry = Registry([], entry_points=False)
        registry.discover()
        self.loop.run_until_complete(registry.start())
        router = Router(registry, INFO, self.settings)

        async def make() -> McpHttpApp:
            return McpHttpApp(router, self.settings, "127.0.0.1", 8080)

        self.app = self.loop.run_until_complete(make())

    def connection(self) -> tuple[Any, _FakeTransport]:
        from mcp_edge.transport import http_wire

        limits = getattr(http_wire, "WireLimits", None)  # the connection's own limits, where it takes them
        extra = (limits.from_settings(self.settings),) if limits is not None else ()
        conn = http_wire.HttpConnection(self.app, self.loop, *extra)
        transport = _FakeTransport(self.loop, conn)
        conn.connection_made(transport)
        return conn, transport

    def settle(self, done: Callable[[], bool], budget_s: float = 2.0) -> None:
        """Run the loop until ``done()``, or until nothing is left to run, or for ``budget_s`` at most."""

        async def spin() -> None:
            me = asyncio.current_task()
            deadline = self.loop.time() + budget_s
            ready = getattr(self.loop, "_ready", None)  # callbacks due (asyncio's own loop); None: unknown
            quiet = 0
            while not done() and self.loop.time() < deadline:
                await asyncio.sleep(0)
                others = [t for t in asyncio.all_tasks(self.loop) if t is not me]
                quiet = 0 if others else quiet + 1
                if quiet > 3 or (quiet and ready is not None and not ready):
                    return  # no task left, and the callbacks they scheduled have run
                if others and quiet == 0:
                    await asyncio.sleep(0.0005)  # a task waits on something: give time a chance to pass

        self.loop.run_until_complete(spin())


_world: list[_HttpWorld] = []


def _http_world() -> _HttpWorld:
    if not _world:
        _world.append(_HttpWorld())
    return _world[0]


def check_http_parts(chunks: Sequence[bytes], *, requests: int | None = None) -> list[HttpResponse]:
    """Send ``chunks`` on one connection, then half-close; FuzzFinding unless the answer is well-formed HTTP.

    ``requests``: how many requests the chunks hold, when the caller knows (then at most that many answers).
    """
    world = _http_world()
    world.errors.clear()
    world.trap.records.clear()
    conn, transport = world.connection()

    def stalled() -> bool:
        """Reading paused with nothing in progress: the client's next bytes, and its EOF, would never be read."""
        world.settle(lambda: not transport.paused or transport.closed or not conn.busy)
        return transport.paused and not transport.closed and not conn.busy

    for piece in chunks:
        if transport.closed:
            break
        if transport.paused:  # pipelining: the connection reads on once it has answered what is ahead
            world.settle(lambda: not transport.paused or transport.closed)
            if stalled():
                raise FuzzFinding("reading stays paused after the requests ahead were answered: the rest of "
                                  "the client's bytes are never read")
            if transport.paused or transport.closed:
                break
        conn.data_received(piece)
        world.settle(lambda: False, 0.5)
    world.settle(lambda: transport.closed or not conn.busy)
    if stalled():
        raise FuzzFinding("reading stays paused after every request was answered: the client's EOF is never "
                          "seen and the connection stays open")
    if not transport.closed:
        conn.eof_received()
        world.settle(lambda: transport.closed)
    if not transport.closed:  # a stream still open after the client left: the server ends it
        conn.shutdown()
        world.settle(lambda: transport.closed)
        transport.close()
    world.settle(lambda: False, 0.01)
    if world.errors:
        raise FuzzFinding(f"the event loop saw an error: {world.errors[0]!r:.600}")
    if world.trap.records:
        raise FuzzFinding("a traceback was logged: "
        + logging.Formatter().format(world.trap.records[0])[-1500:])
    responses = parse_http_responses(bytes(transport.out), closed=True)
    finals = [r for r in responses if r.status >= 200]
    for r in responses:
        if r.status == 500:
            raise FuzzFinding(f"500 Internal Server Error: {r.body!r:.300}")
        ctype = r.headers.get("content-type", "")
        if r.complete and r.body and ctype.startswith("application/json"):
            try:
                _decoder.decode(r.body)
            except Exception as exc:
                raise FuzzFinding(f"{r.status} body is not JSON ({exc}): {r.body!r:.200}") from None
        if ctype.startswith("text/event-stream"):
            for line in r.body.split(b"\n"):
                if line.startswith(b"data:"):
                    try:
                        _decoder.decode(line[5:])
                    except Exception as exc:
                        raise FuzzFinding(f"SSE data is not JSON ({exc}): {line!r:.200}") from None
    if requests is not None and len(finals) > requests:
        raise FuzzFinding(f"{len(finals)} responses to {requests} request(s): {[r.status for r in finals]}")
    return responses


def check_http(data: bytes) -> None:
    size = (data[0] if data else 0) * 4
    body = data[1:]
    chunks = [body[i:i + size] for i in range(0, len(body), size)] if size else [body]
    check_http_parts(chunks)


# --- plugin manifest and config -------------------------------------------------------------------------


_folder: list[Path] = []


def _manifest_folder() -> Path:
    if not _folder:
        _folder.append(Path(tempfile.mkdtemp(prefix="mcp-edge-fuzz-manifest-")) / "plugin")
        _folder[0].mkdir()
    return _folder[0]


def check_schema_value(schema: object, value: Any, env_text: str | None = None) -> None:
    """A schema: refused with PluginLoadError, or one that validates and resolves any value with our errors only."""
    from mcp_edge.plugin.config import check_schema, env_name, resolve_config, validate

    try:
        check_schema(schema, "fuzz")
    except PluginLoadError:
        return
    assert isinstance(schema, Mapping)
    problem = validate(value, schema)
    if not (problem is None or (isinstance(problem, tuple) and len(problem) == 2
                                and all(isinstance(p, str) for p in problem))):
        raise FuzzFinding(f"validate returned {problem!r:.200}")
    props = schema.get("properties")
    key = next(iter(props), None) if isinstance(props, Mapping) else None
    supplied = value if isinstance(value, dict) else ({key: value} if key is not None else {})
    environ = {env_name("fuzz", key): env_text} if key is not None and env_text is not None else {}
    with contextlib.suppress(PluginConfigError):
        resolved = resolve_config("fuzz", schema, supplied, environ)
        if not isinstance(resolved, dict):
            raise FuzzFinding(f"resolve_config gave {resolved!r:.200}")


def check_manifest_parts(toml_text: bytes, value: Any = None, env_text: str | None = None) -> None:
    """Read ``toml_text`` as plugin.toml: a Manifest or PluginLoadError; its schema then resolves ``value``."""
    from mcp_edge.plugin.manifest import read_manifest

    folder = _manifest_folder()
    (folder / "plugin.toml").write_bytes(toml_text)
    try:
        manifest = read_manifest(folder)
    except PluginLoadError:
        return
    schema = manifest.config_schema
    if schema is not None:
        check_schema_value(schema, value, env_text)


def check_manifest(data: bytes) -> None:
    parts = data.split(b"\0", 2)
    value: Any = None
    if len(parts) > 1:
        try:
            value = _decoder.decode(parts[1])
        except Exception:  # not JSON: use it as a string
            value = parts[1].decode("utf-8", "replace")
    env_text = parts[2].decode("utf-8", "replace") if len(parts) > 2 else None
    check_manifest_parts(parts[0], value, env_text)
    # The same text as a JSON schema (the [config.schema] table of a plugin in JSON form, e.g. a board file).
    try:
        schema = _decoder.decode(parts[0])
    except Exception:
        return
    check_schema_value(schema, value, env_text)



# --- wire format ----------------------------------------------------------------------------------------


_FRAME_REASONS = ("truncated", "overlong", "bad magic", "bad version", "bad field", "bad CRC", "bad TLV")


def _frame_fixed_up(control: int, raw: bytes) -> bytes:
    """``raw`` with the magic and version set (control bit 1) and the CRC made right for what the header says
    (bit 0), where the header is whole."""
    from mcp_edge.native import crc32c

    buf = bytearray(raw)
    if control & 2 and len(buf) >= 3:
        buf[0:3] = b"M\xc5\x01"
    if control & 1 and len(buf) >= 32:
        ext_len = int.from_bytes(buf[6:8], "little")
        plen = int.from_bytes(buf[16:20], "little")
        covered = 32 + ext_len + (plen if buf[4] == 0 else 0)
        buf[20:24] = bytes(4)
        buf[20:24] = crc32c(bytes(buf[:covered])).to_bytes(4, "little")
    return bytes(buf)


def check_frame(data: bytes) -> None:
    """The decoder on any bytes: a Frame that lies inside them and re-encodes to the same header, or FrameError
    with one of its reasons; never anything else."""
    from mcp_edge.native._frame import FrameError, decode, encode_header, frame_size

    raw = _frame_fixed_up(data[0], data[1:]) if data else b""
    try:
        frame = decode(raw)
    except FrameError as exc:
        if exc.reason not in _FRAME_REASONS:
            raise FuzzFinding(f"unknown reason {exc.reason!r}") from None
        if exc.reason == "truncated" and not exc.needed > len(raw):
            raise FuzzFinding(f"truncated, needing {exc.needed} bytes of the {len(raw)} there") from None
        _frame_edges(exc.reason, -1, ())
        return
    if not 32 <= frame.size <= len(raw):
        raise FuzzFinding(f"frame of {frame.size} bytes decoded from {len(raw)}")
    if frame_size(raw[:32]) != frame.size:
        raise FuzzFinding(f"frame_size {frame_size(raw[:32])} is not the decoded size {frame.size}")
    ext = frame.extensions
    if sum(4 + len(value) for _, value in frame.tlvs()) != len(ext):
        raise FuzzFinding(f"TLVs do not tile the {len(ext)} bytes of extensions: {bytes(ext)!r:.200}")
    if frame.crc_checked:  # the header is canonical: encoding its fields gives it back
        again = encode_header(frame.type, frame.id, frame.payload, kind=frame.kind,
                              length=frame.payload_length, segment=frame.segment, offset=frame.offset,
                              extensions=ext, end=frame.end)
        if again != raw[:32]:
            raise FuzzFinding(f"re-encoded header {again.hex()} differs from {raw[:32].hex()}")
    if decode(raw[:frame.size]).size != frame.size:
        raise FuzzFinding("the frame decodes differently without the bytes after it")
    _frame_edges("ok", frame.kind, [t for t, _ in frame.tlvs()])


def _frame_edges(outcome: str, kind: int, tlv_types: Sequence[int]) -> int:
    """One branch per outcome, kind and TLV type: the C decoder is not instrumented, so these are the edges
    that tell atheris an input reached somewhere new."""
    seen = 0
    for i, name in enumerate(("ok", *_FRAME_REASONS)):
        if outcome == name:
            seen |= 1 << i
    for k in range(3):
        if kind == k:
            seen |= 1 << (8 + k)
    for t in tlv_types:
        if t & 0x8000:
            seen |= 1 << 11
        if t & 0x7FFF == 1:
            seen |= 1 << 12
        elif t & 0x7FFF == 2:
            seen |= 1 << 13
        elif t & 0x7FFF == 3:
            seen |= 1 << 14
    return seen
