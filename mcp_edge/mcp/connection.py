"""Sans-I/O MCP server connection: bytes in, events and bytes out.

Transports feed it what they read (``receive_data`` for newline-delimited
streams, ``receive_message`` for one HTTP body) and get back events: requests
for the router, cancellations, and ``Reply`` bytes the core produced itself
(protocol errors, initialize, ping, logging/setLevel). It imports no socket,
asyncio or os; a test checks that.

Lifecycle (handshake era), one table — state, what arrives, next state:

    any           request with 2026-07-28 _meta    -> same state   (validated, dispatched statelessly;
                                                                    initialize/ping/setLevel/subscribe: -32601)
    IDLE          initialize request               -> INITIALIZING (answered here)
    IDLE          ping                             -> IDLE         (answered here)
    IDLE          server/discover                  -> IDLE         (dispatched: dual-era clients probe first)
    IDLE          any other request                -> IDLE         (error: not initialized)
    INITIALIZING  notifications/initialized        -> READY
    INITIALIZING  request                          -> INITIALIZING (dispatched: clients may race)
    READY         initialize request               -> READY        (error: already initialized)
    READY         request                          -> READY        (dispatched)
    any           malformed / oversized message    -> same state   (error reply; the connection lives on)
    any           response (result/error, no method) -> same state (ClientResult, or dropped and logged:
                                                                    a response is never answered)

Nothing fed to ``receive_data``, ``receive_message``, ``receive_object`` or
``receive_eof`` raises: a message that cannot be decoded is -32700, one whose
handling fails unexpectedly is -32603 for it (none for a notification or a
response) and one log line; one nested deeper than ``max_depth`` is refused
(-32600) before anyone walks it recursively. A request id stays in ``inflight`` from the
Request event until the transport calls ``finished``; a request reusing it
meanwhile is refused with id null, so no id is ever answered twice.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import msgspec

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.jsonrpc import RequestId
from mcp_edge.mcp.revisions import client_capabilities, shape
from mcp_edge.mcp.versions import STATELESS_VERSIONS, has_batches, negotiate

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME",
    "LOG_LEVELS",
    "Batch",
    "CancelRequest",
    "ClientLog",
    "ClientResult",
    "ConnState",
    "Event",
    "Notification",
    "Reply",
    "Request",
    "ServerConnection",
    "ServerInfo",
    "stateless_version",
]

log = logging.getLogger("mcp_edge.mcp")

DEFAULT_MAX_FRAME: Final = 4 * 1024 * 1024
# Deepest nesting of arrays and objects in one message (the envelope counts). msgspec itself stops at the
# interpreter's recursion limit (about 1,000 levels less the caller's stack), so anything that decoded
# could still make a recursive validator, a signer or the encoder deeper in the stack fail; no MCP message
# comes near this.
DEFAULT_MAX_DEPTH: Final = 64
# Lines logged at their level per ClientLog (dropped client messages, internal errors); past it only the
# 2**k-th, the others at DEBUG, so one client cannot flood the log and a long-lived one is still seen.
LOG_BUDGET: Final = 16
LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

# Where a 2026-07-28 request carries its protocol version and capabilities.
META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL: Final = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION_ID: Final = "io.modelcontextprotocol/subscriptionId"
# Error codes of the 2026-07-28 revision.
HEADER_MISMATCH: Final = -32020
MISSING_CAPABILITY: Final = -32021
UNSUPPORTED_VERSION: Final = -32022
# Methods of the handshake era that the 2026-07-28 revision removed.
REMOVED_IN_STATELESS: Final = frozenset(
    {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
)


class ConnState(enum.Enum):
    IDLE = "idle"
    INITIALIZING = "initializing"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Who this server is and what it offers, for initialize and server/discover."""

    name: str
    version: str
    capabilities: dict[str, Any]
    title: str | None = None
    instructions: str | None = None

    def implementation(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.title:
            info["title"] = self.title
        return info


class Event:
    """Something the connection tells its transport."""

    __slots__ = ()


@dataclass(slots=True)
class Request(Event):
    """A request for the router. ``version`` is the revision it is served under."""

    id: RequestId
    method: str
    params: dict[str, Any]
    version: str
    stateless: bool
    meta: dict[str, Any] | None = None

    @property
    def progress_token(self) -> str | int | None:
        token = self.meta.get("progressToken") if self.meta else None
        return token if isinstance(token, (str, int)) and not isinstance(token, bool) else None


@dataclass(slots=True)
class Notification(Event):
    method: str
    params: dict[str, Any]


@dataclass(slots=True)
class CancelRequest(Event):
    """notifications/cancelled: stop request ``request_id`` and send no response for it."""

    request_id: RequestId
    reason: str | None


@dataclass(slots=True)
class ClientResult(Event):
    """A response to a request this server sent the client."""

    id: RequestId
    result: Any = None
    error: Any = None


@dataclass(slots=True)
class Reply(Event):
    """Bytes to send as they are (one JSON-RPC message, no trailing newline). An error reply says its JSON-RPC
    ``code`` too, so a transport maps it (HTTP status) without parsing ``data``."""

    data: bytes
    request_id: RequestId | None = None
    is_error: bool = False
    code: int | None = None


@dataclass(slots=True)
class Batch(Event):
    """A JSON-RPC batch (2025-03-26), answered as one JSON array.

    ``events`` are its messages' events for the transport to act on as it would
    for single messages (Request, CancelRequest, ClientResult, Notification);
    ``answers`` already holds the core's own answers (errors, ping). The
    transport hands each Request's response to ``settle`` (None: cancelled, no
    entry); once ``done``, ``encode`` gives the array, or None when there is
    nothing to send (a batch of notifications and responses gets no answer).
    """

    events: list[Event] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)
    waiting: set[RequestId] = field(default_factory=set)  # ids of its Requests not yet settled

    @property
    def done(self) -> bool:
        return not self.waiting

    def settle(self, rid: RequestId, data: bytes | None) -> None:
        """Request ``rid`` of this batch was answered with ``data`` (None: it was cancelled)."""
        self.waiting.discard(rid)
        if data is not None:
            self.answers.append(data)

    def encode(self) -> bytes | None:
        return b"[" + b",".join(self.answers) + b"]" if self.answers else None


@dataclass(slots=True)
class ClientLog:
    """The log lines about what one client sent (a connection's own by default; a transport may share
    one among connections that belong together, such as stateless HTTP requests)."""

    count: int = 0

    def note(self, level: int, fmt: str, *args: object) -> None:
        self.count += 1
        n = self.count
        if n <= LOG_BUDGET or n & (n - 1) == 0:
            if n == LOG_BUDGET:
                fmt += " (further such lines at DEBUG level, only every 2**k-th here)"
            elif n > LOG_BUDGET:
                fmt += f" ({n} such lines so far)"
            log.log(level, fmt, *args)
        else:
            log.debug(fmt, *args)


def _valid_id(value: object) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _show(value: object, limit: int = 80) -> str:
    """A short repr of a client's value for a message or log line; never raises (huge or deep values)."""
    try:
        text = repr(value)
    except Exception:  # too deep to repr, or an int past Python's digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels in ``obj`` (iterative: never recurses)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        children = item.values() if kind is dict else item if kind is list else None
        if children is None:
            continue
        if depth > limit:
            return True
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _classify(msg: Any) -> tuple[str, RequestId | None]:
    """("response" | "notification" | "request" | "invalid", the usable id) of a decoded message."""
    if not isinstance(msg, dict):
        return "invalid", None
    raw_id = msg.get("id")
    rid = raw_id if _valid_id(raw_id) else None
    if msg.get("method") is None:
        return ("response" if "result" in msg or "error" in msg else "invalid"), rid
    return ("request" if "id" in msg else "notification"), rid


_LAST_RESORT: Final = jsonrpc.error(None, jsonrpc.INTERNAL_ERROR, "internal error while handling this message")
_Handler = TypeVar("_Handler", bound=Callable[..., list["Event"]])


def _never_raises(handle: _Handler) -> _Handler:
    """Wrap ``receive_object``: an unexpected exception while handling one message becomes -32603 for
    that message (none for a notification or a response) and one log line, never an exception.

    Request ids registered as in flight during the failed call are released again: their events are
    lost, so no transport would ever call ``finished`` for them. Calls may nest (a batch handles each
    of its messages through ``receive_object``), hence the mark and the call count.
    """

    @functools.wraps(handle)
    def guarded(self: ServerConnection, msg: Any, modern: bool = False) -> list[Event]:
        mark = len(self._fresh)
        self._calls += 1
        try:
            events: list[Event] = handle(self, msg, modern)
        except Exception as exc:
            for rid in self._fresh[mark:]:
                self.inflight.discard(rid)
            del self._fresh[mark:]
            try:
                return self._internal_error(msg, exc)
            except Exception:  # only a Python object built to break even that (a dict whose get raises)
                return [Reply(_LAST_RESORT, None, True, jsonrpc.INTERNAL_ERROR)]
        finally:
            self._calls -= 1
        if self._calls == 0:
            self._fresh.clear()
        return events

    return cast(_Handler, guarded)


def stateless_version(params: object) -> str | None:
    """The protocol version a 2026-07-28-style request carries in its _meta, if any."""
    if not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    version = meta.get(META_PROTOCOL_VERSION)
    return version if isinstance(version, str) else None


@dataclass
class ServerConnection:
    """One client conversation (a stdio pipe, a socket, or one HTTP session)."""

    info: ServerInfo
    max_frame: int = DEFAULT_MAX_FRAME
    max_depth: int = DEFAULT_MAX_DEPTH
    state: ConnState = ConnState.IDLE
    version: str | None = None
    client_info: dict[str, Any] = field(default_factory=dict)
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str = "info"
    # Ids of the Request events emitted and not yet ``finished`` by the transport.
    inflight: set[RequestId] = field(default_factory=set)
    client_log: ClientLog = field(default_factory=ClientLog)
    _buffer: bytearray = field(default_factory=bytearray)
    _discarding: bool = False
    _scanned: int = 0  # bytes at the start of _buffer known to hold no newline
    _shallow: bool = False  # receive_message counted at most max_depth openers: no walk needed
    _fresh: list[RequestId] = field(default_factory=list)  # ids registered by the receive_object call(s) running
    _calls: int = 0  # receive_object calls running (a batch nests them)

    # -- in-flight requests -------------------------------------------------------

    def finished(self, rid: RequestId) -> None:
        """The transport wrote the response to request ``rid``, or dropped it (cancelled): the id is free."""
        self.inflight.discard(rid)

    def _emit(self, request: Request) -> Request:
        """Register a Request event's id as in flight (every Request event goes through here)."""
        self.inflight.add(request.id)
        self._fresh.append(request.id)
        return request

    # -- input ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Newline-delimited framing: every complete line is one message."""
        events: list[Event] = []
        buf = self._buffer
        buf += data
        start = 0
        # The buffered bytes were searched for a newline before: search only what just arrived, or a line
        # trickled in small chunks would be scanned again on every chunk (quadratic in the frame limit).
        search = self._scanned
        while True:
            nl = buf.find(b"\n", search)
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False
            else:
                line = bytes(buf[start:nl])
                if len(line) > self.max_frame:
                    events.append(self._too_large(len(line)))
                elif line.strip():
                    events.extend(self.receive_message(line))
            start = search = nl + 1
        del buf[:start]
        if len(buf) > self.max_frame:
            if not self._discarding:
                events.append(self._too_large(len(buf)))
            self._discarding = True
            buf.clear()
        self._scanned = len(buf)
        return events

    def receive_eof(self) -> list[Event]:
        """The stream ended: the events of a last line that had no newline; the buffer is empty after."""
        line = bytes(self._buffer)
        discarding = self._discarding
        self._buffer.clear()
        self._discarding = False
        self._scanned = 0
        if discarding or not line.strip():  # the tail of an oversized frame (already refused), or blank
            return []
        return self.receive_message(line)

    def _too_large(self, size: int) -> Reply:
        return self._error(
            None, jsonrpc.INVALID_REQUEST, f"message of {size}+ bytes exceeds the {self.max_frame}-byte frame limit"
        )

    def receive_message(self, raw: bytes | bytearray | memoryview, modern: bool = False) -> list[Event]:
        """One complete JSON-RPC message (an HTTP body, or one line)."""
        if len(raw) > self.max_frame:
            return [self._too_large(len(raw))]
        try:
            msg = jsonrpc.decode(raw)
        except msgspec.DecodeError as exc:
            return [self._error(None, jsonrpc.PARSE_ERROR, f"parse error: {exc}")]
        except RecursionError:  # msgspec nests on the C stack and gives up past the recursion limit
            return [self._error(None, jsonrpc.PARSE_ERROR, "parse error: the message is nested too deeply")]
        except Exception as exc:  # whatever else decoding can raise (MemoryError included) is still a parse error
            return [self._error(None, jsonrpc.PARSE_ERROR, f"parse error: {type(exc).__name__}")]
        # Fewer "[" and "{" bytes than levels allowed (strings included): it cannot nest too deeply.
        self._shallow = isinstance(raw, (bytes, bytearray)) and raw.count(b"[") + raw.count(b"{") <= self.max_depth
        try:
            return self.receive_object(msg, modern)
        finally:
            self._shallow = False

    @_never_raises
    def receive_object(self, msg: Any, modern: bool = False) -> list[Event]:
        """A decoded message; ``modern``: the transport already knows it is a 2026-07-28 message."""
        if self._calls == 1 and not self._shallow and _deeper_than(msg, self.max_depth):
            return self._too_deep(msg)  # (a batch is walked once, as a whole)
        if isinstance(msg, list):
            return self._batch(msg, modern)
        if not isinstance(msg, dict):
            return [self._error(None, jsonrpc.INVALID_REQUEST, "a JSON-RPC message must be an object")]
        raw_id = msg.get("id")
        msg_id: RequestId | None = raw_id if _valid_id(raw_id) else None
        method = msg.get("method")
        if method is None and ("result" in msg or "error" in msg):
            return self._response(msg, msg_id)  # never answered, whatever it holds
        if msg_id is not None and msg_id in self.inflight:
            # Answering with that id would give the client two responses for it: refuse with id null.
            return [self._error(None, jsonrpc.INVALID_REQUEST,
                                f"request id {_show(msg_id)} is already in use by a request in flight")]
        if msg.get("jsonrpc") != "2.0":
            return [self._error(msg_id, jsonrpc.INVALID_REQUEST, 'the "jsonrpc" member must be "2.0"')]
        if method is None:
            return [self._error(msg_id, jsonrpc.INVALID_REQUEST, "a message needs a method, or a result or error")]
        if not isinstance(method, str):
            return [self._error(msg_id, jsonrpc.INVALID_REQUEST, "method must be a string")]
        params = msg.get("params", {})
        if params is None:
            params = {}
        if "id" in msg:
            if msg_id is None:
                return [self._error(None, jsonrpc.INVALID_REQUEST, "request id must be a string or an integer")]
            if not isinstance(params, dict):
                return [self._error(msg_id, jsonrpc.INVALID_PARAMS, "params must be an object")]
            return self._request(msg_id, method, params, modern)
        if not isinstance(params, dict) or not isinstance(params.get("_meta", {}), (dict, type(None))):
            self._note("dropped notification %s: params and params._meta must be objects", _show(method))
            return []  # a malformed notification gets no reply
        return self._notification(method, params)

    def _response(self, msg: dict[str, Any], msg_id: RequestId | None) -> list[Event]:
        """A response from the client: a ClientResult for the router, or dropped with a log line.

        Replying to a response would let two peers bounce errors forever, so nothing here is answered.
        A malformed one with a usable id still reaches the router, which fails the request it answers.
        """
        if msg_id is None:
            self._note("dropped a response with id %s: not a request id of ours", _show(msg.get("id")))
            return []
        if msg.get("jsonrpc") != "2.0" or ("result" not in msg and msg.get("error") is None):
            problem = 'its "jsonrpc" member must be "2.0"' if msg.get("jsonrpc") != "2.0" else "it has no result"
            return [ClientResult(msg_id, None, {"code": jsonrpc.INVALID_REQUEST,
                                                "message": f"malformed response from the client: {problem}"})]
        return [ClientResult(msg_id, msg.get("result"), msg.get("error"))]

    def _batch(self, msgs: list[Any], modern: bool) -> list[Event]:
        """A JSON-RPC batch: only in a session whose revision has batches (2025-03-26), never empty.

        Before initialize no revision has been negotiated, so a batch is refused (initialize must not be
        part of one); each message of an accepted batch is handled as a single one would be.
        """
        if modern or not has_batches(self.version):
            when = f"in protocol {STATELESS_VERSIONS[0] if modern else self.version}" if modern or self.version \
                else "before initialize (and initialize must not be part of a batch)"
            return [self._error(None, jsonrpc.INVALID_REQUEST, f"JSON-RPC batches are not supported {when}")]
        if not msgs:
            return [self._error(None, jsonrpc.INVALID_REQUEST, "a JSON-RPC batch must not be empty")]
        batch = Batch()
        seen: set[RequestId] = set()  # ids of this batch's requests: the core answers some itself (ping, errors)
        for item in msgs:
            rid = item.get("id") if isinstance(item, dict) and "method" in item else None
            if _valid_id(rid) and rid in seen:
                events: list[Event] = [self._error(None, jsonrpc.INVALID_REQUEST,
                                                   f"request id {rid!r} is used twice in this batch")]
            elif isinstance(item, list):
                events = [self._error(None, jsonrpc.INVALID_REQUEST, "a batch cannot hold a batch")]
            elif (isinstance(item, dict) and item.get("method") == "initialize" and _valid_id(item.get("id"))
                  and item["id"] not in self.inflight):
                events = [self._error(item["id"], jsonrpc.INVALID_REQUEST, "initialize must not be part of a batch")]
            else:
                events = self.receive_object(item)
            if _valid_id(rid):
                seen.add(rid)  # type: ignore[arg-type]
            for ev in events:
                if isinstance(ev, Reply):
                    batch.answers.append(ev.data)
                    continue
                if isinstance(ev, Request):
                    batch.waiting.add(ev.id)
                batch.events.append(ev)
        return [batch]

    # -- lifecycle --------------------------------------------------------------

    def _stateless(self, rid: RequestId, method: str, params: dict[str, Any]) -> Event:
        """Validate a 2026-07-28 request in the order the revision gives: _meta, version, method."""
        meta = params.get("_meta")
        if (
            not isinstance(meta, dict)
            or not isinstance(meta.get(META_PROTOCOL_VERSION), str)
            or not isinstance(meta.get(META_CLIENT_CAPABILITIES), dict)
        ):
            return self._error(rid, jsonrpc.INVALID_PARAMS,
                               f"params._meta needs {META_PROTOCOL_VERSION} (a string) and "
                               f"{META_CLIENT_CAPABILITIES} (an object)")
        version = meta[META_PROTOCOL_VERSION]
        if version not in STATELESS_VERSIONS:
            return self._error(rid, UNSUPPORTED_VERSION, f"unsupported protocol version {version!r}",
                               {"supported": list(STATELESS_VERSIONS), "requested": version})
        if method in REMOVED_IN_STATELESS:
            return self._error(rid, jsonrpc.METHOD_NOT_FOUND,
                               f"method not found: {method} is not part of protocol {version}")
        return self._emit(Request(rid, method, params, version, True, meta))

    def _request(self, rid: RequestId, method: str, params: dict[str, Any], modern: bool = False) -> list[Event]:
        meta = params.get("_meta")
        if meta is not None and not isinstance(meta, dict):
            return [self._error(rid, jsonrpc.INVALID_PARAMS, f"params._meta must be an object, got {_show(meta)}")]
        if modern or (meta is not None and META_PROTOCOL_VERSION in meta):
            return [self._stateless(rid, method, params)]
        if method == "ping":
            return [Reply(jsonrpc.result(rid, {}), rid)]
        if method == "initialize":
            return [self._initialize(rid, params)]
        if method == "server/discover" and self.version is None:
            return [self._emit(Request(rid, method, params, STATELESS_VERSIONS[0], True, meta))]
        if self.state is ConnState.IDLE or self.version is None:
            return [self._error(rid, jsonrpc.INVALID_REQUEST,
                                f"{method} before initialize: send initialize first, or use protocol "
                                f"{STATELESS_VERSIONS[0]} with its version in params._meta")]
        if method == "logging/setLevel":
            level = params.get("level")
            if level not in LOG_LEVELS:
                return [self._error(rid, jsonrpc.INVALID_PARAMS,
                                    f"level must be one of {', '.join(LOG_LEVELS)}, got {_show(level)}")]
            self.log_level = str(level)
            return [Reply(jsonrpc.result(rid, {}), rid)]
        return [self._emit(Request(rid, method, params, self.version, False, meta))]

    def _initialize(self, rid: RequestId, params: dict[str, Any]) -> Reply:
        if self.state is not ConnState.IDLE:
            return self._error(rid, jsonrpc.INVALID_REQUEST, "already initialized: initialize is sent once")
        requested = params.get("protocolVersion")
        caps = params.get("capabilities", {})
        client = params.get("clientInfo", {})
        if not isinstance(requested, str):
            return self._error(rid, jsonrpc.INVALID_PARAMS, "initialize needs params.protocolVersion (a string)")
        if not isinstance(caps, dict) or not isinstance(client, dict):
            return self._error(rid, jsonrpc.INVALID_PARAMS, "capabilities and clientInfo must be objects")
        self.version = negotiate(requested)
        self.client_capabilities = client_capabilities(caps, self.version)
        self.client_info = client
        self.state = ConnState.INITIALIZING
        result: dict[str, Any] = {
            "protocolVersion": self.version,
            "capabilities": self.info.capabilities,
            "serverInfo": self.info.implementation(),
        }
        if self.info.instructions:
            result["instructions"] = self.info.instructions
        return Reply(jsonrpc.result(rid, shape("initialize", result, self.version)), rid)

    def _notification(self, method: str, params: dict[str, Any]) -> list[Event]:
        if method == "notifications/initialized":
            if self.state is ConnState.INITIALIZING:
                self.state = ConnState.READY
            return []
        if method == "notifications/cancelled":
            rid = params.get("requestId")
            if isinstance(rid, (str, int)) and not isinstance(rid, bool):
                reason = params.get("reason")
                return [CancelRequest(rid, reason if isinstance(reason, str) else None)]
            return []
        return [Notification(method, params)]

    # -- output ------------------------------------------------------------------

    def _error(self, rid: RequestId | None, code: int, message: str, data: Any = None) -> Reply:
        try:
            return Reply(jsonrpc.error(rid, code, message, data), rid, True, code)
        except Exception:  # only objects handed to receive_object directly (a lone surrogate) get here
            return Reply(jsonrpc.error(None, code, "the error for this message could not be encoded"), None, True,
                         code)

    def _too_deep(self, msg: Any) -> list[Event]:
        """A message nested deeper than ``max_depth``: refused like any invalid one, responses never answered."""
        what = f"the message nests deeper than {self.max_depth} levels of arrays and objects"
        kind, rid = _classify(msg)
        if kind == "response":
            if rid is not None:  # the request it answers fails; the client is not answered
                return [ClientResult(rid, None, {"code": jsonrpc.INVALID_REQUEST,
                                                 "message": f"malformed response from the client: {what}"})]
            self._note("dropped a response: %s", what)
            return []
        if kind == "notification":
            self._note("dropped a notification: %s", what)
            return []
        return [self._error(rid if rid not in self.inflight else None, jsonrpc.INVALID_REQUEST, what)]

    def _internal_error(self, msg: Any, exc: Exception) -> list[Event]:
        """-32603 for the message whose handling raised ``exc`` (id null where unknown), and one log line."""
        kind, rid = _classify(msg)
        answer = kind not in ("response", "notification")  # neither is ever answered
        if rid in self.inflight:
            rid = None
        self._note("internal error handling a client message (%s): %s",
                   "answered -32603" if answer else "not answered", _show(exc, 200), level=logging.ERROR)
        log.debug("traceback of that internal error", exc_info=exc)
        if not answer:
            return []
        return [self._error(rid, jsonrpc.INTERNAL_ERROR, "internal error while handling this message")]

    def _note(self, fmt: str, *args: object, level: int = logging.WARNING) -> None:
        """One log line about what a client sent (thinned by ``client_log`` past LOG_BUDGET lines)."""
        self.client_log.note(level, fmt, *args)

    def respond(self, rid: RequestId, result: Any) -> bytes:
        """The response to request ``rid``."""
        return jsonrpc.result(rid, result)

    def respond_error(self, rid: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
        return jsonrpc.error(rid, code, message, data)

    def notify(self, method: str, params: Any = None) -> bytes:
        """A notification to the client."""
        return jsonrpc.notification(method, params)

    def wants_log(self, level: str, request_level: str | None = None) -> bool:
        """Whether a log message at ``level`` goes out (per-request level wins, 2026-07-28)."""
        threshold = request_level or self.log_level
        try:
            return LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold)
        except ValueError:
            return False
