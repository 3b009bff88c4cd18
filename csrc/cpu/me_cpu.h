/* me_cpu.h - CPU feature detection and the ISA levels the kernels dispatch on. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_CPU_H
#define MCP_EDGE_ME_CPU_H

#include <stdint.h>

/* Feature bits reported by me_cpu_features(). */
#define ME_CPU_SSE42      (1u << 0)
#define ME_CPU_PCLMULQDQ  (1u << 1)
#define ME_CPU_AVX2       (1u << 2)
#define ME_CPU_AVX512F    (1u << 3)
#define ME_CPU_AVX512BW   (1u << 4)
#define ME_CPU_AVX512VL   (1u << 5)
#define ME_CPU_VPCLMULQDQ (1u << 6)
#define ME_CPU_ASIMD      (1u << 8)
#define ME_CPU_CRC32      (1u << 9)
#define ME_CPU_PMULL      (1u << 10)
#define ME_CPU_SVE        (1u << 11)
#define ME_CPU_FEATURE_COUNT 12

/* ISA levels, numbered in the order of each architecture's levels: on x86-64
   scalar < sse42 < avx2 < avx512, on aarch64 scalar < armv8crc < neon (a level
   of the other architecture is never runnable). Lists of levels, and the best
   level, follow these numbers: a new level goes where it ranks. The numbers
   live only in a running process (names cross every boundary). */
#define ME_LEVEL_SCALAR   0
#define ME_LEVEL_SSE42    1
#define ME_LEVEL_AVX2     2
#define ME_LEVEL_AVX512   3
#define ME_LEVEL_ARMV8CRC 4
#define ME_LEVEL_NEON     5
#define ME_LEVEL_COUNT    6

/* Features of this CPU that the OS also enables (xgetbv checked on x86). */
uint32_t me_cpu_features(void);

/* Name of feature bit `bit` (0..ME_CPU_FEATURE_COUNT-1), or NULL if unused. */
const char *me_cpu_feature_name(int bit);

/* Name of a level, or NULL when out of range. */
const char *me_cpu_level_name(int level);

/* Level number of `name`, or -EINVAL when no such level exists. */
int me_cpu_level_from_name(const char *name);

/* 1 if this CPU can run `level`, 0 if not (levels of another arch are 0). */
int me_cpu_level_runnable(int level);

/* The highest level a CPU with the feature bits `features` would run, on
   aarch64 when `aarch64` is nonzero, else on x86-64: the dispatcher's rule,
   for a CPU other than this one (the board profiles' expected levels). */
int me_cpu_best_level_for(uint32_t features, int aarch64);

/* The highest level this CPU can run. */
int me_cpu_best_level(void);

#endif /* MCP_EDGE_ME_CPU_H */
