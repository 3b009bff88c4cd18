"""Which engine runs: ``open_engine`` (io_uring, else the thread pool), the process default, the doctor probe.

``MCP_EDGE_IO=uring|threads|auto`` forces the choice; a forced ``uring`` that
cannot start raises EngineUnavailable. In ``auto`` a failed io_uring set-up
falls back to the thread-pool engine; either way the engine that runs is
logged once (logger ``mcp_edge.io``) and ``mcp-edge doctor`` shows it.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import threading
from pathlib import Path
from typing import Any

from mcp_edge.errors import ConfigError, EngineThreadError, EngineUnavailable
from mcp_edge.io.alignment import direct_fallbacks, file_alignment, mount_of, open_direct
from mcp_edge.io.engine import Engine
from mcp_edge.io.thread_engine import ThreadEngine

__all__ = [
    "DEFAULT_POOL",
    "ENGINE_ENV",
    "KINDS",
    "configure_default",
    "get_engine",
    "open_engine",
    "probe_storage",
    "requested_kind",
    "uring_unavailable_reason",
]

log = logging.getLogger("mcp_edge.io")

ENGINE_ENV = "MCP_EDGE_IO"
KINDS = ("uring", "threads", "auto")
DEFAULT_POOL = (64, 64 * 1024)  # the buffer pool doctor sizes: 64 buffers of 64 KiB (4 MiB, THP-eligible)
_MAX_WORKERS = 32

_logged: set[str] = set()
_log_lock = threading.Lock()
_default: Engine | None = None
_configured: str | None = None
_entries = 256  # ring entries of the default engine (Settings.io_uring_entries)
_default_lock = threading.Lock()
_atexit_registered = False


def _log_once(level: int, msg: str, *args: object) -> None:
    key = msg % args
    with _log_lock:
        if key in _logged:
            return
        _logged.add(key)
    log.log(level, msg, *args)


def configure_default(kind: str, entries: int | None = None) -> None:
    """The engine kind (and ring entries) the process-wide default engine gets (the runtime passes
    ``Settings.io_engine`` and ``Settings.io_uring_entries``)."""
    global _configured, _entries
    requested_kind(kind)
    _configured = kind
    if entries is not None:
        _entries = entries


def requested_kind(kind: str | None = None) -> str:
    """``kind``, else the configured ``Settings.io_engine``, else ``MCP_EDGE_IO``, else "auto";
    ConfigError for a name that is not an engine."""
    source = "kind"
    if kind is None and _configured is not None:
        return _configured
    if kind is None:
        from mcp_edge.board.settings import env_setting

        kind = str(env_setting("io_engine"))
        source = ENGINE_ENV
    if kind not in KINDS:
        raise ConfigError(f"{source}={kind}: unknown I/O engine; use one of {', '.join(KINDS)}")
    return kind


def uring_unavailable_reason(exc: BaseException) -> str:
    """Why io_uring could not be set up, in words, from the exception its set-up raised."""
    if isinstance(exc, ImportError):
        return f"the io_uring extension cannot be loaded ({exc})"
    err = getattr(exc, "errno", None)
    if err == errno.ENOSYS:
        return "the kernel has no io_uring (ENOSYS)"
    if err in (errno.EPERM, errno.EACCES):
        try:
            disabled = Path("/proc/sys/kernel/io_uring_disabled").read_text().strip()
        except OSError:
            disabled = "absent"
        if disabled == "2":
            return "io_uring is switched off by kernel.io_uring_disabled=2 (EPERM)"
        if disabled == "1":
            return ("io_uring is limited to the group kernel.io_uring_group by kernel.io_uring_disabled=1, or a "
                    "seccomp filter forbids it (EPERM)")
        return (f"io_uring is forbidden here by a seccomp filter, as in containers (EPERM; "
                f"kernel.io_uring_disabled is {disabled})")
    return f"io_uring set-up failed: {exc}"


def _open_uring(entries: int) -> Engine:
    from mcp_edge.io.uring_engine import UringEngine  # ImportError where the _uring extension is missing

    return UringEngine(entries)


def _open(kind: str | None, entries: int, source: str | None = None) -> tuple[Engine, str, str]:
    """(engine, requested kind, reason) without logging; ``source`` names where ``kind`` came from."""
    want = requested_kind(kind)
    workers = max(1, min(entries, _MAX_WORKERS))
    who = f"{ENGINE_ENV}={want}" if kind is None else f"{source}={want}" if source else f"kind={want!r}"
    if want == "threads":
        return ThreadEngine(workers), want, f"{who} asks for it"
    try:
        engine = _open_uring(entries)
    except (OSError, ImportError) as exc:
        reason = uring_unavailable_reason(exc)
        if want == "uring":
            raise EngineUnavailable(getattr(exc, "errno", None) or errno.ENOSYS,
                                    f"{who} asks for the io_uring engine, but {reason}") from exc
        return ThreadEngine(workers), want, f"fallback: {reason}"
    return engine, want, "io_uring works" if want == "auto" else f"{who} asks for it"


def open_engine(kind: str | None = None, entries: int = 256) -> Engine:
    """A new engine: ``kind`` "uring", "threads", or None for ``MCP_EDGE_IO`` (default "auto").

    "auto" tries io_uring with a ring of ``entries`` and falls back to a pool
    of min(entries, 32) threads, with one warning saying why. An io_uring
    engine belongs to the thread that opened it (the ring is single-issuer).
    """
    engine, want, reason = _open(kind, entries)
    info = engine.info()
    if engine.name == "uring":
        _log_once(logging.INFO, "storage engine: io_uring, %d SQ / %d CQ entries, %s (%s)", info["entries"],
                  info["cq_entries"], " ".join(info["setup_flags"]) or "no setup flags", reason)
    else:
        _log_once(logging.WARNING if want == "auto" else logging.INFO,
                  "storage engine: thread pool of %d workers (%s)", info["workers"], reason)
    return engine


def get_engine() -> Engine:
    """The process-wide default engine, opened (``open_engine()``) on first use and closed at exit.

    With io_uring it belongs to the thread that first asked for it: ask first
    from the thread that runs the event loop.
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = open_engine(entries=_entries)
            if not _atexit_registered:
                _register_atexit()
        return _default


def _register_atexit() -> None:
    global _atexit_registered
    _atexit_registered = True
    atexit.register(_close_default)


def _close_default() -> None:
    global _default
    engine, _default = _default, None
    if engine is not None:
        try:
            engine.close()
        except EngineThreadError as exc:  # at exit, on another thread than the engine's: say so, go on
            log.warning("the default storage engine was not closed: %s", exc)


def probe_storage(data_dir: Path, kind: str | None = None, entries: int = 256) -> dict[str, Any]:
    """The storage path as ``mcp-edge doctor`` reports it: the engine that would run (``kind``: the settings'
    io_engine; None: the environment's), the O_DIRECT alignment on the data folder's filesystem (its nearest
    existing folder), and the pages a buffer pool gets."""
    from mcp_edge.native._dio import BufferPool, hugepage_size

    out: dict[str, Any] = {}
    try:
        engine, want, reason = _open(kind, entries, "io_engine")
    except EngineUnavailable as exc:
        out["engine"] = {"name": None, "requested": "uring", "error": str(exc.strerror)}
    else:
        try:
            out["engine"] = {**engine.info(), "requested": want, "reason": reason,
                             "fallback": want == "auto" and engine.name != "uring"}
        finally:
            engine.close()

    probe_dir = data_dir
    while not probe_dir.is_dir() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    align: dict[str, Any] = {"probed": str(probe_dir)}
    try:
        import tempfile  # here: it imports shutil, random, bz2 and lzma (3 ms) for this one probe

        fd_tmp, name = tempfile.mkstemp(prefix=".mcp-edge-align-", dir=probe_dir)
        os.close(fd_tmp)
        os.unlink(name)
        fd, direct = open_direct(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        align["error"] = f"cannot create a file there: {exc.strerror}"
    else:
        try:
            a = file_alignment(fd)
            mount, fstype = mount_of(os.fstat(fd).st_dev)
            align.update(mem=a.mem, offset=a.offset, source=a.source, direct=direct, fs=fstype, mount=mount)
        finally:
            os.close(fd)
            os.unlink(name)
    align["buffered_fallbacks"] = direct_fallbacks()
    out["alignment"] = align

    count, size = DEFAULT_POOL
    try:
        pool = BufferPool(count, size)
    except OSError as exc:
        out["pool"] = {"error": str(exc)}
    else:
        out["pool"] = {"pages": pool.pages_used, "count": count, "buffer_size": size,
                       "mapped_bytes": pool.mapped_bytes, "hugepage_kib": hugepage_size() // 1024}
        pool.close()
    return out
