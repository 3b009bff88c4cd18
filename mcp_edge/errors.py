"""The one exception hierarchy of mcp_edge."""

from __future__ import annotations

__all__ = [
    "INVALID_PARAMS",
    "RESOURCE_NOT_FOUND",
    "AbiMismatchError",
    "BenchError",
    "ConfigError",
    "DependencyError",
    "DirectIOAlignmentError",
    "EngineClosedError",
    "EngineThreadError",
    "EngineUnavailable",
    "FrameError",
    "HandshakeError",
    "IndexRefused",
    "InvalidArgumentsError",
    "IpcError",
    "IsaLevelError",
    "McpEdgeError",
    "PeerClosed",
    "PeerDied",
    "PluginConfigError",
    "PluginError",
    "PluginLoadError",
    "PromptNotFoundError",
    "ProtocolError",
    "ResourceNotFoundError",
    "RingClosed",
    "RingFull",
    "SegmentError",
    "SlabExhausted",
    "ToolNotFoundError",
]


class McpEdgeError(Exception):
    """Base of every error mcp_edge raises on purpose."""


class ConfigError(McpEdgeError, ValueError):
    """A setting, board profile or command-line value is invalid; the message says which."""


class IsaLevelError(McpEdgeError, ValueError):
    """An ISA level was asked for (MCP_EDGE_ISA, crc32c_variant) that is unknown or not runnable here."""


class EngineUnavailable(McpEdgeError, OSError):
    """The io_uring engine was demanded (``MCP_EDGE_IO=uring``, ``kind="uring"``) but cannot start here.

    ``errno`` is the one io_uring set-up failed with (ENOSYS: no io_uring in the
    kernel; EPERM: ``kernel.io_uring_disabled`` or a seccomp filter).
    """


class EngineClosedError(McpEdgeError, OSError):
    """The I/O engine is closed: an operation asked for after ``close()``, or one cut short by it.

    ``errno`` is ECANCELED.
    """


class EngineThreadError(McpEdgeError, RuntimeError):
    """An io_uring engine was used from a thread other than the one that created it.

    Its ring is single-issuer: only the creating thread may submit to it. Open an
    engine in the thread that runs the event loop.
    """


class DirectIOAlignmentError(McpEdgeError, OSError):
    """An O_DIRECT read or write whose buffer address, length or file offset breaks the file's alignment.

    ``errno`` is EINVAL, as the kernel would say, but the message names the
    required alignment and what was misaligned; ``problems`` lists the latter,
    ``mem_align`` and ``offset_align`` give the former.
    """

    problems: tuple[str, ...] = ()
    mem_align: int = 0
    offset_align: int = 0


class FrameError(McpEdgeError, ValueError):
    """A received wire-format frame was refused. ``reason`` says why: ``truncated``, ``overlong``,
    ``bad magic``, ``bad version``, ``bad field``, ``bad CRC`` or ``bad TLV`` (docs/wire-format.md says
    what a receiver does with each). For ``truncated``, ``needed`` is the frame's size in all (0 when
    not known yet).
    """

    def __init__(self, reason: str, message: str, needed: int = 0) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.needed = needed


class SlabExhausted(McpEdgeError, MemoryError):
    """A slab pool has no free block of the size class a request needs, at once (``timeout=None``) or
    within the timeout it was given. ``size`` is the class's block size, ``count`` its number of blocks
    (``slab_counts`` sets it), ``timeout`` the seconds waited (None: no wait). A MemoryError: the caller
    may wait, shed load, or raise the class's count; the pool itself is intact.
    """

    def __init__(self, message: str, size: int = 0, count: int = 0, timeout: float | None = None) -> None:
        super().__init__(message)
        self.size = size
        self.count = count
        self.timeout = timeout


class IpcError(McpEdgeError):
    """A shared-memory ring or segment (mcp_edge.ipc) cannot be used; the subclass and message say why."""


class SegmentError(IpcError, ValueError):
    """A shared-memory segment failed its checks when attached. ``reason``: ``bad magic`` (not a segment),
    ``bad version`` (another layout version), ``too small`` (it says it is larger than its file, or is
    shorter than a header) or ``malformed`` (a part out of bounds or inconsistent).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class HandshakeError(IpcError, ConnectionError):
    """A ring connection was refused while it was being set up, by this side or by the peer. ``reason``:
    ``not a peer`` (no handshake, a wrong magic or version, another user), ``bad segment`` (the segment
    sent failed its checks), ``busy`` (every producer slot is taken), ``timeout`` or ``refused``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class RingClosed(IpcError):
    """The ring is closed: this end was closed (any use after ``close()``), or the peer closed its end
    (``PeerClosed``)."""


class PeerClosed(RingClosed):
    """The process at the other end of the ring closed its end. ``pid`` is that process; ``reclaimed``
    the blocks it held that came back."""

    def __init__(self, message: str, pid: int = 0, reclaimed: int = 0) -> None:
        super().__init__(message)
        self.pid = pid
        self.reclaimed = reclaimed


class PeerDied(IpcError, ConnectionError):
    """The process at the other end of the ring died (found by its pidfd, or its pid gone). ``pid`` is that
    process, ``role`` its role (``producer`` or ``consumer``), ``reclaimed`` the blocks it held that came back
    to their arena. The ring was reset: a new peer may attach."""

    def __init__(self, message: str, pid: int = 0, role: str = "", reclaimed: int = 0) -> None:
        super().__init__(message)
        self.pid = pid
        self.role = role
        self.reclaimed = reclaimed


class RingFull(IpcError):
    """``publish`` found the ring full, at once (``timeout=0``) or for as long as it was let wait: the consumer
    is slower than the producer. The loaned block is still the caller's: ``view`` is a memoryview of it to
    publish again or ``unloan``."""

    def __init__(self, message: str, view: object = None) -> None:
        super().__init__(message)
        self.view = view


class BenchError(McpEdgeError, RuntimeError):
    """A benchmark failed: it raised, yielded a malformed row, or its implementations disagreed."""


# --- plugins -----------------------------------------------------------------------------------
# ``code`` is the JSON-RPC error code the runtime answers with when the error reaches a request.

INVALID_PARAMS = -32602
RESOURCE_NOT_FOUND = -32002  # MCP: "Resource not found"


class PluginError(McpEdgeError):
    """A plugin could not be loaded, configured or started, or a request to one was invalid."""

    code: int = -32603  # JSON-RPC "Internal error"


class PluginLoadError(PluginError):
    """A plugin's folder, ``plugin.toml``, module, class or library cannot be used; the message says which."""


class AbiMismatchError(PluginLoadError):
    """A plugin speaks another plugin ABI/API version than this runtime; the message names both versions."""

    def __init__(self, message: str, *, plugin_abi: int | None = None, runtime_abi: int | None = None) -> None:
        super().__init__(message)
        self.plugin_abi = plugin_abi
        self.runtime_abi = runtime_abi


class PluginConfigError(PluginError, ConfigError):
    """A plugin's configuration (defaults, board/user config, ``MCP_EDGE_<PLUGIN>_<KEY>``) is invalid.

    The message names the plugin, the key and the problem.
    """


class DependencyError(PluginError):
    """A plugin's ``requires`` cannot be met: a missing plugin, a version outside the range, a cycle."""


class InvalidArgumentsError(PluginError, ValueError):
    """The arguments of a tool, prompt or resource template do not match its schema (JSON-RPC -32602)."""

    code = INVALID_PARAMS


class ToolNotFoundError(PluginError, LookupError):
    """No active plugin provides a tool of that name (JSON-RPC -32602, as MCP says for unknown tools)."""

    code = INVALID_PARAMS


class ResourceNotFoundError(PluginError, LookupError):
    """No active plugin provides a resource at that URI (MCP's -32002)."""

    code = RESOURCE_NOT_FOUND


class PromptNotFoundError(PluginError, LookupError):
    """No active plugin provides a prompt of that name (JSON-RPC -32602)."""

    code = INVALID_PARAMS


class IndexRefused(McpEdgeError):
    """The plugin index, or an artifact it lists, was refused (unsigned, a bad signature, an unknown key, a
    rollback, a frozen or expired index, a hash or size that does not match, an unsafe archive); the message says
    why and nothing installed was changed."""


class ProtocolError(McpEdgeError):
    """A JSON-RPC error to answer the current request with (code, message, data), raised through plugins as is."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
