/* wake.c - futex and eventfd wake-ups, the spin decision from affinity masks, peer liveness by pidfd. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm_internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on x86-64 and aarch64 */
#endif

long me_shm_futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    /* Not FUTEX_PRIVATE_FLAG: the word lives in memory other processes map. */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

void me_shm_cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

void me_shm_eventfd_signal(int fd)
{
    uint64_t one = 1;
    /* Non-blocking: EAGAIN only if the counter is near 2^64, and the reader
       wakes anyway then. */
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
}

int64_t me_shm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int me_shm_can_run_apart(pid_t a, pid_t b)
{
    /* Spinning pays only when the other side can run at the same moment on
       another CPU; on one shared CPU it burns the time slice the other side
       needs to make progress. Two masks that together name two CPUs or more
       let both run at once. (On the stack: no allocation, even here.) */
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return 0;
    cpu_set_t sa, sb;
    CPU_ZERO(&sa);
    CPU_ZERO(&sb);
    if (sched_getaffinity(a, sizeof sa, &sa) < 0 || sched_getaffinity(b, sizeof sb, &sb) < 0)
        return errno == EINVAL ? 1 : -errno; /* EINVAL: more CPUs than a cpu_set_t names: many */
    CPU_OR(&sa, &sa, &sb);
    return CPU_COUNT(&sa) >= 2;
}

int me_shm_pidfd_open(pid_t pid)
{
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

int me_shm_pid_alive(int pidfd, pid_t pid)
{
    if (pidfd >= 0) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int n = poll(&p, 1, 0);
        if (n > 0)
            return 0; /* readable: the process has exited */
        if (n == 0)
            return 1;
    }
    if (pid <= 0)
        return 0;
    return kill(pid, 0) == 0 || errno == EPERM;
}
