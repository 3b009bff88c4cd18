"""The one exception hierarchy of mcp_edge."""

from __future__ import annotations

__all__ = [
    "BenchError",
    "ConfigError",
    "DirectIOAlignmentError",
    "EngineClosedError",
    "EngineThreadError",
    "EngineUnavailable",
    "IsaLevelError",
    "McpEdgeError",
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


class BenchError(McpEdgeError, RuntimeError):
    """A benchmark failed: it raised, yielded a malformed row, or its implementations disagreed."""
