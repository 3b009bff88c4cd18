"""The router: MCP methods -> the plugin registry, with pagination, progress, logging, cancellation.

Transports hand it ``Request`` events from the protocol core together with the
``Session`` they came on and an ``emit`` callback for notifications that belong
to that request (progress, log messages); it returns the response bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import McpEdgeError, ProtocolError, ResourceNotFoundError
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
from mcp_edge.mcp.versions import STATELESS_VERSIONS
from mcp_edge.plugin.types import InputRequired

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.io import Engine
    from mcp_edge.plugin import Registry
    from mcp_edge.plugin.types import LogLevel

__all__ = ["Emit", "McpError", "RequestContextImpl", "Router", "Session"]

log = logging.getLogger("mcp_edge.runtime")

Emit = Callable[[bytes], Awaitable[None]]


McpError = ProtocolError

# Results of the 2026-07-28 revision that carry cache hints (ttlMs, cacheScope).
_CACHEABLE = frozenset(
    {"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read", "server/discover"}
)
_MRTR_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
_MAX_INPUT_ROUNDS = 8


@dataclass(eq=False)
class Session:
    """One client conversation's runtime state: protocol connection, subscriptions, running requests."""

    conn: ServerConnection
    notify: Emit | None = None  # where notifications unrelated to a request go (None: dropped)
    subscriptions: set[str] = field(default_factory=set)
    running: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    pending: dict[Any, asyncio.Future[Any]] = field(default_factory=dict)  # our requests to the client
    _next_id: int = 0

    def next_request_id(self) -> str:
        self._next_id += 1
        return f"mcp-edge-{self._next_id}"

    def resolve(self, reply: ClientResult) -> bool:
        """Deliver the client's answer to a request we sent; False if nobody waits for it."""
        fut = self.pending.pop(reply.id, None)
        if fut is None or fut.done():
            return False
        if reply.error is not None:
            err = reply.error if isinstance(reply.error, dict) else {}
            fut.set_exception(ProtocolError(int(err.get("code", -32603)), str(err.get("message", "client error")),
                                             err.get("data")))
        else:
            fut.set_result(reply.result)
        return True

    def cancel(self, request_id: Any) -> bool:
        task = self.running.get(request_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def cancel_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        for fut in list(self.pending.values()):
            fut.cancel()
        self.pending.clear()


@dataclass(eq=False)
class _Listener:
    """One subscriptions/listen stream (2026-07-28)."""

    sub_id: Any
    emit: Emit
    tools: bool
    prompts: bool
    resources: bool
    uris: frozenset[str]


class RequestContextImpl:
    """What a tool, resource or prompt handler sees of its request (mcp_edge.plugin.RequestContext)."""

    __slots__ = ("_cancelled", "_emit", "_level", "_req", "_session", "input_responses", "request_state")

    def __init__(self, req: Request, session: Session, emit: Emit | None) -> None:
        self._req = req
        self._session = session
        self._emit = emit
        level = req.meta.get(META_LOG_LEVEL) if req.meta else None
        self._level = level if isinstance(level, str) and level in LOG_LEVELS else None
        self._cancelled = False
        self.input_responses: dict[str, Any] | None = None
        self.request_state: str | None = None

    @property
    def protocol_version(self) -> str:
        return self._req.version

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
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._session.pending[rid] = fut
        try:
            await self._emit(jsonrpc.request(rid, method, params))
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

    def engine(self) -> Engine:
        from mcp_edge.io import get_engine

        return get_engine()


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

    def __init__(self, registry: Registry, info: ServerInfo, settings: Settings | None = None,
                 ttl_ms: int = 0) -> None:
        if settings is None:
            from mcp_edge.board import Settings

            settings = Settings.load()
        self.registry = registry
        self.info = info
        self.settings = settings
        self.page_size = settings.page_size
        self.ttl_ms = ttl_ms
        self._sessions: set[Session] = set()
        self._listeners: set[_Listener] = set()
        self._secret: bytes | None = None
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

    def _mac(self, method: str, name: str, state: str) -> str:
        import hashlib
        import hmac
        import os

        if self._secret is None:
            self._secret = os.urandom(32)
        msg = f"{method}\0{name}\0{state}".encode()
        digest = hmac.new(self._secret, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def _sign_state(self, req: Request, state: str) -> str:
        name = str(req.params.get("name") or req.params.get("uri") or "")
        payload = base64.urlsafe_b64encode(state.encode()).decode()
        return f"{payload}.{self._mac(req.method, name, payload)}"

    def _open_state(self, req: Request) -> str | None:
        raw = req.params.get("requestState")
        if raw is None:
            return None
        name = str(req.params.get("name") or req.params.get("uri") or "")
        import hmac

        if isinstance(raw, str) and raw.count(".") == 1:
            payload, mac = raw.split(".")
            if hmac.compare_digest(mac, self._mac(req.method, name, payload)):
                try:
                    return base64.urlsafe_b64decode(payload.encode()).decode()
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    pass
        raise ProtocolError(jsonrpc.INVALID_PARAMS, "requestState failed its integrity check: retry the request "
                                                    "from the start, without requestState")

    # -- dispatch ------------------------------------------------------------------------

    async def handle(self, req: Request, session: Session, emit: Emit | None) -> bytes:
        """The response to ``req`` (result or error); CancelledError if it was cancelled."""
        method = self._methods.get(req.method)
        if method is None:
            return jsonrpc.error(req.id, jsonrpc.METHOD_NOT_FOUND, f"method not found: {req.method}")
        rctx = RequestContextImpl(req, session, emit)
        try:
            if req.stateless and req.method in _MRTR_METHODS:
                responses = req.params.get("inputResponses", None)
                if "inputResponses" in req.params and not isinstance(responses, dict):
                    raise ProtocolError(jsonrpc.INVALID_PARAMS, "inputResponses must be an object")
                bad = [key for key, value in (responses or {}).items() if not isinstance(value, dict)]
                if bad:  # each answer is an ElicitResult, CreateMessageResult or ListRootsResult object
                    raise ProtocolError(jsonrpc.INVALID_PARAMS,
                                        f"inputResponses.{bad[0]} must be an object (the client's result)")
                rctx.input_responses = responses
                rctx.request_state = self._open_state(req)
            result = await method(req, session, rctx)
            rounds = 0
            while isinstance(result, InputRequired) and not req.stateless:
                # Handshake era: ask the client with server-to-client requests, then run the handler again
                # with the answers, so a plugin written for input-required rounds works in both eras.
                rounds += 1
                if rounds > _MAX_INPUT_ROUNDS:
                    raise ProtocolError(jsonrpc.INTERNAL_ERROR, f"{req.method}: still asking for input after "
                                                                f"{_MAX_INPUT_ROUNDS} rounds")
                answers = {}
                for key, ask in (result.inputRequests or {}).items():
                    answers[key] = await rctx.send_request(str(ask.get("method")), dict(ask.get("params") or {}))
                rctx.input_responses = answers
                rctx.request_state = result.requestState
                result = await method(req, session, rctx)
        except ProtocolError as exc:
            return jsonrpc.error(req.id, exc.code, exc.message, exc.data)
        except ResourceNotFoundError as exc:
            if req.stateless:  # 2026-07-28 reports a missing resource as invalid params, naming the uri
                return jsonrpc.error(req.id, jsonrpc.INVALID_PARAMS, str(exc), {"uri": req.params.get("uri")})
            return jsonrpc.error(req.id, exc.code, str(exc))
        except asyncio.CancelledError:
            raise
        except McpEdgeError as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                return jsonrpc.error(req.id, code, str(exc))
            log.exception("error serving %s", req.method)
            return jsonrpc.error(req.id, jsonrpc.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in a plugin or here: the connection lives on
            log.exception("internal error serving %s", req.method)
            return jsonrpc.error(req.id, jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        if req.stateless:
            result = self._decorate(req, result)
        return jsonrpc.result(req.id, result)

    def _decorate(self, req: Request, result: Any) -> dict[str, Any]:
        """A 2026-07-28 result: resultType, cache hints where required, serverInfo in _meta."""
        if isinstance(result, InputRequired):
            out: dict[str, Any] = {"resultType": "input_required"}
            if result.inputRequests is not None:
                out["inputRequests"] = result.inputRequests
            if result.requestState is not None:
                out["requestState"] = self._sign_state(req, result.requestState)
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

    async def _tools_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        return self._list(req, "tools", self.registry.tools())

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
        return await self.registry.call_tool(name, args, rctx)

    async def _resources_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        return self._list(req, "resources", self.registry.resources())

    async def _templates_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        return self._list(req, "resourceTemplates", self.registry.resource_templates())

    @staticmethod
    def _uri(req: Request) -> str:
        uri = req.params.get("uri")
        if not isinstance(uri, str) or not uri:
            raise McpError(jsonrpc.INVALID_PARAMS, f"{req.method} needs params.uri (a string)")
        return uri

    async def _resources_read(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        contents = await self.registry.read_resource(self._uri(req), rctx)
        if isinstance(contents, InputRequired):
            return contents
        return {"contents": contents}

    async def _subscribe(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        session.subscriptions.add(self._uri(req))
        return {}

    async def _unsubscribe(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        session.subscriptions.discard(self._uri(req))
        return {}

    async def _prompts_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        return self._list(req, "prompts", self.registry.prompts())

    async def _prompts_get(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        name, args = self._named_call(req)
        return await self.registry.get_prompt(name, args, rctx)

    async def _complete(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        ref, argument = req.params.get("ref"), req.params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise McpError(jsonrpc.INVALID_PARAMS, "completion/complete needs params.ref and params.argument objects")
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
        await lis.emit(jsonrpc.notification("notifications/subscriptions/acknowledged",
                                            {"_meta": {META_SUBSCRIPTION_ID: req.id}, "notifications": honored}))
        self._listeners.add(lis)
        try:
            await asyncio.Event().wait()  # until the stream is closed or the request cancelled
        finally:
            self._listeners.discard(lis)
        return {}


