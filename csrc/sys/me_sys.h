/* me_sys.h - small process controls the runtime and its workers need without ctypes (which costs RSS at every
 * start): the parent-death signal, no_new_privs, a Landlock ruleset and a seccomp deny-list filter. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_SYS_H
#define MCP_EDGE_ME_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Landlock filesystem rights (the kernel's LANDLOCK_ACCESS_FS_* bits), spelled out here so that a build against
 * older kernel headers still knows the rights a newer kernel offers; the ABI probe says which ones apply. */
#define ME_LL_FS_EXECUTE     (1ULL << 0)
#define ME_LL_FS_WRITE_FILE  (1ULL << 1)
#define ME_LL_FS_READ_FILE   (1ULL << 2)
#define ME_LL_FS_READ_DIR    (1ULL << 3)
#define ME_LL_FS_REMOVE_DIR  (1ULL << 4)
#define ME_LL_FS_REMOVE_FILE (1ULL << 5)
#define ME_LL_FS_MAKE_CHAR   (1ULL << 6)
#define ME_LL_FS_MAKE_DIR    (1ULL << 7)
#define ME_LL_FS_MAKE_REG    (1ULL << 8)
#define ME_LL_FS_MAKE_SOCK   (1ULL << 9)
#define ME_LL_FS_MAKE_FIFO   (1ULL << 10)
#define ME_LL_FS_MAKE_BLOCK  (1ULL << 11)
#define ME_LL_FS_MAKE_SYM    (1ULL << 12)
#define ME_LL_FS_REFER       (1ULL << 13) /* ABI 2 */
#define ME_LL_FS_TRUNCATE    (1ULL << 14) /* ABI 3 */
#define ME_LL_FS_IOCTL_DEV   (1ULL << 15) /* ABI 5 */
/* Rights that apply to a file (not a directory) in a path rule. */
#define ME_LL_FS_FILE_RIGHTS (ME_LL_FS_EXECUTE | ME_LL_FS_WRITE_FILE | ME_LL_FS_READ_FILE | ME_LL_FS_TRUNCATE \
                              | ME_LL_FS_IOCTL_DEV)
/* What a read-only path allows: read files and list directories, and run programs found there. */
#define ME_LL_FS_READ_RIGHTS (ME_LL_FS_EXECUTE | ME_LL_FS_READ_FILE | ME_LL_FS_READ_DIR)
/* Landlock network rights (ABI 4): TCP bind and connect. */
#define ME_LL_NET_BIND_TCP    (1ULL << 0)
#define ME_LL_NET_CONNECT_TCP (1ULL << 1)

/* Deliver signal `sig` to this process when its parent dies (0 turns it off). 0 or -errno. */
int me_sys_set_pdeathsig(int sig);

/* The signal set by me_sys_set_pdeathsig (0 if none), or -errno. */
int me_sys_get_pdeathsig(void);

/* Set PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (setuid bits, file capabilities); it cannot be
 * unset. Landlock and an unprivileged seccomp filter need it. 0 or -errno. */
int me_sys_set_no_new_privs(void);

/* 1 when no_new_privs is set, 0 when not, or -errno. */
int me_sys_get_no_new_privs(void);

/* The kernel's Landlock ABI version (>= 1), or -ENOSYS (a kernel built without it) or -EOPNOTSUPP (built in but
 * not enabled at boot: the lsm= list lacks it). */
int me_sys_landlock_abi(void);

/* Every filesystem right Landlock ABI `abi` handles (0 for abi < 1). */
uint64_t me_sys_landlock_fs_rights(int abi);

/* Every network right Landlock ABI `abi` handles (0 below ABI 4). */
uint64_t me_sys_landlock_net_rights(int abi);

/* A new ruleset handling `fs` and `net` rights (anything handled is denied unless a rule allows it): its file
 * descriptor (close-on-exec), or -errno. */
int me_sys_landlock_create(uint64_t fs, uint64_t net);

/* Allow `rights` beneath `path` (a directory) or on it (a file: the rights are narrowed to those that apply to a
 * file). 0 or -errno (-ENOENT when the path does not exist). */
int me_sys_landlock_allow_path(int ruleset_fd, const char *path, uint64_t rights);

/* Enforce the ruleset on the calling thread (and the threads and processes it starts afterwards); it cannot be
 * undone. Needs no_new_privs (or CAP_SYS_ADMIN). 0 or -errno. The descriptor stays open. */
int me_sys_landlock_restrict(int ruleset_fd);

/* The architecture this build targets, as the syscall table names it: "x86_64" or "aarch64" ("" elsewhere). */
const char *me_sys_arch(void);

/* The number of syscall `name` on `arch` ("x86_64", "aarch64"): >= 0, -ENOENT for a name the table lacks,
 * -ENOSYS for a syscall that architecture does not have, -EINVAL for an unknown architecture. */
int me_sys_syscall_number(const char *arch, const char *name);

/* The name of the `index`th syscall of the table (sorted by name), or NULL past its end. */
const char *me_sys_syscall_name(size_t index);

/* 0 when the kernel can install a seccomp filter returning an errno, else -errno (-ENOSYS, -EINVAL). */
int me_sys_seccomp_available(void);

/* Most syscalls one deny-list filter may name (the BPF program stays far below the kernel's 4096 instructions). */
#define ME_SYS_SECCOMP_MAX_DENY 512

/* Install a seccomp filter on every thread of the process: syscalls `nrs[0..n)` of this architecture fail with
 * `err` (an errno, 1..4095), every other syscall runs; a syscall made through another architecture's entry
 * (a 32-bit call on a 64-bit kernel, x32 on x86_64) kills the process, since the numbers would not match.
 * Needs no_new_privs (or CAP_SYS_ADMIN). 0, -EINVAL for bad arguments or an unsupported architecture, -errno. */
int me_sys_seccomp_deny(const int *nrs, size_t n, int err);

/* Keep freed heap memory for reuse: allocations below `mmap_threshold` bytes come from the heap, and up to
 * `trim_threshold` bytes free at its top stay mapped (glibc mallopt; a 0 leaves that one as it is). Without
 * it, a process that moves messages of a few MiB maps and faults fresh pages for each (glibc's dynamic
 * thresholds trim them back between messages). 0, -EOPNOTSUPP where the C library has no such knobs (musl)
 * or the malloc in use is not glibc's (a sanitizer's), -EINVAL past INT_MAX. */
int me_sys_malloc_thresholds(size_t mmap_threshold, size_t trim_threshold);

#endif /* MCP_EDGE_ME_SYS_H */
