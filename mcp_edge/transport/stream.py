"""Newline-delimited JSON-RPC over a byte stream (stdio, unix socket): one session per stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mcp_edge.mcp.connection import CancelRequest, ClientResult, Reply, Request, ServerConnection
from mcp_edge.runtime.router import Router, Session

__all__ = ["StreamSession"]

log = logging.getLogger("mcp_edge.transport")

READ_CHUNK = 1 << 16


class StreamSession:
    """Drives one stream: reads frames, runs each request as a task, writes responses in completion order."""

    def __init__(self, router: Router, write: Callable[[bytes], None], max_frame: int) -> None:
        self._router = router
        self._write = write
        self.conn = ServerConnection(router.info, max_frame=max_frame)
        self.session = Session(self.conn, notify=self._emit)
        router.attach(self.session)

    async def _emit(self, data: bytes) -> None:
        self._write(data + b"\n")

    def feed(self, data: bytes) -> None:
        """Bytes read from the stream."""
        running = self.session.running
        for ev in self.conn.receive_data(data):
            if isinstance(ev, Request):
                if ev.id in running:
                    error = self.conn.respond_error(ev.id, -32600, f"request id {ev.id!r} is already in use")
                    self._write(error + b"\n")
                    continue
                running[ev.id] = asyncio.create_task(self._run(ev))
            elif isinstance(ev, Reply):
                self._write(ev.data + b"\n")
            elif isinstance(ev, CancelRequest):
                self.session.cancel(ev.request_id)
            elif isinstance(ev, ClientResult):
                self.session.resolve(ev)  # the client's answer to a request we sent

    async def _run(self, req: Request) -> None:
        try:
            data = await self._router.handle(req, self.session, self._emit)
        except asyncio.CancelledError:
            return  # a cancelled request gets no response
        finally:
            self.session.running.pop(req.id, None)
        self._write(data + b"\n")

    async def run(self, reader: asyncio.StreamReader) -> None:
        """Read until EOF; then cancel what is still running and detach."""
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                self.feed(data)
        finally:
            self.close()

    def close(self) -> None:
        self._router.detach(self.session)
