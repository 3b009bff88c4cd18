"""logs: list, tail and search the log files an administrator allowed, through the I/O engine.

Only files under the configured ``paths`` can be read: a folder allows every
file beneath it, a file allows itself. Inside a folder the path is resolved by
the kernel with ``openat2(RESOLVE_BENEATH)`` from that folder, so ``..`` and
symbolic links cannot lead out of it (where openat2 is missing the resolved
path is checked, and the opened file checked again through ``/proc/self/fd``).

Pages are addressed by **cursors**: opaque strings holding the file's inode and
a byte offset. A byte offset does not move when the file grows, so paging stays
consistent while a service appends to its log; a cursor from before a rotation
(another inode) or a truncation (an offset past the end) is refused with a
message saying to start again.

``logs_search`` reads the file in chunks through the engine, reports progress
(bytes scanned of the bytes to scan) after each chunk when the client asked
for progress, and stops at its next chunk when the request is cancelled.
Patterns are RE2 expressions (linear time in the text, whatever the pattern:
no backtracking blow-up), at most ``settings.max_regex`` characters, and each
chunk is matched in a worker thread, so a search never holds the event loop:
other requests, cancellation and signals are served while it runs.
"""

import asyncio
import base64
import binascii
import bisect
import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec

from mcp_edge.errors import InvalidArgumentsError
from mcp_edge.io import Engine
from mcp_edge.io.beneath import openat2
from mcp_edge.plugin import PluginBase, PluginContext, RequestContext, tool
from mcp_edge.plugin.types import ToolAnnotations

__all__ = ["Logs", "LogsError"]

log = logging.getLogger("mcp_edge.plugins.logs")

PAGE_CAP = 8 << 20  # the most bytes one tail page reads; a longer line is cut there
MAX_LINES = 1000
MAX_MATCHES = 1000
MAX_CARRY = 1 << 20  # a line longer than this is searched in pieces
RE2_MEM = 8 << 20  # RE2's memory budget per pattern (program and DFA cache); past it RE2 falls back, still linear
_READONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)


class LogsError(Exception):
    """Bad input the model can fix (a file outside the allowed paths, a bad cursor or pattern); the message says
    what to do. It becomes a tool result with ``isError``."""


_openat2_works: list[bool] = []


def open_beneath(folder: str, rel: str, flags: int) -> int:
    """Open ``rel`` beneath the real folder ``folder``; OSError(EXDEV) if it leads out of it."""
    if not _openat2_works or _openat2_works[0]:
        dfd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = openat2(dfd, rel, flags)
            if not _openat2_works:
                _openat2_works.append(True)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM) or _openat2_works:
                raise
            _openat2_works.append(False)
            log.warning("logs: openat2 is unavailable (%s): opened files are checked through /proc/self/fd",
                        errno.errorcode.get(exc.errno or 0))
        finally:
            os.close(dfd)
    path = os.path.realpath(os.path.join(folder, rel))
    if not path.startswith(folder.rstrip("/") + "/"):
        raise OSError(errno.EXDEV, "escapes", rel)
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return fd
    if not real.startswith(folder.rstrip("/") + "/"):
        os.close(fd)
        raise OSError(errno.EXDEV, "escapes", rel)
    return fd


# -- cursors -------------------------------------------------------------------------------------------------

_CURSOR = re.compile(r"^(?P<kind>[bfs])\.(?P<ino>\d+)\.(?P<off>\d+)(?:\.(?P<line>\d+))?$")


def _cursor(kind: str, ino: int, off: int, line: int | None = None) -> str:
    raw = f"{kind}.{ino}.{off}" + (f".{line}" if line is not None else "")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str, kinds: str, st: os.stat_result, tool_name: str) -> tuple[str, int, int]:
    """(kind, offset, line) of a cursor made for this file; LogsError if it is malformed, stale or foreign."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    m = _CURSOR.match(raw)
    if m is None or m["kind"] not in kinds:
        raise LogsError(f"invalid cursor {cursor!r}: pass back a cursor that {tool_name} returned, or none")
    if int(m["ino"]) != st.st_ino:
        raise LogsError("the file was rotated or replaced since this cursor was made (another inode): start again "
                        "without a cursor")
    off = int(m["off"])
    if off > st.st_size:
        raise LogsError(f"the file is shorter ({st.st_size} bytes) than the cursor's offset ({off}): it was "
                        f"truncated; start again without a cursor")
    return m["kind"], off, int(m["line"] or 1)


# -- results -------------------------------------------------------------------------------------------------

class LogFile(msgspec.Struct, kw_only=True):
    path: str
    size: int
    mtime: str  # ISO 8601, UTC


class LogList(msgspec.Struct, kw_only=True):
    allowed: list[str]  # the configured paths that exist
    files: list[LogFile]
    total: int
    next_cursor: str | None = None


class TailPage(msgspec.Struct, kw_only=True):
    file: str
    size: int  # the file's size when read
    start: int  # byte offset of the first line
    end: int  # byte offset just after the last whole line
    lines: list[str]
    partial: bool  # the last line has no newline yet (being written): the `newer` page returns it again, whole
    older: str | None  # cursor for the lines before `start`; None when this page starts the file
    newer: str  # cursor for the lines after this page (pass it later to follow the file as it grows)


class Match(msgspec.Struct, kw_only=True):
    line: int  # 1-based
    offset: int  # byte offset of the line
    text: str


class SearchResult(msgspec.Struct, kw_only=True):
    file: str
    size: int  # the file's size when the search started; the scan stops there
    scanned_from: int
    scanned_to: int
    matches: list[Match]
    next_cursor: str | None = None  # set when max_matches was reached: pass it back to go on


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _shown(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


async def _pread(engine: Engine, fd: int, offset: int, n: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (fewer only at EOF), through the engine."""
    buf = bytearray(n)
    mv = memoryview(buf)
    got = 0
    while got < n:
        k = await engine.read(fd, mv[got:], offset + got)
        if k == 0:
            break
        got += k
    mv.release()
    del buf[got:]
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class _Allowed:
    given: str  # as configured, absolute
    real: str  # symbolic links resolved
    folder: bool


class Logs(PluginBase):
    """Tail and search allowed log files."""

    id = "logs"
    capabilities = frozenset({"tools"})

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        await super().initialize(config, ctx)
        paths = [str(p) for p in (config.get("paths") or [])]
        if not paths:  # the system's logs and the runtime's own
            paths = ["/var/log", str(Path(ctx.settings.data_dir) / "logs")]
        self.paths = [os.path.abspath(os.path.expanduser(p)) for p in paths]
        self.chunk_size = int(config.get("chunk_size", 1 << 20))
        self.max_line = int(config.get("max_line", 4096))
        self.max_regex = ctx.settings.max_regex
        ctx.logger.info("logs: allowed paths %s", ", ".join(self.paths))

    # -- access ----------------------------------------------------------------------------------------------

    def _allowed(self) -> list[_Allowed]:
        """The configured paths that exist now (a folder may appear after start)."""
        out = []
        for given in self.paths:
            real = os.path.realpath(given)
            if os.path.isdir(real):
                out.append(_Allowed(given, real, True))
            elif os.path.isfile(real):
                out.append(_Allowed(given, real, False))
        return out

    def _outside(self, file: str) -> LogsError:
        return LogsError(f"{file}: outside the allowed log paths ({', '.join(self.paths)}); logs_list shows the "
                         f"files that can be read")

    def _open(self, file: str) -> tuple[int, str, os.stat_result]:
        """(fd, path shown, stat) of an allowed regular file, opened for reading."""
        if not file or "\0" in file:
            raise LogsError(f"{file!r}: not a file name")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
        allowed = self._allowed()
        fd, shown = -1, file
        try:
            if os.path.isabs(file):
                want = os.path.normpath(file)
                for a in allowed:
                    bases = {a.given, a.real}
                    if not a.folder and want in bases:
                        fd, shown = os.open(a.real, flags | os.O_CLOEXEC), want
                        break
                    if a.folder:
                        base = next((b for b in bases if want.startswith(b.rstrip("/") + "/")), None)
                        if want in bases:
                            raise LogsError(f"{file}: is a folder; logs_list shows the files in it")
                        if base is not None:
                            fd, shown = open_beneath(a.real, want[len(base.rstrip("/")) + 1:], flags), want
                            break
                else:
                    raise self._outside(file)
            else:
                for a in allowed:
                    if not a.folder:
                        continue
                    try:
                        fd = open_beneath(a.real, file, flags)
                    except FileNotFoundError:
                        continue
                    shown = os.path.normpath(os.path.join(a.given, file))
                    break
                else:
                    raise LogsError(f"{file}: not found in the allowed log folders "
                                    f"({', '.join(a.given for a in allowed if a.folder) or 'none exists'})")
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise self._outside(file) from None
            if exc.errno == errno.ENOENT:
                raise LogsError(f"{file}: not found") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise LogsError(f"{file}: permission denied (the runtime's user cannot read it)") from None
            if exc.errno == errno.ELOOP:
                raise LogsError(f"{file}: is a symbolic link or has too many levels of them") from None
            if exc.errno == errno.ENOTDIR:
                raise LogsError(f"{file}: a component of the path is not a folder") from None
            if exc.errno == errno.EAGAIN:  # openat2 retried; renames went on all the while
                raise LogsError(f"{file}: files kept being renamed while the path was resolved; try again") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            what = "a folder; logs_list shows the files in it" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise LogsError(f"{file}: is {what}")
        # opened O_NONBLOCK so that a FIFO cannot block; io_uring on older kernels answers EAGAIN for reads of
        # O_NONBLOCK files not in the page cache, so switch it off again
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd, shown, st

    def _line(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if len(text) > self.max_line:
            return f"{text[:self.max_line]}… [{len(text) - self.max_line} more characters]"
        return text

    # -- tools -----------------------------------------------------------------------------------------------

    @tool(name="logs_list", title="List log files", annotations=_READONLY)
    async def list_files(self, cursor: str | None = None,
                         limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100) -> LogList:
        """The log files that can be read (every regular file under the allowed paths), sorted by path, with
        size and modification time, a page at a time.

        Args:
            cursor: next_cursor of the previous page; none for the first.
            limit: files per page (1 to 1000).
        """
        if not 1 <= limit <= 1000:
            raise LogsError(f"limit must be between 1 and 1000, got {limit}")
        after: str | None = None
        if cursor:
            try:
                if not cursor.startswith("n"):
                    raise ValueError(cursor)
                raw = base64.b64decode(cursor[1:].encode("ascii"), altchars=b"-_", validate=True)
                after = raw.decode("utf-8", "surrogateescape")
            except (binascii.Error, ValueError):
                raise LogsError(f"invalid cursor {cursor!r}: pass back the next_cursor logs_list returned, or "
                                f"none") from None
        allowed = self._allowed()
        files: dict[str, os.stat_result] = {}
        for a in allowed:
            if not a.folder:
                with contextlib.suppress(OSError):
                    files[a.given] = os.stat(a.real)
                continue
            for top, dirs, names in os.walk(a.real):
                dirs.sort()
                shown_top = a.given + top[len(a.real):]
                for name in names:
                    try:
                        st = os.stat(os.path.join(top, name), follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        files[os.path.join(shown_top, name)] = st
        names_sorted = sorted(files)
        first = bisect.bisect_right(names_sorted, after) if after is not None else 0
        page = names_sorted[first:first + limit]
        more = first + limit < len(names_sorted)
        nxt = "n" + base64.urlsafe_b64encode(page[-1].encode("utf-8", "surrogateescape")).decode() if more else None
        return LogList(allowed=[a.given for a in allowed],
                       files=[LogFile(path=_shown(p), size=files[p].st_size, mtime=_iso(files[p].st_mtime_ns))
                              for p in page],
                       total=len(names_sorted), next_cursor=nxt)

    @tool(name="logs_tail", title="Tail a log file", annotations=_READONLY)
    async def tail(self, file: str, lines: Annotated[int, msgspec.Meta(ge=1, le=MAX_LINES)] = 50,
                   cursor: str | None = None) -> TailPage:
        """The last lines of a log file, then older or newer pages by cursor.

        Without a cursor: the last `lines` lines. Pass a page's `older` cursor for the lines before it, its
        `newer` cursor for the lines written after it (stable while the file grows).

        Args:
            file: an absolute path under an allowed path, or a path relative to an allowed folder.
            lines: lines per page (1 to 1000).
            cursor: the older or newer cursor of a previous page.
        """
        if not 1 <= lines <= MAX_LINES:
            raise LogsError(f"lines must be between 1 and {MAX_LINES}, got {lines}")
        fd, shown, st = self._open(file)
        try:
            engine = self.ctx.engine()
            size = st.st_size
            if cursor:
                kind, off, _ = _parse_cursor(cursor, "bf", st, "logs_tail")
            else:
                kind, off = "b", size
            if kind == "b":
                return await self._backward(engine, fd, shown, st, off, lines)
            return await self._forward(engine, fd, shown, st, off, lines)
        finally:
            os.close(fd)

    async def _backward(self, engine: Engine, fd: int, shown: str, st: os.stat_result, end: int,
                        lines: int) -> TailPage:
        """The `lines` lines that end at offset `end`."""
        size = st.st_size
        data = b""
        lo = end
        newlines = 0  # in data[:-1] when data ends at `end` with a newline: that one ends the last line
        block = 64 << 10
        while lo > 0 and newlines < lines and end - lo < PAGE_CAP:
            n = min(block, lo, PAGE_CAP - (end - lo))
            chunk = await _pread(engine, fd, lo - n, n)
            if len(chunk) < n:  # shrank under us
                raise LogsError(f"{shown}: the file was truncated while it was read; start again")
            newlines += chunk.count(b"\n") - (1 if lo == end and chunk.endswith(b"\n") else 0)
            data = chunk + data
            lo -= n
            block = min(block * 2, 1 << 20)
        starts = [lo + i + 1 for i in _newlines(data) if lo + i + 1 < end]
        if lo == 0:
            starts.insert(0, 0)
        first = starts[-lines] if len(starts) >= lines else (starts[0] if starts else lo)
        if end - lo >= PAGE_CAP and len(starts) < lines:
            first = lo  # a line longer than the page cap: cut; the older page holds its head
        segment = data[first - lo:]
        pieces = segment.split(b"\n") if segment else []
        partial = bool(segment) and not segment.endswith(b"\n") and end == size
        if segment.endswith(b"\n"):
            pieces.pop()
        newer = end - len(pieces[-1]) if partial else end
        return TailPage(file=shown, size=size, start=first, end=newer, lines=[self._line(p) for p in pieces],
                        partial=partial, older=_cursor("b", st.st_ino, first) if first > 0 else None,
                        newer=_cursor("f", st.st_ino, newer))

    async def _forward(self, engine: Engine, fd: int, shown: str, st: os.stat_result, start: int,
                       lines: int) -> TailPage:
        """Up to `lines` lines from offset `start` (a line start)."""
        size = os.fstat(fd).st_size  # the file may have grown since the cursor was made: read up to now
        data = b""
        hi = start
        block = 64 << 10
        while hi < size and data.count(b"\n") < lines and hi - start < PAGE_CAP:
            n = min(block, size - hi, PAGE_CAP - (hi - start))
            chunk = await _pread(engine, fd, hi, n)
            if not chunk:
                break
            data += chunk
            hi += len(chunk)
            block = min(block * 2, 1 << 20)
        cut = 0
        for _ in range(lines):
            nl = data.find(b"\n", cut)
            if nl < 0:
                break
            cut = nl + 1
        pieces = data[:cut].split(b"\n")[:-1] if cut else []
        rest = data[cut:]
        partial = False
        end = start + cut
        if len(pieces) < lines and rest and cut == 0 and hi - start >= PAGE_CAP:
            pieces.append(rest)  # one line longer than the page cap: show a piece of it and move past it
            end = start + len(rest)
        elif len(pieces) < lines and rest and hi >= size:
            pieces.append(rest)  # no newline yet: shown now, returned again whole by the newer page
            partial = True
        return TailPage(file=shown, size=size, start=start, end=end, lines=[self._line(p) for p in pieces],
                        partial=partial, older=_cursor("b", st.st_ino, start) if start > 0 else None,
                        newer=_cursor("f", st.st_ino, end))

    @tool(name="logs_search", title="Search a log file", annotations=_READONLY)
    async def search(self, file: str, pattern: str, regex: bool = False, ignore_case: bool = False,
                     max_matches: Annotated[int, msgspec.Meta(ge=1, le=MAX_MATCHES)] = 100, cursor: str | None = None,
                     ctx: RequestContext | None = None) -> SearchResult:
        """Find the lines of a log file that match a pattern, with their line numbers and byte offsets.

        The file is scanned from the start (or the cursor) to its size when the search began; progress is
        reported as bytes scanned, and a cancelled request stops the scan. When max_matches is reached the
        result has a next_cursor: pass it back to go on from there.

        Args:
            file: an absolute path under an allowed path, or a path relative to an allowed folder.
            pattern: the text to find, or with regex=true an RE2 regular expression (Python-like syntax without
                backreferences or look-around; matched per line, ^ and $ at line ends).
            regex: treat pattern as a regular expression.
            ignore_case: match letters in either case.
            max_matches: matches per call (1 to 1000).
            cursor: the next_cursor of a previous call with the same file and pattern.
        """
        if not pattern:
            raise LogsError("pattern is empty: give the text to find (logs_tail reads lines without one)")
        if not 1 <= max_matches <= MAX_MATCHES:
            raise LogsError(f"max_matches must be between 1 and {MAX_MATCHES}, got {max_matches}")
        if len(pattern) > self.max_regex:
            raise InvalidArgumentsError(f"pattern is {len(pattern)} characters, more than max_regex "
                                        f"({self.max_regex}): search for a shorter pattern")
        rx = await asyncio.to_thread(_compile, pattern, regex, ignore_case)
        fd, shown, st = self._open(file)
        try:
            start, line = 0, 1
            if cursor:
                _, start, line = _parse_cursor(cursor, "s", st, "logs_search")
            return await self._scan(fd, shown, st, rx, start, line, max_matches, ctx)
        finally:
            os.close(fd)

    async def _scan(self, fd: int, shown: str, st: os.stat_result, rx: Any, start: int, line: int,
                    max_matches: int, ctx: RequestContext | None) -> SearchResult:
        engine = self.ctx.engine()
        end = st.st_size
        total = end - start
        matches: list[Match] = []
        pos = start  # next byte to read
        base = start  # file offset of carry[0]
        carry = b""
        cont: int | None = None  # where the line goes back to when a long line was cut into pieces
        cont_matched = False  # that line already has its match
        while True:
            if ctx is not None and ctx.cancelled:
                raise asyncio.CancelledError
            if pos < end:
                chunk = await _pread(engine, fd, pos, min(self.chunk_size, end - pos))
                if not chunk:  # shrank under us: scan what was read
                    end = pos
                pos += len(chunk)
                block = carry + chunk
            else:
                block = carry
            last = pos >= end
            cut = len(block) if last else block.rfind(b"\n") + 1
            forced = not last and cut == 0 and len(block) >= MAX_CARRY
            if forced:
                cut = len(block)  # a huge line: searched in pieces, reported once, at its start
            region, carry = block[:cut], block[cut:]
            # Matched in a worker thread: the loop stays free for other requests and signals. A cancelled request
            # stops awaiting at once; the worker ends this chunk (linear time, bounded by the chunk) and no next
            # chunk is started.
            found, stop, tail_matched = await asyncio.to_thread(self._find, region, base, line, rx,
                                                                max_matches - len(matches), cont, cont_matched)
            matches += found
            if stop is not None:
                off, nline = stop
                if forced and off == base + len(region):  # stopped inside a line that goes on: resume after it
                    nxt = await self._line_end(engine, fd, pos, end)
                    off, nline = (end, nline) if nxt is None else (nxt, nline + 1)
                more = off < end
                return SearchResult(file=shown, size=end, scanned_from=start, scanned_to=off, matches=matches,
                                    next_cursor=_cursor("s", st.st_ino, off, nline) if more else None)
            nl = region.rfind(b"\n")
            if forced and nl >= 0:
                cont, cont_matched = base + nl + 1, tail_matched
            elif forced:
                cont, cont_matched = (base if cont is None else cont), cont_matched or tail_matched
            elif region:  # ends with a newline: the next region starts a line
                cont, cont_matched = None, False
            line += region.count(b"\n")
            base += len(region)
            if ctx is not None:
                await ctx.report_progress(pos - start, total, f"{len(matches)} matches in {pos - start} of {total} "
                                                              f"bytes")
            if last:
                return SearchResult(file=shown, size=end, scanned_from=start, scanned_to=base, matches=matches)

    async def _line_end(self, engine: Engine, fd: int, pos: int, end: int) -> int | None:
        """The offset after the next newline at or after ``pos`` (before ``end``), or None."""
        while pos < end:
            chunk = await _pread(engine, fd, pos, min(self.chunk_size, end - pos))
            if not chunk:
                return None
            nl = chunk.find(b"\n")
            if nl >= 0:
                return pos + nl + 1
            pos += len(chunk)
        return None

    def _find(self, region: bytes, base: int, line: int, rx: Any, room: int, first_start: int | None,
              first_matched: bool) -> tuple[list[Match], tuple[int, int] | None, bool]:
        """The matching lines of ``region`` (lines at file offset ``base``, the first numbered ``line``), at most
        ``room`` of them. ``first_start``: the region begins inside a line that began there (a long line cut into
        pieces); ``first_matched``: that line is already reported. Returns (the matches; the (offset, line) to
        resume at once ``room`` matches were found, or None; whether the region's last line, if unterminated,
        matched). Runs in a worker thread; ``rx`` never matches a newline, so each match lies within one line."""
        found: list[Match] = []
        end = len(region)
        cur_line, idx = line, 0  # line number of the line starting at region[idx]
        tail_matched = False
        i = 0
        while i <= end:
            m = rx.search(region, i)
            if m is None:
                break
            ls = region.rfind(b"\n", 0, m.start()) + 1
            le = region.find(b"\n", m.start())
            if le < 0:
                le = end
            if not (ls == 0 and first_matched):
                cur_line += region.count(b"\n", idx, ls)
                idx = ls
                offset = first_start if ls == 0 and first_start is not None else base + ls
                found.append(Match(line=cur_line, offset=offset, text=self._line(region[ls:le])))
                tail_matched = le == end
                if len(found) >= room:
                    nxt = min(le + 1, end)
                    return found, (base + nxt, cur_line + (1 if le < end else 0)), tail_matched
            i = le + 1
        return found, None, tail_matched


def _compile(pattern: str, regex: bool, ignore_case: bool) -> Any:
    """The RE2 matcher of a search (LogsError for a pattern RE2 refuses).

    ``never_nl``: no match spans a newline, so a hit is always within one line and the next search starts
    after that line: the scan of a region is linear however many lines it has.
    """
    import re2  # type: ignore[import-untyped]  # google-re2 (no type information): on first search, not at load

    options = re2.Options()
    options.never_nl = True
    options.case_sensitive = not ignore_case
    options.literal = not regex
    options.log_errors = False  # RE2 would print refused patterns to stderr
    options.max_mem = RE2_MEM
    try:
        rx = re2.compile(f"(?m){pattern}" if regex else pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise LogsError(f"invalid regular expression {pattern!r}: {why} (RE2 syntax: no backreferences or "
                        f"look-around); fix it, or pass regex=false to search for the text as it is") from None
    finally:
        # re2.compile keeps the last 128 patterns with their DFA caches (up to max_mem each): drop them, so that
        # clients cannot pin memory with many patterns; this search holds its own reference.
        re2.purge()
    return rx


def _newlines(data: bytes) -> list[int]:
    """Indexes of the newlines in ``data``."""
    out = []
    i = data.find(b"\n")
    while i >= 0:
        out.append(i)
        i = data.find(b"\n", i + 1)
    return out
