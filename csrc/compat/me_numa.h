/* me_numa.h - libnuma when the build has it (ME_HAVE_NUMA 1), stubs that say ENOSYS when not. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_NUMA_H
#define MCP_EDGE_ME_NUMA_H

#include <errno.h>
#include <stddef.h>

#if defined(__has_include)
#if __has_include(<numaif.h>) && __has_include(<numa.h>)
#define ME_HAVE_NUMA 1
#endif
#endif
#ifndef ME_HAVE_NUMA
#define ME_HAVE_NUMA 0
#endif

#if ME_HAVE_NUMA
#include <numa.h>
#include <numaif.h>

/* Whether the kernel has NUMA support (libnuma's numa_available). */
static inline int me_numa_kernel(void)
{
    return numa_available() >= 0;
}

/* Bind [p, p+len) (page aligned) to node with MPOL_BIND, before its pages are
   touched. 0 or -errno. */
static inline int me_numa_bind(void *p, size_t len, int node)
{
    unsigned long mask[16] = {0};
    const unsigned long bits = 8 * sizeof(unsigned long);
    if (node < 0 || (unsigned long)node >= bits * 16)
        return -EINVAL;
    mask[node / bits] = 1UL << (node % bits);
    return mbind(p, len, MPOL_BIND, mask, bits * 16, 0) ? -errno : 0;
}
#else
static inline int me_numa_kernel(void)
{
    return 0;
}

static inline int me_numa_bind(void *p, size_t len, int node)
{
    (void)p, (void)len, (void)node;
    return -ENOSYS;
}
#endif

#endif /* MCP_EDGE_ME_NUMA_H */
