"""Streamable HTTP transport: the MCP endpoint ``/mcp`` (POST, GET, DELETE).

Both protocol eras on one endpoint:

* handshake era (2025-03-26 .. 2025-11-25): an ``initialize`` POST without a
  session opens one and answers with ``Mcp-Session-Id``; later messages carry
  it (missing: 400, unknown or expired: 404). ``GET`` opens the session's
  stream of server-initiated notifications, ``DELETE`` ends the session.
* stateless era (2026-07-28): a POST whose ``MCP-Protocol-Version`` header is
  not a handshake-era version, or whose ``params._meta`` names the protocol
  version, is served on a connection of its own, with no session (an
  ``Mcp-Session-Id`` is ignored). Its ``MCP-Protocol-Version``, ``Mcp-Method``
  and (tools/call, prompts/get, resources/read) ``Mcp-Name`` headers are
  required and must match the body: else 400 with -32020. Errors map to HTTP
  statuses as the revision says (400 for -32700/-32600/-32602/-32020..-32022,
  404 for -32601). Closing the response stream cancels the request. GET and
  DELETE get 405.

A request is answered with ``application/json``, unless its handler emits a
notification (progress, log) before the result: then the response turns into
``text/event-stream`` at that moment and the result is its last event. So the
common case costs no SSE framing and no up-front guess.

Security: the ``Host`` header (or an absolute-form target's authority) must
name this server (loopback names, the bound host, or a host of
``Settings.allowed_origins``) and an ``Origin``, when sent, must be allowed:
else 403 (DNS rebinding). Allowing any Origin (``*``) never turns the Host
check off. Bodies over ``Settings.max_body`` get 413 without being read.

Limits (all ``Settings``; refusals from ``mcp_edge.mcp.refusals``):
``max_connections`` open connections (past it 503 + ``Retry-After``, before
the request is read); ``max_sessions`` sessions, of which a newcomer may evict
only one idle for ``session_min_idle_s`` (else 503 + ``Retry-After``), and
sessions idle for ``session_idle_s`` are reaped by a periodic sweep;
``max_inflight`` requests running per session (past it the busy JSON-RPC error
-32010 with ``data.retryAfterMs``, in a 200 as the handshake era answers
errors). A stateless request has a connection of its own for its whole life,
so ``max_connections`` is what bounds stateless work on the server. Head and
body deadlines, keep-alive and the head limit are ``http_wire``'s.

Health: ``GET /healthz/live``, ``/healthz/startup`` and ``/healthz/ready`` answer 200 or 503 with a JSON
body of the phase and every plugin's state (``mcp_edge.health``). They skip the MCP session and Origin logic,
not the Host check.

Shutdown (the stop token set): the listener stays open, every new request on ``/mcp`` gets 503 with
``Retry-After`` (``retry_after_s``) and the shutting-down JSON-RPC error, GET streams end, requests in flight
get ``shutdown_timeout_s`` to finish; each one still running then is cancelled and answered with the
shutting-down error (a JSON-RPC error in its response, never an empty stream). Then the connections close.

The HTTP stack (httptools, ``http_wire``) is imported by ``serve_http`` only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.board.settings import Settings
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import (
    HEADER_MISMATCH,
    META_CLIENT_CAPABILITIES,
    META_PROTOCOL_VERSION,
    Batch,
    CancelRequest,
    ClientResult,
    Event,
    Reply,
    Request,
    ServerConnection,
    stateless_version,
)
from mcp_edge.mcp.refusals import Refusal, http_refusal
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, STATELESS_VERSIONS
from mcp_edge.runtime.outcome import Outcome
from mcp_edge.runtime.principal import ANONYMOUS, Principal
from mcp_edge.runtime.router import Router, Session
from mcp_edge.runtime.stop import StopToken
from mcp_edge.transport import shutdown as shutting
from mcp_edge.transport.http_status import http_status, http_status_for_error

if TYPE_CHECKING:
    from mcp_edge.health import Health
    from mcp_edge.runtime.auth import Auth, Denied
    from mcp_edge.runtime.exposition import Exposition
    from mcp_edge.transport.http_wire import Early, Exchange, HttpConnection, HttpRequest

__all__ = ["ENDPOINT", "serve_http"]

log = logging.getLogger("mcp_edge.transport.http")

ENDPOINT: Final = "/mcp"
HEALTH_PREFIX: Final = "/healthz/"
METRICS_PATH: Final = "/metrics"
PRM_PATH: Final = "/.well-known/oauth-protected-resource"  # RFC 9728 (mcp_edge.runtime.auth serves it)
ALLOW: Final = "GET, POST, DELETE, OPTIONS"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
SESSION_NOT_FOUND: Final = -32001  # as the reference SDKs answer an unknown session
BAD_REQUEST: Final = -32000  # a transport-level refusal, in a JSON-RPC error body
# MCP-Protocol-Version values that mean the handshake era; any other value routes a POST to 2026-07-28.
LEGACY_HEADER_VERSIONS: Final = frozenset({"2024-11-05", *HANDSHAKE_VERSIONS})

_JSON: Final = ("content-type", "application/json")
_SSE_HEADERS: Final = (
    ("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no"),
)
# The params member that Mcp-Name mirrors, per method (2026-07-28; tasks/* from the tasks extension).
_NAME_PARAM: Final = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
_B64_SENTINEL: Final = ("=?base64?", "?=")


# A Host header or URL authority: an IP literal in brackets, or a name / IPv4 address; then an optional port.
_AUTHORITY: Final = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_~!$&'()*+,;=.%-]+)(?::([0-9]{1,5}))?")


def _host_of(value: str) -> str | None:
    """The host part of a Host header or URL authority, lower case, IPv6 with its brackets; None when it is
    not one (``[::1]evil.com``, a space, a port that is not a number)."""
    m = _AUTHORITY.fullmatch(value.strip().lower())
    return m.group(1) if m else None


def _bound_host(host: str) -> str:
    """The address the server binds, as a Host header would name it (a bare IPv6 address gets brackets)."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _origin_host(origin: str) -> str | None:
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    return _host_of(rest.split("/", 1)[0])


def _accepts(accept: str, wanted: str) -> bool:
    """Whether an Accept header admits media type ``wanted``: the most specific range that matches it
    (``wanted``, then ``major/*``, then ``*/*``) decides, and ``q=0`` means "not acceptable" (RFC 9110 12.4.2)."""
    major = wanted.split("/", 1)[0]
    ranks = {wanted: 2, f"{major}/*": 1, "*/*": 0}
    best, quality = -1, 0.0
    for item in accept.split(","):
        media, *params = item.split(";")
        rank = ranks.get(media.strip().lower(), -1)
        if rank <= best:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                with contextlib.suppress(ValueError):  # a malformed weight is ignored
                    q = float(value.strip())
        best, quality = rank, q
    return best >= 0 and quality > 0


def _header_value(raw: str) -> str:
    """A routing header's value: surrounding whitespace trimmed, the =?base64?...?= form decoded."""
    value = raw.strip(" \t")
    head, tail = _B64_SENTINEL
    if value.startswith(head) and value.endswith(tail) and len(value) >= len(head) + len(tail):
        try:
            return base64.b64decode(value[len(head):-len(tail)], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return value
    return value


def _succeeded(events: list[Event]) -> bool:
    return len(events) == 1 and isinstance(events[0], Reply) and not events[0].is_error


def _methods_of(msg: Any) -> list[str | None]:
    """The JSON-RPC methods of a message or batch (None for a response or a malformed member)."""
    items = msg if isinstance(msg, list) else [msg]
    return [m.get("method") if isinstance(m, dict) and isinstance(m.get("method"), str) else None for m in items]


_REFRESH: Final = object()  # req.principal: the credential's key must be fetched before it can be judged


def _error_body(code: int, message: str, rid: Any = None) -> bytes:
    return jsonrpc.error(rid, code, message)


class HttpSession:
    """A handshake-era session: its protocol connection, runtime session and GET stream."""

    __slots__ = ("backlog", "conn", "id", "last_seen", "session", "stream")

    def __init__(self, sid: str, conn: ServerConnection, now: float, backlog: int,
                 principal: Principal = ANONYMOUS) -> None:
        self.id = sid
        self.conn = conn
        self.session = Session(conn, notify=self._notify, principal=principal)
        self.stream: Exchange | None = None
        self.last_seen = now
        self.backlog = backlog  # Settings.stream_backlog: a GET stream whose client lets more pile up is dropped

    async def _notify(self, data: bytes) -> None:
        stream = self.stream
        if stream is None or stream.closed:
            return  # no GET stream open: server-initiated notifications have nowhere to go
        if stream.buffered() > self.backlog:
            log.warning("session %s: client is not reading its stream; dropping it", self.id[:8])
            stream.abort()
            return
        stream.send(b"event: message\ndata: " + data + b"\n\n")

    def busy(self) -> bool:
        return bool(self.session.running) or (self.stream is not None and not self.stream.closed)

    def close_stream(self) -> None:
        if self.stream is not None:
            self.stream.end()
            self.stream = None


class _Response:
    """One POST request's answer: JSON, or SSE from the first notification the handler emits."""

    __slots__ = ("exchange", "headers")

    def __init__(self, exchange: Exchange, headers: list[tuple[str, str]]) -> None:
        self.exchange = exchange
        self.headers = headers

    async def emit(self, data: bytes) -> None:
        ex = self.exchange
        if not ex.started:
            ex.start(200, [*_SSE_HEADERS, *self.headers])
        ex.send(b"event: message\ndata: " + data + b"\n\n")
        await ex.drain()  # bounded: a client that reads nothing for body_timeout_s is cut, which wakes this

    def finish(self, data: bytes | None, status: int = 200) -> None:
        """The final message (None: the request was cancelled and gets no response)."""
        ex = self.exchange
        if ex.started:
            if data is not None:
                ex.send(b"event: message\ndata: " + data + b"\n\n")
            ex.end()
        elif data is None:
            ex.start(200, [*_SSE_HEADERS, *self.headers])  # a stream that ends without a response
            ex.end()
        else:
            ex.respond(status, [_JSON, *self.headers], data)


class McpHttpApp:
    """The MCP endpoint behind the HTTP connections (``http_wire.WireServer``)."""

    def __init__(self, router: Router, settings: Settings, host: str, port: int,
                 health: Health | None = None, stop: StopToken | None = None) -> None:
        self.router = router
        self.stop = stop if stop is not None else StopToken()
        if health is None:  # an embedder's server: running (it was started before serving), no supervisor
            from mcp_edge.health import Health

            health = Health()
            health.serving(router.registry.status, "Streamable HTTP")
        self.health = health
        self.draining = False  # stop was asked: /mcp answers 503, in-flight requests finish or are cut
        self._exposition: Exposition | None = None  # made at the first GET /metrics, when metrics are on
        self.auth: Auth | None = None  # Settings.auth_required: serve_http sets it once the port is known
        self._inflight: set[asyncio.Task[Any]] = set()  # requests running (single and batch members)
        self._cut: set[asyncio.Task[Any]] = set()  # cancelled by the shutdown budget: answered with an error
        self.settings = settings
        self.max_body = settings.max_body
        self.sessions: dict[str, HttpSession] = {}
        self.connections: set[HttpConnection] = set()  # admitted: they count against max_connections
        self.rejected: set[HttpConnection] = set()  # refused with 503, lingering until the client reads it
        self._loop = asyncio.get_running_loop()
        self._closing = False
        origins = tuple(o.rstrip("/").lower() for o in settings.allowed_origins)
        self._any_origin = "*" in origins
        self._origins = frozenset(origins)
        hosts = set(LOOPBACK_HOSTS)
        bound = _bound_host(host)
        if bound not in ("0.0.0.0", "[::]", ""):
            hosts.add(bound)
        for origin in origins:
            oh = _origin_host(origin)
            if oh:
                hosts.add(oh)
        self._hosts = frozenset(hosts)
        self.port = port

    # -- connections -----------------------------------------------------------------

    def connection_made(self, conn: HttpConnection) -> None:
        limit = self.settings.max_connections
        if len(self.connections) >= limit:
            self.rejected.add(conn)
            conn.reject(*http_refusal(Refusal.BUSY, f"the server has {limit} connections open (max_connections): "
                                                    "retry later", self.settings.retry_after_s))
            return
        self.connections.add(conn)

    def connection_closed(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        self.rejected.discard(conn)

    # -- checks on the request head ---------------------------------------------------

    def _early(self, status: int, message: str, headers: list[tuple[str, str]] | None = None,
               code: int = BAD_REQUEST) -> Early:
        from mcp_edge.transport.http_wire import Early

        return Early(status, [_JSON, *(headers or [])], _error_body(code, message))

    def _host_ok(self, host: str) -> bool:
        # DNS rebinding protection: whatever the Origin policy (even '*'), Host must name this server.
        return _host_of(host) in self._hosts

    def _origin_ok(self, origin: str, host: str) -> bool:
        if self._any_origin or origin.rstrip("/").lower() in self._origins:
            return True
        oh = _origin_host(origin)
        return oh is not None and (oh in LOOPBACK_HOSTS or oh == _host_of(host))

    def check(self, req: HttpRequest) -> Early | None:
        h = req.headers
        health = req.path.startswith(HEALTH_PREFIX)
        metrics = req.path == METRICS_PATH
        metadata = req.path == PRM_PATH or req.path == PRM_PATH + ENDPOINT
        if req.path != ENDPOINT and not health and not metrics and not metadata:
            return self._early(404, f"not found: the MCP endpoint is {ENDPOINT}")
        host = h.get("host")
        if host is None:
            return self._early(400, "a Host header is required")
        if not self._host_ok(host):
            return self._early(403, f"forbidden: Host {host!r} is not this server's")
        if health:  # no session, no Origin policy: probes come from the box's own tools
            return self._health(req)
        if metadata:  # RFC 9728: how to get a token for this server, open to all
            return self._resource_metadata(req)
        if metrics:  # as the probes: for the box's own scraper (a credential too, with auth on)
            if self.auth is not None and not self.settings.metrics_public:
                refused = self._authenticate(req)
                if refused is not None:
                    return refused
            policy = self.router.policy
            if policy is not None and not self.settings.metrics_public and not (
                    isinstance(req.principal, Principal) and policy.may_scrape(req.principal)):
                who = req.principal.id if isinstance(req.principal, Principal) else "an anonymous client"
                return self._early(403, f"forbidden: {who} has no role with metrics = true (or set metrics_public)")
            return self._metrics(req)
        origin = h.get("origin")
        if origin is not None and not self._origin_ok(origin, host or ""):
            return self._early(403, f"forbidden: Origin {origin!r} is not allowed")
        if self.auth is not None and req.method != "OPTIONS":  # (a CORS preflight carries no credentials)
            refused = self._authenticate(req)
            if refused is not None:
                return refused
        if self.draining or self.stop.is_set():  # (the stop may be a loop turn ahead of shut_down)
            from mcp_edge.transport.http_wire import Early

            refusal = shutting.refusal(None, self.settings.retry_after_s)
            status, extra = http_status(refusal, modern=True)  # 503 + Retry-After, whatever the era
            return Early(status, [_JSON, *extra], jsonrpc.encode_outcome(refusal))
        method = req.method
        if method == "POST":
            accept = h.get("accept", "")
            if not (_accepts(accept, "application/json") and _accepts(accept, "text/event-stream")):
                return self._early(406, "Accept must list application/json and text/event-stream",
                                   code=jsonrpc.INVALID_REQUEST)
            ctype = h.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return self._early(415, "Content-Type must be application/json", code=jsonrpc.INVALID_REQUEST)
            return None
        if method == "OPTIONS":
            return self._preflight(origin)
        if method not in ("GET", "DELETE"):
            return self._early(405, f"method {method} not allowed on {ENDPOINT}", [("allow", ALLOW)])
        version = h.get("mcp-protocol-version")
        if version is not None and version.strip() not in LEGACY_HEADER_VERSIONS:
            return self._early(405, f"protocol {version} has no {method} on {ENDPOINT}: POST only",
                               [("allow", "POST")])
        if method == "GET" and not _accepts(h.get("accept", ""), "text/event-stream"):
            return self._early(406, "Accept must list text/event-stream", code=jsonrpc.INVALID_REQUEST)
        return None

    def _health(self, req: HttpRequest) -> Early:
        """A probe's answer, decided from the head alone: 200 or 503 with the JSON of ``mcp_edge.health``."""
        from mcp_edge.health import PROBES
        from mcp_edge.transport.http_wire import Early

        probe = req.path[len(HEALTH_PREFIX):]
        if probe not in PROBES:
            return self._early(404, f"not found: the probes are {', '.join(HEALTH_PREFIX + p for p in PROBES)}")
        if req.method != "GET":
            return self._early(405, f"method {req.method} not allowed on {req.path}", [("allow", "GET")])
        ok, body = self.health.check(probe)
        if (self.draining or self.stop.is_set()) and probe != "live":  # (an embedder's token: no supervisor)
            from mcp_edge.health import STOPPING, evaluate

            ok, body = evaluate(probe, STOPPING, self.health.rows())
        headers = [_JSON, ("cache-control", "no-store")]
        return Early(200 if ok else 503, headers, jsonrpc.encode(body))

    def _authenticate(self, req: HttpRequest) -> Early | None:
        """401 for a request without a valid credential, else None with ``req.principal`` set (to ``_REFRESH``
        when the key set must be fetched first: ``handle`` does that, off the loop)."""
        assert self.auth is not None
        if req.principal is not None and "authorization" not in req.headers and "x-api-key" not in req.headers:
            return None  # the client certificate the TLS handshake verified is the credential (mutual TLS)
        found = self.auth.authenticate(req.headers)
        if found is None:
            req.principal = _REFRESH
            return None
        if not isinstance(found, Principal):
            return self._denied(found)
        req.principal = found
        return None

    def cert_principal(self, peercert: dict[str, Any]) -> Principal | None:
        """The principal of a connection's verified client certificate (with authentication on, it holds every
        scope this server names: the client CA vouches for it, the policy decides what it may use)."""
        from mcp_edge.transport.tls import cert_principal

        return cert_principal(peercert, self.auth.known_scopes if self.auth is not None else frozenset())

    def _denied(self, denied: Denied) -> Early:
        from mcp_edge.transport.http_wire import Early

        log.info("auth: %d %s", denied.status, denied.message)
        if self.router.audit is not None:
            self.router.audit.denial(None, "http", f"{denied.status} {denied.message}")
        return Early(denied.status, [_JSON, ("www-authenticate", denied.challenge), ("cache-control", "no-store")],
                     _error_body(BAD_REQUEST, denied.message))

    def _resource_metadata(self, req: HttpRequest) -> Early:
        """GET /.well-known/oauth-protected-resource[/mcp]: the RFC 9728 document, 404 with no authorization
        server configured."""
        from mcp_edge.transport.http_wire import Early

        if self.auth is None or self.auth.metadata_url is None:
            return self._early(404, "not found: this server names no authorization server (auth_servers)")
        if req.method != "GET":
            return self._early(405, f"method {req.method} not allowed on {req.path}", [("allow", "GET")])
        return Early(200, [_JSON, ("cache-control", "max-age=300"), ("access-control-allow-origin", "*")],
                     jsonrpc.encode(self.auth.metadata()))

    def _scoped(self, req: HttpRequest, ex: Exchange, methods: list[str | None]) -> bool:
        """False (after answering 403 insufficient_scope with every scope needed) when the request's
        principal lacks a scope one of ``methods`` needs."""
        if self.auth is None:
            return True
        for method in methods:
            denied = self.auth.forbidden(req.principal, method)
            if denied is not None:
                self._refuse(req, ex, denied, f"http {method}")
                return False
        return True

    def _refuse(self, req: HttpRequest, ex: Exchange, denied: Denied, what: str = "http") -> None:
        """Answer an authentication or scope refusal once the body was read (logged and audited)."""
        who = req.principal if isinstance(req.principal, Principal) else None
        log.info("auth: %d %s (%s)", denied.status, denied.message, who.id if who else "no principal")
        if self.router.audit is not None:
            self.router.audit.denial(who, what, f"{denied.status} {denied.message}")
        ex.respond(denied.status, self._cors(req, [_JSON, ("www-authenticate", denied.challenge)]),
                   _error_body(BAD_REQUEST, denied.message))

    def _metrics(self, req: HttpRequest) -> Early:
        """GET /metrics: the Prometheus text format (mcp_edge.runtime.exposition), 404 with metrics off."""
        from mcp_edge.transport.http_wire import Early

        meter = self.router.registry.metrics
        if meter is None:
            return self._early(404, "not found: metrics are off (Settings.metrics)")
        if req.method != "GET":
            return self._early(405, f"method {req.method} not allowed on {req.path}", [("allow", "GET")])
        if self._exposition is None:
            from mcp_edge.runtime.exposition import Exposition

            self._exposition = Exposition(self.router.registry, meter)
        from mcp_edge.runtime.exposition import CONTENT_TYPE

        return Early(200, [("content-type", CONTENT_TYPE), ("cache-control", "no-store")],
                     self._exposition.render())

    def _preflight(self, origin: str | None) -> Early:
        from mcp_edge.transport.http_wire import Early

        headers = [("allow", ALLOW)]
        if origin is not None:
            headers += [
                ("access-control-allow-origin", origin),
                ("access-control-allow-methods", ALLOW),
                ("access-control-allow-headers",
                 "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, "
                 "mcp-method, mcp-name, last-event-id"),
                ("access-control-expose-headers", "mcp-session-id"),
                ("access-control-max-age", "600"),
                ("vary", "origin"),
            ]
        return Early(204, headers)

    @staticmethod
    def _cors(req: HttpRequest, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        origin = req.headers.get("origin")
        if origin is not None:  # check() already let it in
            headers.append(("access-control-allow-origin", origin))
            headers.append(("access-control-expose-headers", "mcp-session-id"))
            headers.append(("vary", "origin"))
        return headers

    # -- requests -------------------------------------------------------------------------

    async def handle(self, req: HttpRequest, ex: Exchange) -> None:
        if req.principal is _REFRESH:  # a token signed with a key id not seen yet: fetch the keys, then judge
            assert self.auth is not None
            await asyncio.to_thread(self.auth.refresh)
            found = self.auth.authenticate(req.headers)
            if not isinstance(found, Principal):
                self._refuse(req, ex, found if found is not None else self.auth.denied(
                    "the token is signed with a key this server does not know"))
                return
            req.principal = found
        if req.method == "POST":
            await self._post(req, ex)
        elif req.method == "GET":
            await self._get(req, ex)
        else:
            self._delete(req, ex)

    def _fail(self, ex: Exchange, status: int, message: str, code: int = BAD_REQUEST, rid: Any = None,
              headers: list[tuple[str, str]] | None = None) -> None:
        ex.respond(status, self._cors(ex.request, [_JSON, *(headers or [])]), _error_body(code, message, rid))

    def _session(self, req: HttpRequest, ex: Exchange) -> HttpSession | None:
        """The session the request names (answering 400/404 when there is none)."""
        sid = req.headers.get("mcp-session-id")
        if sid is None:
            self._fail(ex, 400, "Mcp-Session-Id header is required: initialize first")
            return None
        hs = self.sessions.get(sid)
        if hs is None:
            self._fail(ex, 404, "session not found (expired or deleted): initialize a new one",
                       SESSION_NOT_FOUND)
            return None
        if self.auth is not None and hs.session.principal != req.principal:
            self._fail(ex, 403, "this session was opened by another principal: initialize a session of your own")
            return None
        hs.last_seen = self._loop.time()
        return hs

    async def _post(self, req: HttpRequest, ex: Exchange) -> None:
        try:
            msg = jsonrpc.decode(req.body)
        except Exception as exc:  # msgspec.DecodeError; the body is the client's, anything goes
            self._fail(ex, 400, f"parse error: {exc}", jsonrpc.PARSE_ERROR)
            return
        if self.auth is not None and not self._scoped(req, ex, _methods_of(msg)):
            return
        if isinstance(msg, list) and "mcp-session-id" in req.headers:
            await self._post_batch(req, ex, msg)  # the session's revision decides: batches are 2025-03-26's
            return
        if not isinstance(msg, dict):
            what = "JSON-RPC batches are not supported" if isinstance(msg, list) else "a message must be an object"
            self._fail(ex, 400, what, jsonrpc.INVALID_REQUEST)
            return
        headers: list[tuple[str, str]] = self._cors(req, [])
        version = req.headers.get("mcp-protocol-version")
        params = msg.get("params")
        if (version is not None and version.strip() not in LEGACY_HEADER_VERSIONS) or \
                stateless_version(params) is not None:
            await self._post_stateless(req, ex, msg, headers)
            return
        if not self._headers_match(req, ex, msg, required=False):
            return
        hs: HttpSession | None = None
        if "mcp-session-id" in req.headers:
            hs = self._session(req, ex)
            if hs is None:
                return
            conn = hs.conn
            session = hs.session
        elif msg.get("method") == "initialize" and "id" in msg:
            conn = ServerConnection(self.router.info, max_frame=self.settings.max_frame,
                                    max_depth=self.settings.max_depth)
            session = Session(conn, principal=req.principal or ANONYMOUS)
        else:
            self._fail(ex, 400, "Mcp-Session-Id header is required: initialize first, or send protocol "
                                f"{STATELESS_VERSIONS[0]} with its version in params._meta")
            return
        events = conn.receive_object(msg)
        if hs is None and _succeeded(events):  # an initialize that worked opens a session
            hs = self._open_session(conn, ex, events[0], req.principal or ANONYMOUS)
            if hs is None:
                return
            session = hs.session
            headers.append(("mcp-session-id", hs.id))
        await self._answer(events, session, ex, headers, hs, modern=False)

    async def _post_batch(self, req: HttpRequest, ex: Exchange, msgs: list[Any]) -> None:
        """A JSON-RPC batch on a session: served when the session's revision has batches (2025-03-26), else
        the core's refusal (400, -32600 with id null).

        Its requests run concurrently, each under the in-flight cap as a single one would be; the answers
        go back as one JSON array, or, once a handler emits a notification, the response turns into SSE and
        the array is its last event. A batch of only notifications and responses gets 202, no body.
        """
        hs = self._session(req, ex)
        if hs is None:
            return
        headers = self._cors(req, [])
        session, conn = hs.session, hs.conn
        events = conn.receive_object(msgs)
        batch = events[0] if len(events) == 1 else None
        if not isinstance(batch, Batch):
            await self._answer(events, session, ex, headers, hs, modern=False)
            return
        response = _Response(ex, headers)
        tasks: list[asyncio.Task[Outcome]] = []

        def settler(rid: jsonrpc.RequestId) -> Callable[[asyncio.Task[Outcome]], None]:
            # A done callback, not a finally: a member cancelled before its first step never runs its code.
            def settle(task: asyncio.Task[Outcome]) -> None:
                session.running.pop(rid, None)
                data: bytes | None = None
                cut = self._cut_outcome(task, rid) if task.cancelled() else None
                if cut is not None:  # cancelled by the shutdown budget: the error says so
                    data = jsonrpc.encode_outcome(cut)
                elif not task.cancelled():  # cancelled (notifications/cancelled, DELETE, reaping): no entry
                    exc = task.exception()
                    if exc is None:
                        data = jsonrpc.encode_outcome(task.result())
                    else:  # the router answers its own failures; this is a backstop
                        log.error("serving a batch member failed: %s: %s", type(exc).__name__, exc)
                        data = jsonrpc.error(rid, jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}")
                batch.settle(rid, data)
                conn.finished(rid)

            return settle

        for ev in batch.events:
            if isinstance(ev, Request):
                busy = self.router.over_capacity(ev, session)
                if busy is not None:
                    batch.settle(ev.id, jsonrpc.encode_outcome(busy))
                    conn.finished(ev.id)
                    continue
                task = session.running[ev.id] = asyncio.create_task(self.router.handle(ev, session, response.emit))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                task.add_done_callback(settler(ev.id))
                tasks.append(task)
            elif isinstance(ev, CancelRequest):
                session.cancel(ev.request_id)
            elif isinstance(ev, ClientResult):
                session.resolve(ev)
        try:
            if tasks:
                await asyncio.wait(tasks)
        except asyncio.CancelledError:  # the server is stopping: so do the members
            for task in tasks:
                task.cancel()
            raise
        finally:
            hs.last_seen = self._loop.time()
        data = batch.encode()
        if data is None and not tasks and not ex.started:
            ex.respond(202, headers)
        else:
            response.finish(data)

    async def _post_stateless(self, req: HttpRequest, ex: Exchange, msg: dict[str, Any],
                              headers: list[tuple[str, str]]) -> None:
        """A 2026-07-28 message: headers checked against the body, then served with no session."""
        params = msg.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if (
            "id" in msg
            and isinstance(meta, dict)
            and isinstance(meta.get(META_PROTOCOL_VERSION), str)
            and isinstance(meta.get(META_CLIENT_CAPABILITIES), dict)
            and not self._headers_match(req, ex, msg, required=True, version=meta[META_PROTOCOL_VERSION])
        ):
            return  # (a malformed _meta is the core's -32602, which comes before header checks)
        conn = ServerConnection(self.router.info, max_frame=self.settings.max_frame,
                                    max_depth=self.settings.max_depth)
        events = conn.receive_object(msg, modern=True)
        await self._answer(events, Session(conn, principal=req.principal or ANONYMOUS), ex, headers, None,
                           modern=True)

    def _headers_match(self, req: HttpRequest, ex: Exchange, msg: dict[str, Any], *, required: bool,
                       version: str | None = None) -> bool:
        """MCP-Protocol-Version, Mcp-Method and Mcp-Name must say what the body says (else 400, -32020).

        ``required`` (2026-07-28 requests): a missing header is a mismatch too; otherwise only headers
        that were sent are checked.
        """
        h = req.headers
        method = msg.get("method")
        raw_id = msg.get("id")
        rid = raw_id if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
        key = _NAME_PARAM.get(method) if isinstance(method, str) else None
        params = msg.get("params")
        actual = params.get(key) if key is not None and isinstance(params, dict) else None
        checks: list[tuple[str, str | None, object]] = [("Mcp-Method", h.get("mcp-method"), method)]
        if version is not None:
            checks.insert(0, ("MCP-Protocol-Version", h.get("mcp-protocol-version"), version))
        if key is not None and (actual is not None or "mcp-name" in h):
            checks.append(("Mcp-Name", h.get("mcp-name"), actual))
        for name, sent, body in checks:
            if sent is None:
                if not required:
                    continue
                problem = f"the {name} header is required and must be {body!r}"
            elif _header_value(sent) != body:
                problem = f"the {name} header {sent!r} does not match the body's {body!r}"
            else:
                continue
            self._fail(ex, 400, problem, HEADER_MISMATCH, rid)
            return False
        return True

    def _open_session(self, conn: ServerConnection, ex: Exchange, answer: Event,
                      principal: Principal = ANONYMOUS) -> HttpSession | None:
        """Register a session for a successful initialize (None: too many, answered 503 here)."""
        wait = self._make_room()
        if wait is not None:
            limit = self.settings.max_sessions
            rid = answer.request_id if isinstance(answer, Reply) else None
            status, headers, body = http_refusal(
                Refusal.BUSY, f"the server has {limit} sessions (max_sessions) and none has been idle for "
                              f"{self.settings.session_min_idle_s:g} s (session_min_idle_s): retry later", wait, rid)
            ex.respond(status, self._cors(ex.request, headers), body)
            return None
        sid = base64.urlsafe_b64encode(os.urandom(24)).decode()  # 32 visible ASCII chars, 192 bits
        hs = HttpSession(sid, conn, self._loop.time(), self.settings.stream_backlog, principal)
        self.sessions[sid] = hs
        self.router.attach(hs.session)
        return hs

    def _make_room(self) -> float | None:
        """Room for one more session: None when there is (after reaping expired ones, or evicting the least
        recently used session idle for at least session_min_idle_s), else the seconds to wait before asking
        again. A flood of newcomers can thus never evict a session that is in use."""
        now = self._loop.time()
        self.reap(now)
        if len(self.sessions) < self.settings.max_sessions:
            return None
        min_idle = self.settings.session_min_idle_s
        idle = [hs for hs in self.sessions.values() if not hs.busy()]
        oldest = min(idle, key=lambda hs: hs.last_seen) if idle else None
        if oldest is None or now - oldest.last_seen < min_idle:
            soonest = min_idle - (now - oldest.last_seen) if oldest is not None else 0.0
            return max(self.settings.retry_after_s, soonest)
        log.info("session limit reached: evicting session %s, idle for %.0f s", oldest.id[:8], now - oldest.last_seen)
        self._drop(oldest)
        return None

    async def _answer(self, events: list[Event], session: Session, ex: Exchange,
                      headers: list[tuple[str, str]], hs: HttpSession | None, *, modern: bool) -> None:
        if not events:  # a notification the core consumed (initialized), or a malformed one
            ex.respond(202, headers)
            return
        ev = events[0]
        if isinstance(ev, Request):
            await self._run(ev, session, ex, headers, hs, modern)
        elif isinstance(ev, Reply):  # the protocol core's own answer: its error code is typed data too
            status, extra = (200, []) if not ev.is_error else \
                http_status_for_error(ev.code if ev.code is not None else jsonrpc.INTERNAL_ERROR, ev.request_id,
                                      modern)
            ex.respond(status, [_JSON, *headers, *extra], ev.data)
        elif isinstance(ev, CancelRequest):
            session.cancel(ev.request_id)
            ex.respond(202, headers)
        elif isinstance(ev, ClientResult):
            session.resolve(ev)  # the answer to a request we sent on some response stream
            ex.respond(202, headers)
        else:  # a Notification: nothing to answer
            ex.respond(202, headers)

    async def _run(self, req: Request, session: Session, ex: Exchange, headers: list[tuple[str, str]],
                   hs: HttpSession | None, modern: bool) -> None:
        # (A duplicate in-flight id never gets here: the protocol core refuses it, with id null.)
        conn = session.conn
        busy = self.router.over_capacity(req, session)  # max_inflight requests already run on this session
        if busy is not None:
            status, extra = http_status(busy, modern)
            ex.respond(status, [_JSON, *headers, *extra], jsonrpc.encode_outcome(busy))
            conn.finished(req.id)
            return
        running = session.running
        task = asyncio.current_task()
        assert task is not None
        response = _Response(ex, headers)
        running[req.id] = task
        self._inflight.add(task)
        if hs is None:
            ex.on_lost = task.cancel  # no session: closing the response stream is the cancellation
        outcome: Outcome | None
        try:
            outcome = await self.router.handle(req, session, response.emit)
        except asyncio.CancelledError:
            task.uncancel()  # notifications/cancelled, DELETE, reaping, a closed stream: answer nothing
            outcome = self._cut_outcome(task, req.id)  # ... but the shutdown's cut: an error
        finally:
            self._inflight.discard(task)
            running.pop(req.id, None)
            ex.on_lost = None
            if hs is not None:
                hs.last_seen = self._loop.time()
        status = 200
        data: bytes | None = None
        if outcome is not None:
            status, extra = http_status(outcome, modern)
            response.headers = [*response.headers, *extra]
            data = jsonrpc.encode_outcome(outcome)
        try:
            response.finish(data, status)
        finally:
            conn.finished(req.id)  # answered (or dropped): the id may be used again

    async def _get(self, req: HttpRequest, ex: Exchange) -> None:
        if not self._scoped(req, ex, [None]):
            return
        hs = self._session(req, ex)
        if hs is None:
            return
        if hs.stream is not None:
            log.info("session %s: a new GET stream replaces the open one", hs.id[:8])
            hs.close_stream()
        ex.start(200, self._cors(req, [*_SSE_HEADERS, ("mcp-session-id", hs.id)]))
        ex.send(b": stream open\n\n")
        hs.stream = ex
        try:
            await ex.wait_ended()
        finally:
            if hs.stream is ex:
                hs.stream = None
            hs.last_seen = self._loop.time()

    def _delete(self, req: HttpRequest, ex: Exchange) -> None:
        hs = self._session(req, ex)
        if hs is None:
            return
        self._drop(hs)
        ex.respond(204, self._cors(req, []))

    # -- sessions ---------------------------------------------------------------------------

    def _drop(self, hs: HttpSession) -> None:
        self.sessions.pop(hs.id, None)
        hs.close_stream()
        self.router.detach(hs.session)

    def reap(self, now: float) -> int:
        """Drop sessions idle longer than session_idle_s; how many went."""
        limit = self.settings.session_idle_s
        dead = [hs for hs in self.sessions.values() if now - hs.last_seen > limit and not hs.busy()]
        for hs in dead:
            self._drop(hs)
        if dead:
            log.info("reaped %d idle session(s); %d left", len(dead), len(self.sessions))
        return len(dead)

    def sweep(self) -> None:
        """Periodic housekeeping: reap sessions, ping quiet streams, enforce head/body deadlines (408), close
        idle connections, cut refused ones once they lingered."""
        now = self._loop.time()
        self.reap(now)
        settings = self.settings
        for conn in [*self.connections, *self.rejected]:
            conn.sweep(now, settings.keepalive_s, settings.stream_ping_s)

    def _cut_outcome(self, task: asyncio.Task[Any], rid: jsonrpc.RequestId) -> Outcome | None:
        if task not in self._cut:
            return None
        self._cut.discard(task)
        return shutting.cut_failure(rid, self.settings.shutdown_timeout_s, self.settings.retry_after_s)

    async def shut_down(self, budget: float) -> None:
        """The stop sequence: refuse new requests (503), end GET streams, give what runs ``budget`` seconds,
        then cancel each request still running with an error answer."""
        self.draining = True
        for hs in self.sessions.values():
            hs.close_stream()
        running = {t for t in self._inflight if not t.done()}
        if running:
            _, late = await asyncio.wait(running, timeout=budget)
            late = {t for t in late if not t.done()}
            if late:
                log.warning("shutting down: %d HTTP request(s) still running after %g s (shutdown_timeout_s): "
                            "cancelled, each answered with an error", len(late), budget)
                self._cut |= late
                for t in late:
                    t.cancel()
                await asyncio.wait(late, timeout=1.0)
        # batch responses and single ones are written by the tasks' own code: let it run before connections go
        for _ in range(3):
            await asyncio.sleep(0)

    def shutdown(self) -> None:
        self._closing = True
        for hs in list(self.sessions.values()):
            self._drop(hs)
        for conn in [*self.connections, *self.rejected]:
            conn.shutdown()


def _sweep_interval(settings: Settings) -> float:
    """Often enough that reaping, deadlines and keep-alive act within a quarter of their time, at most 1 s."""
    shortest = min(settings.session_idle_s, settings.head_timeout_s, settings.body_timeout_s, settings.keepalive_s)
    return max(0.05, min(1.0, shortest / 4))


async def serve_http(
    router: Router,
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: StopToken | None = None,
    health: Health | None = None,
) -> None:
    """Serve Streamable HTTP at ``/mcp`` until ``stop`` is set or the task is cancelled (no signal handlers).

    ``on_ready`` gets the endpoint URL once the socket listens (with the real port when ``port`` is 0);
    ``health`` is what ``/healthz/*`` report (default: running, from the router's registry).
    """
    from mcp_edge.transport.http_wire import HttpConnection, Listener, WireLimits, bind

    loop = asyncio.get_running_loop()
    host = settings.http_host if host is None else host
    port = settings.http_port if port is None else port
    stop = stop if stop is not None else StopToken()
    app = McpHttpApp(router, settings, host, port, health, stop)
    limits = WireLimits.from_settings(settings)
    tls = None
    if settings.tls_cert:
        from mcp_edge.transport.tls import TlsContext

        tls = TlsContext(settings)
    server = Listener(loop, bind(host, port), lambda: HttpConnection(app, loop, limits), settings.accept_backoff_s,
                      tls.context if tls is not None else None, settings.head_timeout_s)
    server.start()
    if tls is not None:
        tls.start()
    sock = server.sockets[0].getsockname()
    app.port = int(sock[1])
    shown = f"[{sock[0]}]" if ":" in str(sock[0]) else str(sock[0])
    url = f"{'https' if tls is not None else 'http'}://{shown}:{app.port}{ENDPOINT}"
    if settings.auth_required:
        from mcp_edge.runtime.auth import Auth

        try:
            app.auth = Auth(settings, url)
        except BaseException:
            server.close()
            raise
    if _bound_host(host) in ("0.0.0.0", "[::]", ""):
        log.warning("listening on every address: requests must name this box in Host as one of "
                    "Settings.allowed_origins (or localhost); others get 403")
    if on_ready is not None:
        on_ready(url)

    async def sweeper() -> None:
        interval = _sweep_interval(settings)
        while True:
            await asyncio.sleep(interval)
            app.sweep()

    sweeping = asyncio.create_task(sweeper())
    try:
        await stop.wait()
    finally:
        await app.shut_down(settings.shutdown_timeout_s)  # still listening: newcomers get 503, not a reset
        sweeping.cancel()
        if tls is not None:
            await tls.stop()
        server.close()
        app.shutdown()
        # In-flight responses get a moment to go out; then every connection is cut.
        deadline = loop.time() + 1.0
        while any(c.busy for c in app.connections) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(app.connections):
            conn.abort()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
