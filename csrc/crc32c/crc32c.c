/* crc32c.c - CRC32C dispatch: the kernel table, per-level variants and combine. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "me_crc32c.h"

#include <errno.h>

#include "../cpu/me_cpu.h"
#include "crc32c_internal.h"
#include "crc32c_tables.h"

/* The kernel of each level in this build; NULL where the build has none. */
static const me_crc32c_kernel kernels[ME_LEVEL_COUNT] = {
    [ME_LEVEL_SCALAR] = me_crc32c_update_scalar,
#if defined(__x86_64__)
    [ME_LEVEL_SSE42] = me_crc32c_update_sse42,
    [ME_LEVEL_AVX2] = me_crc32c_update_avx2,
    [ME_LEVEL_AVX512] = me_crc32c_update_avx512,
#elif defined(__aarch64__)
    [ME_LEVEL_NEON] = me_crc32c_update_armv8,
#endif
};

/* The dispatch: the kernel me_crc32c() calls, set once at import by
   me_crc32c_set_level(), which also records the kernels this CPU runs (cpuid
   traps to the hypervisor in a VM: it must not run per call). The level is
   not stored: me_crc32c_level() finds the level of the kernel in `update`, so
   what it reports is what runs. */
static struct {
    me_crc32c_kernel update;
    int probed;
    me_crc32c_kernel runnable[ME_LEVEL_COUNT];
} active = {me_crc32c_update_scalar, 0, {me_crc32c_update_scalar}};

static void probe(void)
{
    if (active.probed)
        return;
    for (int i = 0; i < ME_LEVEL_COUNT; i++)
        active.runnable[i] = (kernels[i] && me_cpu_level_runnable(i)) ? kernels[i] : NULL;
    active.probed = 1;
}

static int kernel_for(int level, me_crc32c_kernel *out)
{
    if (level < 0 || level >= ME_LEVEL_COUNT)
        return -EINVAL;
    if (!active.runnable[level])
        return -ENOTSUP;
    *out = active.runnable[level];
    return 0;
}

int me_crc32c_set_level(int level)
{
    me_crc32c_kernel k;
    probe();
    int rc = kernel_for(level, &k);
    if (rc < 0)
        return rc;
    active.update = k;
    return 0;
}

int me_crc32c_level(void)
{
    me_crc32c_kernel now = active.update;
    for (int i = 0; i < ME_LEVEL_COUNT; i++)
        if (kernels[i] && kernels[i] == now)
            return i;
    return -1; /* unreachable: `update` is always one of the kernels */
}

uintptr_t me_crc32c_active_kernel(void)
{
    return (uintptr_t)active.update;
}

uintptr_t me_crc32c_level_kernel(int level)
{
    if (level < 0 || level >= ME_LEVEL_COUNT)
        return 0;
    return (uintptr_t)kernels[level];
}

uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~active.update(~crc, (const unsigned char *)buf, len);
}

int me_crc32c_variant(int level, uint32_t crc, const void *buf, size_t len, uint32_t *out)
{
    me_crc32c_kernel k;
    int rc = kernel_for(level, &k);
    if (rc < 0)
        return rc;
    *out = ~k(~crc, (const unsigned char *)buf, len);
    return 0;
}

/* a * b mod P, reflected. */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0)
                break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ 0x82f63b78u : b >> 1;
    }
    return p;
}

uint32_t me_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    uint32_t op = 1u << 31; /* x^0 */
    for (int k = 0; len_b; k++, len_b >>= 1)
        if (len_b & 1)
            op = multmodp(me_crc32c_x2n_bytes[k], op);
    return multmodp(op, crc_a) ^ crc_b;
}
