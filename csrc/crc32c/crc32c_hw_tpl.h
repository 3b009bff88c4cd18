/* crc32c_hw_tpl.h - CRC32C with the crc32 instruction, three interleaved streams. */
/* SPDX-License-Identifier: Apache-2.0 */
/* Included by each kernel file that has the instruction (sse42, avx2, avx512,
   armv8); each instantiates it under its own target flags. */
#ifndef MCP_EDGE_CRC32C_HW_TPL_H
#define MCP_EDGE_CRC32C_HW_TPL_H

#include <string.h>

#include "crc32c_tables.h"

/* hw_state: a stream's state in the loops, the width the instruction works
   in (a 32-bit state kept in a 64-bit register on x86-64 spares the compiler a
   zero-extending move per instruction: the upper half is always 0). */
#if defined(__x86_64__)
#include <nmmintrin.h>
typedef uint64_t hw_state;
#define ME_CRC_STEP(c, v) _mm_crc32_u64((c), (v))
#define ME_CRC_U64(c, v) ((uint32_t)_mm_crc32_u64((c), (v)))
#define ME_CRC_U8(c, v) _mm_crc32_u8((c), (v))
#elif defined(__aarch64__)
#include <arm_acle.h>
typedef uint32_t hw_state;
#define ME_CRC_STEP(c, v) __crc32cd((c), (v))
#define ME_CRC_U64(c, v) __crc32cd((c), (v))
#define ME_CRC_U8(c, v) __crc32cb((c), (v))
#endif

static inline uint64_t hw_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Multiply a raw state by x^(8*block) through a four-lane table. */
static inline uint32_t hw_shift(const uint32_t t[4][256], uint32_t s)
{
    return t[0][s & 0xff] ^ t[1][(s >> 8) & 0xff] ^ t[2][(s >> 16) & 0xff] ^ t[3][s >> 24];
}

/* One stream, 8 bytes per instruction: best below a few hundred bytes. */
static inline uint32_t hw_update_1way(uint32_t s32, const unsigned char *p, size_t n)
{
    hw_state s = s32;
    while (n >= 8) {
        s = ME_CRC_STEP(s, hw_load64(p));
        p += 8;
        n -= 8;
    }
    s32 = (uint32_t)s;
    while (n--)
        s32 = ME_CRC_U8(s32, *p++);
    return s32;
}

/* Three streams of BLOCK bytes each, then the merge: the first stream's state
   times x^(16*BLOCK) (TABLE2), the second's times x^(8*BLOCK) (TABLE), the
   third's as is. The two table lookups run side by side, so the next round's
   first stream waits for one lookup, not two in a row. */
#define HW_3WAY(BLOCK, TABLE, TABLE2)                                   \
    while (n >= 3 * (BLOCK)) {                                          \
        hw_state c0 = s, c1 = 0, c2 = 0;                                \
        const unsigned char *end = p + (BLOCK);                         \
        do {                                                            \
            c0 = ME_CRC_STEP(c0, hw_load64(p));                         \
            c1 = ME_CRC_STEP(c1, hw_load64(p + (BLOCK)));               \
            c2 = ME_CRC_STEP(c2, hw_load64(p + 2 * (BLOCK)));           \
            c0 = ME_CRC_STEP(c0, hw_load64(p + 8));                     \
            c1 = ME_CRC_STEP(c1, hw_load64(p + (BLOCK) + 8));           \
            c2 = ME_CRC_STEP(c2, hw_load64(p + 2 * (BLOCK) + 8));       \
            p += 16;                                                    \
        } while (p < end);                                              \
        s = hw_shift(TABLE2, (uint32_t)c0) ^ hw_shift(TABLE, (uint32_t)c1) ^ (uint32_t)c2; \
        p += 2 * (BLOCK);                                               \
        n -= 3 * (BLOCK);                                               \
    }

_Static_assert(ME_CRC32C_LONG_BLOCK % 16 == 0 && ME_CRC32C_MID_BLOCK % 16 == 0 && ME_CRC32C_SHORT_BLOCK % 16 == 0 &&
                   ME_CRC32C_TINY_BLOCK % 16 == 0,
               "HW_3WAY takes 16 bytes per stream per iteration");

/* Rounds of the largest tier that fits, then the smaller ones (crc32c_tune.h),
   so that at most 3 * TINY_BLOCK - 1 bytes are left to a single stream. */
static inline uint32_t hw_update(uint32_t s, const unsigned char *p, size_t n)
{
    if (n >= 3 * ME_CRC32C_TINY_BLOCK) {
        while (n && ((uintptr_t)p & 7)) {
            s = ME_CRC_U8(s, *p++);
            n--;
        }
        HW_3WAY(ME_CRC32C_LONG_BLOCK, me_crc32c_shift_long, me_crc32c_shift2_long)
        HW_3WAY(ME_CRC32C_MID_BLOCK, me_crc32c_shift_mid, me_crc32c_shift2_mid)
        HW_3WAY(ME_CRC32C_SHORT_BLOCK, me_crc32c_shift_short, me_crc32c_shift2_short)
        HW_3WAY(ME_CRC32C_TINY_BLOCK, me_crc32c_shift_tiny, me_crc32c_shift2_tiny)
    }
    return hw_update_1way(s, p, n);
}

#endif /* MCP_EDGE_CRC32C_HW_TPL_H */
