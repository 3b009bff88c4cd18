"""The runtime as an MCP client of a mounted server: JSON-RPC requests and their answers over a transport.

Small on purpose (the official SDK would cost the runtime tens of MiB and its start time): the handshake
(``initialize``, then ``notifications/initialized``), requests matched to responses by id, a deadline per request
that, when it passes or the caller gives up, sends ``notifications/cancelled`` to the server, progress
notifications routed to the call that asked for them (by our own progress token), and the server's other
notifications handed to ``on_notification``. Each message is decoded once into :class:`Incoming`, whose
``result`` stays the server's JSON bytes (``msgspec.Raw``) until someone needs it as data.

The server's own requests: ``ping`` is answered; sampling, elicitation and roots are not offered at
initialize (the client capabilities are empty), and any request is answered with method-not-found.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from mcp_edge.errors import PluginError, PluginLoadError, ProtocolError
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, STATELESS_VERSIONS

__all__ = ["BridgeLost", "Incoming", "McpClient", "Transport"]

log = logging.getLogger("mcp_edge.bridge")


class BridgeLost(PluginError):
    """The mounted server died, went away or broke the protocol while a call was in it; the runtime restarts it
    (the client may retry)."""

    code = -32603

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class Incoming(msgspec.Struct):
    """One message from the server; ``result`` is the raw JSON of a response's result (empty when none)."""

    jsonrpc: str = "2.0"
    id: int | str | None = None
    method: str | None = None
    params: dict[str, Any] | None = None
    result: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    error: dict[str, Any] | None = None


_decoder = msgspec.json.Decoder(Incoming)
_B64 = ("=?base64?", "?=")


def routing_value(value: str) -> str:
    """``value`` as an HTTP routing header (``Mcp-Name``) carries it: as it is when it is visible ASCII without
    blanks at its ends, else in the 2026-07-28 ``=?base64?...?=`` form (a tool named in UTF-8, a URI with a
    space; an HTTP header holds neither)."""
    plain = value.isascii() and value.isprintable() and value == value.strip(" \t")
    if plain and not (value.startswith(_B64[0]) and value.endswith(_B64[1])):
        return value
    import base64

    return f"{_B64[0]}{base64.b64encode(value.encode()).decode()}{_B64[1]}"


def decode(data: bytes | bytearray | memoryview | str) -> Incoming:
    """One message (msgspec.DecodeError or ValidationError when it is not a JSON-RPC object)."""
    return _decoder.decode(data)


Deliver = Callable[[Incoming, "int | None"], None]
Closed = Callable[[str], None]


class Transport(Protocol):
    """How the client reaches its server: stdio (:mod:`.stdio`) or Streamable HTTP (:mod:`.http`)."""

    pid: int

    async def open(self, deliver: Deliver, closed: Closed) -> None:
        """Start the server or the session; ``deliver(message, call)`` gets each message (``call``: the id of
        our request on whose stream it came, where the transport knows it), ``closed(reason)`` once at the end."""

    async def send(self, data: bytes, call: int | None = None, head: dict[str, str] | None = None) -> None:
        """Send one message (``call``: our request's id when it is one; ``head``: HTTP headers that say what it
        is, in the 2026-07-28 revision)."""

    def initialized(self, result: dict[str, Any], version: str) -> None:
        """The handshake is done (HTTP: the session's protocol version header from now on)."""

    def abandon(self, call: int) -> None:
        """Our request ``call`` was given up (deadline, cancelled): stop waiting on whatever carries its answer
        (HTTP: its POST, so a server that never answers holds no connection)."""

    async def close(self, grace: float) -> None:
        """End the server (or the session) within ``grace`` seconds, then by force."""

    def describe(self) -> str:
        """What it runs or reaches, for messages."""


class _Call:
    __slots__ = ("future", "rctx", "token")

    def __init__(self, future: asyncio.Future[Incoming], rctx: Any, token: int | None) -> None:
        self.future = future
        self.rctx = rctx
        self.token = token


Notify = Callable[[str, dict[str, Any]], "Awaitable[None] | None"]


class McpClient:
    """One session with one server (see the module docstring). ``on_notification(method, params)``: the
    server's notifications other than progress; ``on_lost(reason)``: the transport ended while not closing;
    ``notify_timeout``: how long sending one notification may take (a server that stops reading its stdin, or
    never answers a POST, must not hold a call past its deadline); ``max_pending``: the server's messages that
    may be on their way at once (progress, log lines, resource updates, its requests: each has a task while its
    client takes it); past it more are dropped (a server flooding them must not grow the runtime)."""

    def __init__(self, transport: Transport, plugin_id: str, *, on_notification: Notify | None = None,
                 on_lost: Callable[[str], None] | None = None, notify_timeout: float = 30.0,
                 max_pending: int = 1024) -> None:
        self.transport = transport
        self.notify_timeout = notify_timeout
        self.max_pending = max_pending
        self.dropped = 0  # the server's messages dropped past max_pending
        self.plugin_id = plugin_id
        self.on_notification = on_notification
        self.on_lost = on_lost
        self.version = ""
        self.server_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self.lost_reason: str | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._tokens: dict[int, _Call] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._open = False
        self.ready = False  # the handshake (or server/discover) is done
        self.stateless = False  # 2026-07-28 with the server: no handshake, _meta on every request
        self._meta: dict[str, Any] = {}
        self._listen: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._open and self.lost_reason is None

    # -- life -----------------------------------------------------------------------------------------------

    async def connect(self, offer: str, timeout: float) -> None:
        """Open the transport and do the handshake offering revision ``offer`` (a 2026-07-28 ``offer``:
        ``server/discover``, then that revision's ``_meta`` on every request; a server that answers
        ``initialize`` with method-not-found is asked ``server/discover`` too). PluginLoadError saying why not."""
        await self.transport.open(self._deliver, self._closed)
        self._open = True
        if offer in STATELESS_VERSIONS:
            await self._discover(offer, timeout)
            return
        params = {"protocolVersion": offer, "capabilities": {},
                  "clientInfo": {"name": "mcp-edge-bridge", "version": "1"}}
        try:
            answer = await self._first("initialize", params, timeout)
        except ProtocolError as exc:
            if exc.code == jsonrpc.METHOD_NOT_FOUND:  # a server of the stateless revision only
                await self._discover(STATELESS_VERSIONS[0], timeout)
                return
            raise PluginLoadError(f"plugin {self.plugin_id}: the server refused initialize: {exc.message} "
                                  f"(code {exc.code})") from None
        result = msgspec.json.decode(answer) if answer else None
        if not isinstance(result, dict):
            raise PluginLoadError(f"plugin {self.plugin_id}: the server's initialize result is not an object")
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_VERSIONS:
            raise PluginLoadError(f"plugin {self.plugin_id}: the server answered initialize with protocol "
                                  f"{version!r}, which this runtime does not speak ({', '.join(HANDSHAKE_VERSIONS)})")
        self.version = str(version)
        caps = result.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        info = result.get("serverInfo")
        self.server_info = info if isinstance(info, dict) else {}
        text = result.get("instructions")
        self.instructions = text if isinstance(text, str) else None
        self.transport.initialized(result, self.version)
        try:
            await self.notify("notifications/initialized")
        except TimeoutError:
            raise PluginLoadError(f"plugin {self.plugin_id}: the server ({self.transport.describe()}) did not take "
                                  f"notifications/initialized within {self.notify_timeout:g} s") from None
        self.ready = True

    async def _first(self, method: str, params: dict[str, Any], timeout: float) -> msgspec.Raw:
        try:
            return await self.request(method, params, timeout=timeout)
        except BridgeLost as exc:
            raise PluginLoadError(f"plugin {self.plugin_id}: the server ({self.transport.describe()}) ended "
                                  f"before the handshake: {exc.reason}") from None
        except TimeoutError:
            raise PluginLoadError(f"plugin {self.plugin_id}: the server ({self.transport.describe()}) did not "
                                  f"answer {method} within {timeout:g} s (init_timeout_s)") from None

    async def _discover(self, version: str, timeout: float) -> None:
        self.stateless = True
        self.version = version
        # logLevel debug: the server sends a call's log messages, the router passes on what its client wants
        self._meta = {"io.modelcontextprotocol/protocolVersion": version,
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "mcp-edge-bridge", "version": "1"},
                      "io.modelcontextprotocol/logLevel": "debug"}
        try:
            answer = await self._first("server/discover", {}, timeout)
        except ProtocolError as exc:
            raise PluginLoadError(f"plugin {self.plugin_id}: the server refused server/discover: {exc.message} "
                                  f"(code {exc.code})") from None
        result = msgspec.json.decode(answer) if answer else None
        supported = result.get("supportedVersions") if isinstance(result, dict) else None
        if not isinstance(supported, list) or version not in supported:
            raise PluginLoadError(f"plugin {self.plugin_id}: the server speaks {supported!r}, not {version} "
                                  "(set protocol_version to one it speaks)")
        assert isinstance(result, dict)
        self.version = version
        caps = result.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        meta = result.get("_meta")
        info = meta.get("io.modelcontextprotocol/serverInfo") if isinstance(meta, dict) else None
        self.server_info = info if isinstance(info, dict) else {}
        text = result.get("instructions")
        self.instructions = text if isinstance(text, str) else None
        self.transport.initialized(result, version)
        self.ready = True

    def listen(self, uris: list[str]) -> None:
        """2026-07-28: (re)open the ``subscriptions/listen`` stream for the list changes and ``uris``' updates
        (the previous one is cancelled)."""
        if self._listen is not None:
            self._listen.cancel()
        wanted: dict[str, Any] = {"toolsListChanged": True, "promptsListChanged": True,
                                  "resourcesListChanged": True}
        if uris:
            wanted["resourceSubscriptions"] = list(uris)

        async def run() -> None:
            try:
                await self.request("subscriptions/listen", {"notifications": wanted})
            except BridgeLost:
                pass
            except ProtocolError as exc:
                log.info("plugin %s: the server refused subscriptions/listen: %s", self.plugin_id, exc.message)

        self._listen = asyncio.get_running_loop().create_task(run(), name=f"bridge-{self.plugin_id}-listen")
        self._tasks.add(self._listen)
        self._listen.add_done_callback(self._tasks.discard)

    async def close(self, grace: float) -> None:
        """End the session and the server (within ``grace`` seconds); pending calls fail."""
        self._closing = True
        self._fail_all(BridgeLost(f"plugin {self.plugin_id}: the mounted server is stopping; the call did not "
                                  "finish"))
        for task in list(self._tasks):
            task.cancel()
        if self._open:
            self._open = False
            await self.transport.close(grace)

    # -- requests -------------------------------------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None,
                      rctx: Any = None, progress: bool = False) -> msgspec.Raw:
        """Send ``method`` and wait for its result (raw JSON). ProtocolError with the server's code, message and
        data when it answered an error; BridgeLost when the server went away; TimeoutError after ``timeout``.
        Given up (timeout or cancelled), the server is sent ``notifications/cancelled``."""
        if self.lost_reason is not None or not self._open:
            raise BridgeLost(f"plugin {self.plugin_id}: the mounted server is not running "
                             f"({self.lost_reason or 'not started'}); retry shortly", self.lost_reason or "")
        call_id = next(self._ids)
        body = dict(params) if params is not None else {}
        call = _Call(asyncio.get_running_loop().create_future(), rctx, call_id if progress else None)
        if progress or self.stateless:
            meta = body.get("_meta")
            body["_meta"] = {**(meta if isinstance(meta, dict) else {}), **self._meta}
            if progress:
                body["_meta"]["progressToken"] = call_id
                self._tokens[call_id] = call
        self._calls[call_id] = call
        try:
            async with asyncio.timeout(timeout):  # (sending too: a server that stops reading fills the pipe)
                await self.transport.send(jsonrpc.request(call_id, method, body or None), call_id,
                                          self._head(method, body) if self.stateless else None)
                msg = await call.future
        except (asyncio.CancelledError, TimeoutError):
            self.transport.abandon(call_id)
            if self.alive and method != "initialize":  # sent beside, never awaited: the deadline holds
                self._spawn(self._cancel(call_id), droppable=False)
            raise
        finally:
            self._calls.pop(call_id, None)
            self._tokens.pop(call_id, None)
        if msg.error is not None:
            err = msg.error
            code = err.get("code")
            raise ProtocolError(code if isinstance(code, int) else jsonrpc.INTERNAL_ERROR,
                                str(err.get("message", "the mounted server answered an error")), err.get("data"))
        return msg.result

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification; TimeoutError when it takes over ``notify_timeout``."""
        async with asyncio.timeout(self.notify_timeout):
            await self.transport.send(jsonrpc.notification(method, params), None,
                                      self._head(method, params or {}) if self.stateless else None)

    def _head(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        """The 2026-07-28 HTTP headers of a message: its revision, method and (tools/call, prompts/get,
        resources/read) the name or URI it is about."""
        head = {"MCP-Protocol-Version": self.version or STATELESS_VERSIONS[0], "Mcp-Method": method}
        name = params.get("uri" if method == "resources/read" else "name")
        if method in ("tools/call", "prompts/get", "resources/read") and isinstance(name, str):
            head["Mcp-Name"] = routing_value(name)
        return head

    async def _cancel(self, call_id: int) -> None:
        with contextlib.suppress(Exception):
            await self.notify("notifications/cancelled",
                              {"requestId": call_id, "reason": "the runtime's deadline passed or its client gave up"})

    # -- what the server sends ------------------------------------------------------------------------------

    def _deliver(self, msg: Incoming, on_call: int | None) -> None:
        if msg.method is None:  # a response
            call = self._calls.get(msg.id) if isinstance(msg.id, int) else None
            if call is not None and not call.future.done():
                call.future.set_result(msg)
            return
        if msg.id is not None:  # the server asks us
            self._spawn(self._answer(msg))
            return
        params = msg.params or {}
        method = msg.method
        if method == "notifications/progress":
            token = params.get("progressToken")
            call = self._tokens.get(token) if isinstance(token, int) else None
            if call is not None and call.rctx is not None:
                progress, total = params.get("progress"), params.get("total")
                message = params.get("message")
                if isinstance(progress, (int, float)):
                    self._spawn(call.rctx.report_progress(
                        float(progress), float(total) if isinstance(total, (int, float)) else None,
                        message if isinstance(message, str) else None))
            return
        if method == "notifications/message":
            target = self._calls.get(on_call) if on_call is not None else None
            level, data, logger = params.get("level", "info"), params.get("data"), params.get("logger")
            if target is not None and target.rctx is not None and isinstance(level, str):
                self._spawn(target.rctx.log(level, data, logger if isinstance(logger, str) else None))
            else:
                log.info("plugin %s: server log (%s%s): %s", self.plugin_id, level,
                         f", {logger}" if isinstance(logger, str) else "", str(data)[:2000])
            return
        if method == "notifications/cancelled":
            return  # the server gave up a request of ours: its answer (if any) still ends our wait
        if self.on_notification is not None:
            result = self.on_notification(method, params)
            if result is not None:
                self._spawn(result)

    async def _answer(self, msg: Incoming) -> None:
        assert msg.id is not None
        if msg.method == "ping":
            data = jsonrpc.result(msg.id, {})
        else:
            data = jsonrpc.error(msg.id, jsonrpc.METHOD_NOT_FOUND,
                                 f"method not found: {msg.method} (mcp-edge's bridge offers no client "
                                 "capabilities: no sampling, elicitation or roots)")
        with contextlib.suppress(Exception):
            await self.transport.send(data)

    def _closed(self, reason: str) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        self._fail_all(BridgeLost(f"plugin {self.plugin_id}: its mounted server {reason} while this call was in "
                                  "it; the call did not finish (the server is being restarted: retry)", reason))
        if not self._closing and self._open and self.on_lost is not None:
            self.on_lost(reason)

    def _fail_all(self, error: BaseException) -> None:
        for call in list(self._calls.values()):
            if not call.future.done():
                call.future.set_exception(error)
        self._calls.clear()
        self._tokens.clear()

    def _spawn(self, coro: Awaitable[Any], *, droppable: bool = True) -> None:
        if droppable and len(self._tasks) >= self.max_pending:
            close = getattr(coro, "close", None)
            if close is not None:
                close()  # (never awaited: no warning about it)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10000 == 0:
                log.warning("plugin %s: the server sends faster than its clients take it: %d message(s) dropped "
                            "so far (bridge_max_pending %d)", self.plugin_id, self.dropped, self.max_pending)
            return

        # the awaitable itself is the task (a wrapper cancelled before its first step would leave it never awaited)
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.debug("plugin %s: delivering a server message failed", self.plugin_id, exc_info=t.exception())

        task.add_done_callback(done)
