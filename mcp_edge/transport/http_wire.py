"""HTTP/1.1 on asyncio for the MCP endpoint: httptools (llhttp) parses, this module frames.

One ``HttpConnection`` per TCP connection. Requests are answered in the order
they arrived (HTTP/1.1 pipelining), one at a time; the application sees each as
an ``HttpRequest`` with its whole body and answers through an ``Exchange``:
either one response with a ``Content-Length`` body, or a streamed one (chunked
on HTTP/1.1), which is how Server-Sent Events go out.

Limits (``WireLimits``, from ``Settings``), each refused through the one table
of ``mcp_edge.mcp.refusals``:

* the request head (request line and headers) is bounded by ``max_head`` while
  its bytes arrive, not only once a header line ends (llhttp reports a header
  only when its line is complete, so an endless header value would otherwise
  be buffered whole): past it 431;
* the body by ``max_body``: a declared ``Content-Length`` over it is refused
  with 413 before any of the body is read (and before ``100 Continue``), a
  chunked body the moment it passes the limit; the body is never held beyond
  the limit, and its raw bytes (chunked framing, trailers) are bounded at
  twice the limit;
* deadlines measured from a request's first byte, never reset by later bytes:
  its head must be complete within ``head_timeout_s`` and its body within
  ``body_timeout_s``, else 408 (a fresh connection must start its first
  request within ``head_timeout_s`` or is closed); between requests an idle
  connection is closed after ``keepalive_s``;
* only HTTP/1.x: any other version gets 505; ``Upgrade`` and ``CONNECT`` get
  one 400;
* output: while the client has not read the answers so far (more than
  ``WRITE_HIGH`` waits in the transport), the next pipelined request is neither
  served nor read; a connection whose waiting bytes did not move for
  ``body_timeout_s`` (a client that stopped reading) is cut, closing or not,
  which also ends a handler waiting to write to it.

A refused connection answers, sends FIN, and drains what the client still
sends for a moment (``LINGER_S``) so that the client reads the answer instead
of a reset. ``Listener`` accepts connections and backs off (one log line a
minute) when the process runs out of file descriptors.

Imported only when HTTP is served: the stdio path never loads httptools.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Final, Protocol

import httptools

from mcp_edge.board.settings import Settings
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.refusals import Refusal, http_refusal

__all__ = ["MAX_HEAD", "Early", "Exchange", "HttpConnection", "HttpRequest", "Listener", "WireLimits", "WireServer",
           "reason"]

log = logging.getLogger("mcp_edge.transport.http")

_DEFAULTS: Final[dict[str, Any]] = {f.name: f.default for f in fields(Settings)}
MAX_HEAD: Final[int] = _DEFAULTS["max_head"]  # request line + headers (Settings.max_head's default)
MAX_HEADERS: Final = 100
LINGER_S: Final = 2.0  # how long a refused connection drains the client's bytes before closing
WRITE_HIGH: Final = 256 * 1024
WRITE_LOW: Final = 64 * 1024

_REASONS: Final = {
    100: "Continue", 200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


@dataclass(frozen=True, slots=True)
class WireLimits:
    """What one connection enforces; the defaults are ``Settings``' own."""

    max_head: int = _DEFAULTS["max_head"]
    head_timeout_s: float = _DEFAULTS["head_timeout_s"]
    body_timeout_s: float = _DEFAULTS["body_timeout_s"]
    keepalive_s: float = _DEFAULTS["keepalive_s"]

    @classmethod
    def from_settings(cls, settings: Settings) -> WireLimits:
        return cls(settings.max_head, settings.head_timeout_s, settings.body_timeout_s, settings.keepalive_s)


class _DateHeader:
    """The Date header line, formatted once a second."""

    second = -1
    line = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.line = time.strftime("date: %a, %d %b %Y %H:%M:%S GMT\r\n", time.gmtime(now)).encode()
        return cls.line


class HttpRequest:
    """One parsed request. Header names are lower case; repeated headers are joined with ", "."""

    __slots__ = ("body", "headers", "http_version", "keep_alive", "method", "path", "principal", "query")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], http_version: str,
                 keep_alive: bool) -> None:
        self.principal: Any = None  # who the request's credential says it is (the app's authentication)
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.body = b""


@dataclass(slots=True)
class Early:
    """A response decided from the request head alone; ``close`` ends the connection after it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    close: bool = False


class Exchange:
    """The response side of one request: ``respond`` once, or ``start`` / ``send``... / ``end``."""

    __slots__ = ("_chunked", "_conn", "_ended_waiter", "_keep_alive", "finished", "last_write", "on_lost", "request",
                 "started")

    def __init__(self, conn: HttpConnection, request: HttpRequest) -> None:
        self._conn = conn
        self.request = request
        self.started = False
        self.finished = False
        self._chunked = request.http_version != "1.0"
        self._keep_alive = request.keep_alive
        self._ended_waiter: asyncio.Future[None] | None = None
        self.last_write = 0.0
        self.on_lost: Callable[[], object] | None = None  # called if the connection drops mid-request

    @property
    def closed(self) -> bool:
        """The connection is gone (or this response is over): writes are dropped."""
        return self.finished or self._conn.lost

    def _head(self, status: int, headers: Iterable[tuple[str, str]], framing: bytes) -> bytes:
        parts = [f"HTTP/1.1 {status} {reason(status)}\r\n".encode(), _DateHeader.get()]
        parts.extend(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
        parts.append(framing)
        if not self._keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes = b"") -> None:
        """The whole response at once."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.finished = True
        framing = b"" if status in (204, 304) or status < 200 else f"content-length: {len(body)}\r\n".encode()
        self._conn.write(self._head(status, headers, framing) + body)
        self._conn.exchange_done(self, self._keep_alive)

    def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """Send the head of a streamed response (chunked on HTTP/1.1, close-delimited on 1.0)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        if not self._chunked:
            self._keep_alive = False
        framing = b"transfer-encoding: chunked\r\n" if self._chunked else b""
        self._conn.write(self._head(status, headers, framing))
        self.last_write = self._conn.now()

    def send(self, data: bytes) -> None:
        """One piece of a streamed body; dropped once the connection is gone."""
        if not self.started or self.finished or self._conn.lost or not data:
            return
        if self._chunked:
            self._conn.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._conn.write(data)
        self.last_write = self._conn.now()

    def end(self) -> None:
        """Finish a streamed response."""
        if self.finished:
            return
        self.finished = True
        if self._chunked and not self._conn.lost:
            self._conn.write(b"0\r\n\r\n")
        if self._ended_waiter is not None and not self._ended_waiter.done():
            self._ended_waiter.set_result(None)
        self._conn.exchange_done(self, self._keep_alive)

    def abort(self) -> None:
        """Drop the connection under this response (a client too slow to read its stream)."""
        self.finished = True
        if self._ended_waiter is not None and not self._ended_waiter.done():
            self._ended_waiter.set_result(None)
        self._conn.abort()

    def buffered(self) -> int:
        return self._conn.buffered()

    async def drain(self) -> None:
        """Wait while the client is slow to read what was written."""
        await self._conn.drain()

    async def wait_ended(self) -> None:
        """Until the response is ended here or the connection is lost."""
        if self.closed:
            return
        if self._ended_waiter is None:
            self._ended_waiter = asyncio.get_running_loop().create_future()
        await self._ended_waiter

    def connection_lost(self) -> None:
        if self.on_lost is not None and not self.finished:
            self.on_lost()
        if self._ended_waiter is not None and not self._ended_waiter.done():
            self._ended_waiter.set_result(None)


class WireServer(Protocol):
    """What a connection needs from the application behind it."""

    max_body: int

    def check(self, request: HttpRequest) -> Early | None:
        """A response decided on the head alone, or None to read the body and ``handle`` it."""
        ...

    async def handle(self, request: HttpRequest, exchange: Exchange) -> None: ...

    def connection_made(self, conn: HttpConnection) -> None: ...

    def connection_closed(self, conn: HttpConnection) -> None: ...


class _Entry:
    __slots__ = ("body", "early", "request", "size")

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.early: Early | None = None
        self.body: list[bytes] = []
        self.size = 0


class HttpConnection(asyncio.Protocol):
    """One client TCP connection: parse, queue, answer in order."""

    def __init__(self, app: WireServer, loop: asyncio.AbstractEventLoop, limits: WireLimits | None = None) -> None:
        self._app = app
        self._loop = loop
        self._limits = limits or WireLimits()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self.peer_principal: Any = None  # who the client certificate says the peer is (mutual TLS)
        self._url = bytearray()
        self._headers: dict[str, str] = {}
        self._head_size = 0
        self._head_error: int = 0
        self._entry: _Entry | None = None
        self._queue: deque[_Entry] = deque()
        self._task: asyncio.Task[None] | None = None
        self._current: Exchange | None = None
        self._paused_reading = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._linger_until = 0.0  # > 0: refusing; only draining the client's bytes until then
        self._closing = False
        self.lost = False
        # Write progress: bytes handed to the transport, how many of them had left it at the last look, and
        # when they last moved (or the buffer was empty). A client that reads nothing for body_timeout_s
        # while bytes wait for it is cut (sweep): otherwise close() waits forever for the flush.
        self._written = 0
        self._flushed = 0
        self._flowed_at = loop.time()
        self.last_active = loop.time()
        # The request being received: when its first byte came (0.0: between requests, where keep-alive
        # applies), whether its head is complete, and how many head bytes came so far (counted as they
        # arrive, before llhttp buffers an unfinished header line).
        self._msg_start = loop.time()  # a fresh connection owes its first request head within head_timeout_s
        self._in_body = False
        self._head_bytes = 0
        self._body_raw = 0
        self._heads_done = 0
        self._received = 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peercert = transport.get_extra_info("peercert")  # a verified TLS client certificate (mutual TLS)
        if peercert:
            self.peer_principal = getattr(self._app, "cert_principal", lambda _: None)(peercert)
        self._app.connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake_drainers()
        if self._current is not None:
            self._current.connection_lost()
        self._app.connection_closed(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers()

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        max_head = self._limits.max_head
        while data and not (self._linger_until or self._closing):
            if self._in_body:
                # Chunked framing and trailers are not body bytes, and llhttp reports a trailer only when its
                # line ends (so it is buffered whole, like a header): bound the raw bytes of a body as well.
                self._body_raw += len(data)
                if self._body_raw > 2 * self._app.max_body + max_head:
                    self._refuse_as(Refusal.TOO_LARGE, "request body, with its chunked framing and trailers, "
                                                       f"exceeds twice the {self._app.max_body}-byte limit")
                    return
                self._feed(data)
                return
            room = max_head - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                self._feed(data)
                return
            # More than the head may still take: feed what fits; a head that has not ended within it is
            # too large. What follows a head that did end is the body or the next request.
            done = self._heads_done
            first, data = data[:max(room, 0)], data[max(room, 0):]
            self._head_bytes += len(first)
            self._feed(first)
            if self._heads_done == done and not (self._linger_until or self._closing):
                self._refuse_as(Refusal.HEAD_TOO_LARGE, f"request head exceeds the {max_head}-byte limit")
                return

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # llhttp ends an Upgrade or CONNECT request at its head; on_headers_complete has refused it.
            if not self._closing:
                self._refuse(400, "protocol upgrades (Upgrade, CONNECT) are not supported")
        except httptools.HttpParserError as exc:
            if self._closing:
                return
            text = str(exc)
            if self._head_error == 431:
                self._refuse_as(Refusal.HEAD_TOO_LARGE, "request head too large")
            elif "HTTP version" in text or "PRI" in text:  # HTTP/3.1, or the HTTP/2 connection preface
                self._refuse(505, "only HTTP/1.x is served here")
            else:
                self._refuse(400, f"malformed HTTP request: {text}")

    def eof_received(self) -> bool | None:
        # The client finished sending. A stream in progress, or a request whose answer nobody else
        # waits for, ends with the connection; otherwise answer what was asked, then close.
        self._closing = True
        current = self._current
        idle = self._task is None and not self._queue
        gone = current is not None and not current.finished and (current.started or current.on_lost is not None)
        if self._linger_until or idle or gone:
            self.close()
        return True

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = {}
        self._head_size = 0
        self._entry = None
        if not self._msg_start:
            self._msg_start = self._loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self._limits.max_head:
            self._head_error = 431
            raise httptools.HttpParserError("request head too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._limits.max_head or len(self._headers) >= MAX_HEADERS:
            self._head_error = 431
            raise httptools.HttpParserError("request head too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._in_body = True
        self._head_bytes = 0
        self._body_raw = 0
        parser = self._parser
        url = bytes(self._url)
        headers = self._headers
        authority = _absolute_authority(url)
        if authority is not None:
            # absolute-form (RFC 9112 3.2.2): the target's authority replaces any Host header
            host, url = authority
            headers["host"] = host.decode("latin-1")
        qpos = url.find(b"?")
        path, query = (url, b"") if qpos < 0 else (url[:qpos], url[qpos + 1:])
        request = HttpRequest(
            parser.get_method().decode("latin-1"),
            path.decode("latin-1"),
            query.decode("latin-1"),
            headers,
            parser.get_http_version(),
            parser.should_keep_alive(),
        )
        request.principal = self.peer_principal
        entry = _Entry(request)
        self._entry = entry
        early: Early | None
        if not request.http_version.startswith("1."):
            early = _refusal_early(505, f"HTTP/{request.http_version} is not served here: use HTTP/1.1")
        elif parser.should_upgrade():
            # One answer, and the connection ends: llhttp stops parsing after an upgrade's head.
            early = _refusal_early(400, "protocol upgrades (Upgrade, CONNECT) are not supported")
        else:
            early = self._app.check(request)
        if early is None:
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self._app.max_body:
                early = self._too_large()
        if early is not None:
            entry.early = early
            if early.close:
                self._closing = True  # nothing more is read from this connection
                self._enqueue(entry)  # answered now (in turn); the body is never read
                return
        # An early answer that keeps the connection is sent after the body (read and dropped), so a client
        # waiting for 100 Continue gets it: otherwise its next request would be read as this body.
        if headers.get("expect", "").lower() == "100-continue" and self._task is None and not self._queue:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        entry = self._entry
        if entry is None or entry.early is not None:
            return
        entry.size += len(body)
        if entry.size > self._app.max_body:
            entry.body.clear()
            entry.early = self._too_large()
            self._closing = True
            self._enqueue(entry)
            return
        entry.body.append(body)

    def on_message_complete(self) -> None:
        entry = self._entry
        self._entry = None
        self._in_body = False
        self._head_bytes = 0
        self._msg_start = 0.0
        if entry is None or (entry.early is not None and entry.early.close):
            return
        entry.request.body = entry.body[0] if len(entry.body) == 1 else b"".join(entry.body)
        entry.body = []
        self._enqueue(entry)

    def _too_large(self) -> Early:
        status, headers, body = http_refusal(Refusal.TOO_LARGE,
                                             f"request body exceeds the {self._app.max_body}-byte limit")
        return Early(status, headers, body, close=True)

    # -- queue -----------------------------------------------------------------------------

    def _enqueue(self, entry: _Entry) -> None:
        self._queue.append(entry)
        if self._task is None:
            self._task = self._loop.create_task(self._process())
        elif not self._paused_reading and self._transport is not None:
            self._paused_reading = True  # one request ahead is enough: pipelining stays bounded
            self._transport.pause_reading()

    async def _process(self) -> None:
        try:
            while self._queue and not self.lost:
                entry = self._queue.popleft()
                request = entry.request
                exchange = Exchange(self, request)
                self._current = exchange
                early = entry.early
                if early is not None:
                    if early.close:
                        request.keep_alive = False
                        exchange._keep_alive = False
                        self._linger_until = self._loop.time() + LINGER_S
                    exchange.respond(early.status, early.headers, early.body)
                    if early.close:
                        self._half_close()
                        return
                    await self._until_drained()
                    self._read_on()
                    continue
                try:
                    await self._app.handle(request, exchange)
                except Exception:
                    log.exception("HTTP handler failed on %s %s", request.method, request.path)
                if not exchange.started:
                    exchange.respond(500, [("content-type", "text/plain")], b"internal error\n")
                elif not exchange.finished:
                    exchange.end()
                if not request.keep_alive or self._linger_until:
                    return
                await self._until_drained()
                self._read_on()
        finally:
            self._current = None
            self._task = None
            if self._closing and not self._queue and not self._linger_until:
                self.close()
            else:
                self._read_on()

    async def _until_drained(self) -> None:
        """Write back-pressure: while the client has not read the answers so far (the transport's buffer is past
        WRITE_HIGH), neither the next queued request is served nor more are read. A client that never reads is
        cut by the write-stall deadline (sweep), which wakes this."""
        while self._write_paused and not self.lost:
            await self.drain()

    def _read_on(self) -> None:
        """Resume reading paused for pipelining once the request ahead has been answered."""
        if self._paused_reading and self._transport is not None and not self._closing and not self.lost:
            self._paused_reading = False
            if self._msg_start:  # the request under way was not read meanwhile: its clock restarts
                self._msg_start = self._loop.time()
            self._transport.resume_reading()

    def exchange_done(self, exchange: Exchange, keep_alive: bool) -> None:
        self.last_active = self._loop.time()
        if not keep_alive and not self._linger_until:
            exchange.request.keep_alive = False
            self._closing = True
            self.close()

    # -- output ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.lost:
            if not self._transport.get_write_buffer_size():
                self._flowed_at = self._loop.time()  # nothing was waiting: the stall clock starts now
            self._written += len(data)
            self._transport.write(data)

    def _write_stalled(self, now: float) -> bool:
        """Bytes wait for the client and none of them left for ``body_timeout_s``."""
        pending = self.buffered()
        flushed = self._written - pending
        if not pending or flushed != self._flushed:
            self._flushed = flushed
            self._flowed_at = now
            return False
        return now - self._flowed_at > self._limits.body_timeout_s

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None and not self.lost else 0

    async def drain(self) -> None:
        if not self._write_paused or self.lost:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def now(self) -> float:
        return self._loop.time()

    # -- closing -------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be served: answer it (after what is ahead) and close."""
        self._refuse_with(_refusal_early(status, message))

    def _refuse_as(self, kind: Refusal, message: str) -> None:
        status, headers, body = http_refusal(kind, message)
        self._refuse_with(Early(status, headers, body, close=True))

    def _refuse_with(self, early: Early) -> None:
        request = HttpRequest("GET", "", "", {}, "1.1", False)
        entry = _Entry(request)
        entry.early = early
        self._closing = True
        self._entry = None
        self._enqueue(entry)

    def reject(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Refuse the whole connection before reading anything (a cap is reached): answer now and close."""
        self._closing = True
        self._linger_until = self._loop.time() + LINGER_S
        self._current = None
        exchange = Exchange(self, HttpRequest("GET", "", "", {}, "1.1", False))
        exchange.respond(status, headers, body)
        self._half_close()

    def _half_close(self) -> None:
        """Send FIN and drain the client's bytes for a moment (LINGER_S), so it reads our answer, not a reset."""
        transport = self._transport
        if transport is None or self.lost:
            return
        if self._paused_reading:
            self._paused_reading = False
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    def idle_for(self, now: float) -> float:
        """Seconds with nothing in progress (0 while a request is being received or served)."""
        if self._task is not None or self._queue or self._msg_start:
            return 0.0
        return now - self.last_active

    def sweep(self, now: float, keep_alive_s: float | None = None, ping_s: float = 15.0) -> None:
        """Periodic checks: a lingering connection is cut once LINGER_S has passed; a request being received
        past its head or body deadline gets 408; a connection idle between requests past ``keep_alive_s``
        (default: the limits') is closed; a stream quiet for ``ping_s`` gets an SSE comment (finds dead peers)."""
        if self._write_stalled(now):
            # Also a closing connection: transport.close() waits for the flush, which never comes.
            log.info("client read nothing for %g s with %d bytes waiting: connection cut",
                     self._limits.body_timeout_s, self.buffered())
            self.abort()
            return
        if self._linger_until:
            if now >= self._linger_until:
                self.abort()
            return
        limits = self._limits
        start = self._msg_start
        if start and not self._paused_reading and not self._closing:
            if self._in_body and now - start > limits.body_timeout_s:
                self._refuse_as(Refusal.TIMEOUT, f"request body not received within {limits.body_timeout_s:g} s")
            elif not self._in_body and now - start > limits.head_timeout_s:
                if self._received == 0:
                    self.close()  # a connection that never sent a byte: nothing to answer
                else:
                    self._refuse_as(Refusal.TIMEOUT,
                                    f"request head not received within {limits.head_timeout_s:g} s")
        current = self._current
        if current is not None and current.started and not current.finished:
            if now - current.last_write > ping_s:
                current.send(b": ping\n\n")
        elif self.idle_for(now) > (limits.keepalive_s if keep_alive_s is None else keep_alive_s):
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        """Server stopping: cancel a session-less request in progress, end a stream, close once idle."""
        self._closing = True
        current = self._current
        if current is not None:
            if current.on_lost is not None and not current.finished:
                current.on_lost()
            if current.started and not current.finished:
                current.end()
        if self._task is None:
            self.close()

    @property
    def busy(self) -> bool:
        return self._task is not None


def _refusal_early(status: int, message: str) -> Early:
    return Early(status, [("content-type", "application/json")],
                 jsonrpc.error(None, jsonrpc.INVALID_REQUEST, message), close=True)


def _absolute_authority(url: bytes) -> tuple[bytes, bytes] | None:
    """(authority, origin-form target) of an absolute-form target ``http://host[:port]/path?q``, else None."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    end = len(rest)
    for stop in (b"/", b"?", b"#"):
        pos = rest.find(stop)
        if 0 <= pos < end:
            end = pos
    target = rest[end:].split(b"#", 1)[0]
    if not target.startswith(b"/"):
        target = b"/" + target
    return rest[:end], target


# -- accepting connections -------------------------------------------------------------------------------------

_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BURST: Final = 64  # connections accepted per wake-up before other work gets a turn
_LOG_EVERY_S: Final = 60.0


def bind(host: str, port: int, backlog: int = 128) -> list[socket.socket]:
    """Listening sockets for ``host`` (every address it resolves to; '' or None: all) and ``port`` (0: a free one,
    the same on each address)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            try:
                sock.bind(addr)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {host or '*'} port {port}: {exc.strerror}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Listener:
    """Accepts connections on listening sockets. When the process runs out of file descriptors, accepting pauses
    for ``backoff_s`` (the pending connection waits in the kernel's backlog) and one line a minute says so;
    asyncio's own accept loop logs a traceback for each failure and always waits one second."""

    def __init__(self, loop: asyncio.AbstractEventLoop, socks: list[socket.socket],
                 factory: Callable[[], asyncio.Protocol], backoff_s: float, ssl_context: Any = None,
                 handshake_timeout_s: float = 10.0) -> None:
        self._ssl = ssl_context  # an ssl.SSLContext: each connection shakes hands first (HTTPS)
        self._next_clock_log = 0.0
        self._handshake_timeout_s = handshake_timeout_s
        self._loop = loop
        self.sockets = socks
        self._factory = factory
        self._backoff_s = backoff_s
        self._resume: asyncio.TimerHandle | None = None
        self._next_log = 0.0
        self._missed = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _stop_reading(self) -> None:
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPT_BURST):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._back_off(exc)
                else:
                    log.warning("accept failed: %s", exc)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            if self._ssl is None:
                await self._loop.connect_accepted_socket(self._factory, conn)
            else:
                await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl,
                                                         ssl_handshake_timeout=self._handshake_timeout_s)
        except OSError as exc:  # the client left already, its handshake failed, or no descriptor left
            log.debug("connection dropped at accept: %s", exc)
            conn.close()
            if self._ssl is not None:
                self._clock_unset(exc)

    def _clock_unset(self, exc: OSError) -> None:
        """A handshake that failed while the wall clock is unset: certificate dates cannot be judged; say so
        (at most once a minute), naming the clock, not just OpenSSL's words."""
        from mcp_edge.clock import clock_set, clock_state

        now = self._loop.time()
        if clock_set() or now < self._next_clock_log:
            return
        self._next_clock_log = now + 60.0
        log.warning("a TLS handshake failed (%s) while %s", exc, clock_state()["reason"])

    def _back_off(self, exc: OSError) -> None:
        self._stop_reading()
        self._resume = self._loop.call_later(self._backoff_s, self._restart)
        now = self._loop.time()
        if now < self._next_log:
            self._missed += 1
            return
        more = f" ({self._missed} more times since the last such line)" if self._missed else ""
        log.warning("out of file descriptors (%s): new connections wait, accepting pauses %g s at a time%s; "
                    "raise the open-files limit (ulimit -n) or lower Settings.max_connections",
                    exc.strerror, self._backoff_s, more)
        self._next_log = now + _LOG_EVERY_S
        self._missed = 0

    def _restart(self) -> None:
        self._resume = None
        if not self._closed:
            self.start()

    def close(self) -> None:
        self._closed = True
        if self._resume is not None:
            self._resume.cancel()
        else:
            self._stop_reading()
        for sock in self.sockets:
            sock.close()
