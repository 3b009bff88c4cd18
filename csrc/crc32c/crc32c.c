/* crc32c.c - CRC32C dispatch: the kernel table, per-level variants and combine. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "me_crc32c.h"

#include <errno.h>

#include "../cpu/me_cpu.h"
#include "crc32c_internal.h"
#include "crc32c_tables.h"

/* The kernels of this build, lowest level first and, within a level, in the
   order of preference: a level runs the last of its kernels this CPU can run.
   `needs` is what a kernel needs beyond its level (me_cpu.h features). */
static const struct kernel_info {
    const char *name;
    const char *detail;
    int level;
    uint32_t needs;
    me_crc32c_kernel fn;
} kernels[] = {
    {"scalar", "slicing-by-8", ME_LEVEL_SCALAR, 0, me_crc32c_update_scalar},
#if defined(__x86_64__)
    {"sse42", "crc32 x3", ME_LEVEL_SSE42, 0, me_crc32c_update_sse42},
    {"avx2-pclmul", "pclmulqdq + crc32 x3", ME_LEVEL_AVX2, 0, me_crc32c_update_avx2_pclmul},
    {"avx2-vpclmul", "vpclmulqdq-256 + crc32 x3", ME_LEVEL_AVX2, ME_CPU_VPCLMULQDQ, me_crc32c_update_avx2_vpclmul},
    {"avx512", "vpclmulqdq-512", ME_LEVEL_AVX512, 0, me_crc32c_update_avx512},
    {"avx512-fused", "vpclmulqdq-512 + crc32 x3", ME_LEVEL_AVX512, 0, me_crc32c_update_avx512_fused},
#elif defined(__aarch64__)
    {"armv8crc", "crc32c x3", ME_LEVEL_ARMV8CRC, 0, me_crc32c_update_armv8crc},
    {"neon", "pmull + crc32c x3", ME_LEVEL_NEON, 0, me_crc32c_update_armv8},
#endif
};
#define KERNEL_COUNT ((int)(sizeof kernels / sizeof kernels[0]))

/* The dispatch: the kernel me_crc32c() calls, set once at import by
   me_crc32c_set_level(), which also records the kernels this CPU runs (cpuid
   traps to the hypervisor in a VM: it must not run per call). Neither the
   level nor the kernel's index is stored: me_crc32c_active() finds the kernel
   in `update` in the table, so what it reports is what runs. */
static struct {
    me_crc32c_kernel update;
    int probed;
    int runnable[KERNEL_COUNT];
    int of_level[ME_LEVEL_COUNT]; /* the kernel each level runs here, or -1 */
} active = {me_crc32c_update_scalar, 0, {0}, {0}};

static void probe(void)
{
    if (active.probed)
        return;
    uint32_t have = me_cpu_features();
    for (int i = 0; i < ME_LEVEL_COUNT; i++)
        active.of_level[i] = -1;
    for (int k = 0; k < KERNEL_COUNT; k++) {
        const struct kernel_info *ki = &kernels[k];
        active.runnable[k] = me_cpu_level_runnable(ki->level) && (have & ki->needs) == ki->needs;
        if (active.runnable[k])
            active.of_level[ki->level] = k;
    }
    active.probed = 1;
}

int me_crc32c_kernel_count(void)
{
    return KERNEL_COUNT;
}

const char *me_crc32c_kernel_name(int kernel)
{
    return kernel >= 0 && kernel < KERNEL_COUNT ? kernels[kernel].name : NULL;
}

const char *me_crc32c_kernel_detail(int kernel)
{
    return kernel >= 0 && kernel < KERNEL_COUNT ? kernels[kernel].detail : NULL;
}

int me_crc32c_kernel_level(int kernel)
{
    return kernel >= 0 && kernel < KERNEL_COUNT ? kernels[kernel].level : -EINVAL;
}

uint32_t me_crc32c_kernel_needs(int kernel)
{
    return kernel >= 0 && kernel < KERNEL_COUNT ? kernels[kernel].needs : 0;
}

int me_crc32c_kernel_runnable(int kernel)
{
    probe();
    return kernel >= 0 && kernel < KERNEL_COUNT && active.runnable[kernel];
}

uintptr_t me_crc32c_kernel_address(int kernel)
{
    return kernel >= 0 && kernel < KERNEL_COUNT ? (uintptr_t)kernels[kernel].fn : 0;
}

int me_crc32c_level_kernel(int level)
{
    if (level < 0 || level >= ME_LEVEL_COUNT)
        return -EINVAL;
    probe();
    return active.of_level[level] >= 0 ? active.of_level[level] : -ENOTSUP;
}

int me_crc32c_set_level(int level)
{
    int k = me_crc32c_level_kernel(level);
    if (k < 0)
        return k;
    active.update = kernels[k].fn;
    return 0;
}

int me_crc32c_active(void)
{
    me_crc32c_kernel now = active.update;
    for (int k = 0; k < KERNEL_COUNT; k++)
        if (kernels[k].fn == now)
            return k;
    return -1; /* unreachable: `update` is always one of the kernels */
}

int me_crc32c_level(void)
{
    int k = me_crc32c_active();
    return k >= 0 ? kernels[k].level : -1;
}

uintptr_t me_crc32c_active_kernel(void)
{
    return (uintptr_t)active.update;
}

uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~active.update(~crc, (const unsigned char *)buf, len);
}

int me_crc32c_variant(int kernel, uint32_t crc, const void *buf, size_t len, uint32_t *out)
{
    if (kernel < 0 || kernel >= KERNEL_COUNT)
        return -EINVAL;
    if (!me_crc32c_kernel_runnable(kernel))
        return -ENOTSUP;
    *out = ~kernels[kernel].fn(~crc, (const unsigned char *)buf, len);
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
