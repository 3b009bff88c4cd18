"""Native plugins: a shared object implementing ``plugins/include/mcp_edge_plugin.h``, loaded with cffi.

cffi runs in out-of-line ABI mode: the header's declarations were parsed once
into ``_native_ffi.py`` (``python -m mcp_edge.plugin._gen_ffi``), so loading
needs no compiler and no C parser at run time: import ``_cffi_backend``
(about 2 ms, and only when a native plugin is loaded), ``dlopen``, call the
entry symbol, check the table's ABI version.

Tool calls run inline on the event loop: ``call_tool`` gets the argument JSON
and returns a CallToolResult JSON, and for tools like these a thread hop
(``asyncio.to_thread``, 50-100 µs) would cost far more than the call. A tool
whose definition says ``"x-blocking": true`` runs in a worker thread instead;
cffi releases the GIL around the C call, so it does not stall other requests.

C is handed only arguments that conform to the tool's ``inputSchema``, checked
here with the config validator (``mcp_edge.plugin.config``; a schema using a
keyword it does not check is refused when the plugin loads): a bad argument is
a -32602 error and ``call_tool`` never runs.

Shutdown never runs under a call: it first stops accepting calls (a new one is
refused with a PluginError), then waits for the running ones, for at most
``settings.native_drain_s``. Past that it skips ``shutdown(state)`` and says so:
a leaked state is better than one freed under a running call.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
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
from mcp_edge.plugin.manifest import NATIVE_ABI_VERSION
from mcp_edge.plugin.types import (
    Annotations,
    AudioContent,
    BlobResourceContents,
    Content,
    EmbeddedResource,
    ImageContent,
    ResourceContents,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    ToolDef,
    ToolResult,
)

if TYPE_CHECKING:
    from mcp_edge.plugin.context import PluginContext, RequestContext
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["ENTRY_SYMBOL", "NATIVE_ABI_VERSION", "NativePlugin", "NativeToolHandler", "load_native"]

ENTRY_SYMBOL = f"mcp_edge_plugin_v{NATIVE_ABI_VERSION}"
log = logging.getLogger("mcp_edge.plugin")


class _ToolSpec(msgspec.Struct, rename={"blocking": "x-blocking"}):
    name: str
    inputSchema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    description: str | None = None
    title: str | None = None
    outputSchema: dict[str, Any] | None = None
    annotations: ToolAnnotations | None = None
    blocking: bool = False


class _RawResult(msgspec.Struct):
    content: list[dict[str, Any]] = msgspec.field(default_factory=list)
    structuredContent: dict[str, Any] | None = None
    isError: bool = False


_decode_raw = msgspec.json.Decoder(_RawResult).decode
_encode = msgspec.json.encode
_CONTENT_TYPES: dict[str, type[Any]] = {
    "text": TextContent, "image": ImageContent, "audio": AudioContent, "resource_link": ResourceLink,
}


def _content(item: dict[str, Any]) -> Content:
    """One content block from its JSON (msgspec cannot decode the untagged text/blob union by itself)."""
    kind = item.get("type")
    if kind == "resource":
        res = item.get("resource")
        inner: ResourceContents = (
            msgspec.convert(res, BlobResourceContents) if isinstance(res, dict) and "blob" in res
            else msgspec.convert(res, TextResourceContents)
        )
        return EmbeddedResource(resource=inner,
                                annotations=msgspec.convert(item.get("annotations"), Annotations | None))
    cls = _CONTENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise msgspec.ValidationError(f"unknown content type {kind!r}")
    block: Content = msgspec.convert(item, cls)
    return block


def _decode_result(data: bytes) -> ToolResult:
    raw = _decode_raw(data)
    return ToolResult(content=[_content(c) for c in raw.content], structuredContent=raw.structuredContent,
                      isError=raw.isError)


class NativeToolHandler:
    """One tool of a native plugin, with the same ``call`` as a Python tool handler."""

    __slots__ = ("_def", "blocking", "c_name", "name", "schema")

    def __init__(self, spec: _ToolSpec) -> None:
        self.name = spec.name
        self.c_name = spec.name.encode()
        self.blocking = spec.blocking
        self.schema = spec.inputSchema
        self._def = ToolDef(
            name=spec.name,
            inputSchema=spec.inputSchema,
            title=spec.title,
            description=spec.description,
            outputSchema=spec.outputSchema,
            annotations=spec.annotations,
        )

    def definition(self) -> ToolDef:
        return self._def

    @property
    def is_async(self) -> bool:
        """Whether a call waits (an ``x-blocking`` tool runs in a thread); the others run inline."""
        return self.blocking

    async def call(
        self, instance: NativePlugin, arguments: Mapping[str, Any] | None, rctx: RequestContext | None
    ) -> ToolResult:
        arguments = {} if arguments is None else arguments
        problem = validate(arguments, self.schema)
        if problem is not None:
            where, message = problem
            where = where or "(arguments)"
            raise InvalidArgumentsError(f"invalid arguments for tool '{self.name}': {where}: {message}")
        args = _encode(arguments)
        if self.blocking:
            rc, out = await asyncio.to_thread(instance.call_raw, self.c_name, args)
        else:
            rc, out = instance.call_raw(self.c_name, args)
        if rc == 0:
            if not out:
                return ToolResult()
            try:
                return _decode_result(out)
            except msgspec.DecodeError as exc:
                return ToolResult(isError=True, content=[TextContent(
                    text=f"PluginError: native plugin {instance.id} returned an invalid result for {self.name}: {exc}"
                )])
        message = out.decode("utf-8", "replace") if out else os.strerror(-rc)
        if rc == -errno.EINVAL:
            raise InvalidArgumentsError(f"invalid arguments for tool '{self.name}': {message}")
        if rc == -errno.ENOENT:
            raise ToolNotFoundError(f"native plugin {instance.id} has no tool '{self.name}': {message}")
        name = errno.errorcode.get(-rc, str(-rc))
        return ToolResult(isError=True, content=[TextContent(text=f"OSError: [{name}] {message}")])


class NativePlugin:
    """A loaded native plugin: a ``Plugin`` whose tools call into the shared object."""

    def __init__(self, manifest: Manifest, lib: Any, table: Any, ffi: Any) -> None:
        self.manifest = manifest
        self.id = manifest.id
        self.capabilities: AbstractSet[str] = manifest.capabilities | {"tools"}
        self.version = ffi.string(table.version).decode() if table.version else manifest.version
        self.description = ffi.string(table.description).decode() if table.description else manifest.description
        self._lib = lib  # kept alive: never dlclose'd
        self._table = table
        self._ffi = ffi
        self._state_box = ffi.new("void **")
        self._state: Any = ffi.NULL
        self._free = table.free_result
        self._call = table.call_tool
        self._ctx: PluginContext | None = None
        # Calls running in C now, and whether shutdown has begun; the condition is notified as calls end.
        self._calls = threading.Condition()
        self._running = 0
        self._closing = False
        self.tools: dict[str, NativeToolHandler] = {}
        if table.tools_json:
            raw = ffi.string(table.tools_json)
            try:
                specs = msgspec.json.decode(raw, type=list[_ToolSpec])
            except msgspec.DecodeError as exc:
                raise PluginLoadError(f"native plugin {self.id}: tools_json is not a list of tools: {exc}") from None
            for spec in specs:
                if spec.name in self.tools:
                    raise PluginLoadError(f"native plugin {self.id}: tool {spec.name!r} is declared twice")
                check_schema(spec.inputSchema, f"native plugin {self.id}: inputSchema of tool {spec.name!r}")
                self.tools[spec.name] = NativeToolHandler(spec)
        if self.tools and (table.call_tool == ffi.NULL or table.free_result == ffi.NULL):
            raise PluginLoadError(f"native plugin {self.id}: declares tools but call_tool or free_result is NULL")

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        if self._table.init == self._ffi.NULL:
            return
        self._ctx = ctx
        if self._table.init == self._ffi.NULL:
            return
        rc = self._table.init(_encode(dict(config)), self._state_box)
        if rc != 0:
            raise PluginError(f"native plugin {self.id}: init returned {rc} ({os.strerror(-rc) if rc < 0 else '?'})")
        self._state = self._state_box[0]

    async def shutdown(self) -> None:
        """Refuse new calls, wait for the running ones (``native_drain_s``), then ``shutdown(state)``.

        PluginError, and the state left alone, when calls are still running after the drain time.
        """
        with self._calls:
            self._closing = True
            busy = self._running
        if busy:
            drain_s = self._ctx.settings.native_drain_s if self._ctx is not None else 0.0
            # Waited for in a thread: a blocking call ends in its own thread, and the loop must keep running.
            left = await asyncio.to_thread(self._wait_idle, drain_s)
            if left:
                log.warning("native plugin %s: %d call(s) still running after %g s; shutdown(state) skipped",
                            self.id, left, drain_s)
                raise PluginError(
                    f"native plugin {self.id}: {left} call(s) still running after {drain_s:g} s (native_drain_s); "
                    "shutdown skipped, its state left allocated rather than freed under a running call"
                )
        if self._table.shutdown != self._ffi.NULL:
            self._table.shutdown(self._state)
        self._state = self._ffi.NULL

    def _wait_idle(self, timeout: float) -> int:
        """Wait until no call runs, at most ``timeout`` seconds: how many still run."""
        with self._calls:
            self._calls.wait_for(lambda: self._running == 0, timeout)
            return self._running

    def call_raw(self, name: bytes, args: bytes) -> tuple[int, bytes]:
        """Calls ``call_tool``: (return code, output bytes); the output is freed here.

        Counted in the thread that runs it, so a call whose request was cancelled still holds shutdown off
        until C returns. PluginError once shutdown has begun.
        """
        with self._calls:
            if self._closing:
                raise PluginError(f"native plugin {self.id} is shutting down: tool {name.decode()} not called")
            self._running += 1
        try:
            ffi = self._ffi
            out = ffi.new("char **")
            out_len = ffi.new("size_t *")
            rc = self._call(self._state, name, args, len(args), out, out_len)
            ptr = out[0]
            if ptr == ffi.NULL:
                return rc, b""
            try:
                return rc, ffi.buffer(ptr, out_len[0])[:]
            finally:
                self._free(ptr)
        finally:
            with self._calls:
                self._running -= 1
                if not self._running:
                    self._calls.notify_all()


def _other_abi(path: Path) -> int | None:
    """The ABI version of another ``mcp_edge_plugin_v<N>`` symbol the library exports, if any."""
    import ctypes

    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    for n in range(1, 65):
        if n != NATIVE_ABI_VERSION and hasattr(lib, f"mcp_edge_plugin_v{n}"):
            return n
    return None


def load_native(manifest: Manifest) -> NativePlugin:
    """dlopen the manifest's library, check its ABI and id; PluginLoadError/AbiMismatchError saying why not."""
    assert manifest.library is not None
    path = (manifest.folder / manifest.library).resolve()
    if not path.is_file():
        raise PluginLoadError(
            f"native plugin {manifest.id}: {path} does not exist (native plugins shipped with mcp_edge are "
            "built by `make setup` or `pip install -e .`)"
        )
    try:
        from mcp_edge.plugin._native_ffi import ffi
    except ImportError as exc:
        raise PluginLoadError(f"native plugin {manifest.id}: cffi is needed to load native plugins: {exc}") from None
    try:
        lib = ffi.dlopen(str(path))
    except OSError as exc:
        raise PluginLoadError(f"native plugin {manifest.id}: cannot load {path}: {exc}") from None
    try:
        entry = lib.mcp_edge_plugin_v1
    except (AttributeError, ffi.error):  # ffi.error: the symbol is not in the library
        other = _other_abi(path)
        if other is not None:
            raise AbiMismatchError(
                f"native plugin {manifest.id}: {path} exports mcp_edge_plugin_v{other} (native ABI {other}), "
                f"this runtime speaks native ABI {NATIVE_ABI_VERSION} ({ENTRY_SYMBOL})",
                plugin_abi=other, runtime_abi=NATIVE_ABI_VERSION,
            ) from None
        raise PluginLoadError(
            f"native plugin {manifest.id}: {path} does not export {ENTRY_SYMBOL} "
            "(declare it with MCP_EDGE_PLUGIN_EXPORT from mcp_edge_plugin.h)"
        ) from None
    table = entry()
    if table == ffi.NULL:
        raise PluginLoadError(f"native plugin {manifest.id}: {ENTRY_SYMBOL}() returned NULL")
    if table.abi_version != NATIVE_ABI_VERSION:
        raise AbiMismatchError(
            f"native plugin {manifest.id}: {path} speaks native ABI {table.abi_version}, "
            f"this runtime speaks native ABI {NATIVE_ABI_VERSION}; rebuild it against this runtime's "
            "mcp_edge_plugin.h",
            plugin_abi=int(table.abi_version), runtime_abi=NATIVE_ABI_VERSION,
        )
    c_id = ffi.string(table.id).decode() if table.id else ""
    if c_id != manifest.id:
        raise PluginLoadError(
            f"native plugin {manifest.id}: {path} says its id is {c_id!r}, plugin.toml says {manifest.id!r}"
        )
    return NativePlugin(manifest, lib, table, ffi)
