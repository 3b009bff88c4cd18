"""openat2(2) with RESOLVE_BENEATH: open a path that the kernel keeps inside a folder.

Python has no binding for openat2, so this goes through ``syscall``; plugins that
confine clients to a folder (fs, logs) share it.
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = ["EAGAIN_RETRIES", "RESOLVE_BENEATH", "RESOLVE_NO_MAGICLINKS", "SYS_OPENAT2", "openat2"]

SYS_OPENAT2 = 437  # the same number on every architecture with the unified syscall table (x86-64, aarch64, ...)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
# With RESOLVE_BENEATH the kernel answers EAGAIN for a path with '..' when any rename on the machine ran during
# the lookup (it cannot then prove the '..' stayed inside); openat2(2) says to retry. Renames are short, so a
# few retries suffice; the bound keeps a machine that renames without pause from spinning a caller forever.
EAGAIN_RETRIES = 64


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def openat2(dirfd: int, path: str, flags: int, resolve: int = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) -> int:
    """openat2(2): a new fd (O_CLOEXEC added), or OSError with the kernel's errno (ENOSYS where it has none).

    EAGAIN under RESOLVE_BENEATH for a path with ``..`` (a rename raced the lookup) is retried up to
    ``EAGAIN_RETRIES`` times; any other EAGAIN (a file lease, O_NONBLOCK) is raised as it came.
    """
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    raw = os.fsencode(path)
    again = 0
    while True:
        fd = _syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(raw), ctypes.byref(how),
                      ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EAGAIN and resolve & RESOLVE_BENEATH and b".." in raw:
            again += 1
            if again <= EAGAIN_RETRIES:
                continue
            raise OSError(err, f"files were being renamed all the while this path was resolved ({again} tries); "
                               f"try again", path)
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err), path)
