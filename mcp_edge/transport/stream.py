"""Newline-delimited JSON-RPC over a byte stream (stdio, unix socket): one session per stream.

What stdio and the unix socket share, all of it here:

- **Requests run as tasks** and are answered in completion order. Once a response is written (or the request
  was cancelled and gets none), the protocol core hears ``finished(id)``, which frees the id; the core refuses
  a request that reuses an id in flight.
- **In-flight cap**: a session already running ``settings.max_inflight`` requests answers the next with the
  retryable busy error (``Router.over_capacity``).
- **Back-pressure**: when the output's unsent backlog passes ``settings.output_backlog``, nothing new is read or
  started until it drains below half (the transport's high and low water marks). The pipe or socket then fills
  and the client's writes wait: memory stays bounded by the backlog, one read chunk, the reader's buffer and
  the responses of requests already running. Notifications a request emits (progress, log) make its handler
  wait the same way. Notifications sent to every session (list_changed, resources/updated) never wait, so one
  slow client cannot hold up the others: past four times the bound they are dropped for that client, with a log
  line. The connection itself is never dropped for being slow; a client that reads nothing only stops being read.
- **EOF** (the client closed its input): the last line without a newline is still served; requests in flight
  get ``settings.drain_timeout_s`` to finish and be answered, then are cancelled (the client is gone: no answer);
  requests we sent the client fail at once (it can no longer answer); the output is flushed (within what is
  left of the same timeout) and the stream closes.
- **Stop** (the stop token: a signal to the supervisor, the parent's death, server shutdown): reading goes on, but
  every new request is refused with the shutting-down error (transport/shutdown.py); requests in flight get
  ``settings.shutdown_timeout_s`` to finish, then each one still running is cancelled and answered with an error
  that says so. Then the output is flushed and the stream closes.
- **Failures**: an exception while handling one chunk or one message is logged (a traceback the first time per
  exception type in this process, then a count) and the session goes on; a request whose dispatch failed gets
  -32603. Nothing read from a client ends a session silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.connection import Batch, CancelRequest, ClientResult, Event, Reply, Request, ServerConnection
from mcp_edge.runtime.principal import ANONYMOUS, Principal
from mcp_edge.runtime.router import Router, Session
from mcp_edge.transport import shutdown

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.stop import StopToken

__all__ = ["READ_CHUNK", "Output", "StreamSession"]

_JOIN_BELOW = 64 * 1024  # messages shorter than this get their newline by a copy, longer ones by a second write

log = logging.getLogger("mcp_edge.transport")

READ_CHUNK: Final = 1 << 16
# A client whose backlog passes this many times output_backlog loses broadcast notifications (see above).
BROADCAST_SLACK: Final = 4

_failures: dict[str, int] = {}  # exception type -> how often, process-wide: one traceback per kind


def _log_failure(what: str, exc: BaseException) -> None:
    kind = type(exc).__name__
    count = _failures[kind] = _failures.get(kind, 0) + 1
    if count == 1:
        log.error("%s failed (%s); the session goes on", what, kind, exc_info=exc)
    elif count & (count - 1) == 0:  # 2, 4, 8...: a count, not a flood
        log.error("%s failed (%s: %s); %d times so far", what, kind, exc, count)


class Output:
    """Where a stream's messages go: writes never block; ``writable`` waits while the backlog is over the bound.

    This base writes nowhere and has no backlog; the transports subclass it.
    """

    def write(self, data: bytes) -> None:
        """Queue ``data`` (already framed)."""

    def backlog(self) -> int:
        """Bytes written but not yet taken by the peer."""
        return 0

    async def writable(self) -> None:
        """Return once the backlog is below the low-water mark (at once when it never passed the high one)."""

    async def close(self, timeout: float) -> None:
        """Flush what is queued, waiting at most ``timeout`` seconds, then close (dropping what is left)."""


class StreamSession:
    """Drives one stream: reads frames, runs each request as a task, writes responses in completion order."""

    def __init__(self, router: Router, output: Output, settings: Settings, *,
                 principal: Principal = ANONYMOUS) -> None:
        self._router = router
        self._output = output
        self._settings = settings
        self._bound = settings.output_backlog
        self._dropped = 0  # broadcast notifications dropped for this client
        self._refusing = False  # stop was asked: new requests get the shutting-down refusal
        self._stop: StopToken | None = None
        self._cut: set[jsonrpc.RequestId] = set()  # cancelled by the shutdown budget: answered with an error
        self.conn = ServerConnection(router.info, max_frame=settings.max_frame, max_depth=settings.max_depth)
        self.session = Session(self.conn, notify=self._broadcast, principal=principal)
        router.attach(self.session)

    # -- output ---------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if len(data) < _JOIN_BELOW:
            self._output.write(data + b"\n")  # one write for a small message
        else:  # a large one is not copied to add its newline
            self._output.write(data)
            self._output.write(b"\n")

    async def _emit(self, data: bytes) -> None:
        """A message that belongs to a running request (progress, log, a request to the client)."""
        await self._output.writable()  # the handler waits for a slow client, rather than memory growing
        self._send(data)

    async def _broadcast(self, data: bytes) -> None:
        """A notification every session gets: never waits; dropped for a client far behind."""
        if self._output.backlog() > BROADCAST_SLACK * self._bound:
            self._dropped += 1
            if self._dropped & (self._dropped - 1) == 0:
                log.warning("a client is not reading its output (%d bytes pending): dropped %d notification(s) "
                            "for it", self._output.backlog(), self._dropped)
            return
        self._send(data)

    # -- input ----------------------------------------------------------------------------------

    async def _dispatch(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, (Request, Batch)):
                await self._output.writable()  # back-pressure: start nothing new while the client is behind
            try:
                self._handle(ev)
            except Exception as exc:
                _log_failure(f"handling a {type(ev).__name__}", exc)
                if isinstance(ev, Request) and ev.id not in self.session.running:
                    self._send(jsonrpc.error(ev.id, jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}"))
                    self.conn.finished(ev.id)

    def _handle(self, ev: Event, batch: Batch | None = None) -> None:
        if isinstance(ev, Request):
            self._start(ev, batch)
        elif isinstance(ev, Reply):
            self._send(ev.data)
        elif isinstance(ev, CancelRequest):
            self.session.cancel(ev.request_id)
        elif isinstance(ev, ClientResult):
            self.session.resolve(ev)  # the client's answer to a request we sent
        elif isinstance(ev, Batch):
            for inner in ev.events:
                self._handle(inner, ev)
            self._settled(ev)
        # a Notification: nothing to do

    def _start(self, req: Request, batch: Batch | None) -> None:
        if self._refusing or (self._stop is not None and self._stop.is_set()):  # (before run() wakes up to it)
            self._answer(req, jsonrpc.encode_outcome(shutdown.refusal(req.id, self._settings.retry_after_s)), batch)
            return
        busy = self._router.over_capacity(req, self.session)
        if busy is not None:
            self._answer(req, jsonrpc.encode_outcome(busy), batch)
            return
        task = self.session.running[req.id] = asyncio.create_task(self._run(req, batch))
        # Cancelled before its first step (a notifications/cancelled read in the same chunk or batch), the
        # coroutine never runs, nor its finally: free the id and settle its batch here, or both wait forever.
        task.add_done_callback(lambda t: self._never_ran(req, batch) if t.cancelled() else None)

    def _never_ran(self, req: Request, batch: Batch | None) -> None:
        self.session.running.pop(req.id, None)
        self._answer(req, self._cut_answer(req), batch)

    def _cut_answer(self, req: Request) -> bytes | None:
        """The error for a request the shutdown budget cancelled; None for one the client cancelled."""
        if req.id not in self._cut:
            return None
        self._cut.discard(req.id)
        s = self._settings
        return jsonrpc.encode_outcome(shutdown.cut_failure(req.id, s.shutdown_timeout_s, s.retry_after_s))

    def _answer(self, req: Request, data: bytes | None, batch: Batch | None) -> None:
        """Write the response to ``req`` (None: cancelled, nothing), then free its id in the core."""
        try:
            if batch is None:
                if data is not None:
                    self._send(data)
            else:
                batch.settle(req.id, data)
                self._settled(batch)
        except Exception as exc:  # the output failed (stdout on a full disk...): say so, free the id all the same
            _log_failure(f"writing the answer to {req.method}", exc)
        finally:
            self.conn.finished(req.id)

    def _settled(self, batch: Batch) -> None:
        """Write a batch's array once all its requests are settled (once: its answers are taken)."""
        if batch.done:
            data = batch.encode()
            batch.answers.clear()
            if data is not None:
                self._send(data)

    async def _run(self, req: Request, batch: Batch | None) -> None:
        data: bytes | None = None
        try:
            data = jsonrpc.encode_outcome(await self._router.handle(req, self.session, self._emit))
        except asyncio.CancelledError:
            data = self._cut_answer(req)  # the client's cancel gets no response; the shutdown's gets an error
        except Exception as exc:  # the router answers its own failures; this is a backstop
            _log_failure(f"serving {req.method}", exc)
            data = jsonrpc.error(req.id, jsonrpc.INTERNAL_ERROR, f"internal error: {type(exc).__name__}")
        finally:
            self.session.running.pop(req.id, None)
        self._answer(req, data, batch)

    async def _read(self, read: Callable[[int], Awaitable[bytes]]) -> None:
        while True:
            await self._output.writable()  # back-pressure: read nothing new while the client is behind
            data = await read(READ_CHUNK)
            try:
                events = self.conn.receive_eof() if not data else self.conn.receive_data(data)
            except Exception as exc:  # the core promises not to raise; should it, the session still lives
                _log_failure("reading a message", exc)
                events = []
            await self._dispatch(events)
            if not data:
                return

    # -- the session's life ---------------------------------------------------------------------------

    async def run(self, read: Callable[[int], Awaitable[bytes]], stop: StopToken | None = None) -> None:
        """Serve what ``read`` gives until it returns b"" (EOF) or ``stop`` is set; then drain and close."""
        self._stop = stop
        reading = asyncio.create_task(self._read(read))
        stopping = asyncio.create_task(stop.wait()) if stop is not None else None
        try:
            await asyncio.wait([t for t in (reading, stopping) if t is not None],
                               return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():  # stopped: refuse what comes, let what runs finish within the budget
                await self.shut_down(self._settings.shutdown_timeout_s)
                reading.cancel()
                await asyncio.wait([reading])
            if not reading.cancelled() and reading.exception() is not None:
                log.info("the client's stream failed: %s", reading.exception())
            await self.drain(self._settings.drain_timeout_s)
        finally:
            reading.cancel()
            if stopping is not None:
                stopping.cancel()
            self.close()

    async def shut_down(self, budget: float) -> None:
        """The stop sequence of one stream: refuse new requests from now on, give those running ``budget``
        seconds, then cancel each one still running with an error answer (written before this returns)."""
        self._refusing = True
        running = self.session.running
        if not running:
            return
        _, late = await asyncio.wait(list(running.values()), timeout=budget)
        late = {task for task in late if not task.done()}
        if not late:
            return
        log.warning("shutting down: %d request(s) still running after %g s (shutdown_timeout_s): cancelled, each "
                    "answered with an error", len(late), budget)
        for rid, task in list(running.items()):
            if task in late:
                self._cut.add(rid)
                task.cancel()
        await asyncio.wait(late, timeout=1.0)  # let them unwind and answer; a handler ignoring cancellation is left

    async def drain(self, timeout: float) -> None:
        """Nothing more will be read: answer what runs (within ``timeout``), cancel the rest, flush, close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.session.fail_pending("the client's input ended before it answered")
        tasks = list(self.session.running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            if late:
                log.warning("%d request(s) still running after %.1f s (drain_timeout_s): cancelled", len(late),
                            timeout)
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=1.0)  # let them unwind; a handler ignoring cancellation is left
        await self._output.close(max(0.0, deadline - loop.time()))

    def close(self) -> None:
        self._router.detach(self.session)
