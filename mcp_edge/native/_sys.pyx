# cython: language_level=3
"""Process controls the runtime and its workers need, without ctypes: the parent-death signal, no_new_privs,
Landlock rulesets and a seccomp deny-list filter (csrc/sys)."""

import os

from libc.errno cimport EINVAL, ENOENT, ENOSYS, EOPNOTSUPP, EPERM
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from mcp_edge.native._check cimport check
from mcp_edge.native.includes.me_sys cimport (
    ME_LL_FS_FILE_RIGHTS,
    ME_LL_FS_READ_RIGHTS,
    ME_SYS_SECCOMP_MAX_DENY,
    me_sys_arch,
    me_sys_get_no_new_privs,
    me_sys_get_pdeathsig,
    me_sys_landlock_abi,
    me_sys_landlock_allow_path,
    me_sys_landlock_create,
    me_sys_landlock_fs_rights,
    me_sys_landlock_net_rights,
    me_sys_landlock_restrict,
    me_sys_malloc_thresholds,
    me_sys_seccomp_available,
    me_sys_seccomp_deny,
    me_sys_set_no_new_privs,
    me_sys_set_pdeathsig,
    me_sys_syscall_name,
    me_sys_syscall_number,
)

ARCH = me_sys_arch().decode()
LANDLOCK_READ_RIGHTS = ME_LL_FS_READ_RIGHTS
LANDLOCK_FILE_RIGHTS = ME_LL_FS_FILE_RIGHTS
SECCOMP_MAX_DENY = ME_SYS_SECCOMP_MAX_DENY


def set_malloc_thresholds(size_t mmap_threshold, size_t trim_threshold):
    """set_malloc_thresholds(mmap_threshold, trim_threshold) -> bool

    int me_sys_malloc_thresholds(size_t mmap_threshold, size_t trim_threshold)

    Heap allocations below ``mmap_threshold`` bytes, up to ``trim_threshold``
    bytes of free heap kept for reuse (0: leave that one). True when the C
    library took them, False where it has no such knobs (not glibc, or a
    sanitizer's malloc in place of glibc's).
    """
    rc = me_sys_malloc_thresholds(mmap_threshold, trim_threshold)
    if rc == -EOPNOTSUPP:
        return False
    check(rc, "mallopt")
    return True


def set_parent_death_signal(int sig):
    """set_parent_death_signal(sig) -> None

    int me_sys_set_pdeathsig(int sig)

    Have the kernel send ``sig`` to this process when its parent dies (0 turns
    it off). OSError(EINVAL) for a signal number that does not exist.
    """
    check(me_sys_set_pdeathsig(sig), "prctl(PR_SET_PDEATHSIG)")


def parent_death_signal():
    """parent_death_signal() -> int

    int me_sys_get_pdeathsig(void)

    The signal set by set_parent_death_signal, 0 if none.
    """
    return check(me_sys_get_pdeathsig(), "prctl(PR_GET_PDEATHSIG)")


def set_no_new_privs():
    """set_no_new_privs() -> None

    int me_sys_set_no_new_privs(void)

    Set PR_SET_NO_NEW_PRIVS for this process and what it starts: execve can
    no longer grant privileges. It cannot be unset.
    """
    check(me_sys_set_no_new_privs(), "prctl(PR_SET_NO_NEW_PRIVS)")


def no_new_privs():
    """no_new_privs() -> bool

    int me_sys_get_no_new_privs(void)

    Whether PR_SET_NO_NEW_PRIVS is set on this process.
    """
    return check(me_sys_get_no_new_privs(), "prctl(PR_GET_NO_NEW_PRIVS)") == 1


def landlock_abi():
    """landlock_abi() -> int

    int me_sys_landlock_abi(void)

    The kernel's Landlock ABI version (1 or more). OSError(ENOSYS) when the
    kernel was built without Landlock, OSError(EOPNOTSUPP) when it is built in
    but not enabled at boot.
    """
    return check(me_sys_landlock_abi(), "landlock_create_ruleset(VERSION)")


def landlock_fs_rights(int abi):
    """landlock_fs_rights(abi) -> int

    uint64_t me_sys_landlock_fs_rights(int abi)

    Every filesystem right (LANDLOCK_ACCESS_FS_* bits) that ABI ``abi`` handles.
    """
    return me_sys_landlock_fs_rights(abi)


def landlock_net_rights(int abi):
    """landlock_net_rights(abi) -> int

    uint64_t me_sys_landlock_net_rights(int abi)

    TCP bind and connect rights from ABI 4; 0 below it.
    """
    return me_sys_landlock_net_rights(abi)


def landlock_create(uint64_t fs, uint64_t net=0):
    """landlock_create(fs, net=0) -> int

    int me_sys_landlock_create(uint64_t fs, uint64_t net)

    A new ruleset handling the ``fs`` and ``net`` rights (denied unless a rule
    allows them): its file descriptor, which the caller closes.
    """
    return check(me_sys_landlock_create(fs, net), "landlock_create_ruleset")


def landlock_allow_path(int ruleset_fd, path, uint64_t rights):
    """landlock_allow_path(ruleset_fd, path, rights) -> None

    int me_sys_landlock_allow_path(int ruleset_fd, const char *path, uint64_t rights)

    Allow ``rights`` beneath directory ``path``, or on file ``path`` (narrowed
    to the rights a file can have). FileNotFoundError when it does not exist.
    """
    cdef bytes raw = os.fsencode(path)
    cdef const char *c_path = raw
    cdef int rc
    with nogil:
        rc = me_sys_landlock_allow_path(ruleset_fd, c_path, rights)
    check(rc, f"landlock_add_rule({os.fsdecode(raw)!r})")


def landlock_restrict(int ruleset_fd):
    """landlock_restrict(ruleset_fd) -> None

    int me_sys_landlock_restrict(int ruleset_fd)

    Enforce the ruleset on the calling thread and what it starts afterwards.
    Needs no_new_privs. The descriptor stays open.
    """
    check(me_sys_landlock_restrict(ruleset_fd), "landlock_restrict_self")


def syscall_number(str name, str arch=ARCH):
    """syscall_number(name, arch=ARCH) -> int | None

    int me_sys_syscall_number(const char *arch, const char *name)

    The number of syscall ``name`` on ``arch`` ("x86_64" or "aarch64"), None
    when that architecture lacks it (aarch64 has no ``mkdir``, only
    ``mkdirat``). ValueError for a name or architecture the table lacks.
    """
    cdef int rc = me_sys_syscall_number(arch.encode(), name.encode())
    if rc == -ENOSYS:
        return None
    if rc == -ENOENT:
        raise ValueError(f"unknown syscall {name!r}")
    if rc == -EINVAL:
        raise ValueError(f"no syscall table for architecture {arch!r} (known: x86_64, aarch64)")
    return rc


def syscall_names():
    """syscall_names() -> tuple[str, ...]

    const char *me_sys_syscall_name(size_t index)

    Every syscall name the table knows, on either architecture, sorted.
    """
    cdef size_t i = 0
    cdef const char *name
    out = []
    while True:
        name = me_sys_syscall_name(i)
        if name == NULL:
            return tuple(out)
        out.append(name.decode())
        i += 1


def seccomp_probe():
    """seccomp_probe() -> None

    int me_sys_seccomp_available(void)

    Returns when the kernel can install a seccomp filter that returns an
    errno; OSError (ENOSYS, EINVAL) saying why not otherwise.
    """
    check(me_sys_seccomp_available(), "seccomp(GET_ACTION_AVAIL, RET_ERRNO)")


def seccomp_deny(numbers, int err=EPERM):
    """seccomp_deny(numbers, err=EPERM) -> None

    int me_sys_seccomp_deny(const int *nrs, size_t n, int err)

    Install a filter on every thread: the syscalls ``numbers`` (of this
    architecture) fail with ``err``, the rest run; a call through a foreign
    architecture's entry kills the process. Needs no_new_privs. Cannot be
    undone. ValueError for more than SECCOMP_MAX_DENY numbers or a negative one.
    """
    cdef list nrs = [int(n) for n in numbers]
    if len(nrs) > ME_SYS_SECCOMP_MAX_DENY:
        raise ValueError(f"a seccomp filter denies at most {ME_SYS_SECCOMP_MAX_DENY} syscalls, got {len(nrs)}")
    if any(n < 0 for n in nrs):
        raise ValueError("syscall numbers are not negative")
    cdef size_t count = len(nrs)
    cdef int *buf = <int *>malloc((count or 1) * sizeof(int))
    if buf == NULL:
        raise MemoryError()
    cdef size_t i
    try:
        for i in range(count):
            buf[i] = nrs[i]
        check(me_sys_seccomp_deny(buf, count, err), "seccomp(SET_MODE_FILTER)")
    finally:
        free(buf)


cdef extern from "<sys/inotify.h>" nogil:
    int c_inotify_init1 "inotify_init1"(int flags)
    int c_inotify_add_watch "inotify_add_watch"(int fd, const char *path, unsigned int mask)
    int IN_NONBLOCK
    int IN_CLOEXEC
    unsigned int IN_MODIFY
    unsigned int IN_CLOSE_WRITE
    unsigned int IN_CREATE
    unsigned int IN_DELETE
    unsigned int IN_MOVED_FROM
    unsigned int IN_MOVED_TO
    unsigned int IN_ATTRIB
    unsigned int IN_DELETE_SELF
    unsigned int IN_MOVE_SELF
    unsigned int IN_IGNORED
    unsigned int IN_ISDIR
    unsigned int IN_Q_OVERFLOW

cdef extern from "<errno.h>" nogil:
    int errno

IN_CHANGES = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB
INOTIFY_MASKS = {
    "modify": IN_MODIFY, "close_write": IN_CLOSE_WRITE, "create": IN_CREATE, "delete": IN_DELETE,
    "moved_from": IN_MOVED_FROM, "moved_to": IN_MOVED_TO, "attrib": IN_ATTRIB, "delete_self": IN_DELETE_SELF,
    "move_self": IN_MOVE_SELF, "ignored": IN_IGNORED, "isdir": IN_ISDIR, "q_overflow": IN_Q_OVERFLOW,
}


def inotify_init():
    """inotify_init() -> int

    An inotify descriptor, non-blocking and close-on-exec (the caller closes it).
    """
    cdef int fd = c_inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        raise OSError(errno, f"inotify_init1: {os.strerror(errno)}")
    return fd


def inotify_add_watch(int fd, path, unsigned int mask):
    """inotify_add_watch(fd, path, mask) -> int

    Watch ``path`` (a folder or file) for the events in ``mask``; the watch descriptor.
    """
    cdef bytes raw = os.fsencode(path)
    cdef int wd = c_inotify_add_watch(fd, raw, mask)
    if wd < 0:
        raise OSError(errno, f"inotify_add_watch({path!r}): {os.strerror(errno)}", os.fsdecode(raw))
    return wd
