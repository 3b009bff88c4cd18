"""A plugin worker process: attach to the runtime's rings, load one plugin, serve its calls until STOP.

Run by the runtime as ``python -m mcp_edge.worker <in-socket> <out-socket>``; dies with the runtime
(PR_SET_PDEATHSIG). The plugin is loaded by the same in-process host the runtime would use, so a plugin's code
runs the same in either isolation mode. Heartbeats go out from the event loop itself every
``heartbeat_interval_s``: a handler that hogs the loop stops them, and the runtime calls the worker hung.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import McpEdgeError, ProtocolError
from mcp_edge.logs import REQUEST_ID
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.revisions import shape
from mcp_edge.runtime.principal import EMBEDDED, Principal
from mcp_edge.runtime.tracecontext import TLV_TRACESTATE
from mcp_edge.worker import protocol as p
from mcp_edge.worker.channel import Channel, ChannelClosed, Message, connect_channel
from mcp_edge.worker.context import WorkerRequestContext

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.runtime.tracing import Tracing

__all__ = ["Worker", "main"]

log = logging.getLogger("mcp_edge.worker")

# The MCP method of each call op, for shaping its result for the client's protocol revision.
_METHODS = {"tool": "tools/call", "resource": "resources/read", "prompt": "prompts/get",
            "complete": "completion/complete"}
PRINCIPAL_CACHE = 256  # decoded principals kept (they are immutable); cleared when full
TLV_PRINCIPAL = 0x0004


def settings_overrides(settings: Settings) -> dict[str, Any]:
    """The runtime's settings as ``Settings.load`` overrides a worker can rebuild them from (msgpack-able)."""
    from pathlib import Path

    from mcp_edge.board.settings import FIELDS

    out: dict[str, Any] = {}
    for info in FIELDS:
        if info.name == "environ":
            continue
        value = getattr(settings, info.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, (tuple, frozenset)):
            value = [str(v) if isinstance(v, Path) else v for v in (sorted(value) if isinstance(value, frozenset)
                                                                      else value)]
        elif isinstance(value, dict) or hasattr(value, "items"):
            value = {k: (dict(v) if hasattr(v, "items") else v) for k, v in value.items()}
        out[info.name] = value
    out["environ"] = dict(settings.environ)
    return out


def settings_from_overrides(values: dict[str, Any], board_path: str) -> Settings:
    """The inverse of :func:`settings_overrides` in the worker: the same Settings the runtime has."""
    from pathlib import Path

    from mcp_edge.board import Settings
    from mcp_edge.board.profiles import load
    from mcp_edge.board.settings import FIELDS

    kinds = {info.name: info.kind for info in FIELDS}
    fixed: dict[str, Any] = {}
    for name, value in values.items():
        kind = kinds.get(name)
        if kind == "path":
            value = Path(value)
        elif kind == "paths":
            value = tuple(Path(v) for v in value)
        elif kind == "strs" and value is not None:
            value = frozenset(value) if name.endswith("_plugins") else tuple(value)
        elif kind == "ints":
            value = tuple(value)
        fixed[name] = value
    environ = fixed.pop("environ", {})
    board = load(Path(board_path), environ) if board_path else None  # its bases from the runtime's folders
    return Settings.load(board, environ=environ, **fixed)


class Worker:
    """One plugin served over one channel (see the module docstring)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.host: Any = None
        self.settings: Settings | None = None
        self._calls: dict[int, asyncio.Task[None]] = {}
        self._contexts: dict[int, WorkerRequestContext] = {}
        self._asks: dict[int, asyncio.Future[p.Answer]] = {}
        self._stopping = False
        self._steps: asyncio.Queue[Message] = asyncio.Queue()
        self._done: asyncio.Future[int]
        self._timers: dict[int, asyncio.TimerHandle] = {}  # call id -> its deadline's timer
        self._expired: set[int] = set()  # calls cancelled by their deadline (not by a CANCEL)
        self._principals: dict[bytes, Principal] = {}  # TLV bytes -> Principal: a session sends the same one each call
        self.tracing: Tracing | None = None  # Settings.tracing: a span per call, the child of the runtime's

    async def run(self) -> int:
        """Serve until STOP (exit status 0) or until the runtime is gone (status 3)."""
        ch = self.channel
        await ch.send(p.HELLO, 0, p.encode(p.Hello(os.getpid())))
        try:
            first = await ch.receive()
        except ChannelClosed:
            return 3
        with first:
            if first.type != p.INIT:
                log.error("worker: expected INIT, got frame type %d", first.type)
                return 4
            init = p.decode(first.body, p.Init)
        if not await self._init(init):
            return 5
        beat = asyncio.create_task(self._heartbeats())
        try:
            return await self._serve()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if self.tracing is not None:
                self.tracing.shutdown()  # the last spans exported

    async def _init(self, init: p.Init) -> bool:
        """INIT -> READY (the catalog), then START -> STARTED; FAILED with the reason at either step."""
        from mcp_edge.worker.hosting import context_for, open_host

        step = "loading"
        try:
            t0 = time.perf_counter()
            self.settings = settings_from_overrides(init.settings, init.board)
            from mcp_edge.cli import tune_malloc

            tune_malloc(self.settings)
            if self.settings.log_format != "text" or self.settings.log_target != "stderr":
                from mcp_edge.logs import configure

                configure(self.settings, level=init.log_level)
            else:
                logging.getLogger().setLevel(init.log_level)
            if self.settings.tracing:  # before the sandbox: the exporter's file is opened now
                from mcp_edge.runtime.tracing import Tracing

                self.tracing = Tracing(self.settings, role=f"worker-{init.plugin_id}")
            _drop_privileges(self.settings, init.plugin_id)
            self.host = open_host(init, self.settings)
            catalog = await self.host.load()
            load_ms = (time.perf_counter() - t0) * 1e3
            import msgspec

            await self.channel.send(p.READY, 0, p.encode(p.Ready(
                msgspec.Raw(catalog.encode()), self.host.version, sorted(self.host.capabilities), load_ms)))
            msg = await self.channel.receive()
            with msg:
                if msg.type != p.START:
                    raise McpEdgeError(f"expected START, got frame type {msg.type}")
                start = p.decode(msg.body, p.Start)
            step = "initialize"
            t1 = time.perf_counter()
            ctx = context_for(init.plugin_id, self.settings, start.config, self._event)
            await self.host.start(start.config, ctx)
            if start.state is not None:
                await self.host.import_state(start.state)
            init_ms = (time.perf_counter() - t1) * 1e3
        except ChannelClosed:
            return False
        except Exception as exc:
            reason = str(exc) if isinstance(exc, McpEdgeError) else f"{type(exc).__name__}: {exc}"
            if step == "initialize" and not reason.startswith("initialize"):
                reason = f"initialize: {reason}"
            with contextlib.suppress(ChannelClosed):
                await self.channel.send(p.FAILED, 0, p.encode(p.Failure(reason, error=type(exc).__name__)))
            return False
        await self.channel.send(p.STARTED, 0, p.encode(p.Started(init_ms)))
        return True

    async def _event(self, kind: str, value: str) -> None:
        """The plugin's own notification (resource updated, list changed), for the runtime to fan out."""
        with contextlib.suppress(ChannelClosed):
            await self.channel.send(p.EVENT, 0, p.encode(p.Event(kind, value)))

    async def _heartbeats(self) -> None:
        assert self.settings is not None
        every = self.settings.heartbeat_interval_s
        while True:
            with contextlib.suppress(ChannelClosed):
                self.channel.try_send(p.HEARTBEAT, 0)
            await asyncio.sleep(every)

    async def _serve(self) -> int:
        """Take frames as they come (the channel's listener): calls start at once, each its own task; STOP,
        IMPORT and EXPORT run one at a time, in the order they came."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        steps = asyncio.create_task(self._run_steps())
        self.channel.listen(self._on_message, self._on_closed)
        try:
            return await self._done
        finally:
            self.channel.unlisten()
            steps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await steps

    def _on_closed(self, exc: ChannelClosed) -> None:
        for task in self._calls.values():
            task.cancel()
        if not self._done.done():
            self._done.set_result(3)

    def _on_message(self, msg: Message) -> None:
        kind = msg.type
        if kind == p.CALL:
            self._start_call(msg)
        elif kind in (p.STOP, p.IMPORT, p.EXPORT):
            self._steps.put_nowait(msg)
        else:
            with msg:
                if kind == p.CANCEL:
                    running = self._calls.get(msg.id)
                    if running is not None:
                        self._contexts[msg.id].cancel()
                        running.cancel()
                elif kind == p.ANSWER:
                    fut = self._asks.get(msg.id)
                    if fut is not None and not fut.done():
                        fut.set_result(p.decode(msg.body, p.Answer))
                else:
                    log.warning("worker: unexpected frame type %d", kind)

    async def _run_steps(self) -> None:
        ch = self.channel
        while True:
            msg = await self._steps.get()
            try:
                with msg:
                    kind = msg.type
                    if kind == p.STOP:
                        timeout = p.decode(msg.body, p.Stop).timeout
                        await self._stop(timeout)
                        await ch.send(p.STOPPED, 0)
                        if not self._done.done():
                            self._done.set_result(0)
                        return
                    if kind == p.IMPORT:
                        await self.host.import_state(bytes(msg.body))
                        await ch.send(p.STATE, msg.id, b"")
                    else:
                        state = await self.host.export_state()
                        await ch.send(p.STATE, msg.id, state if state is not None else b"")
            except ChannelClosed:
                return
            except Exception as exc:
                if not self._done.done():
                    self._done.set_exception(exc)
                return

    def _start_call(self, msg: Message) -> None:
        with msg:
            try:
                call = p.decode(msg.body, p.Call)
                principal = EMBEDDED
                tracestate = None
                for tlv_type, value in msg.tlvs():
                    if tlv_type & 0x7FFF == TLV_TRACESTATE and self.tracing is not None:
                        tracestate = bytes(value).decode(errors="replace")
                    elif tlv_type & 0x7FFF == TLV_PRINCIPAL:
                        raw = bytes(value)
                        known = self._principals.get(raw)
                        if known is None:
                            known = Principal.from_tlv(raw)
                            if len(self._principals) >= PRINCIPAL_CACHE:
                                self._principals.clear()
                            self._principals[raw] = known
                        principal = known
                deadline = msg.deadline_ns
                wire = msg.frame.trace if self.tracing is not None else None
            except Exception as exc:
                self._answer_later(msg.id, p.Failure(f"a malformed call: {exc}", code=-32603))
                return
        rctx = WorkerRequestContext(self.channel, msg.id, call, principal, deadline, self._asks)
        call_id = msg.id
        self._contexts[call_id] = rctx
        coro = self._call(call_id, call, rctx) if self.tracing is None else \
            self._traced(call_id, call, rctx, wire, tracestate)
        loop = asyncio.get_running_loop()
        if ((deadline is None or deadline > time.monotonic_ns())
                and (call.op != "resource" or call.template is None) and self.host.runs_inline(call.op, call.name)):
            # A plain ``def`` handler: run the call to its end now, from this reader callback, with no task or
            # loop turn of its own (it could not be interrupted anyway). Should its answer wait for room on the
            # ring, a task takes it on from there.
            context = contextvars.copy_context()
            try:
                waits_on = context.run(coro.send, None)
            except StopIteration:
                return
            task = loop.create_task(_resume(coro, waits_on), context=context)
        else:
            task = loop.create_task(coro)
        self._calls[call_id] = task
        if deadline is not None:  # one timer per call: cancels it when its deadline passes
            delay = max(0.0, (deadline - time.monotonic_ns()) / 1e9)
            self._timers[call_id] = loop.call_later(delay, self._expire, call_id)

    def _expire(self, call_id: int) -> None:
        task = self._calls.get(call_id)
        if task is not None and not task.done():
            self._expired.add(call_id)
            task.cancel()

    def _answer_later(self, call_id: int, failure: p.Failure) -> None:
        async def send() -> None:
            with contextlib.suppress(ChannelClosed):
                await self.channel.send(p.ERROR, call_id, p.encode(failure))

        asyncio.get_running_loop().create_task(send())

    async def _call(self, call_id: int, call: p.Call, rctx: WorkerRequestContext) -> None:
        REQUEST_ID.set(call.request_id)  # (this call's own context: a task's, or the inline call's copy)
        try:
            try:
                result = await self._dispatch(call, rctx)
                if not call.stateless and call.protocol_version:  # shaped here, so the runtime embeds the JSON
                    result = shape(_METHODS.get(call.op, ""), result, call.protocol_version)
                body = p.encode_result(result)
            except asyncio.CancelledError:
                if call_id in self._expired:
                    failure = p.Failure("the call's deadline passed in the plugin", code=jsonrpc.INTERNAL_ERROR,
                                        error="DeadlineExceeded")
                else:
                    failure = p.Failure("the call was cancelled", code=jsonrpc.INTERNAL_ERROR,
                                        error="CancelledError")
                with contextlib.suppress(ChannelClosed):
                    await self.channel.send(p.ERROR, call_id, p.encode(failure))
                return
            except ProtocolError as exc:
                failure = p.Failure(exc.message, exc.code, exc.data, "ProtocolError")
                await self.channel.send(p.ERROR, call_id, p.encode(failure))
                return
            except McpEdgeError as exc:
                code = getattr(exc, "code", None)
                failure = p.Failure(str(exc), code if isinstance(code, int) else None, None, type(exc).__name__)
                await self.channel.send(p.ERROR, call_id, p.encode(failure))
                return
            except Exception as exc:
                failure = p.Failure(f"{type(exc).__name__}: {exc}", None, None, "PluginError")
                await self.channel.send(p.ERROR, call_id, p.encode(failure))
                return
            if not self.channel.send_nowait(p.RESULT, call_id, body):
                await self.channel.send(p.RESULT, call_id, body)
        except ChannelClosed:
            pass
        finally:
            self._calls.pop(call_id, None)
            self._contexts.pop(call_id, None)
            self._expired.discard(call_id)
            timer = self._timers.pop(call_id, None)
            if timer is not None:
                timer.cancel()

    async def _traced(self, call_id: int, call: p.Call, rctx: WorkerRequestContext,
                      wire: tuple[bytes, bytes, int] | None, tracestate: str | None = None) -> None:
        """``_call`` inside the call's span (the child of the runtime's request span the CALL names)."""
        assert self.tracing is not None
        plugin = getattr(self.host, "plugin_id", "")
        with self.tracing.worker_span(wire, f"{call.op} {call.name}",
                                      {"mcp_edge.plugin": plugin, "mcp_edge.op": call.op, "mcp_edge.name": call.name,
                                       "mcp_edge.worker.pid": os.getpid()}, tracestate):
            await self._call(call_id, call, rctx)

    async def _dispatch(self, call: p.Call, rctx: WorkerRequestContext) -> Any:
        host = self.host
        if call.op == "tool":
            return await host.call_tool(call.name, call.arguments, rctx)
        if call.op == "resource":
            return await host.read_resource(call.name, call.template, rctx)
        if call.op == "prompt":
            return await host.get_prompt(call.name, call.arguments, rctx)
        if call.op == "complete":
            c = call.completion or {}
            return await host.complete(c.get("kind", ""), call.name, c.get("argument", ""), c.get("value", ""),
                                       c.get("context") or {})
        raise ProtocolError(-32601, f"a worker has no operation {call.op!r}")

    async def _stop(self, timeout: float) -> None:
        self._stopping = True
        running = list(self._calls.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        with contextlib.suppress(Exception):
            await self.host.stop(timeout)


class _Yield:
    """Hands what a coroutine yielded (the future it waits on, or None) to the task that runs it on."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return (yield self.value)


async def _resume(coro: Any, waits_on: Any) -> Any:
    """Run on, inside a task, a coroutine whose first step ran outside one and now waits on ``waits_on``: each
    value the task sends in (or exception it throws in: a cancellation) goes to the coroutine, as if the task
    had run it from the start."""
    while True:
        try:
            sent = await _Yield(waits_on)
        except BaseException as exc:  # a cancellation, or the task's complaint about a bad yield: the coroutine's
            try:
                waits_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waits_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _drop_privileges(settings: Settings, plugin_id: str) -> None:
    """Before any plugin code runs: no new privileges (setuid binaries, file capabilities), and the per-worker
    limits the settings ask for (RLIMIT_AS, RLIMIT_NOFILE, cgroup v2 memory.max where writable)."""
    from mcp_edge.native._sys import set_no_new_privs
    from mcp_edge.system.limits import apply_worker_limits

    set_no_new_privs()
    for outcome in apply_worker_limits(settings, plugin_id):
        if not outcome.applied:
            log.info("worker %s: %s", plugin_id, outcome)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or (len(args) == 3 and not args[2].isdigit()):
        print("usage: python -m mcp_edge.worker <in-socket> <out-socket> [ring-spin-us]", file=sys.stderr)
        return 2
    from mcp_edge.native._sys import set_parent_death_signal

    with contextlib.suppress(OSError):
        set_parent_death_signal(signal.SIGKILL)
    # The runtime decides when a worker stops (STOP, after the runtime's own drain): ^C, a SIGTERM sent to the
    # whole process group (timeout, a shell, a container runtime) or a SIGHUP for reload are the runtime's to
    # act on. A worker whose runtime is gone dies with it (the parent-death SIGKILL above).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format=f"mcp-edge worker {os.getpid()}: %(message)s")
    spin_us = int(args[2]) if len(args) == 3 else 0  # the runtime passes its ring_spin_us setting
    channel = connect_channel(args[0], args[1], timeout=10.0, ring_spin_us=spin_us)
    from mcp_edge.transport.spin import loop_factory

    try:
        with asyncio.Runner(loop_factory=loop_factory(0)) as runner:  # a worker never spins: it shares a CPU
            return runner.run(Worker(channel).run())
    finally:
        channel.close()
