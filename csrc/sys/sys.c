/* sys.c - process controls: parent-death signal, no_new_privs, Landlock rulesets, a seccomp deny-list filter. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_sys.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The Landlock syscalls have the same numbers on every architecture (the generic table); older libc headers may
 * not name them yet. */
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#define ME_LL_CREATE_RULESET_VERSION (1U << 0)
#define ME_LL_RULE_PATH_BENEATH 1

#if defined(__x86_64__)
#define ME_AUDIT_ARCH AUDIT_ARCH_X86_64
#define ME_ARCH_NAME "x86_64"
#define ME_X32_BIT 0x40000000U /* x32 calls share x86_64's audit arch and set this bit in the number */
#elif defined(__aarch64__)
#define ME_AUDIT_ARCH AUDIT_ARCH_AARCH64
#define ME_ARCH_NAME "aarch64"
#else
#define ME_ARCH_NAME ""
#endif

/* The kernel's struct landlock_ruleset_attr as of ABI 6; the size passed says how much of it this call uses. */
struct me_ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

/* The kernel's struct landlock_path_beneath_attr (packed in the UAPI). */
struct me_ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int me_sys_set_pdeathsig(int sig)
{
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL) == 0 ? 0 : -errno;
}

int me_sys_get_pdeathsig(void)
{
    int sig = 0;
    return prctl(PR_GET_PDEATHSIG, (unsigned long)&sig, 0UL, 0UL, 0UL) == 0 ? sig : -errno;
}

int me_sys_set_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) == 0 ? 0 : -errno;
}

int me_sys_get_no_new_privs(void)
{
    int rc = prctl(PR_GET_NO_NEW_PRIVS, 0UL, 0UL, 0UL, 0UL);
    return rc >= 0 ? rc : -errno;
}

/* ------------------------------------------------------------------------------------------------ Landlock */

int me_sys_landlock_abi(void)
{
    long rc = syscall(__NR_landlock_create_ruleset, NULL, (size_t)0, ME_LL_CREATE_RULESET_VERSION);
    return rc >= 0 ? (int)rc : -errno;
}

uint64_t me_sys_landlock_fs_rights(int abi)
{
    if (abi < 1)
        return 0;
    uint64_t rights = (ME_LL_FS_MAKE_SYM << 1) - 1; /* ABI 1: execute .. make_sym */
    if (abi >= 2)
        rights |= ME_LL_FS_REFER;
    if (abi >= 3)
        rights |= ME_LL_FS_TRUNCATE;
    if (abi >= 5)
        rights |= ME_LL_FS_IOCTL_DEV;
    return rights;
}

uint64_t me_sys_landlock_net_rights(int abi)
{
    return abi >= 4 ? (ME_LL_NET_BIND_TCP | ME_LL_NET_CONNECT_TCP) : 0;
}

int me_sys_landlock_create(uint64_t fs, uint64_t net)
{
    struct me_ll_ruleset_attr attr = {.handled_access_fs = fs, .handled_access_net = net, .scoped = 0};
    /* A kernel older than ABI 4 refuses a larger struct with non-zero bytes it does not know, and accepts the
     * short one; pass only what is used. */
    size_t size = net ? offsetof(struct me_ll_ruleset_attr, scoped)
                      : offsetof(struct me_ll_ruleset_attr, handled_access_net);
    long fd = syscall(__NR_landlock_create_ruleset, &attr, size, 0U);
    return fd >= 0 ? (int)fd : -errno;
}

int me_sys_landlock_allow_path(int ruleset_fd, const char *path, uint64_t rights)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (!S_ISDIR(st.st_mode))
        rights &= ME_LL_FS_FILE_RIGHTS; /* the kernel refuses directory rights on a file */
    struct me_ll_path_beneath rule = {.allowed_access = rights, .parent_fd = fd};
    long rc = syscall(__NR_landlock_add_rule, ruleset_fd, ME_LL_RULE_PATH_BENEATH, &rule, 0U);
    int err = errno;
    close(fd);
    return rc == 0 ? 0 : -err;
}

int me_sys_landlock_restrict(int ruleset_fd)
{
    return syscall(__NR_landlock_restrict_self, ruleset_fd, 0U) == 0 ? 0 : -errno;
}

/* ----------------------------------------------------------------------------------------- syscall numbers */

struct me_syscall_entry {
    const char *name;
    int nr[2]; /* x86_64, aarch64; -1 where absent */
};

/* Sorted by name (the generator writes it so), searched by bisection. */
static const struct me_syscall_entry syscall_table[] = {
#define ME_SYSCALL(name, x86_64, aarch64) {#name, {x86_64, aarch64}},
#include "me_syscalls.h"
#undef ME_SYSCALL
};
#define ME_SYSCALL_COUNT (sizeof(syscall_table) / sizeof(syscall_table[0]))

const char *me_sys_arch(void)
{
    return ME_ARCH_NAME;
}

int me_sys_syscall_number(const char *arch, const char *name)
{
    int column;
    if (strcmp(arch, "x86_64") == 0)
        column = 0;
    else if (strcmp(arch, "aarch64") == 0)
        column = 1;
    else
        return -EINVAL;
    size_t lo = 0, hi = ME_SYSCALL_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, syscall_table[mid].name);
        if (cmp == 0) {
            int nr = syscall_table[mid].nr[column];
            return nr >= 0 ? nr : -ENOSYS;
        }
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -ENOENT;
}

const char *me_sys_syscall_name(size_t index)
{
    return index < ME_SYSCALL_COUNT ? syscall_table[index].name : NULL;
}

/* ----------------------------------------------------------------------------------------------- seccomp */

int me_sys_seccomp_available(void)
{
    unsigned int action = SECCOMP_RET_ERRNO;
    return syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0U, &action) == 0 ? 0 : -errno;
}

#ifdef ME_AUDIT_ARCH
/* Program layout: check the architecture (kill on a foreign one), load the number, [x86_64: kill x32 calls],
 * then one compare-and-return pair per denied number, then allow. Pairs keep every jump offset at 0 or 1, so
 * the 8-bit jump fields never limit the list. */
#define ME_SECCOMP_HEAD 5
int me_sys_seccomp_deny(const int *nrs, size_t n, int err)
{
    if (n > ME_SYS_SECCOMP_MAX_DENY || err < 1 || err > 4095)
        return -EINVAL;
    struct sock_filter prog[ME_SECCOMP_HEAD + 2 * ME_SYS_SECCOMP_MAX_DENY + 1];
    size_t i = 0;
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ME_AUDIT_ARCH, 1, 0);
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef ME_X32_BIT
    prog[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, ME_X32_BIT, 0, 1);
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
    for (size_t k = 0; k < n; k++) {
        if (nrs[k] < 0)
            return -EINVAL;
        prog[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nrs[k], 0, 1);
        prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                 SECCOMP_RET_ERRNO | ((unsigned int)err & SECCOMP_RET_DATA));
    }
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fprog = {.len = (unsigned short)i, .filter = prog};
    /* TSYNC: every thread of the process gets the filter, or none does (the call then returns a thread id). */
    long rc = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
    if (rc == 0)
        return 0;
    return rc > 0 ? -EAGAIN : -errno;
}
#else
int me_sys_seccomp_deny(const int *nrs, size_t n, int err)
{
    (void)nrs;
    (void)n;
    (void)err;
    return -EINVAL; /* no syscall table for this architecture */
}
#endif

int me_sys_malloc_thresholds(size_t mmap_threshold, size_t trim_threshold)
{
#if defined(__GLIBC__)
    if (mmap_threshold > (size_t)INT_MAX || trim_threshold > (size_t)INT_MAX)
        return -EINVAL;
    /* mallopt says 1 when it took a value. A malloc that is not glibc's (a sanitizer's, one preloaded)
       answers 0 or -1: nothing was changed, and the caller is told so. */
    if (mmap_threshold && mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) != 1)
        return -EOPNOTSUPP;
    if (trim_threshold && mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) != 1)
        return -EOPNOTSUPP;
    return 0;
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    return -EOPNOTSUPP;
#endif
}
