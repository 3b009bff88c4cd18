"""What a handler running in a worker sees of its request: a RequestContext whose notifications and questions to
the client travel back to the runtime over the worker's channel."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import ProtocolError
from mcp_edge.worker import protocol as p

if TYPE_CHECKING:
    from mcp_edge.io import Engine
    from mcp_edge.plugin.types import LogLevel
    from mcp_edge.runtime.principal import Principal
    from mcp_edge.worker.channel import Channel

__all__ = ["WorkerRequestContext"]

log = logging.getLogger("mcp_edge.worker")


class WorkerRequestContext:
    """A RequestContext (mcp_edge.plugin.RequestContext) for call ``call_id`` in a worker process."""

    __slots__ = ("_asks", "_call", "_cancelled", "_channel", "_id", "deadline_ns", "principal")

    def __init__(self, channel: Channel, call_id: int, call: p.Call, principal: Principal,
                 deadline_ns: int | None, asks: dict[int, asyncio.Future[p.Answer]]) -> None:
        self._channel = channel
        self._id = call_id
        self._call = call
        self._cancelled = False
        self._asks = asks
        self.principal = principal
        self.deadline_ns = deadline_ns

    @property
    def request_id(self) -> str | int | None:
        return self._call.request_id

    @property
    def cancelled(self) -> bool:
        task = asyncio.current_task()
        return self._cancelled or (task is not None and task.cancelling() > 0)

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def protocol_version(self) -> str:
        return self._call.protocol_version

    @property
    def stateless(self) -> bool:
        return self._call.stateless

    @property
    def client_capabilities(self) -> dict[str, Any]:
        return self._call.client_capabilities

    @property
    def input_responses(self) -> dict[str, Any] | None:
        return self._call.input_responses

    @property
    def request_state(self) -> str | None:
        return self._call.request_state

    def require_capability(self, name: str) -> None:
        from mcp_edge.mcp.connection import MISSING_CAPABILITY

        if name not in self.client_capabilities:
            raise ProtocolError(MISSING_CAPABILITY, f"this request needs the client capability {name!r}",
                                {"requiredCapabilities": {name: {}}})

    async def send_request(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the client through the runtime (handshake era); the runtime answers with its result or error."""
        from mcp_edge.mcp import jsonrpc

        if self._call.stateless:
            raise ProtocolError(jsonrpc.INVALID_REQUEST,
                                f"{method}: a server cannot send requests under protocol "
                                f"{self._call.protocol_version}; return InputRequired instead")
        ask_id = _next_ask()
        fut: asyncio.Future[p.Answer] = asyncio.get_running_loop().create_future()
        self._asks[ask_id] = fut
        try:
            await self._channel.send(p.ASK, ask_id, p.encode(p.Ask(self._id, method, params)))
            answer = await fut
        finally:
            self._asks.pop(ask_id, None)
        if answer.error is not None:
            raise ProtocolError(answer.error.code if answer.error.code is not None else jsonrpc.INTERNAL_ERROR,
                                answer.error.message, answer.error.data)
        return answer.result

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if not self._call.progress:
            return
        await self._channel.send(p.NOTE, self._id, p.encode(p.Note("progress", progress, total, message)))

    async def log(self, level: LogLevel, data: Any, logger: str | None = None) -> None:
        await self._channel.send(p.NOTE, self._id, p.encode(p.Note("log", level=level, data=data, logger=logger)))

    def engine(self) -> Engine:
        from mcp_edge.io import get_engine

        return get_engine()


_ask_counter = 0


def _next_ask() -> int:
    global _ask_counter
    _ask_counter += 1
    return _ask_counter
