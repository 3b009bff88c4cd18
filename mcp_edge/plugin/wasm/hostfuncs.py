"""The host functions of module ``mcp_edge`` a WASM plugin may import: log, progress, data_read, data_write,
http_get (docs/wasm-plugins.md).

Each runs on the thread that runs the call, with that call's :class:`CallScope` (a thread-local: one instance is
driven by one thread at a time). A function the plugin was not granted answers ``-EPERM`` to the module and
marks the call refused: the host then answers the call with an error naming the function, whatever the module
returned. Files are opened beneath the plugin's data folder component by component with ``O_NOFOLLOW``, so
``..``, absolute paths and symbolic links cannot leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_edge.plugin.wasm import WasmPolicy

__all__ = ["SIGNATURES", "CallScope", "current", "define_all"]

# name -> (params, results) as wasm value types
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log": (("i32", "i32", "i32"), ()),
    "progress": (("f64", "f64", "i32", "i32"), ()),
    "data_read": (("i32", "i32"), ("i64",)),
    "data_write": (("i32", "i32", "i32", "i32", "i32"), ("i32",)),
    "http_get": (("i32", "i32", "i32"), ("i64",)),
}
# WASI's errno numbering (wasi-libc's <errno.h>), which differs from Linux's: the host answers in it.
_WASI_ERRNO_NAMES = (
    "", "E2BIG", "EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EAFNOSUPPORT", "EAGAIN", "EALREADY", "EBADF", "EBADMSG",
    "EBUSY", "ECANCELED", "ECHILD", "ECONNABORTED", "ECONNREFUSED", "ECONNRESET", "EDEADLK", "EDESTADDRREQ", "EDOM",
    "EDQUOT", "EEXIST", "EFAULT", "EFBIG", "EHOSTUNREACH", "EIDRM", "EILSEQ", "EINPROGRESS", "EINTR", "EINVAL", "EIO",
    "EISCONN", "EISDIR", "ELOOP", "EMFILE", "EMLINK", "EMSGSIZE", "EMULTIHOP", "ENAMETOOLONG", "ENETDOWN",
    "ENETRESET", "ENETUNREACH", "ENFILE", "ENOBUFS", "ENODEV", "ENOENT", "ENOEXEC", "ENOLCK", "ENOLINK", "ENOMEM",
    "ENOMSG", "ENOPROTOOPT", "ENOSPC", "ENOSYS", "ENOTCONN", "ENOTDIR", "ENOTEMPTY", "ENOTRECOVERABLE", "ENOTSOCK",
    "ENOTSUP", "ENOTTY", "ENXIO", "EOVERFLOW", "EOWNERDEAD", "EPERM", "EPIPE", "EPROTO", "EPROTONOSUPPORT",
    "EPROTOTYPE", "ERANGE", "EROFS", "ESPIPE", "ESRCH", "ESTALE", "ETIMEDOUT", "ETXTBSY", "EXDEV",
)
_WASI_ERRNO = {getattr(errno, name): n for n, name in enumerate(_WASI_ERRNO_NAMES) if hasattr(errno, name)}


def wasi_errno(linux: int | None) -> int:
    """A negative WASI errno for the host's errno ``linux`` (EIO when WASI has no such number)."""
    return -_WASI_ERRNO.get(linux or errno.EIO, _WASI_ERRNO[errno.EIO])


_LEVELS = ((logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.WARNING, "warning"), (logging.ERROR, "error"))
_MAX_PATH = 4096


class CallScope:
    """What the host functions of one call see."""

    def __init__(self, plugin_id: str, policy: WasmPolicy, data_dir: Path | None, logger: logging.Logger,
                 rctx: Any = None, loop: asyncio.AbstractEventLoop | None = None, deadline: float = 0.0) -> None:
        self.plugin_id = plugin_id
        self.policy = policy
        self.data_dir = data_dir
        self.logger = logger
        self.rctx = rctx
        self.loop = loop
        self.deadline = deadline  # time.monotonic() when the call's time is up
        self.refused: str | None = None  # the first host function refused to this call
        self.failed: str | None = None  # the first host function that failed in the host (the call fails)
        self.notes = 0  # log lines and progress notifications sent so far


_local = threading.local()


def current() -> CallScope | None:
    scope: CallScope | None = getattr(_local, "scope", None)
    return scope


def set_current(scope: CallScope | None) -> None:
    _local.scope = scope


# -- helpers --------------------------------------------------------------------------------------------------


class _Fault(ValueError):
    """A guest pointer and length that do not lie inside its memory: -EFAULT."""


def _span(caller: Any, ptr: int, length: int) -> tuple[Any, int]:
    """The module's memory and ``ptr`` as the unsigned address it is (wasm passes i32 signed), when
    ``[ptr, ptr + length)`` lies inside that memory; else _Fault. (wasmtime-py's read and write take Python slice
    indices: a negative start counts from the end, and a read past the end comes back short.)"""
    mem = caller["memory"]
    ptr &= 0xFFFFFFFF
    if length < 0 or ptr + length > mem.data_len(caller):
        raise _Fault
    return mem, ptr


def _read(caller: Any, ptr: int, length: int, limit: int) -> bytes:
    """The guest's bytes at ``ptr``: ValueError when ``length`` is negative or past ``limit``, _Fault when they are
    not all inside its memory."""
    if length < 0 or length > limit:
        raise ValueError
    mem, start = _span(caller, ptr, length)
    return bytes(mem.read(caller, start, start + length))


def _i64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _give(caller: Any, data: bytes) -> int:
    """Copy ``data`` into a buffer the module allocates (its mcp_alloc): the packed pointer/length, -ENOMEM, or
    -EFAULT when the buffer it answered is not inside its memory."""
    ptr = int(caller["mcp_alloc"](caller, len(data)) or 0) & 0xFFFFFFFF
    if not ptr:
        return wasi_errno(errno.ENOMEM)
    try:
        mem, ptr = _span(caller, ptr, len(data))
    except _Fault:
        return wasi_errno(errno.EFAULT)
    mem.write(caller, data, ptr)
    return _i64((ptr << 32) | len(data))


def _schedule(scope: CallScope, coro_fn: Callable[[], Any]) -> None:
    """Send a client notification from the event loop and wait until it is sent (at most what is left of the
    call's time), so notifications keep their order and reach the client before the call's answer."""
    if scope.rctx is None or scope.loop is None or scope.loop.is_closed():
        return
    with contextlib.suppress(RuntimeError):  # the loop is shutting down
        sent = asyncio.run_coroutine_threadsafe(coro_fn(), scope.loop)
        with contextlib.suppress(Exception):  # a notification that fails or times out does not fail the call
            sent.result(timeout=max(0.05, scope.deadline - time.monotonic()))


def _path_parts(raw: bytes) -> list[str] | None:
    """The components of a relative path, or None when it is absolute, empty, has '..' or a NUL."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or text.startswith("/") or "\0" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return parts


def _open_beneath(root: Path, parts: list[str], flags: int, create_dirs: bool) -> int:
    """An fd for ``root/parts`` opened without following any symbolic link on the way; OSError otherwise (a
    link: EACCES)."""
    import stat

    def no_link(part: str, dir_fd: int) -> None:  # the clearer errno; O_NOFOLLOW holds even if a link appears now
        try:
            if stat.S_ISLNK(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise PermissionError(errno.EACCES, f"{part} is a symbolic link")
        except FileNotFoundError:
            pass

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            no_link(part, fd)
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if not create_dirs:
                    raise
                os.mkdir(part, 0o700, dir_fd=fd)
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        no_link(parts[-1], fd)
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
    finally:
        os.close(fd)


def _plain_file(fd: int) -> int:
    """The size of the file open as ``fd``, when it is a regular file with one name: a FIFO or a device is
    refused (EACCES; a directory EISDIR), and so is a hard link (a second name could be a file outside the data
    folder, linked in by anyone who can write there)."""
    import stat

    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a directory")
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise PermissionError(errno.EACCES, "not a regular file with one name")
    return st.st_size


def _blocks(size: int) -> int:
    """``size`` bytes as the 4 KiB blocks the data folder's quota counts (an empty file or a folder: one)."""
    return max(1, -(-size // 4096)) * 4096


def _usage(root: Path) -> int:
    """What the data folder holds, as the quota counts it: every file and folder beneath it in 4 KiB blocks
    (links are not followed; one is a block)."""
    total, stack = 0, [str(root)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        total += _blocks(0)
                    else:
                        total += _blocks(entry.stat(follow_symlinks=False).st_size)
    return total


def _granted(scope: CallScope | None, name: str) -> CallScope | None:
    """The call's scope when ``name`` is granted to it; else None, the call marked refused."""
    if scope is None:
        return None
    if name not in scope.policy.host_functions:
        if scope.refused is None:
            scope.refused = name
        return None
    return scope


# -- the functions ----------------------------------------------------------------------------------------


def _note(scope: CallScope) -> bool:
    """Whether one more log line or progress notification fits in the call's wasm_notes_per_call."""
    scope.notes += 1
    if scope.notes <= scope.policy.notes_per_call:
        return True
    if scope.notes == scope.policy.notes_per_call + 1:
        scope.logger.warning("more than %d log lines and progress notifications in one call (wasm_notes_per_call): "
                             "the rest of this call's are dropped", scope.policy.notes_per_call)
    return False


def host_log(caller: Any, level: int, ptr: int, length: int) -> None:
    scope = _granted(current(), "log")
    if scope is None or not _note(scope):
        return
    try:
        text = _read(caller, ptr, length, 64 * 1024).decode("utf-8", "replace")
    except ValueError:
        return
    py_level, name = _LEVELS[min(max(level, 0), 3)]
    scope.logger.log(py_level, "%s", text)
    rctx = scope.rctx
    _schedule(scope, lambda: rctx.log(name, text, scope.plugin_id))


def host_progress(caller: Any, done: float, total: float, ptr: int, length: int) -> None:
    scope = _granted(current(), "progress")
    if scope is None or not _note(scope):
        return
    try:
        message = _read(caller, ptr, length, 64 * 1024).decode("utf-8", "replace") if length else None
    except ValueError:
        message = None
    if not math.isfinite(done):  # JSON has no NaN or infinity: the notification would carry null
        return
    rctx = scope.rctx
    _schedule(scope, lambda: rctx.report_progress(done, None if total < 0 or not math.isfinite(total) else total,
                                                  message))


def _data_scope(name: str) -> tuple[CallScope, Path] | int:
    """The call's scope and its plugin's data folder when ``name`` (data_read, data_write) is granted; else the
    error to answer: -EPERM (not granted), -ENOENT (the plugin has no data folder)."""
    scope = _granted(current(), name)
    if scope is None:
        return wasi_errno(errno.EPERM)
    if scope.data_dir is None:
        return wasi_errno(errno.ENOENT)
    return scope, scope.data_dir


def host_data_read(caller: Any, ptr: int, length: int) -> int:
    got = _data_scope("data_read")
    if isinstance(got, int):
        return got
    scope, data_dir = got
    try:
        parts = _path_parts(_read(caller, ptr, length, _MAX_PATH))
    except _Fault:
        return wasi_errno(errno.EFAULT)
    except ValueError:
        return wasi_errno(errno.ENAMETOOLONG if length > 0 else errno.EINVAL)
    if parts is None:
        return wasi_errno(errno.EACCES)
    limit = scope.policy.memory_mb << 20
    try:
        fd = _open_beneath(data_dir, parts, os.O_RDONLY | os.O_NONBLOCK, False)  # a FIFO must not block
        with os.fdopen(fd, "rb") as f:
            size = _plain_file(f.fileno())
            if size > limit:
                return wasi_errno(errno.EFBIG)
            data = f.read(limit + 1)
    except OSError as exc:
        return wasi_errno(errno.EACCES if exc.errno == errno.ELOOP else exc.errno)
    if len(data) > limit:
        return wasi_errno(errno.EFBIG)
    return _give(caller, data)


def host_data_write(caller: Any, ptr: int, length: int, data_ptr: int, data_len: int, flags: int) -> int:
    got = _data_scope("data_write")
    if isinstance(got, int):
        return got
    scope, data_dir = got
    try:
        parts = _path_parts(_read(caller, ptr, length, _MAX_PATH))
        data = _read(caller, data_ptr, data_len, scope.policy.memory_mb << 20)
    except _Fault:
        return wasi_errno(errno.EFAULT)
    except ValueError:
        return wasi_errno(errno.EINVAL)
    if parts is None:
        return wasi_errno(errno.EACCES)
    mode = os.O_WRONLY | os.O_NONBLOCK | (os.O_APPEND if flags & 1 else 0)
    quota = scope.policy.data_max_bytes
    try:
        try:
            fd = _open_beneath(data_dir, parts, mode, False)
        except FileNotFoundError:  # a new file: the quota is checked before anything is made
            if _usage(data_dir) + _blocks(len(data)) > quota:
                return wasi_errno(errno.EDQUOT)
            fd = _open_beneath(data_dir, parts, mode | os.O_CREAT | os.O_EXCL, True)
        with os.fdopen(fd, "wb") as f:
            size = _plain_file(fd)
            kept = size if flags & 1 else 0
            if _usage(data_dir) - _blocks(size) + _blocks(kept + len(data)) > quota:
                return wasi_errno(errno.EDQUOT)
            if not flags & 1:
                os.ftruncate(fd, 0)  # only now: the checks come first
            f.write(data)
    except OSError as exc:
        return wasi_errno(errno.EACCES if exc.errno == errno.ELOOP else exc.errno)
    return 0


def host_allows(hosts: tuple[str, ...], host: str, port: int) -> bool:
    """Whether ``host:port`` is listed (a bare host allows any port of it)."""
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host
    return shown in hosts or f"{shown}:{port}" in hosts


def host_http_get(caller: Any, ptr: int, length: int, status_ptr: int) -> int:
    scope = _granted(current(), "http_get")
    if scope is None:
        return wasi_errno(errno.EPERM)
    import urllib.parse

    try:
        if status_ptr:
            _span(caller, status_ptr, 4)
        url = _read(caller, ptr, length, 8192).decode("utf-8")
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except _Fault:
        return wasi_errno(errno.EFAULT)
    except (ValueError, UnicodeDecodeError):
        return wasi_errno(errno.EINVAL)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or "@" in parsed.netloc:
        return wasi_errno(errno.EINVAL)  # user:password@ too: the host checked must be the host reached
    if not host_allows(scope.policy.http_hosts, parsed.hostname, port):
        scope.logger.warning("http_get to %s refused: not in [wasm] http_hosts", parsed.netloc)
        return wasi_errno(errno.EACCES)
    got = _fetch(scope, parsed.scheme, parsed.hostname, port, urllib.parse.urlunsplit(
        ("", "", parsed.path or "/", parsed.query, "")))
    if isinstance(got, int):
        return got
    status, body = got
    limit = scope.policy.http_max_bytes
    if len(body) > limit:
        return wasi_errno(errno.EFBIG)
    if status_ptr:
        try:
            mem, at = _span(caller, status_ptr, 4)  # again: the module's memory may have changed meanwhile
        except _Fault:
            return wasi_errno(errno.EFAULT)
        mem.write(caller, status.to_bytes(4, "little", signed=True), at)
    return _give(caller, body)


def _fetch(scope: CallScope, scheme: str, host: str, port: int, target: str) -> tuple[int, bytes] | int:
    """GET ``target`` from exactly ``host:port`` (no proxy, no redirect followed): the status and at most
    ``http_max_bytes + 1`` bytes of body, or a negative errno. The whole exchange ends at the call's deadline: a
    timer shuts the socket down then, so a server answering a byte at a time cannot hold the call's thread past it
    (a socket timeout alone is per read). Name resolution is not bounded by it."""
    import http.client
    import socket
    import ssl

    remaining = scope.deadline - time.monotonic()
    if remaining <= 0:
        return wasi_errno(errno.ETIMEDOUT)
    conn = (http.client.HTTPSConnection(host, port, timeout=remaining, context=ssl.create_default_context())
            if scheme == "https" else http.client.HTTPConnection(host, port, timeout=remaining))
    cut = threading.Event()
    held: list[socket.socket] = []  # conn.sock goes None once the response is read "Connection: close"

    def stop() -> None:
        cut.set()
        for sock in held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(remaining, stop)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()  # bounded by its timeout (what is left of the call's time)
        held.append(conn.sock)
        if cut.is_set():
            stop()
        conn.request("GET", target, headers={"Accept-Encoding": "identity", "Connection": "close"})
        resp = conn.getresponse()
        status, body = int(resp.status), resp.read(scope.policy.http_max_bytes + 1)
    except TimeoutError:
        return wasi_errno(errno.ETIMEDOUT)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if cut.is_set():
            return wasi_errno(errno.ETIMEDOUT)
        code = getattr(exc, "errno", None)
        return wasi_errno(code if isinstance(code, int) and code > 0 else errno.EHOSTUNREACH)
    finally:
        timer.cancel()
        conn.close()
    if cut.is_set():  # a body cut short at the deadline is no answer
        return wasi_errno(errno.ETIMEDOUT)
    return status, body


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log": host_log,
    "progress": host_progress,
    "data_read": host_data_read,
    "data_write": host_data_write,
    "http_get": host_http_get,
}


def _never_raises(name: str, fn: Callable[..., Any], answers: bool) -> Callable[..., Any]:
    """``fn`` answering -EFAULT (or nothing) instead of raising. wasmtime-py keeps the exception of a host function
    in one process-wide variable that the next trapping call on any thread raises, so one call's failure could
    surface in another's; and a trap inside it (the module's mcp_alloc passing the deadline) must end the call.
    The failure is kept in the call's scope: the call fails and its instance is not reused."""
    fail = wasi_errno(errno.EFAULT) if answers else None

    def guarded(caller: Any, *args: Any) -> Any:
        try:
            return fn(caller, *args)
        except Exception as exc:  # nothing may leave a host function
            scope = current()
            if scope is not None and scope.failed is None:
                text = str(exc).strip()
                scope.failed = f"host function {name} failed: {text.splitlines()[0] if text else type(exc).__name__}"
            return fail

    return guarded


def define_all(linker: Any) -> None:
    """Define every host function in ``linker`` (module "mcp_edge"); each checks its grant per call."""
    import wasmtime

    types = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64(), "f64": wasmtime.ValType.f64()}
    for name, (params, results) in SIGNATURES.items():
        ty = wasmtime.FuncType([types[p] for p in params], [types[r] for r in results])
        linker.define_func("mcp_edge", name, ty, _never_raises(name, _FUNCTIONS[name], bool(results)),
                           access_caller=True)
