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


from mcp_edge.errors import McpEdgeError
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import LOG_LEVELS, META_LOG_LEVEL, Request, ServerConnection, ServerInfo
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, STATELESS_VERSIONS

if TYPE_CHECKING:
    from mcp_edge.io import Engine
    from mcp_edge.plugin import Registry
    from mcp_edge.plugin.types import LogLevel

__all__ = ["Emit", "McpError", "RequestContextImpl", "Router", "Session"]

log = logging.getLogger("mcp_edge.runtime")

Emit = Callable[[bytes], Awaitable[None]]


class McpError(McpEdgeError):
    """A JSON-RPC error to answer a request with."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(eq=False)
class Session:
    """One client conversation's runtime state: protocol connection, subscriptions, running requests."""

    conn: ServerConnection
    notify: Emit | None = None  # where notifications unrelated to a request go (None: dropped)
    subscriptions: set[str] = field(default_factory=set)
    running: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)

    def cancel(self, request_id: Any) -> bool:
        task = self.running.get(request_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def cancel_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()


class RequestContextImpl:
    """What a tool, resource or prompt handler sees of its request (mcp_edge.plugin.RequestContext)."""

    __slots__ = ("_cancelled", "_emit", "_level", "_req", "_session")

    def __init__(self, req: Request, session: Session, emit: Emit | None) -> None:
        self._req = req
        self._session = session
        self._emit = emit
        level = req.meta.get(META_LOG_LEVEL) if req.meta else None
        self._level = level if isinstance(level, str) and level in LOG_LEVELS else None
        self._cancelled = False

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
        if self._emit is None or not self._session.conn.wants_log(level, self._level):
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

    def __init__(self, registry: Registry, info: ServerInfo, page_size: int = 100) -> None:
        self.registry = registry
        self.info = info
        self.page_size = page_size
        self._sessions: set[Session] = set()
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
        }

    @staticmethod
    def capabilities(registry: Registry) -> dict[str, Any]:
        """The server capabilities announced for what the registry holds."""
        caps: dict[str, Any] = {"logging": {}, "completions": {}}
        caps["tools"] = {"listChanged": True}
        caps["resources"] = {"subscribe": True, "listChanged": True}
        caps["prompts"] = {"listChanged": True}
        return caps

    # -- sessions ------------------------------------------------------------------

    def attach(self, session: Session) -> None:
        self._sessions.add(session)

    def detach(self, session: Session) -> None:
        session.cancel_all()
        self._sessions.discard(session)

    async def resource_updated(self, uri: str) -> None:
        """Send notifications/resources/updated to every session subscribed to ``uri``."""
        msg = jsonrpc.notification("notifications/resources/updated", {"uri": uri})
        for s in list(self._sessions):
            if uri in s.subscriptions and s.notify is not None:
                await s.notify(msg)

    async def list_changed(self, kind: str) -> None:
        msg = jsonrpc.notification(f"notifications/{kind}/list_changed")
        for s in list(self._sessions):
            if s.notify is not None:
                await s.notify(msg)

    # -- dispatch --------------------------------------------------------------------

    async def handle(self, req: Request, session: Session, emit: Emit | None) -> bytes:
        """The response to ``req`` (result or error); CancelledError if it was cancelled."""
        method = self._methods.get(req.method)
        if method is None:
            return jsonrpc.error(req.id, jsonrpc.METHOD_NOT_FOUND, f"method not found: {req.method}")
        rctx = RequestContextImpl(req, session, emit)
        try:
            result = await method(req, session, rctx)
        except McpError as exc:
            return jsonrpc.error(req.id, exc.code, exc.message, exc.data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a plugin or here: the connection lives on
            code = getattr(exc, "jsonrpc_code", None)
            if isinstance(code, int):
                return jsonrpc.error(req.id, code, str(exc))
            log.exception("internal error serving %s", req.method)
            return jsonrpc.error(req.id, jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        return jsonrpc.result(req.id, result)

    # -- methods ---------------------------------------------------------------------

    def _list(self, req: Request, key: str, items: Iterable[Any]) -> dict[str, Any]:
        page, nxt = _page(list(items), req.params.get("cursor"), self.page_size)
        out: dict[str, Any] = {key: page}
        if nxt is not None:
            out["nextCursor"] = nxt
        return out

    async def _tools_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        return self._list(req, "tools", self.registry.tools())

    async def _tools_call(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        name = req.params.get("name")
        if not isinstance(name, str):
            raise McpError(jsonrpc.INVALID_PARAMS, "tools/call needs params.name (a string)")
        args = req.params.get("arguments")
        if args is not None and not isinstance(args, dict):
            raise McpError(jsonrpc.INVALID_PARAMS, "params.arguments must be an object")
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
        return {"contents": await self.registry.read_resource(self._uri(req), rctx)}

    async def _subscribe(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        session.subscriptions.add(self._uri(req))
        return {}

    async def _unsubscribe(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        session.subscriptions.discard(self._uri(req))
        return {}

    async def _prompts_list(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        return self._list(req, "prompts", self.registry.prompts())

    async def _prompts_get(self, req: Request, session: Session, rctx: RequestContextImpl) -> Any:
        name = req.params.get("name")
        if not isinstance(name, str):
            raise McpError(jsonrpc.INVALID_PARAMS, "prompts/get needs params.name (a string)")
        args = req.params.get("arguments")
        if args is not None and not isinstance(args, dict):
            raise McpError(jsonrpc.INVALID_PARAMS, "params.arguments must be an object")
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
            "supportedVersions": list(STATELESS_VERSIONS + HANDSHAKE_VERSIONS),
            "capabilities": self.info.capabilities,
            "serverInfo": self.info.implementation(),
        }
        if self.info.instructions:
            out["instructions"] = self.info.instructions
        return out


