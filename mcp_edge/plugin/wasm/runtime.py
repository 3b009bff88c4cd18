"""A WASM plugin loaded with wasmtime: the compiled module, its instances, and calls under deadline and memory cap.

One engine per process (epoch interruption on). A ticker thread advances its epoch every ``TICK_S`` while any
WASM code runs, and sleeps otherwise; each call sets its store's deadline to its ``deadline_ms`` in ticks, so a
module that never returns traps there and only that call fails.

The module is compiled once per load; instances come from an idle list (``settings.wasm_idle_instances``) or
are made fresh, each in its own store with the memory cap (``Store.set_limits``: ``memory.grow`` past it
answers -1, which C's malloc turns into NULL). An instance that trapped, passed its deadline, or was refused a
host function is thrown away, never reused: the next call gets a fresh one. Calls run on threads of their
own (``settings.wasm_threads`` per plugin), never on the event loop nor on the loop's default executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import (
    AbiMismatchError,
    InvalidArgumentsError,
    PluginError,
    PluginLoadError,
    ToolNotFoundError,
)
from mcp_edge.plugin.config import check_schema, validate
from mcp_edge.plugin.types import TextContent, ToolAnnotations, ToolDef, ToolResult
from mcp_edge.plugin.wasm import WASM_ABI_VERSION, WasmPolicy
from mcp_edge.plugin.wasm.hostfuncs import SIGNATURES, CallScope, define_all, set_current

if TYPE_CHECKING:
    from mcp_edge.plugin.context import PluginContext, RequestContext
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["TICK_S", "WasmPlugin", "WasmToolHandler", "engine"]

TICK_S = 0.01
_REQUIRED_EXPORTS = ("memory", "mcp_abi_version", "mcp_alloc", "mcp_free", "mcp_catalog", "mcp_call")
# The exported functions' signatures (params, results): checked at load, so calls need no per-call checks.
_EXPORT_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mcp_abi_version": ((), ("i32",)),
    "mcp_alloc": (("i32",), ("i32",)),
    "mcp_free": (("i32",), ()),
    "mcp_catalog": ((), ("i64",)),
    "mcp_call": (("i32", "i32", "i32", "i32"), ("i64",)),
    "mcp_init": (("i32", "i32"), ("i32",)),
}
_TRAPS = {
    "UNREACHABLE": "it reached an unreachable instruction (what abort() and __builtin_trap() compile to)",
    "MEMORY_OUT_OF_BOUNDS": "a memory access out of bounds",
    "STACK_OVERFLOW": "its stack overflowed",
    "INTEGER_DIVISION_BY_ZERO": "an integer division by zero",
    "INTEGER_OVERFLOW": "an integer overflow",
    "INDIRECT_CALL_TO_NULL": "an indirect call to a null table entry",
    "BAD_SIGNATURE": "an indirect call with the wrong signature",
}
_encode = msgspec.json.encode
log = logging.getLogger("mcp_edge.plugin")


class _Ticker:
    """The engine's epoch clock: ticks while at least one call is in WASM code."""

    def __init__(self, eng: Any) -> None:
        self._engine = eng
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def enter(self) -> None:
        with self._cond:
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mcp-edge-wasm-epoch", daemon=True)
                self._thread.start()
            self._cond.notify()

    def leave(self) -> None:
        with self._cond:
            self._busy -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._busy > 0)
            time.sleep(TICK_S)
            self._engine.increment_epoch()


_engine_lock = threading.Lock()
_engine: tuple[Any, _Ticker] | None = None


def engine(cache_dir: Path | None = None) -> tuple[Any, _Ticker]:
    """The process's wasmtime engine and its epoch ticker (made on first use; ``cache_dir``: wasmtime's compile
    cache goes there, when the settings turn it on)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                import wasmtime
            except ImportError as exc:
                raise PluginLoadError(
                    f"WASM plugins need wasmtime (pip install 'mcp-edge[wasm]'): {exc}") from None
            config = wasmtime.Config()
            config.epoch_interruption = True
            config.parallel_compilation = False
            if cache_dir is not None:
                _use_cache(config, cache_dir)
            eng = wasmtime.Engine(config)
            _engine = (eng, _Ticker(eng))
        return _engine


def _use_cache(config: Any, cache_dir: Path) -> None:
    """Point wasmtime's compile cache at ``cache_dir`` (a cache.toml there says where); a folder it cannot use
    is logged and the engine compiles every load instead."""
    import wasmtime

    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _private(cache_dir)
        toml = cache_dir / "cache.toml"
        text = f"[cache]\ndirectory = {json.dumps(str(cache_dir / 'modules'))}\n"
        if not toml.is_file() or toml.read_text() != text:
            toml.write_text(text)
        config.cache = str(toml)
    except (OSError, wasmtime.WasmtimeError) as exc:
        log.warning("WASM compile cache off: cannot use %s (%s); modules are compiled at every load", cache_dir,
                    _one_line(exc))


def _private(folder: Path) -> None:
    """OSError unless ``folder`` and the folder holding it are this user's (or root's) alone to change: what the
    compile cache holds is native code the engine runs as it finds it. (The holding folder may be a shared one
    with the sticky bit, like /tmp: there no one else can move ours away.)"""
    import os
    import stat

    me = os.geteuid()
    for path, own in ((folder, True), (folder.parent, False)):
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(f"{path} is not a folder")
        if st.st_uid not in (me, 0):
            raise OSError(f"{path} belongs to user {st.st_uid}")
        if st.st_mode & 0o022 and (own or not st.st_mode & stat.S_ISVTX):
            raise OSError(f"others may write in {path} (mode {stat.S_IMODE(st.st_mode):o})")


class _ToolSpec(msgspec.Struct):
    name: str
    inputSchema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    description: str | None = None
    title: str | None = None
    outputSchema: dict[str, Any] | None = None
    annotations: ToolAnnotations | None = None


class _Catalog(msgspec.Struct):
    tools: list[_ToolSpec] = msgspec.field(default_factory=list)


class _CallFailed(Exception):
    """A call that produced no result: the message says why; the instance is not reused."""


_DIRECT_MAJOR = 50
"""The wasmtime-py major version whose private ctypes bindings (``_ffi``, ``_func``, ``Store._context``,
``Func._func``) :class:`_Direct` was written against: under any other, calls take the public ``Func.__call__``."""


@functools.lru_cache(maxsize=1)
def _wasmtime_major() -> int:
    """The installed wasmtime-py's major version (-1 when it cannot be told)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("wasmtime").split(".", 1)[0])
    except (PackageNotFoundError, ValueError):
        return -1


class _Direct:
    """A call of an exported function of known signature (integers in, one integer out) without wasmtime-py's
    per-call checks and value conversions: ``wasmtime_func_call_unchecked`` on a reused argument buffer.

    ``Func.__call__`` costs 10 µs plus about 25 µs per argument here (it looks the type up, converts and unroots
    each value); a tool call makes five calls, so this path is what keeps a call near 20 µs instead of hundreds
    (tools/wasm_engine_cost.py). The signatures are checked at load (``_check_signatures``), which is what makes
    the unchecked call sound. Uses wasmtime-py's private ctypes bindings, so only under the wasmtime-py major it
    was written against (``_DIRECT_MAJOR``); under another, or when they are not there, ``Func.__call__``."""

    __slots__ = ("_buf", "_ctx", "_fallback", "_func", "_n", "_store", "_wide")

    def __init__(self, store: Any, func: Any, nparams: int, wide_result: bool) -> None:
        self._store = store
        self._fallback = func
        self._wide = wide_result
        self._n = max(nparams, 1)
        self._ctx = None
        if _wasmtime_major() != _DIRECT_MAJOR:
            return
        try:
            import ctypes

            from wasmtime import _ffi

            self._ctx = store._context()
            self._func = ctypes.byref(func._func)
            self._buf = (_ffi.wasmtime_val_raw_t * self._n)()
        except (ImportError, AttributeError):  # another wasmtime-py layout: the public, slower call
            self._ctx = None

    def __call__(self, *args: int) -> int:
        if self._ctx is None:
            return int(self._fallback(self._store, *args) or 0)
        import ctypes

        import wasmtime
        from wasmtime import _ffi

        buf = self._buf
        for i, value in enumerate(args):
            buf[i].i32 = value
        trap = ctypes.POINTER(_ffi.wasm_trap_t)()
        error = _ffi.wasmtime_func_call_unchecked(self._ctx, self._func, buf, self._n, ctypes.byref(trap))
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            from wasmtime import _func

            with contextlib.suppress(BaseException):  # a host function's own exception: the trap says enough
                _func.maybe_raise_last_exn()
            raise wasmtime.Trap._from_ptr(trap)
        return int(buf[0].i64 if self._wide else buf[0].i32)


class _Instance:
    """One instance in its own store."""

    __slots__ = ("alloc", "call", "exports", "free", "instance", "memory", "store")

    def __init__(self, store: Any, instance: Any) -> None:
        self.store = store
        self.instance = instance
        self.exports = instance.exports(store)
        self.memory = self.exports["memory"]
        self.alloc = _Direct(store, self.exports["mcp_alloc"], 1, False)
        self.free = _Direct(store, self.exports["mcp_free"], 1, False)
        self.call = _Direct(store, self.exports["mcp_call"], 4, True)

    def memory_mib(self) -> float:
        return float(self.memory.data_len(self.store)) / (1 << 20)


class WasmToolHandler:
    """One tool of a WASM plugin, with the same ``call`` as a Python tool handler."""

    __slots__ = ("_def", "name", "raw_name", "schema")

    def __init__(self, spec: _ToolSpec) -> None:
        self.name = spec.name
        self.raw_name = spec.name.encode()
        self.schema = spec.inputSchema
        self._def = ToolDef(name=spec.name, inputSchema=spec.inputSchema, title=spec.title,
                            description=spec.description, outputSchema=spec.outputSchema,
                            annotations=spec.annotations)

    def definition(self) -> ToolDef:
        return self._def

    @property
    def is_async(self) -> bool:
        return True  # it runs on a thread: a worker must not run it inline

    async def call(self, instance: WasmPlugin, arguments: Mapping[str, Any] | None,
                   rctx: RequestContext | None) -> ToolResult:
        arguments = {} if arguments is None else arguments
        problem = validate(arguments, self.schema)
        if problem is not None:
            where, message = problem
            raise InvalidArgumentsError(f"invalid arguments for tool '{self.name}': {where or '(arguments)'}: "
                                        f"{message}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(instance.executor, instance.call_sync, self.name, _encode(arguments),
                                          rctx, loop)


class WasmPlugin:
    """A loaded WASM plugin: a ``Plugin`` whose tools run in instances of its module."""

    def __init__(self, manifest: Manifest, policy: WasmPolicy) -> None:
        self.manifest = manifest
        self.id = manifest.id
        self.version = manifest.version
        self.description = manifest.description
        self.capabilities = manifest.capabilities | {"tools"}
        self.policy = policy
        self.logger = logging.getLogger(f"mcp_edge.plugin.{manifest.id}")
        self.tools: dict[str, WasmToolHandler] = {}
        self._engine, self._ticker = engine(policy.cache_dir)
        self._config = b"{}"
        self._data_dir: Path | None = None
        self._idle: list[_Instance] = []
        self._lock = threading.Lock()
        self._closed = False
        # this plugin's own threads (settings.wasm_threads; made as calls come): its runaway calls, each up to its
        # deadline, hold up its own later calls only, never another plugin's nor the loop's default executor
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=policy.threads,
                                                              thread_name_prefix=f"mcp-edge-wasm-{manifest.id}")
        self._pre = self._compile()
        self._read_catalog()

    # -- loading --------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"wasm plugin {self.id}"

    def _compile(self) -> Any:
        import wasmtime

        assert self.manifest.wasm is not None
        path = (self.manifest.folder / self.manifest.wasm).resolve()
        if not path.is_file():
            raise PluginLoadError(
                f"{self._where()}: {path} does not exist (the WASM plugins shipped with mcp_edge are built by "
                "`make build`, which needs clang, lld and wasi-libc)"
            )
        try:
            module = wasmtime.Module.from_file(self._engine, str(path))
        except wasmtime.WasmtimeError as exc:
            raise PluginLoadError(
                f"{self._where()}: {path} is not a valid WebAssembly module: {_one_line(exc)}") from None
        for imp in module.imports:
            if (imp.module == "mcp_edge" and imp.name in SIGNATURES) or imp.module == "wasi_snapshot_preview1":
                continue
            raise PluginLoadError(
                f"{self._where()}: {path.name} imports {imp.module}::{imp.name}, which this runtime does not provide "
                f"(host functions are in module \"mcp_edge\": {', '.join(SIGNATURES)}; and WASI preview 1)"
            )
        exports = {e.name: e.type for e in module.exports}
        missing = [e for e in _REQUIRED_EXPORTS if e not in exports]
        if missing:
            raise PluginLoadError(
                f"{self._where()}: {path.name} does not export {', '.join(missing)} (see plugins/include/"
                "mcp_edge_wasm.h: MCP_EDGE_WASM_PLUGIN() defines the allocator exports)"
            )
        for name, (params, results) in _EXPORT_SIGNATURES.items():
            ty = exports.get(name)
            if ty is None and name == "mcp_init":
                continue
            got = (tuple(str(p) for p in getattr(ty, "params", ())), tuple(str(r) for r in getattr(ty, "results", ())))
            if not isinstance(ty, wasmtime.FuncType) or got != (params, results):
                shown = f"({', '.join(got[0])}) -> ({', '.join(got[1])})" if isinstance(ty, wasmtime.FuncType) \
                    else "not a function"
                raise PluginLoadError(
                    f"{self._where()}: {path.name} exports {name} as {shown}; the WASM ABI wants "
                    f"({', '.join(params)}) -> ({', '.join(results)}) (plugins/include/mcp_edge_wasm.h)"
                )
        linker = wasmtime.Linker(self._engine)
        linker.define_wasi()
        define_all(linker)
        try:
            return linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise PluginLoadError(f"{self._where()}: {path.name} cannot be linked: {exc}") from None

    def _read_catalog(self) -> None:
        """Make one instance, check its ABI version and read its catalog (the instance is not kept: it has
        seen no config)."""
        try:
            inst = self._with_deadline(None, lambda: self._new_instance(config=False))
            abi = self._with_deadline(inst, lambda: inst.exports["mcp_abi_version"](inst.store))
            if abi != WASM_ABI_VERSION:
                raise AbiMismatchError(
                    f"{self._where()}: its module speaks WASM ABI {abi}, this runtime speaks WASM ABI "
                    f"{WASM_ABI_VERSION}; rebuild it against this runtime's mcp_edge_wasm.h",
                    plugin_abi=abi if isinstance(abi, int) else None, runtime_abi=WASM_ABI_VERSION,
                )
            raw = self._with_deadline(inst, lambda: self._take(inst, inst.exports["mcp_catalog"](inst.store)))
        except _CallFailed as exc:
            raise PluginLoadError(f"{self._where()}: {exc}") from None
        try:
            catalog = msgspec.json.decode(raw, type=_Catalog)
        except msgspec.DecodeError as exc:
            raise PluginLoadError(f"{self._where()}: mcp_catalog did not return a catalog: {exc}") from None
        for spec in catalog.tools:
            if spec.name in self.tools:
                raise PluginLoadError(f"{self._where()}: tool {spec.name!r} is declared twice")
            check_schema(spec.inputSchema, f"{self._where()}: inputSchema of tool {spec.name!r}")
            self.tools[spec.name] = WasmToolHandler(spec)

    def _new_instance(self, config: bool = True, until: float | None = None) -> _Instance:
        import wasmtime

        store = wasmtime.Store(self._engine)
        store.set_limits(memory_size=self.policy.memory_mb << 20)
        wasi = wasmtime.WasiConfig()
        held: list[int] = []
        try:
            for pre in self.policy.preopens if config else ():  # (the catalog's instance, before start: none)
                held.append(self._preopen_fd(pre.source))
                # the folder opened just now, by its descriptor: a name the engine would look up again could
                # have been swapped for a link meanwhile (a module can make links in a writable preopen)
                wasi.preopen_dir(f"/proc/self/fd/{held[-1]}", pre.guest, fs_mutable=pre.writable)
            store.set_wasi(wasi)
        finally:
            for fd in held:
                os.close(fd)
        store.set_epoch_deadline(self._ticks(until))
        try:
            inst = _Instance(store, self._pre.instantiate(store))
        except wasmtime.WasmtimeError as exc:  # Trap is one of these
            raise _CallFailed(f"cannot instantiate its module under its {self.policy.memory_mb} MiB memory cap: "
                              f"{_first_line(exc)}") from None
        init = inst.exports.get("_initialize")
        if init is not None:
            init(store)
        setup = inst.exports.get("mcp_init")
        if config and setup is not None:
            ptr = self._give(inst, self._config)
            rc = setup(store, _s32(ptr), len(self._config))
            if rc != 0:
                raise _CallFailed(f"its mcp_init refused the config ({rc})")
        return inst

    def _preopen_fd(self, source: str) -> int:
        """A descriptor of the folder ``source`` names ("plugin[/sub]" or "data[/sub]", a missing data subfolder
        made), opened component by component beneath its root without following a symbolic link: one on the way
        is refused, whether it leads out or not."""
        first, _, rest = source.partition("/")
        if first == "plugin":
            root = self.manifest.folder
        else:
            if self._data_dir is None:
                raise _CallFailed("preopen of its data folder before it started")
            root = self._data_dir
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        fd = -1
        try:
            fd = os.open(root, flags)
            for part in (p for p in rest.split("/") if p):
                try:
                    nxt = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if first != "data":
                        raise
                    os.mkdir(part, 0o700, dir_fd=fd)
                    nxt = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _CallFailed(f"preopen {source!r} leaves its folder (a symbolic link, or no folder, on its way "
                                  f"in {root})") from None
            raise _CallFailed(f"preopen {source!r} cannot be opened in {root}: {exc.strerror}") from None
        return fd

    def _ticks(self, until: float | None = None) -> int:
        """The epoch ticks of a whole deadline, or of what is left until ``until`` (time.monotonic())."""
        seconds = self.policy.deadline_ms / 1000 if until is None else max(0.0, until - time.monotonic())
        return math.ceil(seconds / TICK_S) + 1

    # -- memory transfers -----------------------------------------------------------------------------------

    def _give(self, inst: _Instance, data: bytes) -> int:
        """``data`` copied into a buffer of the module's mcp_alloc: its address (unsigned; pass it back through
        ``_s32``)."""
        ptr = inst.alloc(max(len(data), 1)) & 0xFFFFFFFF  # wasm's i32 comes signed
        if not ptr:
            raise _CallFailed(f"its mcp_alloc could not allocate {len(data)} bytes (memory cap "
                              f"{self.policy.memory_mb} MiB)")
        try:
            inst.memory.write(inst.store, data, ptr)  # (an address from 0 up: wasmtime-py checks the end)
        except IndexError:
            raise _CallFailed(f"its mcp_alloc answered a buffer outside its memory ({ptr:#x}, {len(data)} "
                              "bytes)") from None
        return ptr

    def _take(self, inst: _Instance, packed: int) -> bytes:
        packed &= (1 << 64) - 1
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        if not ptr:
            raise _CallFailed(f"it returned no result (out of memory? cap {self.policy.memory_mb} MiB, in use "
                              f"{inst.memory_mib():.1f} MiB)")
        if ptr + length > inst.memory.data_len(inst.store):
            raise _CallFailed("it returned a result outside its memory")
        data = bytes(inst.memory.read(inst.store, ptr, ptr + length))
        inst.free(_s32(ptr))
        return data

    def _with_deadline(self, inst: _Instance | None, fn: Any, until: float | None = None) -> Any:
        """Run ``fn`` (WASM code) with the ticker running; a trap becomes _CallFailed saying why."""
        import wasmtime

        if inst is not None:
            inst.store.set_epoch_deadline(self._ticks(until))
        started = time.monotonic()
        self._ticker.enter()
        try:
            return fn()
        except wasmtime.Trap as exc:
            raise _CallFailed(self._trap_reason(exc, inst, time.monotonic() - started)) from None
        except wasmtime.WasmtimeError as exc:
            raise _CallFailed(f"failed in WASM: {_first_line(exc)}") from None
        finally:
            self._ticker.leave()

    def _past_deadline(self) -> str:
        return f"stopped: its deadline of {self.policy.deadline_ms} ms passed ([wasm] deadline_ms)"

    def _trap_reason(self, exc: Any, inst: _Instance | None, elapsed: float) -> str:
        import wasmtime

        if exc.trap_code == wasmtime.TrapCode.INTERRUPT or elapsed * 1000 >= self.policy.deadline_ms:
            return self._past_deadline()
        used = f"{inst.memory_mib():.1f}" if inst is not None else "?"
        code = exc.trap_code
        what = _TRAPS.get(code.name, code.name.lower().replace("_", " ")) if code is not None else _first_line(exc)
        return (f"trapped: {what} (memory in use {used} MiB of its {self.policy.memory_mb} MiB cap, "
                "[wasm] memory_mb: an allocation past the cap fails)")

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        with self._lock:
            self._config = _encode(dict(config))
            self._idle.clear()  # instances made for another config are not reused
        self._data_dir = ctx.data_dir
        try:
            for pre in self.policy.preopens:
                os.close(self._preopen_fd(pre.source))
        except _CallFailed as exc:
            raise PluginError(f"{self._where()}: {exc}") from None

    async def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._idle.clear()

    # -- calls ----------------------------------------------------------------------------------------------

    def _acquire(self, until: float | None = None) -> _Instance:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._with_deadline(  # type: ignore[no-any-return]
            None, lambda: self._new_instance(until=until))

    def _release(self, inst: _Instance) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.policy.idle_instances:
                self._idle.append(inst)

    def call_sync(self, name: str, args: bytes, rctx: Any, loop: asyncio.AbstractEventLoop | None) -> ToolResult:
        """Run tool ``name`` on a thread: its result, or an isError result saying why it has none."""
        from mcp_edge.plugin.native import _decode_result

        handler = self.tools.get(name)
        if handler is None:
            raise ToolNotFoundError(f"unknown tool: {name}")
        scope = CallScope(self.id, self.policy, self._data_dir, self.logger, rctx, loop,
                          time.monotonic() + self.policy.deadline_ms / 1000)
        set_current(scope)
        inst: _Instance | None = None
        try:
            # one deadline for the whole call: making an instance (its mcp_init) spends from it too
            inst = self._acquire(scope.deadline)
            if time.monotonic() >= scope.deadline:
                raise _CallFailed(self._past_deadline())
            live = inst

            def run() -> bytes:  # name and arguments in one buffer: each crossing into WASM costs µs
                name = handler.raw_name
                ptr = self._give(live, name + args)
                out = self._take(live, live.call(_s32(ptr), len(name), _s32(ptr + len(name)), len(args)))
                live.free(_s32(ptr))
                return out

            out = self._with_deadline(live, run, scope.deadline)
        except _CallFailed as exc:
            inst = None
            if scope.refused is not None:
                return self._refused(name, scope.refused)
            if scope.failed is not None and "deadline" not in str(exc):
                return _error(f"PluginError: {self._where()}: tool {name} {scope.failed}")
            return _error(f"PluginError: {self._where()}: tool {name} {exc}")
        finally:
            set_current(None)
        if scope.refused is not None:  # the module went on after the refusal: its answer is not used
            return self._refused(name, scope.refused)
        if scope.failed is not None:  # nor after a host function failed in the host (its instance is dropped)
            return _error(f"PluginError: {self._where()}: tool {name} {scope.failed}")
        self._release(inst)
        try:
            return _decode_result(out)
        except msgspec.DecodeError as exc:
            return _error(f"PluginError: {self._where()} returned an invalid result for {name}: {exc}")

    def _refused(self, tool: str, function: str) -> ToolResult:
        self.logger.warning("tool %s called host function %s, which it is not granted", tool, function)
        return _error(
            f"PluginError: {self._where()}: tool {tool} refused: it called host function '{function}', which "
            f"this plugin is not granted (plugin.toml [wasm] host_functions, within the box's wasm_host_functions)"
        )


def _s32(value: int) -> int:
    """An address as the signed i32 wasm takes."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _error(text: str) -> ToolResult:
    return ToolResult(isError=True, content=[TextContent(text=text)])


def _one_line(exc: BaseException) -> str:
    """wasmtime's message with its "Caused by" lines joined."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip() and line.strip() != "Caused by:")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_wasm(manifest: Manifest, policy: WasmPolicy) -> WasmPlugin:
    """Compile the manifest's module, check its imports, exports and ABI, and read its catalog."""
    return WasmPlugin(manifest, policy)
