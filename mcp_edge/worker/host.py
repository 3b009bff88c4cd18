"""The runtime's side of a ``process`` plugin: a worker process reached over a ring pair.

``ProcessHost`` starts the worker (``python -m mcp_edge.worker``), loads and starts the plugin in it, and turns
each call into a CALL frame whose answer (RESULT or ERROR) it awaits; the plugin's notifications for a call
(progress, log) and its questions to the client come back on the way. Who asks (the principal) and the call's
deadline ride as frame TLVs.

A worker that dies (found at once through its pidfd) or stops sending heartbeats (hung: it is killed) fails
every call it had with :class:`WorkerLost`, a clear JSON-RPC error, never a hang, and ``on_lost`` is told, so
the registry can restart it (with backoff) while other plugins go on. The rings outlive the worker: the next
one attaches to the same sockets, and the blocks the dead one held come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import (
    InvalidArgumentsError,
    McpEdgeError,
    PluginError,
    PluginLoadError,
    PromptNotFoundError,
    ProtocolError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.native import _frame
from mcp_edge.plugin.catalog import PluginCatalog
from mcp_edge.plugin.hosts.base import PluginHost
from mcp_edge.runtime.tracecontext import WIRE, tracestate_tlv
from mcp_edge.worker import protocol as p
from mcp_edge.worker.channel import ChannelClosed, ChannelListener, Message, MessageError

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["ProcessHost", "WorkerLost", "WorkerSpec"]

log = logging.getLogger("mcp_edge.worker")

TLV_PRINCIPAL = 0x0004
# Slab classes of a worker's rings: small calls, then room for a 1 MiB payload with its envelope in one block.
WORKER_SLAB_SIZES = (1024, 16 * 1024, 256 * 1024, 2 * 1024 * 1024)
WORKER_SLAB_COUNTS = (256, 64, 8, 4)
# The environment a worker must not inherit: systemd's notify and watchdog belong to the main process.
_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class WorkerLost(PluginError):
    """The worker process of a ``process`` plugin died or hung while a call was in it; the call did not finish.
    The runtime restarts the worker: the client may retry."""

    code = -32603


_ERRORS: dict[str, type[McpEdgeError]] = {
    "ToolNotFoundError": ToolNotFoundError,
    "InvalidArgumentsError": InvalidArgumentsError,
    "ResourceNotFoundError": ResourceNotFoundError,
    "PromptNotFoundError": PromptNotFoundError,
}


class WorkerSpec(msgspec.Struct, frozen=True):
    """What a worker loads: the plugin's id, kind (python | native | entry_point) and source (its folder, or
    the entry point's ``module:attr``)."""

    plugin_id: str
    kind: str
    source: str


class _Pending:
    __slots__ = ("future", "op", "rctx")

    def __init__(self, op: str, rctx: Any, future: asyncio.Future[Message]) -> None:
        self.op = op
        self.rctx = rctx
        self.future = future


class ProcessHost(PluginHost):
    """A plugin in a worker process (see the module docstring)."""

    kind = "process"

    def __init__(self, spec: WorkerSpec, settings: Settings, *,
                 on_lost: Callable[[ProcessHost, str], Awaitable[None] | None] | None = None,
                 run_dir: str | None = None) -> None:
        super().__init__(spec.plugin_id)
        self.spec = spec
        self.settings = settings
        self.on_lost = on_lost
        self.catalog_raw: bytes | None = None
        self.load_ms = 0.0
        self.init_ms = 0.0
        self.pid = 0
        self.restarts = 0
        self._own_dir = run_dir is None
        self._dir = run_dir or tempfile.mkdtemp(prefix="mcp-edge-w-")
        self._listener: ChannelListener | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._pending: dict[int, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._control: asyncio.Queue[Message] = asyncio.Queue()
        self._next_id = 0
        self._last_beat = 0.0
        self._ctx: Any = None
        self._config: dict[str, Any] = {}
        self._state: bytes | None = None
        self._lost_reason: str | None = None
        self._alive = False
        self._serving = False  # the plugin is started in the worker: calls may go to it
        self._stopping = False

    # -- life -----------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._alive

    async def load(self) -> PluginCatalog:
        """Start a worker and load the plugin in it; the catalog it sent. PluginLoadError with the worker's
        reason when it cannot."""
        s = self.settings
        if self._listener is None:
            self._listener = ChannelListener(os.path.join(self._dir, self.plugin_id), ring_entries=s.ring_entries,
                                             ring_spin_us=s.ring_spin_us, slab_sizes=WORKER_SLAB_SIZES,
                                             slab_counts=WORKER_SLAB_COUNTS)
        self._spawn()
        assert self._proc is not None and self._listener is not None
        try:
            await self._listener.accept(s.ipc_connect_timeout_s + 10.0)
        except (TimeoutError, OSError, McpEdgeError) as exc:
            reason = self._exit_reason() or f"it did not attach to its rings ({exc})"
            self._kill()
            raise PluginLoadError(f"plugin {self.plugin_id}: the worker process failed to start: {reason}") from None
        self._alive = True
        self._stopping = False
        self._lost_reason = None
        self._last_beat = time.monotonic()
        self._listener.channel.listen(self._on_message, self._on_closed, self._on_bad)
        hello = await self._expect(p.HELLO, "HELLO", s.init_timeout_s)
        self.pid = p.decode(hello.body, p.Hello).pid
        hello.release()
        from mcp_edge.worker.main import settings_overrides

        board = str(s.board.path) if getattr(s.board, "path", None) else ""
        init = p.Init(self.plugin_id, self.spec.kind, self.spec.source, settings_overrides(s), board,
                      logging.getLogger().getEffectiveLevel())
        await self._send_control(p.INIT, p.encode(init))
        msg = await self._expect(p.READY, "READY", s.init_timeout_s)
        with msg:
            ready = p.decode(msg.body, p.Ready)
            self.catalog_raw = bytes(ready.catalog)  # a copy: the Raw is a view of the block
            del ready.catalog
        self.version = ready.version
        self.capabilities = frozenset(ready.capabilities)
        self.load_ms = ready.load_ms
        try:
            return PluginCatalog.decode(self.catalog_raw)
        except msgspec.ValidationError as exc:
            self._kill()
            raise PluginLoadError(f"plugin {self.plugin_id}: the worker sent a malformed catalog: {exc}") from None

    async def start(self, config: Mapping[str, Any], ctx: Any) -> None:
        """Initialize the plugin in the worker with ``config``; ``ctx`` receives its notifications."""
        self._ctx = self.context = ctx
        self._config = dict(config)
        await self._send_control(p.START, p.encode(p.Start(self._config, self._state)))
        self._state = None
        msg = await self._expect(p.STARTED, "STARTED", self.settings.init_timeout_s)
        with msg:
            self.init_ms = p.decode(msg.body, p.Started).init_ms
        self._serving = True
        self._watch = asyncio.create_task(self._heartbeat_watch(), name=f"worker-{self.plugin_id}-watch")

    async def import_state(self, state: bytes) -> None:
        """Hand ``state`` to the plugin: with its next START before it starts, else at once (IMPORT)."""
        if self._watch is None:  # not started: START carries it
            self._state = state
            return
        await self._send_control(p.IMPORT, state)
        msg = await self._expect(p.STATE, "STATE", self.settings.plugin_shutdown_timeout_s)
        msg.release()

    async def export_state(self) -> bytes | None:
        if not self._alive or self._listener is None:
            return None
        await self._send_control(p.EXPORT, b"")
        msg = await self._expect(p.STATE, "STATE", self.settings.plugin_shutdown_timeout_s)
        with msg:
            return bytes(msg.body) or None

    async def restart(self) -> PluginCatalog:
        """A new worker in place of a lost one: load and start it with the same config; its catalog."""
        await self._reap()
        self.restarts += 1
        catalog = await self.load()
        await self.start(self._config, self._ctx)
        return catalog

    async def stop(self, timeout: float) -> None:
        """Ask the worker to finish its calls (within ``timeout``), shut the plugin down and exit; kill it if it
        does not."""
        self._serving = False
        if self._alive:
            self._stopping = True  # the worker's exit that follows is not a loss
            try:
                await self._send_control(p.STOP, p.encode(p.Stop(timeout)))
                msg = await self._expect(p.STOPPED, "STOPPED", timeout + 2.0)
                msg.release()
            except (McpEdgeError, TimeoutError):
                pass
        self._alive = False
        await self._reap(grace=1.0)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._own_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)

    def ring_stats(self) -> dict[str, Any] | None:
        """The counters of the ring the runtime sends calls to the worker on (``Producer.stats``: unread
        descriptors, published, the arena's size classes), or None while no worker is connected."""
        channel = getattr(self._listener, "channel", None)
        if channel is None or not self._alive:
            return None
        try:
            stats: dict[str, Any] = channel.producer.stats()
        except (McpEdgeError, OSError, ValueError):  # (the ring closed under the scrape)
            return None
        return stats

    # -- calls ----------------------------------------------------------------------------------------------

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, rctx: Any) -> Any:
        return await self._call(p.Call("tool", name, None if arguments is None else dict(arguments)), rctx)

    async def read_resource(self, uri: str, template: str | None, rctx: Any) -> Any:
        return await self._call(p.Call("resource", uri, template=template), rctx)

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None, rctx: Any) -> Any:
        return await self._call(p.Call("prompt", name, None if arguments is None else dict(arguments)), rctx)

    async def complete(self, kind: str, ref: str, argument: str, value: str, context: Mapping[str, Any]) -> Any:
        from mcp_edge.plugin.types import Completion

        raw = await self._call(p.Call("complete", ref, completion={"kind": kind, "argument": argument,
                                                                   "value": value, "context": dict(context)}), None)
        return msgspec.json.decode(raw, type=Completion) if isinstance(raw, msgspec.Raw) else raw

    async def _call(self, call: p.Call, rctx: Any) -> Any:
        if not self._serving:  # starting, restarting, stopping or lost: nothing may reach the worker's ring
            raise WorkerLost(f"plugin {self.plugin_id}: its worker process is not running "
                             f"({self._lost_reason or 'not started'}); retry shortly")
        _describe(call, rctx)
        self._next_id += 1
        call_id = self._next_id
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = _Pending(call.op, rctx, fut)
        try:
            assert self._listener is not None
            channel, body, ext = self._listener.channel, p.encode(call), _extensions(rctx)
            if not channel.send_nowait(p.CALL, call_id, body, ext):  # no room now, or more than a block
                await channel.send(p.CALL, call_id, body, extensions=ext)
            msg = await fut
        except ChannelClosed:
            raise WorkerLost(f"plugin {self.plugin_id}: its worker process is gone "
                             f"({self._lost_reason or 'its rings closed'}); the call did not run") from None
        except asyncio.CancelledError:
            if self._alive and self._listener is not None:
                with contextlib.suppress(McpEdgeError):
                    self._listener.channel.try_send(p.CANCEL, call_id)
            raise
        finally:
            self._pending.pop(call_id, None)
        with msg:
            try:
                if msg.type == p.RESULT:
                    value = p.decode_result(msg.body)
                    if msg.body[0] == p.RESULT_JSON_ERROR and rctx is not None:
                        with contextlib.suppress(AttributeError):  # (a context of the embedding API has no slot)
                            rctx.result_error = True  # the runtime's metrics count it as an error
                    return value
                failure = p.decode(msg.body, p.Failure)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise PluginError(f"plugin {self.plugin_id}: its worker sent a malformed answer ({exc}); "
                                  "nothing of it was passed on") from None
        raise _error(failure, self.plugin_id)

    # -- the reader -----------------------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        """Every frame from the worker, in order, from the channel's reader callback (never waits)."""
        kind = msg.type
        if kind == p.RESULT or kind == p.ERROR:
            pending = self._pending.get(msg.id)
            if pending is None or pending.future.done():
                msg.release()  # a call already given up (cancelled)
            else:
                pending.future.set_result(msg)
        elif kind == p.HEARTBEAT:
            self._last_beat = time.monotonic()
            msg.release()
        elif kind == p.NOTE:
            with msg:
                note = p.decode(msg.body, p.Note)
            pending = self._pending.get(msg.id)
            if pending is not None and pending.rctx is not None:
                self._spawn_task(_deliver_note(pending.rctx, note))
        elif kind == p.ASK:
            with msg:
                ask = p.decode(msg.body, p.Ask)
            self._spawn_task(self._answer(msg.id, ask))
        elif kind == p.EVENT:
            with msg:
                event = p.decode(msg.body, p.Event)
            self._spawn_task(self._event(event))
        else:
            self._last_beat = time.monotonic()
            self._control.put_nowait(msg)

    def _on_closed(self, exc: ChannelClosed) -> None:
        self._spawn_task(self._lost(self._exit_reason() or ("died" if exc.died else "closed its rings")))

    def _on_bad(self, exc: MessageError) -> None:
        log.warning("plugin %s: %s", self.plugin_id, exc)

    def _spawn_task(self, coro: Any) -> None:
        """Run a delivery beside the reader (the reader never waits on a client), keeping it referenced."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, ask_id: int, ask: p.Ask) -> None:
        pending = self._pending.get(ask.call_id)
        answer: p.Answer
        if pending is None or pending.rctx is None:
            answer = p.Answer(error=p.Failure("the call that asked is over", code=-32603))
        else:
            try:
                answer = p.Answer(result=await pending.rctx.send_request(ask.method, ask.params))
            except ProtocolError as exc:
                answer = p.Answer(error=p.Failure(exc.message, exc.code, exc.data))
            except Exception as exc:
                answer = p.Answer(error=p.Failure(f"{type(exc).__name__}: {exc}", code=-32603))
        if self._alive and self._listener is not None:
            with contextlib.suppress(ChannelClosed):
                await self._listener.channel.send(p.ANSWER, ask_id, p.encode(answer))

    async def _event(self, event: p.Event) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            if event.kind == "resource_updated":
                await ctx.notify_resource_updated(event.value)
            elif event.kind == "list_changed":
                await ctx.notify_list_changed(event.value)
            elif event.kind == "published":
                import msgspec

                from mcp_edge.plugin.types import ResourceDef

                await ctx.publish_resources(msgspec.json.decode(event.value, type=list[ResourceDef]))
        except Exception:
            log.exception("plugin %s: delivering its %s notification failed", self.plugin_id, event.kind)

    async def _send_control(self, kind: int, body: bytes) -> None:
        assert self._listener is not None
        try:
            await self._listener.channel.send(kind, 0, body)
        except ChannelClosed:
            raise PluginLoadError(f"plugin {self.plugin_id}: the worker process is gone "
                                  f"({self._exit_reason() or 'its rings closed'})") from None

    async def _expect(self, kind: int, name: str, timeout: float) -> Message:
        try:
            msg = await asyncio.wait_for(self._control.get(), timeout)
        except TimeoutError:
            self._kill()
            raise PluginLoadError(f"plugin {self.plugin_id}: the worker sent no {name} within {timeout:g} s") from None
        if msg.type == kind:
            return msg
        if msg.type == p.FAILED:
            with msg:
                failure = p.decode(msg.body, p.Failure)
            await self._reap(grace=2.0)
            raise PluginLoadError(f"plugin {self.plugin_id}: {failure.message}")
        if msg.type == -1:
            raise PluginLoadError(f"plugin {self.plugin_id}: the worker process is gone ({self._lost_reason})")
        msg.release()
        self._kill()
        raise PluginLoadError(f"plugin {self.plugin_id}: the worker sent frame type {msg.type} where {name} was due")

    # -- loss -----------------------------------------------------------------------------------------------

    async def _heartbeat_watch(self) -> None:
        s = self.settings
        limit = s.heartbeat_interval_s * s.heartbeat_misses
        while self._alive:
            await asyncio.sleep(s.heartbeat_interval_s)
            silent = time.monotonic() - self._last_beat
            if self._alive and silent > limit + s.heartbeat_interval_s:
                reason = f"hung: no heartbeat for {silent:.1f} s ({s.heartbeat_misses} missed); killed"
                log.warning("plugin %s: worker %d %s", self.plugin_id, self.pid, reason)
                self._lost_reason = reason
                self._kill()
                return

    async def _lost(self, reason: str) -> None:
        if self._lost_reason is None or not self._lost_reason.startswith("hung"):
            self._lost_reason = reason
        was_alive, self._alive = self._alive, False
        self._serving = False
        error = WorkerLost(f"plugin {self.plugin_id}: its worker process {self.pid} {self._lost_reason} while "
                           "this call was in it; the call did not finish (the worker is being restarted: retry)")
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()
        self._control.put_nowait(_LostMarker())  # type: ignore[arg-type]
        if self._watch is not None:
            self._watch.cancel()
        if was_alive and not self._stopping:
            log.warning("plugin %s: worker %d %s", self.plugin_id, self.pid, self._lost_reason)
            if self.on_lost is not None:
                result = self.on_lost(self, self._lost_reason)
                if result is not None:
                    await result

    def _spawn(self) -> None:
        assert self._listener is not None
        env = {k: v for k, v in _environ().items() if k not in _NOT_INHERITED}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_edge.worker", *self._listener.paths, str(self.settings.ring_spin_us)],
            stdin=subprocess.DEVNULL, stdout=2, stderr=2, env=env, close_fds=True)

    def _exit_reason(self) -> str | None:
        proc = self._proc
        if proc is None:
            return None
        code = proc.poll()
        if code is None:
            return None
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
            return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def _reap(self, grace: float = 0.0) -> None:
        if self._listener is not None:
            self._listener.channel.unlisten()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        proc, self._proc = self._proc, None
        if proc is not None:
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        while not self._control.empty():
            left = self._control.get_nowait()
            if isinstance(left, Message):
                left.release()


class _LostMarker:
    """Put on the control queue when the worker is lost, so a step waiting for its answer ends."""

    type = -1

    def release(self) -> None:
        pass


def _environ() -> dict[str, str]:
    from mcp_edge.board.environ import process_environ

    return dict(process_environ())


def _describe(call: p.Call, rctx: Any) -> None:
    """Copy what the handler may ask of its request into the CALL (protocol version, era, capabilities ...)."""
    if rctx is None:
        return
    try:  # the router's request context has every one of these
        call.request_id = rctx.request_id
        call.protocol_version = rctx.protocol_version or ""
        call.stateless = bool(rctx.stateless)
        call.client_capabilities = rctx.client_capabilities  # encoded at once, never kept
        call.input_responses = rctx.input_responses
        call.request_state = rctx.request_state
    except AttributeError:  # another context (tests, embedding): what it has
        call.request_id = getattr(rctx, "request_id", None)
        call.protocol_version = getattr(rctx, "protocol_version", "") or ""
        call.stateless = bool(getattr(rctx, "stateless", False))
        caps = getattr(rctx, "client_capabilities", None)
        call.client_capabilities = caps if isinstance(caps, dict) else {}
        call.input_responses = getattr(rctx, "input_responses", None)
        call.request_state = getattr(rctx, "request_state", None)
    req = getattr(rctx, "_req", None)
    call.progress = getattr(req, "progress_token", None) is not None


def _extensions(rctx: Any) -> bytes:
    principal = getattr(rctx, "principal", None)
    deadline = getattr(rctx, "deadline_ns", None)
    priority = getattr(rctx, "priority", None)
    trace = WIRE.get()
    return _frame.encode_extensions(deadline_ns=deadline, priority=priority, trace=trace,
                                    principal=principal.to_tlv() if principal is not None else None,
                                    extra=tracestate_tlv() if trace is not None else ())


async def _deliver_note(rctx: Any, note: p.Note) -> None:
    try:
        if note.kind == "progress":
            await rctx.report_progress(note.progress, note.total, note.message)
        elif note.kind == "log":
            await rctx.log(note.level, note.data, note.logger)
    except Exception:
        log.debug("a worker's notification could not be delivered", exc_info=True)


def _error(failure: p.Failure, plugin_id: str) -> McpEdgeError:
    if failure.error == "ProtocolError" and failure.code is not None:
        return ProtocolError(failure.code, failure.message, failure.data)
    cls = _ERRORS.get(failure.error)
    if cls is not None:
        return cls(failure.message)
    err = PluginError(failure.message)
    if failure.code is not None:
        err.code = failure.code
    return err
