/* crc32c_clmul_x86.h - 16-byte lane helpers of the x86 folding kernels (PCLMULQDQ). */
/* SPDX-License-Identifier: Apache-2.0 */
/* Included by kernel files compiled with -mpclmul -msse4.2 (and more). */
#ifndef MCP_EDGE_CRC32C_CLMUL_X86_H
#define MCP_EDGE_CRC32C_CLMUL_X86_H

#include <immintrin.h>
#include <stdint.h>

typedef __m128i x128;

static inline x128 x_load(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* A folding constant pair: LO multiplies a lane's first 8 bytes, HI its last 8. */
static inline x128 x_k(uint64_t lo, uint64_t hi)
{
    return _mm_set_epi64x((long long)hi, (long long)lo);
}

static inline x128 x_fold(x128 x, x128 k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

static inline x128 x_xor(x128 a, x128 b)
{
    return _mm_xor_si128(a, b);
}

static inline x128 x_zero(void)
{
    return _mm_setzero_si128();
}

/* The lane holding state c in its low 32 bits, folded by the distance of lo. */
static inline x128 x_mul_lo(uint32_t c, uint64_t lo)
{
    return _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)c), _mm_cvtsi64_si128((long long)lo), 0x00);
}

/* The raw state after the 16 bytes of x, from state 0. */
static inline uint32_t x_crc(x128 x)
{
    uint32_t s = (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    return (uint32_t)_mm_crc32_u64(s, (uint64_t)_mm_extract_epi64(x, 1));
}

#endif /* MCP_EDGE_CRC32C_CLMUL_X86_H */
