"""O_DIRECT alignment: what a file's filesystem needs, the check before submitting, and ``open_direct``.

The alignment of an open file comes from ``statx(STATX_DIOALIGN)`` where the
kernel and the filesystem report it, else from the logical block size of the
block device under it (``/sys/dev/block/<maj>:<min>``, a partition's parent
when needed), else 4096. It is cached per filesystem (``st_dev``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_edge.errors import DirectIOAlignmentError
from mcp_edge.native._dio import AlignedBuffer, PoolBuffer, dio_alignment

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_ALIGNMENT",
    "O_DIRECT",
    "Alignment",
    "alignment_problems",
    "buffer_address",
    "check_direct",
    "check_direct_batch",
    "direct_fallbacks",
    "file_alignment",
    "is_direct",
    "mount_of",
    "open_direct",
    "surely_aligned",
]

log = logging.getLogger("mcp_edge.io")

DEFAULT_ALIGNMENT = 4096
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


@dataclass(frozen=True, slots=True)
class Alignment:
    """What O_DIRECT needs on one filesystem: buffer address alignment and file offset/length alignment."""

    mem: int
    offset: int
    source: str  # "statx", "blockdev" or "default"

    def describe(self) -> str:
        where = {
            "statx": "statx STATX_DIOALIGN",
            "blockdev": "the block device's logical block size",
            "default": "default: the filesystem reports none",
        }.get(self.source, self.source)
        return f"memory {self.mem} B, offset and length {self.offset} B ({where})"


_by_dev: dict[int, Alignment] = {}
_lock = threading.Lock()
_strictest = DEFAULT_ALIGNMENT  # the largest alignment any filesystem probed so far asked for (4096 at least)


def _logical_block_size(dev: int) -> int | None:
    base = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    for queue in (base / "queue", base.resolve().parent / "queue"):  # a partition's queue is its disk's
        try:
            size = int((queue / "logical_block_size").read_text())
        except (OSError, ValueError):
            continue
        if size > 0:
            return size
    return None


def _probe(fd: int, dev: int) -> Alignment:
    try:
        got = dio_alignment(fd)
    except OSError:
        got = None
    if got is not None and got[0] > 0 and got[1] > 0:
        return Alignment(got[0], got[1], "statx")
    lbs = _logical_block_size(dev)
    if lbs is not None:
        return Alignment(lbs, lbs, "blockdev")
    return Alignment(DEFAULT_ALIGNMENT, DEFAULT_ALIGNMENT, "default")


def file_alignment(fd: int) -> Alignment:
    """The O_DIRECT alignment of the filesystem that holds open file ``fd`` (cached per filesystem)."""
    dev = os.fstat(fd).st_dev
    hit = _by_dev.get(dev)
    if hit is None:
        hit = _probe(fd, dev)
        global _strictest
        with _lock:
            _by_dev[dev] = hit
            _strictest = max(_strictest, hit.mem, hit.offset)
    return hit


def surely_aligned(buffers: Sequence[Buffer], offset: int) -> bool:
    """True when ``buffers`` (AlignedBuffer or PoolBuffer only) and ``offset`` meet every O_DIRECT alignment
    seen so far and 4096: no system call, no formatting. False means "check properly", not "misaligned".

    A filesystem never probed that wants more than that would refuse the operation with EINVAL, which the
    engines turn into the same DirectIOAlignmentError (marked as the kernel's verdict).
    """
    align = _strictest
    if offset % align:
        return False
    for buf in buffers:
        if type(buf) is not PoolBuffer and type(buf) is not AlignedBuffer:
            return False
        if buf.address % align or buf.size % align:
            return False
    return True


def is_direct(fd: int) -> bool:
    """Whether ``fd`` is open with O_DIRECT (``fcntl(F_GETFL)``); False for a closed fd."""
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT) if O_DIRECT else False
    except OSError:
        return False


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def buffer_address(obj: Buffer) -> int:
    """Address of the first byte of a C-contiguous buffer (read-only ones too), without copying."""
    if isinstance(obj, (AlignedBuffer, PoolBuffer)):
        return obj.address
    view = _PyBuffer()
    _get_buffer(obj, ctypes.byref(view), 0)  # PyBUF_SIMPLE: contiguous bytes, read-only allowed
    try:
        return view.buf or 0
    finally:
        _release_buffer(ctypes.byref(view))


def _nbytes(obj: Buffer) -> int:
    if isinstance(obj, (AlignedBuffer, PoolBuffer)):
        return obj.size
    with memoryview(obj) as mv:
        return mv.nbytes


def alignment_problems(align: Alignment, buffers: Sequence[Buffer], offset: int) -> list[str]:
    """What in (buffers, offset) breaks ``align``: empty when all is aligned."""
    problems = []
    if offset % align.offset:
        problems.append(f"file offset {offset} is not a multiple of {align.offset}")
    for i, buf in enumerate(buffers):
        which = "buffer" if len(buffers) == 1 else f"buffer {i}"
        n = _nbytes(buf)
        if n % align.offset:
            problems.append(f"{which} length {n} is not a multiple of {align.offset}")
        addr = buffer_address(buf)
        if addr % align.mem:
            problems.append(f"{which} address {addr:#x} is not a multiple of {align.mem}")
    return problems


def alignment_error(what: str, align: Alignment, problems: Sequence[str], *, certain: bool = True) -> OSError:
    """The DirectIOAlignmentError for operation ``what`` (e.g. "read of 4096 bytes at offset 1 on fd 7")."""
    if problems:
        detail = "; ".join(problems)
    else:
        detail = ("the kernel refused it (EINVAL) though buffer and offset meet that alignment: the device "
                  "may need a stricter one")
    msg = (f"{what}: O_DIRECT needs the buffer address aligned to {align.mem} bytes and the file offset and "
           f"length to {align.offset} bytes [{align.describe()}]; {detail}. Use an AlignedBuffer or a pool "
           f"buffer and aligned offsets, or open the file without O_DIRECT")
    if not certain:
        msg += " (the kernel said EINVAL)"
    exc = DirectIOAlignmentError(errno.EINVAL, msg)
    exc.problems = tuple(problems)
    exc.mem_align, exc.offset_align = align.mem, align.offset
    return exc


def check_direct(what: str, fd: int, buffers: Sequence[Buffer], offset: int) -> None:
    """Raise DirectIOAlignmentError before submitting when ``fd`` is O_DIRECT and something is misaligned."""
    if not is_direct(fd):
        return
    try:
        align = file_alignment(fd)
    except OSError:
        return
    problems = alignment_problems(align, buffers, offset)
    if problems:
        raise alignment_error(what, align, problems)


def check_direct_batch(fd: int, buffers: Sequence[Buffer], offsets: Sequence[int],
                       what: Callable[[int], str]) -> bool:
    """check_direct for a batch of reads or writes: one fcntl and one fstat, each distinct buffer checked once,
    the offsets in a plain loop; ``what(i)`` names operation i, built only when it is the one misaligned.

    Returns whether ``fd`` is O_DIRECT (so the caller need not ask again).
    """
    if not is_direct(fd):
        return False
    try:
        align = file_alignment(fd)
    except OSError:
        return True
    bad = next((i for i, off in enumerate(offsets) if off % align.offset), None)
    if bad is None:
        seen: set[int] = set()
        for i, buf in enumerate(buffers):
            if id(buf) not in seen:  # the list holds the buffers, so ids are not reused meanwhile
                seen.add(id(buf))
                if alignment_problems(align, (buf,), 0):
                    bad = i
                    break
    if bad is not None:
        raise alignment_error(what(bad), align, alignment_problems(align, (buffers[bad],), offsets[bad]))
    return True


# -- open_direct and its fallback -----------------------------------------------------------------------------

_fallbacks: dict[int, tuple[str, str]] = {}  # st_dev -> (mount point, fs type) where O_DIRECT was refused


def mount_of(dev: int) -> tuple[str, str]:
    """(mount point, filesystem type) of the filesystem with device number ``dev``, from mountinfo."""
    want = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return "?", "unknown"
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and fields[2] == want and right:
            return fields[4].replace("\\040", " "), right.split()[0]
    return "?", "unknown"


def direct_fallbacks() -> dict[str, str]:
    """Filesystems (mount point -> type) where this process found O_DIRECT refused and used buffered I/O."""
    return dict(_fallbacks.values())


def _note_fallback(fd: int, path: str | os.PathLike[str]) -> None:
    dev = os.fstat(fd).st_dev
    if dev in _fallbacks:
        return
    mount, fstype = mount_of(dev)
    with _lock:
        if dev in _fallbacks:
            return
        _fallbacks[dev] = (mount, fstype)
    log.warning("O_DIRECT is refused by the %s filesystem at %s (opening %s): files there use buffered I/O",
                fstype, mount, os.fspath(path))


def open_direct(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> tuple[int, bool]:
    """Open ``path`` with O_DIRECT; where the filesystem refuses it (EINVAL), open it buffered instead.

    Returns (fd, direct). The fallback is logged once per filesystem and listed
    by ``direct_fallbacks()``. O_CLOEXEC is always added. With O_CREAT|O_EXCL,
    a refused O_DIRECT open has already created the file (the kernel checks
    O_DIRECT after creating it), so the buffered retry drops O_EXCL: the file
    did not exist before, else the first open would have failed with EEXIST.
    """
    flags |= os.O_CLOEXEC
    if not O_DIRECT:
        return os.open(path, flags, mode), False
    try:
        return os.open(path, flags | O_DIRECT, mode), True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    if flags & os.O_CREAT and flags & os.O_EXCL:
        flags &= ~os.O_EXCL
    fd = os.open(path, flags, mode)
    try:
        _note_fallback(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, False
