"""fs: files under one data root, read, written (atomically), listed and checksummed through the I/O engine.

Every path a client gives is relative to the data root (an absolute path is
accepted only when it lies under the root). Paths are resolved by the kernel
with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`` from a descriptor of
the root, so neither ``..`` nor a symbolic link (of a file or of a folder)
can lead out of it, even when the tree changes between the check and the use.
Where openat2 is missing (Linux < 5.6, or a seccomp filter that refuses it)
the same rule is kept by walking the path one component at a time with
``O_NOFOLLOW`` and following links by hand; that fallback is logged once.

Data goes through the runtime's I/O engine (io_uring, or its thread-pool
fallback); transfers of at least ``direct_min`` bytes use O_DIRECT (buffered
where the filesystem refuses it). Every result carries the CRC32C of the bytes
it moved. Writes go through ``mcp_edge.io.write_file``: temporary file,
fdatasync, rename, fsync of the folder, so a crash leaves the old or the new
content, never a torn file, and a refused write (bad base64, a CRC32C that does
not match ``expected_crc32c``, ``read_only``) touches nothing.

No response is larger than the runtime's ``max_out_frame``: ``fs_read`` returns
at most ``settings.max_read`` bytes inline (its base64 must fit a frame, which
is checked at start); a larger range comes as ``resource_link`` items, one per
piece of at most ``max_read`` bytes (``fs://<path>?offset=N&length=M``), that
``resources/read`` serves one at a time. Reads of ``max_read/4`` bytes or more
wait for one of ``settings.max_large_reads`` slots, so concurrent clients
cannot make the server hold many large buffers at once.

Errors the model can fix (a path outside the root, a missing file, a folder
where a file was expected, a bad cursor, a full disk) are tool results with
``isError`` and a message saying what to do, naming the client's path, never an
internal one; reading a missing ``fs://`` resource is a JSON-RPC error. Both
resolvers give the same answer and the same error for every path.

Temporary files of interrupted writes (``.<name>.<hex>.tmp``, see
``mcp_edge.io.files``) never show in listings, and those left by a dead
process are removed when the plugin starts.
"""

import asyncio
import base64
import binascii
import bisect
import errno
import fcntl
import logging
import mimetypes
import os
import platform
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec

from mcp_edge.errors import ConfigError, InvalidArgumentsError, ResourceNotFoundError
from mcp_edge.io import Engine, IoOp, file_alignment, write_file
from mcp_edge.io.alignment import O_DIRECT
from mcp_edge.io.beneath import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, openat2
from mcp_edge.io.files import is_temp_name, stale_temp
from mcp_edge.native import crc32c
from mcp_edge.native._dio import AlignedBuffer
from mcp_edge.plugin import (
    PluginBase,
    PluginContext,
    RequestContext,
    completion,
    resource,
    resource_template,
    tool,
)
from mcp_edge.plugin.schema import type_schema
from mcp_edge.plugin.types import (
    BlobResourceContents,
    EmbeddedResource,
    ResourceContents,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    ToolResult,
)

__all__ = ["DataRoot", "Fs", "FsError"]

log = logging.getLogger("mcp_edge.plugins.fs")

CHUNK = 1 << 20  # bytes per read; a multiple of every O_DIRECT alignment
WINDOW = 4  # chunks in flight at once
LIST_MAX = 1000  # the most entries one fs_list page (or an fs:// folder listing) returns
LINKS_MAX = 256  # resource links in one fs_read result; a longer range goes on from next_offset
ENVELOPE = 64 << 10  # bytes of JSON allowed around one base64 blob (ids, uri, structured result)
STALE_TEMP_S = 60.0  # a temporary file unlocked and this old was left by a dead writer: removed at start

# -- containment: openat2(RESOLVE_BENEATH), or a component-by-component walk --------------------------------

_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS
_ARCHES = {"x86_64", "aarch64", "arm64", "armv7l", "armv8l", "riscv64", "ppc64le", "s390x"}


class FsError(Exception):
    """Bad input the model can fix: a path outside the root, a missing file, a bad argument. The message says
    what was wrong; it becomes a tool result with ``isError``. ``errno`` is set when an open failed."""

    def __init__(self, msg: str, err: int | None = None) -> None:
        super().__init__(msg)
        self.errno = err


def _explain(exc: OSError, shown: str) -> FsError:
    """The FsError for an open that failed with ``exc`` on the client's path ``shown`` (both resolvers, every
    errno: one error type, and the client's path rather than any internal one)."""
    msg = {
        errno.EXDEV: "the path escapes the data root (through '..', an absolute path or a symbolic link that "
                     "points outside); use a path relative to the data root",
        errno.ENOENT: "not found",
        errno.ENOTDIR: "a component of the path is not a directory",
        errno.ELOOP: "too many levels of symbolic links",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENAMETOOLONG: "the path or a name in it is too long",
        errno.EISDIR: "is a directory",
        errno.EAGAIN: "the path kept changing while it was opened (files renamed or replaced at that moment); "
                      "try again",
    }.get(exc.errno or 0)
    if msg is None:
        msg = os.strerror(exc.errno) if exc.errno else str(exc)
    return FsError(f"{shown}: {msg}", exc.errno)


class DataRoot:
    """A folder that paths are resolved beneath, held open for the plugin's life.

    ``use_openat2``: None probes the kernel and falls back to the walk (logged once); True demands openat2
    (OSError where the kernel refuses it); False forces the walk (tests run both).
    """

    def __init__(self, path: Path, use_openat2: bool | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = Path(os.path.realpath(path))
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if use_openat2 is not False:
            why = self._openat2_problem()
            if why is not None and use_openat2:
                os.close(self.fd)
                raise OSError(errno.ENOSYS, f"fs: resolve = openat2, but {why}; use resolve = auto or walk")
            if why is not None:
                log.warning("fs: %s: paths under %s are checked component by component", why, self.path)
            use_openat2 = why is None
        self.uses_openat2 = use_openat2

    def _openat2_problem(self) -> str | None:
        """Why openat2 cannot be used here, or None when it works."""
        if platform.machine() not in _ARCHES:
            return f"the openat2 syscall number is not known on {platform.machine()}"
        try:
            os.close(openat2(self.fd, ".", os.O_PATH, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS))
        except OSError as exc:
            return f"openat2 is unavailable ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
        return None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def relative(self, path: str) -> str:
        """The client's ``path`` as a path relative to the root ("." for the root itself)."""
        if "\0" in path:
            raise FsError(f"{path!r}: the path contains a NUL byte")
        if path.startswith("/"):
            root = str(self.path)
            if path.rstrip("/") == root:
                return "."
            if not path.startswith(root + "/"):
                raise FsError(f"{path}: the path escapes the data root: paths are relative to the data root "
                              f"(an absolute path must lie under {root})")
            # ROOT//sub/x is ROOT/sub/x: a relative path never starts with '/' (openat2 would call it an escape)
            path = path[len(root):].lstrip("/")
        return path or "."

    def open(self, rel: str, flags: int, shown: str | None = None) -> int:
        """Open ``rel`` beneath the root with ``flags`` (O_NOFOLLOW: do not follow a final symbolic link).

        Raises FsError for what the client can fix (escape, not found...), OSError otherwise.
        """
        try:
            if self.uses_openat2:
                return openat2(self.fd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
            return self._walk(rel, flags)
        except OSError as exc:
            raise _explain(exc, shown if shown is not None else rel) from None

    def _walk(self, rel: str, flags: int) -> int:
        """RESOLVE_BENEATH by hand: one component at a time, O_NOFOLLOW, links followed here and never out.

        It answers as openat2 does: '.' and a trailing '/' demand a folder (``file/`` is ENOTDIR, and a link
        before them is followed), a doubled '/' is one, and a link is read through the descriptor it was
        found by, so a swap in between gives an error of the same kind, never a raw EINVAL.
        """
        parts = _components(rel)
        stack = [os.dup(self.fd)]  # O_PATH fds of the folders walked through, the root first
        links = 0
        try:
            while parts:
                name = parts.pop(0)
                if name == ".":
                    continue
                if name == "..":
                    if len(stack) == 1:
                        raise OSError(errno.EXDEV, "escapes", rel)
                    os.close(stack.pop())
                    continue
                last = not parts
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                try:
                    st = os.fstat(fd)
                    target = os.readlink("", dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
                except BaseException:
                    os.close(fd)
                    raise
                if target is not None and not (last and flags & os.O_NOFOLLOW):
                    os.close(fd)
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, "too many links", rel)
                    if target.startswith("/"):
                        raise OSError(errno.EXDEV, "absolute link", rel)
                    parts = _components(target) + parts
                    continue
                if last:
                    if flags & os.O_PATH:
                        if flags & os.O_DIRECTORY and not stat.S_ISDIR(st.st_mode):
                            os.close(fd)
                            raise OSError(errno.ENOTDIR, "not a directory", rel)
                        return fd
                    os.close(fd)
                    try:
                        real = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                    except OSError as exc:
                        if exc.errno != errno.ELOOP:
                            raise
                        # it was no link a moment ago: it was swapped for one (which O_NOFOLLOW refuses)
                        raise OSError(errno.EAGAIN, "the file changed while it was opened", rel) from None
                    st2 = os.fstat(real)
                    if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):  # swapped meanwhile: say so
                        os.close(real)
                        raise OSError(errno.EAGAIN, "the file changed while it was opened", rel)
                    return real
                if not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise OSError(errno.ENOTDIR, "not a directory", rel)
                stack.append(fd)
            # the path named a folder: the root, or one reached by '..', '.' or a trailing '/'
            if flags & os.O_PATH:
                return os.dup(stack[-1])
            return os.open(".", flags | os.O_CLOEXEC, dir_fd=stack[-1])
        finally:
            for fd in stack:
                os.close(fd)


def _components(path: str) -> list[str]:
    """The names of ``path`` for the walk: empty ones (a doubled '/') dropped, a trailing '/' kept as '.'."""
    parts = [p for p in path.split("/") if p]
    if path.endswith("/") and parts:
        parts.append(".")
    return parts


# -- structured results ------------------------------------------------------------------------------------

Kind = Literal["file", "directory", "symlink", "fifo", "socket", "char-device", "block-device", "other"]


class ReadInfo(msgspec.Struct, kw_only=True):
    """What fs_read read: the bytes are in the content (text, or a base64 blob resource), or, for a range larger
    than max_read, behind resource links (``encoding`` "links"), each read with resources/read."""

    path: str
    offset: int
    size: int  # bytes returned (or covered by the links)
    file_size: int
    eof: bool  # the read (or the last link) reaches the end of the file
    crc32c: int | None  # of the bytes returned; None for links (fs_checksum gives a whole file's)
    encoding: Literal["text", "base64", "links"]
    mimeType: str
    direct: bool  # read with O_DIRECT
    links: int = 0  # resource links in the content, each at most max_read bytes
    next_offset: int | None = None  # the links stop short of the range (LINKS_MAX): fs_read again from here


class WriteInfo(msgspec.Struct, kw_only=True):
    path: str
    size: int
    crc32c: int
    created: bool
    direct: bool


class StatInfo(msgspec.Struct, kw_only=True):
    path: str
    type: Kind
    size: int
    mode: str  # permission bits in octal, e.g. "0644"
    mtime: str  # ISO 8601, UTC
    target: str | None = None  # a symbolic link's target as written
    resolves: Literal["inside", "outside", "dangling"] | None = None  # where a symbolic link leads


class Entry(msgspec.Struct, kw_only=True):
    name: str
    type: Kind
    size: int
    mtime: str


class ListInfo(msgspec.Struct, kw_only=True):
    path: str
    entries: list[Entry]
    total: int  # entries in the folder
    next_cursor: str | None = None  # pass it back as cursor for the next page; None on the last page


class ChecksumInfo(msgspec.Struct, kw_only=True):
    path: str
    size: int
    crc32c: int
    direct: bool


_TYPES: dict[int, Kind] = {
    stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket", stat.S_IFCHR: "char-device", stat.S_IFBLK: "block-device",
}


def _kind(mode: int) -> Kind:
    return _TYPES.get(stat.S_IFMT(mode), "other")


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _shown(name: str) -> str:
    """A name as JSON can carry it (undecodable bytes become U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _mime(name: str, text: bool) -> str:
    guess = mimetypes.guess_type(name, strict=False)[0]
    return guess or ("text/plain" if text else "application/octet-stream")


def _name_cursor(name: str) -> str:
    """A listing cursor: the last name of a page, base64url."""
    return "n" + base64.urlsafe_b64encode(name.encode("utf-8", "surrogateescape")).decode("ascii")


def _name_from_cursor(cursor: str, tool_name: str) -> str:
    try:
        if not cursor.startswith("n"):
            raise ValueError(cursor)
        raw = base64.b64decode(cursor[1:].encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise FsError(f"invalid cursor {cursor!r}: pass back the next_cursor {tool_name} returned, or "
                      f"none") from None


def _schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    schema = type_schema(struct)
    schema.pop("title", None)
    return schema


def _write_error(exc: OSError, shown: str) -> FsError:
    """What a failed write means for the client, with what to do; the target keeps its old content (the
    temporary file is removed by write_file)."""
    kept = "the file was left unchanged" if exc.errno != errno.ENOENT else "nothing was written"
    msg = {
        errno.ENOSPC: "the disk holding the data root is full: free space on it (or write less), then try again",
        errno.EDQUOT: "the disk quota of the runtime's user is used up: free space or raise the quota, then try "
                      "again",
        errno.EFBIG: "the file would be larger than this filesystem (or the process's file size limit) allows",
        errno.EROFS: "the data root is on a read-only filesystem",
        errno.EIO: "the disk reported an I/O error: check the disk (dmesg), then try again",
        errno.ENAMETOOLONG: "the name is too long for this filesystem",
        errno.EACCES: "permission denied (the runtime's user cannot write this folder)",
        errno.EPERM: "permission denied (the runtime's user cannot write this folder)",
        errno.ENOENT: "the folder was removed while the file was written",
    }.get(exc.errno or 0) or (os.strerror(exc.errno) if exc.errno else "the write failed")
    return FsError(f"{shown}: {msg}; {kept}", exc.errno)


def _clean_temps(root_fd: int) -> list[str]:
    """Remove the temporary files that dead writers left under the root (no lock held, STALE_TEMP_S old); the
    paths removed, relative to the root. Symbolic links are not followed."""
    removed = []
    for top, _dirs, files, dfd in os.fwalk(".", dir_fd=root_fd):
        for name in files:
            if is_temp_name(name) and stale_temp(name, dfd, STALE_TEMP_S):
                try:
                    os.unlink(name, dir_fd=dfd)
                except OSError:
                    continue
                removed.append(_shown(os.path.normpath(os.path.join(top, name))))
    return removed


def _blocking(fd: int) -> None:
    """Clear O_NONBLOCK: io_uring on older kernels answers EAGAIN for reads of O_NONBLOCK files not in cache."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)


def _set_direct(fd: int) -> bool:
    """Switch O_DIRECT on for ``fd``; False where the filesystem refuses it (EINVAL)."""
    if not O_DIRECT:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | O_DIRECT)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    return True


async def _read_range(engine: Engine, fd: int, offset: int, length: int, direct: bool) -> memoryview:
    """Bytes [offset, offset + length) of ``fd`` (fewer at EOF), read in chunks through ``engine``.

    With O_DIRECT the range is widened to the file's alignment and the buffer aligned in memory.
    """
    if length <= 0:
        return memoryview(b"")
    if direct:
        align = file_alignment(fd)
        start = offset // align.offset * align.offset
        end = -(-(offset + length) // align.offset) * align.offset
        mem = max(4096, align.mem)
    else:
        start, end, mem = offset, offset + length, 4096
    buf = AlignedBuffer(end - start, mem)
    mv = memoryview(buf)
    pos = start
    while pos < end:
        spans = [(a, min(a + CHUNK, end)) for a in range(pos, end, CHUNK)][:WINDOW]
        counts = await engine.gather([IoOp.read(fd, mv[a - start:b - start], a) for a, b in spans])
        short = False
        for (a, b), n in zip(spans, counts, strict=True):
            pos = a + n
            if n < b - a:  # EOF (a regular file reads short only there)
                short = True
                break
        if short:
            break
    hi = min(pos, offset + length)
    return mv[offset - start:hi - start] if hi > offset else memoryview(b"")


class Fs(PluginBase):
    """Files under one data root."""

    id = "fs"
    capabilities = frozenset({"tools", "resources"})

    root: DataRoot | None = None
    direct_min = 1 << 20
    max_inline = 256 << 10
    max_read = 4 << 20
    max_write = 64 << 20
    read_only = False
    large_reads: asyncio.Semaphore | None = None

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        await super().initialize(config, ctx)
        root = Path(str(config.get("root") or "files"))
        if not root.is_absolute():
            root = ctx.data_dir / root
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"fs: the data root {root} is not a folder; set root "
                                                    f"(MCP_EDGE_FS_ROOT) to a folder")
        resolve = config.get("resolve", "auto")
        self.root = DataRoot(root, None if resolve == "auto" else resolve == "openat2")
        self.direct_min = int(config.get("direct_min", self.direct_min))
        self.max_inline = int(config.get("max_inline", self.max_inline))
        self.max_write = int(config.get("max_write", self.max_write))
        self.read_only = bool(config.get("read_only", False))
        settings = ctx.settings
        self.max_read = settings.max_read
        # one fs_read or fs:// range answers with up to max_read bytes as base64 inside a JSON frame
        encoded = -(-self.max_read // 3) * 4 + ENVELOPE
        if encoded > settings.max_out_frame:
            self.root.close()
            self.root = None
            raise ConfigError(f"fs: setting max_read ({self.max_read}) becomes {encoded} bytes of base64 and JSON, "
                              f"more than max_out_frame ({settings.max_out_frame}): lower max_read to at most "
                              f"{(settings.max_out_frame - ENVELOPE) // 4 * 3} or raise max_out_frame")
        self.large_reads = asyncio.Semaphore(settings.max_large_reads)
        removed = await asyncio.to_thread(_clean_temps, self.root.fd)
        if removed:
            ctx.logger.info("fs: removed %d temporary file(s) left by interrupted writes: %s", len(removed),
                            ", ".join(removed[:10]) + (" ..." if len(removed) > 10 else ""))
        ctx.logger.info("fs: data root %s (%s)%s", self.root.path,
                        "openat2" if self.root.uses_openat2 else "component walk",
                        ", read-only" if self.read_only else "")

    async def shutdown(self) -> None:
        if self.root is not None:
            self.root.close()
            self.root = None

    # -- helpers ---------------------------------------------------------------------------------------------

    def _root(self) -> DataRoot:
        if self.root is None:
            raise RuntimeError("fs: the plugin is not initialized")
        return self.root

    def _engine(self) -> Engine:
        return self.ctx.engine()

    @staticmethod
    def _clean(rel: str) -> str:
        """``rel`` as results show it: normalized, "." for the root."""
        return _shown(os.path.normpath(rel))

    def uri(self, rel: str) -> str:
        """The fs:// URI of ``rel`` (percent-encoded where a URI needs it)."""
        clean = self._clean(rel)
        return "fs://" + ("" if clean == "." else quote(clean, safe="/"))

    def _open_file(self, path: str, flags: int = os.O_RDONLY) -> tuple[int, str, os.stat_result]:
        """Open the regular file ``path`` for reading: (fd, rel, stat). FsError for a folder, a FIFO..."""
        root = self._root()
        rel = root.relative(path)
        pfd = root.open(rel, os.O_PATH, path)
        try:
            st = os.fstat(pfd)
        finally:
            os.close(pfd)
        if stat.S_ISDIR(st.st_mode):
            raise FsError(f"{path}: is a directory (fs_list lists it)", errno.EISDIR)
        if not stat.S_ISREG(st.st_mode):
            raise FsError(f"{path}: not a regular file (it is a {_kind(st.st_mode)})")
        fd = root.open(rel, flags | os.O_NONBLOCK | os.O_NOCTTY, path)  # a FIFO swapped in must not block
        st2 = os.fstat(fd)
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(st2.st_mode):
            os.close(fd)
            raise FsError(f"{path}: the file was replaced while it was being opened; try again")
        _blocking(fd)
        return fd, rel, st2

    async def _read(self, path: str, offset: int, length: int | None,
                    links: bool = False) -> tuple[str, memoryview | None, int, int, bool]:
        """(rel, data, bytes wanted, file size, direct) of a ranged read of ``path``, at most max_read bytes.

        A larger range is refused, or with ``links`` nothing is read (data None) and the caller links to it.
        Reads of max_read/4 bytes or more wait for a large-read slot.
        """
        if offset < 0:
            raise FsError(f"offset must be 0 or more, got {offset}")
        if length is not None and length < 0:
            raise FsError(f"length must be 0 or more, got {length}")
        fd, rel, st = self._open_file(path)
        try:
            size = st.st_size
            want = max(0, size - offset) if length is None else max(0, min(length, size - offset))
            if want > self.max_read:
                if links:
                    return rel, None, want, size, False
                raise FsError(f"{path}: reading {want} bytes is more than max_read ({self.max_read}); read it in "
                              f"ranges of at most max_read bytes (fs://{quote(self._clean(rel), safe='/')}"
                              f"?offset={offset}&length={self.max_read}, or fs_read with offset and length)")
            direct = want >= self.direct_min and want > 0 and _set_direct(fd)
            if want >= self.max_read // 4 and self.large_reads is not None:
                async with self.large_reads:
                    data = await _read_range(self._engine(), fd, offset, want, direct)
            else:
                data = await _read_range(self._engine(), fd, offset, want, direct)
            return rel, data, want, size, direct
        finally:
            os.close(fd)

    def _links(self, rel: str, offset: int, want: int, size: int, mime: str) -> ToolResult:
        """fs_read's answer for a range larger than max_read: one resource link per max_read bytes."""
        name = os.path.basename(self._clean(rel))
        base = self.uri(rel)
        items: list[ResourceLink | TextContent] = []
        pos, end = offset, offset + want
        while pos < end and len(items) < LINKS_MAX:
            n = min(self.max_read, end - pos)
            items.append(ResourceLink(uri=f"{base}?offset={pos}&length={n}", name=f"{name} [{pos}, {pos + n})",
                                      mimeType=mime, size=n,
                                      description=f"bytes {pos} to {pos + n - 1} of {self._clean(rel)}"))
            pos += n
        info = ReadInfo(path=self._clean(rel), offset=offset, size=pos - offset, file_size=size, eof=pos >= size,
                        crc32c=None, encoding="links", mimeType=mime, direct=False, links=len(items),
                        next_offset=pos if pos < end else None)
        items.append(TextContent(text=msgspec.json.encode(info).decode()))
        return ToolResult(content=list(items), structuredContent=msgspec.to_builtins(info))

    def _open_parent(self, path: str, create_dirs: bool) -> tuple[int, str, str]:
        """(O_PATH fd of the folder, the file's name, rel) for writing ``path``; folders made if asked."""
        root = self._root()
        rel = root.relative(path)
        parent, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            raise FsError(f"{path}: not a file name")
        parent = parent or "."
        try:
            return root.open(parent, os.O_PATH | os.O_DIRECTORY, path), name, rel
        except FsError as exc:
            if not create_dirs or exc.errno != errno.ENOENT:
                raise
        parts = [p for p in parent.split("/") if p not in ("", ".")]
        for i in range(len(parts)):
            try:
                os.close(root.open("/".join(parts[:i + 1]), os.O_PATH | os.O_DIRECTORY, path))
                continue
            except FsError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            up = root.open("/".join(parts[:i]) or ".", os.O_PATH | os.O_DIRECTORY, path)
            try:
                os.mkdir(parts[i], 0o755, dir_fd=up)
            except FileExistsError:
                pass
            finally:
                os.close(up)
        return root.open(parent, os.O_PATH | os.O_DIRECTORY, path), name, rel

    # -- tools -----------------------------------------------------------------------------------------------

    @tool(name="fs_read", title="Read a file", output_schema=_schema(ReadInfo),
          annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))
    async def read(self, path: str, offset: Annotated[int, msgspec.Meta(ge=0)] = 0,
                   length: Annotated[int, msgspec.Meta(ge=0)] | None = None) -> ToolResult:
        """Read a file under the data root, whole or a byte range. UTF-8 text up to max_inline bytes comes as
        text; larger or binary content as a base64 blob resource; a range larger than the server's max_read
        as resource links (fs://<path>?offset=N&length=M), each read with resources/read. The structured
        result gives the bytes returned, the file's size, whether the end was reached and the CRC32C of the
        bytes returned.

        Args:
            path: relative to the data root ('.' is the root).
            offset: the first byte to read.
            length: how many bytes to read (default: to the end of the file).
        """
        rel, data, want, size, direct = await self._read(path, offset, length, links=True)
        name = os.path.basename(self._clean(rel))
        if data is None:
            return self._links(rel, offset, want, size, _mime(name, False))
        try:
            text: str | None = str(data, "utf-8")
        except UnicodeDecodeError:
            text = None
        mime = _mime(name, text is not None)
        if data.nbytes > self.max_inline:
            text = None  # too big to inline: a blob resource, its mimeType saying what it is
        elif text is not None and len(msgspec.json.encode(text)) > -(-self.max_read // 3) * 4:
            text = None  # escaped (control characters: 6 bytes each) it would not fit a frame: a blob
        info = ReadInfo(path=self._clean(rel), offset=offset, size=data.nbytes, file_size=size,
                        eof=offset + data.nbytes >= size, crc32c=crc32c(data),
                        encoding="text" if text is not None else "base64", mimeType=mime, direct=direct)
        if text is not None:
            body: TextContent | EmbeddedResource = TextContent(text=text)
        else:
            blob = base64.b64encode(data).decode("ascii")
            body = EmbeddedResource(resource=BlobResourceContents(uri=self.uri(rel), blob=blob, mimeType=mime))
        summary = msgspec.json.encode(info).decode()
        return ToolResult(content=[body, TextContent(text=summary)], structuredContent=msgspec.to_builtins(info))

    @tool(name="fs_write", title="Write a file",
          annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True,
                                      openWorldHint=False))
    async def write(self, path: str, content: str | None = None, data: str | None = None, encoding: str = "utf-8",
                    create_dirs: bool = False,
                    expected_crc32c: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)] | None = None) -> WriteInfo:
        """Write a file under the data root, replacing it atomically: a crash leaves the old or the new content,
        never a mix. Give the content as text (content) or as base64 (data). Nothing is written when the
        content's CRC32C differs from expected_crc32c.

        Args:
            path: relative to the data root.
            content: the text to write, encoded with encoding.
            data: the bytes to write, base64 (instead of content).
            encoding: the encoding of content (default utf-8).
            create_dirs: create the missing folders of path.
            expected_crc32c: the CRC32C the bytes must have (checked before anything is written).
        """
        if self.read_only:
            raise FsError("the fs plugin is read-only here (read_only = true): nothing was written")
        if (content is None) == (data is None):
            raise FsError("give exactly one of content (text) and data (base64)")
        if data is not None:
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise FsError(f"data is not valid base64 ({exc}): nothing was written") from None
        else:
            assert content is not None
            try:
                raw = content.encode(encoding)
            except LookupError:
                raise FsError(f"unknown encoding {encoding!r}: nothing was written") from None
            except UnicodeEncodeError as exc:
                raise FsError(f"content cannot be encoded as {encoding} ({exc.reason} at {exc.start}): nothing "
                              f"was written") from None
        if len(raw) > self.max_write:
            raise FsError(f"{len(raw)} bytes is more than max_write ({self.max_write}): nothing was written")
        crc = crc32c(raw)
        if expected_crc32c is not None and crc != expected_crc32c:
            raise FsError(f"the content's CRC32C is {crc} (0x{crc:08x}), not the expected_crc32c "
                          f"{expected_crc32c} (0x{expected_crc32c:08x}): nothing was written")
        if not os.path.isdir("/proc/self/fd"):
            raise OSError(errno.ENOENT, "fs_write needs /proc mounted (it writes through /proc/self/fd)")
        dfd, name, rel = self._open_parent(path, create_dirs)
        try:
            if is_temp_name(name):  # hidden from listings and removed at start once stale: not a client's file
                raise FsError(f"{path}: names of the form .<name>.<12 hex digits>.tmp are reserved for the "
                              "temporary files of writes in progress; choose another name")
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise FsError(f"{path}: is a symbolic link; write to the file it points to")
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise FsError(f"{path}: is a directory", errno.EISDIR)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise FsError(f"{path}: not a regular file (it is a {_kind(st.st_mode)})")
            try:
                got = await write_file(f"/proc/self/fd/{dfd}/{name}", raw, direct=len(raw) >= self.direct_min,
                                       durable=True, engine=self._engine())
            except OSError as exc:  # the message names the client's path, never /proc/self/fd/...
                raise _write_error(exc, path) from None
        finally:
            os.close(dfd)
        await self.ctx.notify_resource_updated(self.uri(rel))
        return WriteInfo(path=self._clean(rel), size=got.size, crc32c=got.crc32c, created=st is None,
                         direct=got.direct)

    @tool(name="fs_stat", title="Describe a file or folder",
          annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))
    async def stat_path(self, path: str = ".") -> StatInfo:
        """Type, size, permissions and modification time of a path under the data root. A symbolic link is
        described itself, with its target and whether it leads inside the root.

        Args:
            path: relative to the data root ('.' is the root).
        """
        root = self._root()
        rel = root.relative(path)
        fd = root.open(rel, os.O_PATH | os.O_NOFOLLOW, path)
        try:
            st = os.fstat(fd)
            target: str | None = None
            resolves: Literal["inside", "outside", "dangling"] | None = None
            if stat.S_ISLNK(st.st_mode):
                target = _shown(os.readlink("", dir_fd=fd))
                try:
                    os.close(root.open(rel, os.O_PATH, path))
                    resolves = "inside"
                except FsError as exc:
                    resolves = "outside" if exc.errno == errno.EXDEV else "dangling"
        finally:
            os.close(fd)
        return StatInfo(path=self._clean(rel), type=_kind(st.st_mode), size=st.st_size,
                        mode=f"{stat.S_IMODE(st.st_mode):04o}", mtime=_iso(st.st_mtime_ns),
                        target=target, resolves=resolves)

    def _listing(self, path: str, cursor: str | None, limit: int) -> ListInfo:
        if not 1 <= limit <= LIST_MAX:
            raise FsError(f"limit must be between 1 and {LIST_MAX}, got {limit}")
        after = _name_from_cursor(cursor, "fs_list") if cursor else None
        root = self._root()
        rel = root.relative(path)
        dfd = root.open(rel, os.O_RDONLY | os.O_DIRECTORY, path)
        try:
            names = sorted(n for n in os.listdir(dfd) if not is_temp_name(n))  # no half-written files
            first = bisect.bisect_right(names, after) if after is not None else 0
            page = names[first:first + limit]
            entries = []
            for name in page:
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:  # removed since the listing
                    continue
                entries.append(Entry(name=_shown(name), type=_kind(st.st_mode), size=st.st_size,
                                     mtime=_iso(st.st_mtime_ns)))
        finally:
            os.close(dfd)
        more = first + limit < len(names)
        nxt = _name_cursor(page[-1]) if more else None
        return ListInfo(path=self._clean(rel), entries=entries, total=len(names), next_cursor=nxt)

    @tool(name="fs_list", title="List a folder",
          annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))
    async def list_dir(self, path: str = ".", cursor: str | None = None,
                   limit: Annotated[int, msgspec.Meta(ge=1, le=LIST_MAX)] = 100) -> ListInfo:
        """The entries of a folder under the data root, sorted by name, a page at a time (stable while entries
        are added or removed).

        Args:
            path: relative to the data root ('.' is the root).
            cursor: the next_cursor of the previous page; none for the first.
            limit: entries per page.
        """
        return self._listing(path, cursor, limit)

    @tool(name="fs_checksum", title="CRC32C of a file",
          annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))
    async def checksum(self, path: str, ctx: RequestContext | None = None) -> ChecksumInfo:
        """The CRC32C (Castagnoli) of a whole file under the data root, read in chunks, with progress on large
        files; a cancelled request stops it.

        Args:
            path: relative to the data root.
        """
        fd, rel, st = self._open_file(path)
        try:
            size = st.st_size
            direct = size >= self.direct_min and size > 0 and _set_direct(fd)
            align = file_alignment(fd) if direct else None
            unit = max(4096, align.offset) if align else 4096
            bsize = min(CHUNK, -(-max(size, 1) // unit) * unit)  # a multiple of the O_DIRECT alignment
            views = [memoryview(AlignedBuffer(bsize, max(4096, align.mem) if align else 4096))
                     for _ in range(min(WINDOW, -(-size // bsize)))]
            engine = self._engine()
            crc = 0
            pos = 0
            while pos < size:
                if ctx is not None and ctx.cancelled:
                    raise asyncio.CancelledError
                offsets = list(range(pos, size, bsize))[:len(views)]
                counts = await engine.gather([IoOp.read(fd, v, o) for v, o in zip(views, offsets, strict=False)])
                eof = False
                for v, o, n in zip(views, offsets, counts, strict=False):
                    n = min(n, size - o)
                    crc = crc32c(v[:n], crc)
                    pos = o + n
                    if n < bsize:
                        eof = True
                        break
                if ctx is not None and size > bsize:
                    await ctx.report_progress(pos, size, f"{pos} of {size} bytes")
                if eof:
                    break
            return ChecksumInfo(path=self._clean(rel), size=pos, crc32c=crc, direct=direct)
        finally:
            os.close(fd)

    # -- resources -------------------------------------------------------------------------------------------

    async def _resource(self, path: str, offset: int = 0, length: int | None = None) -> list[ResourceContents]:
        """A file's content (whole, or ``length`` bytes from ``offset``: always a blob), or a folder's listing."""
        try:
            root = self._root()
            rel = root.relative(path)
            pfd = root.open(rel, os.O_PATH, path)
            try:
                is_dir = stat.S_ISDIR(os.fstat(pfd).st_mode)
            finally:
                os.close(pfd)
            uri = self.uri(rel)
            if is_dir:
                if length is not None:
                    raise FsError(f"{path}: is a directory: a range needs a file", errno.EISDIR)
                listing = self._listing(path, None, LIST_MAX)
                return [TextResourceContents(uri=uri, text=msgspec.json.encode(listing).decode(),
                                             mimeType="application/json")]
            _, data, _, _, _ = await self._read(path, offset, length)
            assert data is not None
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                raise ResourceNotFoundError(f"fs://{path}: {exc}") from None
            raise InvalidArgumentsError(f"fs://{path}: {exc}") from None
        name = os.path.basename(self._clean(rel))
        if length is not None:  # a piece of a file: bytes, whatever they hold (UTF-8 may be cut mid-character)
            return [BlobResourceContents(uri=f"{uri}?offset={offset}&length={length}",
                                         blob=base64.b64encode(data).decode("ascii"), mimeType=_mime(name, False))]
        try:
            text: str | None = str(data, "utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or len(msgspec.json.encode(text)) > -(-self.max_read // 3) * 4:
            return [BlobResourceContents(uri=uri, blob=base64.b64encode(data).decode("ascii"),
                                         mimeType=_mime(name, text is not None))]
        return [TextResourceContents(uri=uri, text=text, mimeType=_mime(name, True))]

    @resource("fs://", name="root", title="Data root", mime_type="application/json",
              description="The top folder of the fs data root as JSON: entries with type, size and mtime")
    async def root_listing(self) -> list[ResourceContents]:
        return await self._resource(".")

    # Declared before fs://{+path}: templates with the same literal prefix are tried in declaration order, and
    # this one is the more specific (a '?' in a file name is percent-encoded in its URI, so it never matches).
    @resource_template("fs://{+path}?offset={offset}&length={length}", name="file_range",
                       title="Byte range of a file under the data root",
                       description="length bytes of a file from offset, as a base64 blob; at most the server's "
                                   "max_read bytes (the links fs_read returns for large files)")
    async def file_range(self, path: str, offset: Annotated[int, msgspec.Meta(ge=0)],
                         length: Annotated[int, msgspec.Meta(ge=0)]) -> list[ResourceContents]:
        return await self._resource(path, offset, length)

    @resource_template("fs://{+path}", name="file", title="File under the data root",
                       description="A file under the fs data root (text, or a base64 blob for binary content); a "
                                   "folder reads as a JSON listing")
    async def file(self, path: str) -> list[ResourceContents]:
        return await self._resource(path)

    @completion(resource_template="fs://{+path}", argument="path")
    async def complete_path(self, value: str) -> list[str]:
        """The names under the data root that start with ``value`` (folders end with '/'); none past an error."""
        folder, _, prefix = value.rpartition("/")
        root = self._root()
        try:
            dfd = root.open(root.relative(folder or "."), os.O_RDONLY | os.O_DIRECTORY, folder)
        except (FsError, OSError):
            return []
        try:
            out = []
            for name in sorted(os.listdir(dfd)):
                if not name.startswith(prefix) or is_temp_name(name):
                    continue
                try:
                    is_dir = stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
                except OSError:
                    continue
                out.append(f"{folder}/{name}" if folder else name)
                if is_dir:
                    out[-1] += "/"
            return [_shown(v) for v in out]
        finally:
            os.close(dfd)
