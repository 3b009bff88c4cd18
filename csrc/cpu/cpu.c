/* cpu.c - CPU feature detection: cpuid+xgetbv on x86-64, getauxval on aarch64. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "me_cpu.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect(void)
{
    unsigned int a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (c & bit_SSE4_2)
        f |= ME_CPU_SSE42;
    if (c & bit_PCLMUL)
        f |= ME_CPU_PCLMULQDQ;
    int osxsave = (c & bit_OSXSAVE) != 0;
    int avx = (c & bit_AVX) != 0;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_ok = osxsave && avx && (xcr0 & 0x6) == 0x6;      /* SSE + AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;             /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (__get_cpuid_max(0, 0) < 7)
        return f;
    __cpuid_count(7, 0, a, b, c, d);
    if (ymm_ok && (b & bit_AVX2))
        f |= ME_CPU_AVX2;
    if (zmm_ok) {
        if (b & bit_AVX512F)
            f |= ME_CPU_AVX512F;
        if (b & bit_AVX512BW)
            f |= ME_CPU_AVX512BW;
        if (b & bit_AVX512VL)
            f |= ME_CPU_AVX512VL;
    }
    if (ymm_ok && (c & (1u << 10))) /* VPCLMULQDQ */
        f |= ME_CPU_VPCLMULQDQ;
    return f;
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_PMULL
#define HWCAP_PMULL (1 << 4)
#endif
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif

static uint32_t detect(void)
{
    unsigned long hw = getauxval(AT_HWCAP);
    uint32_t f = 0;
    if (hw & HWCAP_ASIMD)
        f |= ME_CPU_ASIMD;
    if (hw & HWCAP_CRC32)
        f |= ME_CPU_CRC32;
    if (hw & HWCAP_PMULL)
        f |= ME_CPU_PMULL;
    if (hw & HWCAP_SVE)
        f |= ME_CPU_SVE;
    return f;
}

#else
static uint32_t detect(void)
{
    return 0;
}
#endif

static const char *const feature_names[ME_CPU_FEATURE_COUNT] = {
    "sse42", "pclmulqdq", "avx2", "avx512f", "avx512bw", "avx512vl", "vpclmulqdq", NULL,
    "asimd", "crc32", "pmull", "sve",
};

static const char *const level_names[ME_LEVEL_COUNT] = {
    [ME_LEVEL_SCALAR] = "scalar", [ME_LEVEL_SSE42] = "sse42",       [ME_LEVEL_AVX2] = "avx2",
    [ME_LEVEL_AVX512] = "avx512", [ME_LEVEL_ARMV8CRC] = "armv8crc", [ME_LEVEL_NEON] = "neon",
};

/* What each level needs; a level of the other architecture can never run. */
#define NEED_SSE42 ME_CPU_SSE42
#define NEED_AVX2 (NEED_SSE42 | ME_CPU_PCLMULQDQ | ME_CPU_AVX2)
#define NEED_AVX512 (NEED_AVX2 | ME_CPU_AVX512F | ME_CPU_AVX512BW | ME_CPU_AVX512VL | ME_CPU_VPCLMULQDQ)
#define NEED_ARMV8CRC ME_CPU_CRC32
#define NEED_NEON (ME_CPU_ASIMD | ME_CPU_CRC32 | ME_CPU_PMULL)

uint32_t me_cpu_features(void)
{
    return detect();
}

const char *me_cpu_feature_name(int bit)
{
    if (bit < 0 || bit >= ME_CPU_FEATURE_COUNT)
        return NULL;
    return feature_names[bit];
}

const char *me_cpu_level_name(int level)
{
    if (level < 0 || level >= ME_LEVEL_COUNT)
        return NULL;
    return level_names[level];
}

int me_cpu_level_from_name(const char *name)
{
    for (int i = 0; i < ME_LEVEL_COUNT; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -EINVAL;
}

/* 1 if a CPU of the given architecture with `f` runs `level`: the one rule the
   dispatcher and the board profiles' check both follow. */
static int level_runnable_with(uint32_t f, int aarch64, int level)
{
    switch (level) {
    case ME_LEVEL_SCALAR:
        return 1;
    case ME_LEVEL_SSE42:
        return !aarch64 && (f & NEED_SSE42) == NEED_SSE42;
    case ME_LEVEL_AVX2:
        return !aarch64 && (f & NEED_AVX2) == NEED_AVX2;
    case ME_LEVEL_AVX512:
        return !aarch64 && (f & NEED_AVX512) == NEED_AVX512;
    case ME_LEVEL_ARMV8CRC:
        return aarch64 && (f & NEED_ARMV8CRC) == NEED_ARMV8CRC;
    case ME_LEVEL_NEON:
        return aarch64 && (f & NEED_NEON) == NEED_NEON;
    default:
        return 0;
    }
}

#if defined(__aarch64__)
#define THIS_ARCH_AARCH64 1
#elif defined(__x86_64__) || defined(_M_X64)
#define THIS_ARCH_AARCH64 0
#else
#define THIS_ARCH_AARCH64 -1 /* neither: only scalar runs */
#endif

int me_cpu_level_runnable(int level)
{
    if (THIS_ARCH_AARCH64 < 0)
        return level == ME_LEVEL_SCALAR;
    return level_runnable_with(detect(), THIS_ARCH_AARCH64, level);
}

int me_cpu_best_level_for(uint32_t features, int aarch64)
{
    int best = ME_LEVEL_SCALAR;
    for (int i = 0; i < ME_LEVEL_COUNT; i++)
        if (level_runnable_with(features, aarch64 != 0, i))
            best = i;
    return best;
}

int me_cpu_best_level(void)
{
    int best = ME_LEVEL_SCALAR;
    for (int i = 0; i < ME_LEVEL_COUNT; i++)
        if (me_cpu_level_runnable(i))
            best = i;
    return best;
}
