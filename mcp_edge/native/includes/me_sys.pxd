# Declarations of csrc/sys/me_sys.h.
from libc.stdint cimport uint64_t


cdef extern from "sys/me_sys.h" nogil:
    enum:
        ME_SYS_SECCOMP_MAX_DENY
    const uint64_t ME_LL_FS_READ_RIGHTS
    const uint64_t ME_LL_FS_FILE_RIGHTS

    int me_sys_set_pdeathsig(int sig)
    int me_sys_malloc_thresholds(size_t mmap_threshold, size_t trim_threshold)
    int me_sys_get_pdeathsig()
    int me_sys_set_no_new_privs()
    int me_sys_get_no_new_privs()
    int me_sys_landlock_abi()
    uint64_t me_sys_landlock_fs_rights(int abi)
    uint64_t me_sys_landlock_net_rights(int abi)
    int me_sys_landlock_create(uint64_t fs, uint64_t net)
    int me_sys_landlock_allow_path(int ruleset_fd, const char *path, uint64_t rights)
    int me_sys_landlock_restrict(int ruleset_fd)
    const char *me_sys_arch()
    int me_sys_syscall_number(const char *arch, const char *name)
    const char *me_sys_syscall_name(size_t index)
    int me_sys_seccomp_available()
    int me_sys_seccomp_deny(const int *nrs, size_t n, int err)
