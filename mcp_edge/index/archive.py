"""Plugin artifacts: a plugin folder packed as a reproducible ``.tar.gz``, unpacked safely, and the digest of a
folder's files (``tree_sha256``) that ties an installed folder to the artifact the index signed.

Packing takes regular files and folders only (``__pycache__``, ``*.pyc`` and names starting with ``.`` left
out; a symbolic link is an error), with fixed owners, times and modes, so the same folder packs to the same
bytes. Unpacking refuses, before anything is written outside the fresh folder it fills: absolute names, ``..``,
links of any kind, devices, FIFOs, a name given twice, more members than ``max_members`` and more bytes than
``max_bytes``; each file is created with ``O_EXCL | O_NOFOLLOW`` beneath that folder. The decompressed tar stream
itself is bounded too (``max_bytes`` plus a header allowance per member), so bytes that no file holds (a huge PAX
header or GNU long name, which tarfile reads whole into memory) are not read past that.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

from mcp_edge.errors import ConfigError, IndexRefused

__all__ = ["pack", "tree_digest", "unpack"]

_SKIP_DIRS: Final = ("__pycache__",)
_SKIP_SUFFIXES: Final = (".pyc", ".pyo")
_CHUNK: Final = 256 * 1024
# What a tar stream may hold beyond its files' bytes: per member a header, a PAX or long-name header and padding;
# once, the end-of-archive blocks, the record padding and the reader's read-ahead.
_MEMBER_ALLOWANCE: Final = 4096
_STREAM_SLACK: Final = 1024 * 1024


class _Capped:
    """A readable stream that refuses to give more than ``cap`` bytes of ``inner`` (the decompressed artifact)."""

    def __init__(self, inner: io.BufferedIOBase, cap: int, where: str) -> None:
        self.inner, self.cap, self.where, self.got = inner, cap, where, 0

    def read(self, size: int = -1) -> bytes:
        want = self.cap + 1 - self.got if size is None or size < 0 else min(size, self.cap + 1 - self.got)
        data = self.inner.read(max(want, 0))
        self.got += len(data)
        if self.got > self.cap:
            raise IndexRefused(f"{self.where}: its tar stream is longer than {self.cap} bytes, more than its files "
                               "may hold (plugin_max_unpacked, plugin_max_members): a decompression bomb or data "
                               "outside the files; refused")
        return data


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIP_DIRS or name.endswith(_SKIP_SUFFIXES)


def _walk(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix name, path) of every folder and file under ``folder`` that goes in, sorted by name."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        for name in [*dirnames, *sorted(f for f in filenames if not _skipped(f))]:
            path = base / name
            out.append((path.relative_to(folder).as_posix(), path))
    return sorted(out)


def pack(folder: Path, out: BinaryIO) -> None:
    """Write ``folder``'s plugin files to ``out`` as a reproducible tar.gz; ConfigError for a link or a special
    file in it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in _walk(folder):
            if _control(rel):
                raise ConfigError(f"{path}: a control character (a newline ...) in a name: rename it")
            st = path.lstat()
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if stat.S_ISDIR(st.st_mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                raise ConfigError(f"{path}: a plugin artifact holds regular files and folders only, not a "
                                  f"{'symbolic link' if stat.S_ISLNK(st.st_mode) else 'special file'}")
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())


def _control(name: str) -> bool:
    """Whether ``name`` holds a control character: a newline would let one name pass for several lines of
    :func:`tree_digest`, so two different trees could share a digest."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def _safe_name(name: str, where: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or name.startswith("/") or path.is_absolute():
        raise IndexRefused(f"{where}: member {name!r} has an absolute path")
    parts = [p for p in path.parts if p != "."]
    if not parts:
        return PurePosixPath(".")
    if any(p == ".." for p in parts):
        raise IndexRefused(f"{where}: member {name!r} climbs out with '..'")
    if any("\\" in p or _control(p) for p in parts):
        raise IndexRefused(f"{where}: member {name!r} has a backslash or a control character (NUL, newline ...) "
                           "in its name")
    return PurePosixPath(*parts)


def unpack(archive: Path, dest: Path, *, max_members: int, max_bytes: int) -> int:
    """Unpack tar.gz ``archive`` into the empty folder ``dest``; the bytes written. IndexRefused for an unsafe
    or oversized archive (what was written so far stays in ``dest``: the caller removes it)."""
    where = f"artifact {archive.name}"
    members = written = 0
    seen: set[PurePosixPath] = set()
    cap = max_bytes + (max_members + 1) * _MEMBER_ALLOWANCE + _STREAM_SLACK
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with gzip.open(archive, "rb") as gz, \
                tarfile.open(fileobj=_Capped(gz, cap, where), mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                members += 1
                if members > max_members:
                    raise IndexRefused(f"{where}: more than {max_members} members (plugin_max_members)")
                rel = _safe_name(member.name, where)
                if member.isdir():
                    if rel != PurePosixPath("."):
                        _mkdirs(root_fd, rel.parts, where)
                    continue
                if not member.isreg():
                    what = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                            else "a FIFO" if member.isfifo() else "a device" if member.isdev() else "not a file")
                    raise IndexRefused(f"{where}: member {member.name!r} is {what}; artifacts hold regular files "
                                       "and folders only")
                if rel == PurePosixPath(".") or rel in seen:
                    raise IndexRefused(f"{where}: member {member.name!r} is named twice or names the top folder")
                seen.add(rel)
                written += member.size
                if written > max_bytes:
                    raise IndexRefused(f"{where}: unpacks to more than {max_bytes} bytes (plugin_max_unpacked)")
                parent = _mkdirs(root_fd, rel.parts[:-1], where) if len(rel.parts) > 1 else os.dup(root_fd)
                try:
                    src = tar.extractfile(member)
                    assert src is not None
                    mode = 0o755 if member.mode & 0o111 else 0o644
                    try:
                        fd = os.open(rel.parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, mode, dir_fd=parent)
                    except FileExistsError:
                        raise IndexRefused(f"{where}: member {member.name!r} names a folder already there (a "
                                           "name given twice, as a folder and as a file)") from None
                    except OSError as exc:
                        raise IndexRefused(f"{where}: member {member.name!r} cannot be created: "
                                           f"{exc.strerror or exc}") from None
                    try:
                        left = member.size
                        while left:
                            chunk = src.read(min(_CHUNK, left))
                            if not chunk:
                                raise IndexRefused(f"{where}: member {member.name!r} is cut short")
                            left -= len(chunk)
                            view = memoryview(chunk)
                            while view:
                                view = view[os.write(fd, view):]
                        os.fchmod(fd, mode)
                    finally:
                        os.close(fd)
                finally:
                    os.close(parent)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise IndexRefused(f"{where}: cannot unpack it (a tar.gz is expected): {exc}") from None
    except OSError as exc:  # (a full disk, say)
        raise IndexRefused(f"{where}: cannot unpack it into {dest}: {exc.strerror or exc}") from None
    finally:
        os.close(root_fd)
    return written


def _mkdirs(root_fd: int, parts: tuple[str, ...], where: str) -> int:
    """An fd of folder ``parts`` beneath ``root_fd``, made as needed, never through a link."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                raise IndexRefused(f"{where}: {'/'.join(parts)} is not a folder it may unpack into") from None
            os.fchmod(nxt, 0o755)  # (whatever the installer's umask: the runtime's user reads it)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def tree_digest(folder: Path) -> str:
    """SHA-256 over every file's name, exec bit, size and SHA-256 and every folder's name (``__pycache__``,
    ``*.pyc`` and dot names left out, as packing does); a link or special file changes it, so it fails a check."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        for name in sorted([*dirnames, *(f for f in filenames if not _skipped(f))]):
            path = base / name
            rel = path.relative_to(folder).as_posix()
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                h.update(f"D {rel}\n".encode())
            elif stat.S_ISREG(st.st_mode):
                fh = hashlib.sha256()
                with path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        fh.update(chunk)
                h.update(f"F {rel} {1 if st.st_mode & 0o111 else 0} {st.st_size} {fh.hexdigest()}\n".encode())
            else:
                h.update(f"O {rel} {stat.S_IFMT(st.st_mode)}\n".encode())
    return h.hexdigest()
