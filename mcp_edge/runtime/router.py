"""The router: MCP methods -> the plugin registry, with pagination, progress, logging, cancellation.

Transports hand it ``Request`` events from the protocol core together with the
``Session`` they came on and an ``emit`` callback for notifications that belong
to that request (progress, log messages); it returns a typed outcome
(``mcp_edge.runtime.outcome``: ``Result`` or ``Failure``), which the protocol
core encodes (``jsonrpc.encode_outcome``) and HTTP maps to a status
(``transport.http_status``). Every session carries a ``Principal``
(``mcp_edge.runtime.principal``), which handlers see as ``rctx.principal``.

Limits applied here for every transport: no message larger than
``Settings.max_out_frame`` leaves (a response becomes an error naming the
limit, a notification is dropped and logged); ``over_capacity`` gives the
busy refusal past ``Settings.max_inflight`` requests per session; at most
``Settings.max_listeners`` subscriptions/listen streams are open per server.

``requestState`` (2026-07-28 input-required round trips) is signed, not
encrypted: the client can read the handler's state (base64url JSON), so a
handler must not put secrets in it. The signature binds it to the method, the
tool/prompt name or uri, the arguments, the session's principal and an expiry
(``Settings.request_state_ttl_s``); its key is ``keys/request-state.key`` (0600)
in ``Settings.data_dir``, shared by restarts and worker processes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import McpEdgeError, ProtocolError, ResourceNotFoundError
from mcp_edge.logs import REQUEST_ID
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import (
    LOG_LEVELS,
    META_CLIENT_CAPABILITIES,
    META_LOG_LEVEL,
    META_SERVER_INFO,
    META_SUBSCRIPTION_ID,
    MISSING_CAPABILITY,
    ClientResult,
    Request,
    ServerConnection,
    ServerInfo,
)
from mcp_edge.mcp.refusals import BUSY, FORBIDDEN, RATE_LIMITED, Refusal, refusal_failure
from mcp_edge.mcp.revisions import shape
from mcp_edge.mcp.versions import LATEST_HANDSHAKE, STATELESS_VERSIONS
from mcp_edge.plugin.types import InputRequired
from mcp_edge.runtime.outcome import Failure, Outcome, Result
from mcp_edge.runtime.principal import ANONYMOUS, Principal

if TYPE_CHECKING:
    from pathlib import Path

    from mcp_edge.board import Settings
    from mcp_edge.io import Engine
    from mcp_edge.plugin import Registry
    from mcp_edge.plugin.types import LogLevel
    from mcp_edge.runtime.audit import AuditLog
    from mcp_edge.runtime.policy import Policy, RateLimits
    from mcp_edge.runtime.tracing import Tracing

__all__ = ["Emit", "McpError", "RequestContextImpl", "Router", "Session"]

log = logging.getLogger("mcp_edge.runtime")

Emit = Callable[[bytes], Awaitable[None]]


McpError = ProtocolError

# Results of the 2026-07-28 revision that carry cache hints (ttlMs, cacheScope).
_CACHEABLE = frozenset(
    {"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read", "server/discover"}
)
_MRTR_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
META_PRIORITY = "io.mcp-edge/priority"
# The client's own budget for one request, in milliseconds from its arrival (relative: the two clocks differ);
# the box's ``tool_timeout_s`` still caps it.
META_TIMEOUT = "io.mcp-edge/timeout_ms"
DEFAULT_PRIORITY = 128


@dataclass(eq=False)
class Session:
    """One client conversation's runtime state: protocol connection, subscriptions, running requests."""

    conn: ServerConnection
    notify: Emit | None = None  # where notifications unrelated to a request go (None: dropped)
    principal: Principal = ANONYMOUS  # who the client is: the transport says (requestState is bound to its id)
    subscriptions: set[str] = field(default_factory=set)
    running: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    pending: dict[Any, asyncio.Future[Any]] = field(default_factory=dict)  # our requests to the client
    _next_id: int = 0

    def next_request_id(self) -> str:
        self._next_id += 1
        return f"mcp-edge-{self._next_id}"

    def resolve(self, reply: ClientResult) -> bool:
        """Deliver the client's answer to a request we sent; False if nobody waits for it.

        Never raises: a malformed error response (``error`` not an object, ``code`` not an integer,
        ``message`` not a string) fails the request it answers with -32603 saying so, and nothing else.
        """
        fut = self.pending.pop(reply.id, None)
        if fut is None or fut.done():
            return False
        if reply.error is not None:
            fut.set_exception(_client_error(reply))
        else:
            fut.set_result(reply.result)
        return True

    def at_capacity(self, limit: int) -> bool:
        """Whether this session already runs ``limit`` requests (the in-flight cap: refuse the next as busy)."""
        return len(self.running) >= limit

    def cancel(self, request_id: Any) -> bool:
        task = self.running.get(request_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def fail_pending(self, message: str) -> None:
        """Fail every request we sent the client and still wait on: it can no longer answer them."""
        for fut in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(ProtocolError(jsonrpc.INTERNAL_ERROR, message))
        self.pending.clear()

    def cancel_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        for fut in list(self.pending.values()):
            fut.cancel()
        self.pending.clear()


def _client_error(reply: ClientResult) -> ProtocolError:
    """The error a client answered one of our requests with, or -32603 when its error object is malformed."""
    err = reply.error
    why = ""
    if not isinstance(err, dict):
        why = f"error must be an object, got {type(err).__name__}"
    elif not isinstance(err.get("code"), int) or isinstance(err.get("code"), bool):
        why = f"error.code must be an integer, got {err.get('code')!r:.40}"
    elif not isinstance(err.get("message"), str):
        why = "error.message must be a string"
    if why:
        log.warning("malformed error response from the client to request %r: %s", reply.id, why)
        return ProtocolError(jsonrpc.INTERNAL_ERROR,
                             f"the client's error response to request {reply.id!r} was malformed ({why})")
    return ProtocolError(err["code"], err["message"], err.get("data"))


_UNSIGNED_PARAMS = frozenset({"_meta", "inputResponses", "requestState"})
_KEY_BYTES = 32


def _state_key(data_dir: Path) -> bytes:
    """The requestState key (mcp_edge.runtime.keys: ``<data_dir>/keys/request-state.key``, 0600, made once).
    When the data dir cannot hold it, a per-process key is used (a requestState then dies with the process)
    and one warning says so."""
    from mcp_edge.runtime.keys import secret_once

    try:
        return secret_once(data_dir)
    except OSError as exc:
        log.warning("cannot keep the requestState key in %s (%s): using a key for this process only, so an "
                    "input-required round trip cannot outlive it", data_dir, exc)
        return os.urandom(_KEY_BYTES)


@dataclass(eq=False)
class _Listener:
    """One subscriptions/listen stream (2026-07-28)."""

    sub_id: Any
    emit: Emit
    tools: bool
    prompts: bool
    resources: bool
    uris: frozenset[str]


# Requests the audit log records (Settings.audit): what reaches a plugin.
_AUDITED = frozenset({"tools/call", "resources/read", "prompts/get"})


class RequestContextImpl:
    """What a tool, resource or prompt handler sees of its request (mcp_edge.plugin.RequestContext)."""

    __slots__ = ("_cancelled", "_emit", "_level", "_max_out", "_req", "_session", "deadline_ns",
                 "input_responses", "request_state", "result_error")

    def __init__(self, req: Request, session: Session, emit: Emit | None, max_out_frame: int | None = None) -> None:
        self._req = req
        self._max_out = max_out_frame
        self._session = session
        self._emit = emit
        level = req.meta.get(META_LOG_LEVEL) if req.meta else None
        self._level = level if isinstance(level, str) and level in LOG_LEVELS else None
        self._cancelled = False
        self.input_responses: dict[str, Any] | None = None
        self.request_state: str | None = None
        # When the call must be over (time.monotonic_ns): the client's _meta timeout or tool_timeout_s, the
        # smaller; plugins, the supervisor and a worker (as a frame TLV) all read this one value.
        self.deadline_ns: int | None = None
        # A worker answered an error result (isError) as JSON the runtime does not decode: its host says so here.
        self.result_error = False

    @property
    def protocol_version(self) -> str:
        return self._req.version

    @property
    def principal(self) -> Principal:
        """Who asks: the principal of the session the request came on."""
        return self._session.principal

    @property
    def stateless(self) -> bool:
        return self._req.stateless

    @property
    def client_capabilities(self) -> dict[str, Any]:
        if self._req.stateless:
            caps = self._req.meta.get(META_CLIENT_CAPABILITIES) if self._req.meta else None
            return caps if isinstance(caps, dict) else {}
        return self._session.conn.client_capabilities

    def require_capability(self, name: str) -> None:
        if name not in self.client_capabilities:
            raise ProtocolError(MISSING_CAPABILITY, f"this request needs the client capability {name!r}",
                                {"requiredCapabilities": {name: {}}})

    async def send_request(self, method: str, params: dict[str, Any]) -> Any:
        if self._req.stateless or self._emit is None:
            raise ProtocolError(jsonrpc.INVALID_REQUEST,
                                f"{method}: a server cannot send requests under protocol {self._req.version}; "
                                "return InputRequired instead")
        rid = self._session.next_request_id()
        data = jsonrpc.request(rid, method, params)
        if self._max_out is not None and len(data) > self._max_out:
            raise ProtocolError(jsonrpc.INTERNAL_ERROR, f"{method}: the request to the client would be {len(data)} "
                                                        f"bytes, over max_out_frame ({self._max_out})")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._session.pending[rid] = fut
        try:
            await self._emit(data)
            return await fut
        finally:
            self._session.pending.pop(rid, None)

    @property
    def request_id(self) -> str | int | None:
        return self._req.id

    @property
    def cancelled(self) -> bool:
        task = self._session.running.get(self._req.id)
        return self._cancelled or (task is not None and task.cancelling() > 0)

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        token = self._req.progress_token
        if token is None or self._emit is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._emit(jsonrpc.notification("notifications/progress", params))

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        if self._emit is None:
            return
        if self._req.stateless and self._level is None:
            return  # 2026-07-28: no logLevel in _meta, no notifications/message
        if not self._session.conn.wants_log(level, self._level):
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger:
            params["logger"] = logger
        await self._emit(jsonrpc.notification("notifications/message", params))

    @property
    def priority(self) -> int:
        """The request's priority, 0-255 (``_meta["io.mcp-edge/priority"]``; 128 when it sets none): under
        memory pressure, requests below 128 are shed first."""
        value = self._req.meta.get(META_PRIORITY) if self._req.meta else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
            return value
        return DEFAULT_PRIORITY

    def engine(self) -> Engine:
        from mcp_edge.io import get_engine

        return get_engine()


def _plain(result: Any) -> Any:
    """``result`` with the JSON a process plugin's worker sent (``msgspec.Raw``, at the top or one level down)
    decoded, for the steps that rewrite a result; the newest handshake revision embeds those bytes as they are."""
    if isinstance(result, msgspec.Raw):
        return msgspec.json.decode(result)
    if isinstance(result, dict) and any(isinstance(v, msgspec.Raw) for v in result.values()):
        return {k: msgspec.json.decode(v) if isinstance(v, msgspec.Raw) else v for k, v in result.items()}
    return result


def _page(items: Sequence[Any], cursor: object, size: int) -> tuple[list[Any], str | None]:
    start = 0
    if cursor is not None:
        if not isinstance(cursor, str):
            raise McpError(jsonrpc.INVALID_PARAMS, "cursor must be a string from a previous nextCursor")
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise McpError(jsonrpc.INVALID_PARAMS, f"invalid cursor {cursor!r}") from None
        if not 0 <= start <= len(items):
            raise McpError(jsonrpc.INVALID_PARAMS, f"cursor {cursor!r} is out of range")
    end = start + size
    nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return list(items[start:end]), nxt


class Router:
    """Serves the MCP methods of a running server from its plugin registry."""

    def __init__(self, registry: Registry, info: ServerInfo, settings: Settings, ttl_ms: int = 0) -> None:
        self.registry = registry
        self.info = info
        self.settings = settings
        self.page_size = settings.page_size
        self.ttl_ms = ttl_ms
        self._sessions: set[Session] = set()
        self._listeners: set[_Listener] = set()
        self._secret: bytes | None = None  # the requestState key, loaded on first use
        self.tracing: Tracing | None = None  # a span per request when Settings.tracing is on (the server sets it)
        self.policy: Policy | None = None  # Settings.auth_policy_file: who may use what (the server sets it)
        self.limits: RateLimits | None = None  # Settings.rate_limit_*: token buckets (the server sets it)
        self._now = time.time  # requestState expiry is wall-clock time: it holds across restarts and workers
        self._server_meta = {META_SERVER_INFO: info.implementation()}
        self._methods: dict[str, Callable[[Request, Session, RequestContextImpl], Awaitable[Any]]] = {
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/templates/list": self._templates_list,
            "resources/read": self._resources_read,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "prompts/list": self._prompts_list,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
            "server/discover": self._discover,
            "subscriptions/listen": self._listen,
        }

    @staticmethod
    def capabilities(registry: Registry) -> dict[str, Any]:
        """The server capabilities announced for what the registry holds."""
        caps: dict[str, Any] = {"logging": {}, "completions": {}}
        caps["tools"] = {"listChanged": True}
        caps["resources"] = {"subscribe": True, "listChanged": True}
        caps["prompts"] = {"listChanged": True}
        return caps

    # -- sessions and notifications ----------------------------------------------------

    def attach(self, session: Session) -> None:
        self._sessions.add(session)

    def detach(self, session: Session) -> None:
        session.cancel_all()
        self._sessions.discard(session)

    async def _to_listeners(self, method: str, params: dict[str, Any], want: Callable[[_Listener], bool]) -> None:
        for lis in list(self._listeners):
            if want(lis):
                body = {**params, "_meta": {META_SUBSCRIPTION_ID: lis.sub_id}}
                await lis.emit(jsonrpc.notification(method, body))

    async def resource_updated(self, uri: str) -> None:
        """Send notifications/resources/updated to every session and listen stream subscribed to ``uri``."""
        msg = jsonrpc.notification("notifications/resources/updated", {"uri": uri})
        for s in list(self._sessions):
            if uri in s.subscriptions and s.notify is not None:
                await s.notify(msg)
        await self._to_listeners("notifications/resources/updated", {"uri": uri}, lambda lis: uri in lis.uris)

    async def list_changed(self, kind: str) -> None:
        """Tell sessions and listen streams that the list of ``tools``, ``resources`` or ``prompts`` changed."""
        method = f"notifications/{kind}/list_changed"
        msg = jsonrpc.notification(method)
        for s in list(self._sessions):
            if s.notify is not None:
                await s.notify(msg)
        await self._to_listeners(method, {}, lambda lis: bool(getattr(lis, kind, False)))

    # -- requestState integrity (2026-07-28 input-required round trips) -------------------
    #
    # The client gets ``v1.<payload>.<mac>``: the payload is base64url JSON of the handler's state and the expiry,
    # readable by the client (it is signed, not encrypted: a handler must not put secrets in its state). The MAC
    # (HMAC-SHA256 with the key of _state_key) covers the payload, the method, the tool/prompt name or uri, a
    # digest of the other params (the arguments: canonical JSON, without _meta, inputResponses and requestState)
    # and the session's principal's id. Stateless HTTP requests are ANONYMOUS until authentication gives a
    # principal: such a state is bound to no client, and anyone who holds it may replay that same call until it
    # expires.

    def _mac(self, req: Request, session: Session, payload: str) -> str:
        import hashlib
        import hmac

        if self._secret is None:
            self._secret = _state_key(self.settings.data_dir)
        name = str(req.params.get("name") or req.params.get("uri") or "")
        rest = {k: v for k, v in req.params.items() if k not in _UNSIGNED_PARAMS}
        args = hashlib.sha256(msgspec.json.encode(rest, order="sorted")).hexdigest()
        msg = "\0".join(("mcp-edge requestState v1", req.method, name, args, session.principal.id, payload))
        digest = hmac.new(self._secret, msg.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def _sign_state(self, req: Request, session: Session, state: str) -> str:
        expires = int((self._now() + self.settings.request_state_ttl_s) * 1000)
        body = msgspec.json.encode({"state": state, "expiresMs": expires})
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"v1.{payload}.{self._mac(req, session, payload)}"

    def _open_state(self, req: Request, session: Session) -> str | None:
        raw = req.params.get("requestState")
        if raw is None:
            return None
        import hmac

        parts = raw.split(".") if isinstance(raw, str) else []
        if (len(parts) == 3 and parts[0] == "v1" and parts[2].isascii()  # compare_digest refuses non-ASCII str
                and hmac.compare_digest(parts[2], self._mac(req, session, parts[1]))):
            try:
                body = msgspec.json.decode(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            except (ValueError, binascii.Error, msgspec.DecodeError):
                body = None
            if isinstance(body, dict) and isinstance(body.get("state"), str) and \
                    isinstance(body.get("expiresMs"), int):
                if body["expiresMs"] < self._now() * 1000:
                    raise ProtocolError(jsonrpc.INVALID_PARAMS, "requestState has expired: retry the request "
                                                                "from the start, without requestState")
                return str(body["state"])
        raise ProtocolError(jsonrpc.INVALID_PARAMS, "requestState failed its integrity check (it belongs to another "
                                                    "call, arguments or client, or was altered): retry the request "
                                                    "from the start, without requestState")

    # -- dispatch ------------------------------------------------------------------------

    def over_capacity(self, req: Request, session: Session) -> Failure | None:
        """The busy refusal for ``req`` when its session already runs ``settings.max_inflight`` requests, else
        None. Transports ask before they start a request (stdio, unix and HTTP alike)."""
        if not session.at_capacity(self.settings.max_inflight):
            return None
        return refusal_failure(Refusal.BUSY, req.id,
                               f"this session already has {self.settings.max_inflight} requests running "
                               "(max_inflight): retry when one has finished", self.settings.retry_after_s)

    @property
    def audit(self) -> AuditLog | None:
        """The registry's audit log (Settings.audit): calls and denials are recorded in it too."""
        return self.registry.audit

    def handle(self, req: Request, session: Session, emit: Emit | None) -> Coroutine[Any, Any, Outcome]:
        """The outcome of ``req`` (``Result`` or ``Failure``) to await; CancelledError if it was cancelled. With
        tracing on, it is served inside the request's span (:mod:`mcp_edge.runtime.tracing`); off, this costs
        one test.
"""
        tracing = self.tracing
        if tracing is None:
            return self._handle(req, session, emit)
        return tracing.serve(req, self._handle(req, session, emit))

    async def _handle(self, req: Request, session: Session, emit: Emit | None) -> Outcome:
        """``handle`` without the span.

        Nothing bigger than ``settings.max_out_frame`` leaves here: a response that would encode larger becomes
        the TOO_LARGE ``Failure`` naming the limit (a ``Result`` keeps the encoding made to measure it, so the
        edge does not encode it again), and a larger notification emitted for the request is dropped with a log
        line.
        """
        if req.stateless and req.method == "subscriptions/listen" and \
                len(self._listeners) >= self.settings.max_listeners:
            return refusal_failure(Refusal.BUSY, req.id,
                                   f"the server already has {self.settings.max_listeners} subscriptions/listen "
                                   "streams open (max_listeners): retry later", self.settings.retry_after_s)
        token = REQUEST_ID.set(req.id)  # on every log record made while it is served
        try:
            outcome = self._fit(req, await self._serve(req, session, None if emit is None else self._bounded(emit)))
            if req.method in _AUDITED and self.registry.audit is not None:
                self._audit(req, session, outcome)
            return outcome
        finally:
            REQUEST_ID.reset(token)

    def _audit(self, req: Request, session: Session, outcome: Outcome) -> None:
        assert self.audit is not None
        target = req.params.get("uri" if req.method == "resources/read" else "name")
        if isinstance(outcome, Failure):
            refused = outcome.code in (FORBIDDEN, RATE_LIMITED, BUSY)
            self.audit.call(session.principal, req.method, target if isinstance(target, str) else None,
                            req.params.get("arguments"), "refused" if refused else "error", outcome.code)
        else:
            self.audit.call(session.principal, req.method, target if isinstance(target, str) else None,
                            req.params.get("arguments"), "ok")

    def _fit(self, req: Request, outcome: Outcome) -> Outcome:
        """``outcome`` when its encoding fits ``settings.max_out_frame``, else the TOO_LARGE refusal (or -32603
        when it cannot be encoded at all: a handler returned something JSON has no form for)."""
        try:
            size = len(jsonrpc.encode_outcome(outcome))
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            log.error("the response to %s cannot be encoded as JSON: %s", req.method, exc)
            return Failure(req.id, jsonrpc.INTERNAL_ERROR,
                           f"internal error: the response to {req.method} cannot be encoded as JSON ({exc})")
        limit = self.settings.max_out_frame
        if size <= limit:
            return outcome
        log.warning("the response to %s is %d bytes, over max_out_frame (%d): answered with an error instead",
                    req.method, size, limit)
        return refusal_failure(Refusal.TOO_LARGE, req.id,
                               f"the response to {req.method} would be {size} bytes, over this server's "
                               f"{limit}-byte limit on outgoing messages (max_out_frame): ask for less at a time, "
                               "e.g. read large content in ranges")

    def _bounded(self, emit: Emit) -> Emit:
        """``emit`` that drops (and logs) a notification over ``settings.max_out_frame``."""
        limit = self.settings.max_out_frame

        async def bounded(data: bytes) -> None:
            if len(data) > limit:
                log.warning("dropped a %d-byte notification, over max_out_frame (%d)", len(data), limit)
                return
            await emit(data)

        return bounded

    def _deadline(self, req: Request) -> int:
        """When ``req`` must be answered: its ``_meta["io.mcp-edge/timeout_ms"]`` from now, capped by
        ``tool_timeout_s`` (also the budget of a request that sets none). INVALID_PARAMS for a bad value."""
        budget = self.settings.tool_timeout_s
        value = req.meta.get(META_TIMEOUT) if req.meta else None
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ProtocolError(jsonrpc.INVALID_PARAMS, f"_meta[{META_TIMEOUT!r}] must be a positive number of "
                                                            f"milliseconds, got {value!r}")
            budget = min(budget, value / 1000)
        return time.monotonic_ns() + int(budget * 1e9)

    async def _serve(self, req: Request, session: Session, emit: Emit | None) -> Outcome:
        """The outcome of ``req``, unbounded (``handle`` applies the limits)."""
        method = self._methods.get(req.method)
        if method is None:
            return Failure(req.id, jsonrpc.METHOD_NOT_FOUND, f"method not found: {req.method}")
        if self.limits is not None:
            tool = req.params.get("name") if req.method == "tools/call" else None
            backoff = self.limits.take(session.principal.id, tool if isinstance(tool, str) else None)
            if backoff > 0:
                return refusal_failure(Refusal.RATE_LIMITED, req.id,
                                       f"rate limit reached for {session.principal.id}"
                                       + (f" on tool {tool}" if isinstance(tool, str) else "")
                                       + f": retry in {backoff:.2f} s", backoff)
        rctx = RequestContextImpl(req, session, emit, self.settings.max_out_frame)
        try:
            rctx.deadline_ns = self._deadline(req)
            if req.stateless and req.method in _MRTR_METHODS:
                responses = req.params.get("inputResponses", None)
                if "inputResponses" in req.params and not isinstance(responses, dict):
                    raise ProtocolError(jsonrpc.INVALID_PARAMS, "inputResponses must be an object")
                bad = [key for key, value in (responses or {}).items() if not isinstance(value, dict)]
                if bad:  # each answer is an ElicitResult, CreateMessageResult or ListRootsResult object
                    raise ProtocolError(jsonrpc.INVALID_PARAMS,
                                        f"inputResponses.{bad[0]} must be an object (the client's result)")
                rctx.input_responses = responses
                rctx.request_state = self._open_state(req, session)
            result = await method(req, session, rctx)
            rounds = 0
            while isinstance(result, InputRequired) and not req.stateless:
                # Handshake era: ask the client with server-to-client requests, then run the handler again
                # with the answers, so a plugin written for input-required rounds works in both eras.
                rounds += 1
                if rounds > self.settings.max_input_rounds:
                    raise ProtocolError(jsonrpc.INTERNAL_ERROR, f"{req.method}: still asking for input after "
                                                                f"{self.settings.max_input_rounds} rounds")
                answers = {}
                for key, ask in (result.inputRequests or {}).items():
                    answers[key] = await rctx.send_request(str(ask.get("method")), dict(ask.get("params") or {}))
                rctx.input_responses = answers
                rctx.request_state = result.requestState
                result = await method(req, session, rctx)
        except ProtocolError as exc:
            return Failure(req.id, exc.code, exc.message, exc.data)
        except ResourceNotFoundError as exc:
            if req.stateless:  # 2026-07-28 reports a missing resource as invalid params, naming the uri
                return Failure(req.id, jsonrpc.INVALID_PARAMS, str(exc), {"uri": req.params.get("uri")})
            return Failure(req.id, exc.code, str(exc))
        except asyncio.CancelledError:
            raise
        except McpEdgeError as exc:
            wait = getattr(exc, "retry_after_s", None)
            if isinstance(wait, (int, float)):  # a plugin's breaker open, its bulkhead full: busy, retry later
                return refusal_failure(Refusal.BUSY, req.id, str(exc), float(wait))
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                return Failure(req.id, code, str(exc))
            log.exception("error serving %s", req.method)
            return Failure(req.id, jsonrpc.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in a plugin or here: the connection lives on
            log.exception("internal error serving %s", req.method)
            return Failure(req.id, jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        if req.stateless:
            result = self._decorate(req, _plain(result), session)
        elif req.version != LATEST_HANDSHAKE and not isinstance(result, msgspec.Raw):
            # A client of an older revision gets only what that revision has. A worker's JSON (Raw) was shaped
            # for the request's revision in the worker (its CALL names it): embedded as it is, never decoded.
            result = shape(req.method, _plain(result), req.version)
        return Result(req.id, result)

    def _decorate(self, req: Request, result: Any, session: Session) -> dict[str, Any]:
        """A 2026-07-28 result: resultType, cache hints where required, serverInfo in _meta."""
        if isinstance(result, InputRequired):
            out: dict[str, Any] = {"resultType": "input_required"}
            if result.inputRequests is not None:
                out["inputRequests"] = result.inputRequests
            if result.requestState is not None:
                out["requestState"] = self._sign_state(req, session, result.requestState)
        else:
            built = result if isinstance(result, dict) else msgspec.to_builtins(result)
            out = dict(built) if isinstance(built, dict) else {"value": built}
            out["resultType"] = "complete"
        if req.method in _CACHEABLE:
            out.setdefault("ttlMs", self.ttl_ms)
            out.setdefault("cacheScope", "public")
        meta = out.get("_meta")
        out["_meta"] = {**meta, **self._server_meta} if isinstance(meta, dict) else self._server_meta
        return out

    # -- methods ---------------------------------------------------------------------

    def _list(self, req: Request, key: str, items: Iterable[Any]) -> dict[str, Any]:
        page, nxt = _page(list(items), req.params.get("cursor"), self.page_size)
        out: dict[str, Any] = {key: page}
        if nxt is not None:
            out["nextCursor"] = nxt
        return out

    # -- authorization (mcp_edge.runtime.policy) ---------------------------------------------------------

    def _allowed(self, session: Session, kind: str, name: str, plugin: str | None) -> bool:
        policy = self.policy
        if policy is None:
            return True
        from mcp_edge.runtime.policy import tool_class

        cls = tool_class(self.registry.catalog.tool_def(name)) if kind == "tool" else None
        return policy.allows(session.principal, kind, name, plugin, cls)

    def _authorize(self, session: Session, kind: str, name: str, plugin: str | None) -> None:
        """ProtocolError FORBIDDEN (logged) when the policy gives the session's principal no role for it."""
        if self.policy is None or self._allowed(session, kind, name, plugin):
            return
        who = session.principal
        log.warning("denied: %s %s may not use %s %s", who.kind, who.id, kind, name)
        if self.audit is not None:
            self.audit.denial(who, f"{kind} {name}", "no role allows it")
        raise ProtocolError(FORBIDDEN, f"forbidden: {who.kind} {who.id} has no role that allows {kind} {name}")

    def _visible(self, session: Session, kind: str, items: list[Any], key: str, owner: Callable[[str], Any]
                 ) -> list[Any]:
        if self.policy is None:
            return items
        return [i for i in items if self._allowed(session, kind, getattr(i, key), owner(getattr(i, key)))]

    async def _tools_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        cat = self.registry.catalog
        return self._list(req, "tools", self._visible(session, "tool", self.registry.tools(), "name",
                                                      cat.tool_owner))

    @staticmethod
    def _named_call(req: Request) -> tuple[str, dict[str, Any] | None]:
        """params.name and params.arguments of tools/call and prompts/get, checked."""
        name = req.params.get("name")
        if not isinstance(name, str):
            raise McpError(jsonrpc.INVALID_PARAMS, f"{req.method} needs params.name (a string)")
        args = req.params.get("arguments")
        if args is not None and not isinstance(args, dict):
            raise McpError(jsonrpc.INVALID_PARAMS, "params.arguments must be an object")
        return name, args

    async def _tools_call(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        name, args = self._named_call(req)
        if self.policy is not None:
            self._authorize(session, "tool", name, self.registry.catalog.tool_owner(name))
        return await self.registry.call_tool(name, args, rctx)

    async def _resources_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        items = self.registry.resources()
        if self.policy is not None:  # a published resource shows where reading it is allowed (_authorize_uri)
            items = [r for r in items if self._may_read(session, r.uri)]
        return self._list(req, "resources", items)

    def _may_read(self, session: Session, uri: str) -> bool:
        """``_authorize_uri`` without the denial's log line: by the URI and its owner, or its template."""
        cat = self.registry.catalog
        owner = cat.resource_owner(uri)
        if owner is not None:
            return self._allowed(session, "resource", uri, owner)
        found = cat.match(uri)
        if found is None:
            return self._allowed(session, "resource", uri, None)
        return self._allowed(session, "resource", found[1], found[0]) or \
            self._allowed(session, "resource", uri, found[0])

    async def _templates_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        cat = self.registry.catalog
        return self._list(req, "resourceTemplates", self._visible(
            session, "resource", self.registry.resource_templates(), "uriTemplate", cat.template_owner))

    def _authorize_uri(self, session: Session, uri: str) -> None:
        """A resource is allowed by its URI, or by the template it matches."""
        if self.policy is None:
            return
        cat = self.registry.catalog
        owner = cat.resource_owner(uri)
        if owner is None:
            found = cat.match(uri)
            if found is not None and self._allowed(session, "resource", found[1], found[0]):
                return
            owner = found[0] if found is not None else None
        self._authorize(session, "resource", uri, owner)

    @staticmethod
    def _uri(req: Request) -> str:
        uri = req.params.get("uri")
        if not isinstance(uri, str) or not uri:
            raise McpError(jsonrpc.INVALID_PARAMS, f"{req.method} needs params.uri (a string)")
        return uri

    async def _resources_read(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        self._authorize_uri(session, self._uri(req))
        contents = await self.registry.read_resource(self._uri(req), rctx)
        if isinstance(contents, InputRequired):
            return contents
        return {"contents": contents}

    async def _subscribe(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        self._authorize_uri(session, self._uri(req))
        session.subscriptions.add(self._uri(req))
        return {}

    async def _unsubscribe(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        session.subscriptions.discard(self._uri(req))
        return {}

    async def _prompts_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        cat = self.registry.catalog
        return self._list(req, "prompts", self._visible(session, "prompt", self.registry.prompts(), "name",
                                                        cat.prompt_owner))

    async def _prompts_get(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        name, args = self._named_call(req)
        if self.policy is not None:
            self._authorize(session, "prompt", name, self.registry.catalog.prompt_owner(name))
        return await self.registry.get_prompt(name, args, rctx)

    async def _complete(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        ref, argument = req.params.get("ref"), req.params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise McpError(jsonrpc.INVALID_PARAMS, "completion/complete needs params.ref and params.argument objects")
        if self.policy is not None:
            cat = self.registry.catalog
            if ref.get("type") == "ref/prompt":
                self._authorize(session, "prompt", str(ref.get("name")), cat.prompt_owner(str(ref.get("name"))))
            else:
                self._authorize(session, "resource", str(ref.get("uri")), cat.template_owner(str(ref.get("uri"))))
        context = req.params.get("context")
        completion = await self.registry.complete(ref, argument, context if isinstance(context, dict) else None)
        return {"completion": completion}

    async def _discover(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        out: dict[str, Any] = {
            "supportedVersions": list(STATELESS_VERSIONS),
            "capabilities": self.info.capabilities,
        }
        if self.info.instructions:
            out["instructions"] = self.info.instructions
        return out

    async def _listen(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        """subscriptions/listen: acknowledge, then stream the opted-in notifications until cancelled."""
        if not req.stateless or rctx._emit is None:
            raise ProtocolError(jsonrpc.METHOD_NOT_FOUND, f"method not found: {req.method}")
        wanted = req.params.get("notifications")
        if not isinstance(wanted, dict):
            raise ProtocolError(jsonrpc.INVALID_PARAMS, "subscriptions/listen needs params.notifications (an object)")
        uris = wanted.get("resourceSubscriptions") or []
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ProtocolError(jsonrpc.INVALID_PARAMS, "resourceSubscriptions must be a list of URIs")
        honored: dict[str, Any] = {}
        for key in ("toolsListChanged", "promptsListChanged", "resourcesListChanged"):
            if wanted.get(key) is True:
                honored[key] = True
        if uris:
            honored["resourceSubscriptions"] = list(uris)
        lis = _Listener(req.id, rctx._emit, bool(honored.get("toolsListChanged")),
                        bool(honored.get("promptsListChanged")), bool(honored.get("resourcesListChanged")),
                        frozenset(uris))
        self._listeners.add(lis)  # counted at once: handle() checks max_listeners before it gets here
        try:
            await lis.emit(jsonrpc.notification("notifications/subscriptions/acknowledged",
                                                {"_meta": {META_SUBSCRIPTION_ID: req.id}, "notifications": honored}))
            await asyncio.Event().wait()  # until the stream is closed or the request cancelled
        finally:
            self._listeners.discard(lis)
        return {}


