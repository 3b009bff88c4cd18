/* crc32c_avx512.c - CRC32C kernels for AVX-512: VPCLMULQDQ folding of 4x64-byte lanes, alone or fused with crc32 x3. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <immintrin.h>

#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"
#include "crc32c_clmul_x86.h"

/* Below this length the crc32 instruction alone is faster than folding. */
#define FOLD_MIN 256

#define K512(d) _mm512_set_epi64((long long)ME_CRC32C_FOLD_##d##_HI, (long long)ME_CRC32C_FOLD_##d##_LO, \
                                 (long long)ME_CRC32C_FOLD_##d##_HI, (long long)ME_CRC32C_FOLD_##d##_LO, \
                                 (long long)ME_CRC32C_FOLD_##d##_HI, (long long)ME_CRC32C_FOLD_##d##_LO, \
                                 (long long)ME_CRC32C_FOLD_##d##_HI, (long long)ME_CRC32C_FOLD_##d##_LO)

/* x folded forward by k's distance, xor d: one ternary-logic xor of three. */
static inline __m512i fold_xor(__m512i x, __m512i k, __m512i d)
{
    __m512i a = _mm512_clmulepi64_epi128(x, k, 0x00);
    __m512i b = _mm512_clmulepi64_epi128(x, k, 0x11);
    return _mm512_ternarylogic_epi64(a, b, d, 0x96);
}

static inline __m512i ld(const unsigned char *p)
{
    return _mm512_loadu_si512((const void *)p);
}

static inline __m128i fold128(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

uint32_t me_crc32c_update_avx512(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < FOLD_MIN)
        return hw_update_1way(s, p, n);
    size_t head = (size_t)(-(uintptr_t)p & 63);
    if (head) {
        s = hw_update_1way(s, p, head);
        p += head;
        n -= head;
    }
    const __m512i zero = _mm512_setzero_si512();
    __m512i x0 = _mm512_xor_si512(ld(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)s)));
    if (n >= 256) {
        __m512i x1 = ld(p + 64), x2 = ld(p + 128), x3 = ld(p + 192);
        p += 256;
        n -= 256;
        const __m512i k256 = K512(256);
        while (n >= 256) {
            x0 = fold_xor(x0, k256, ld(p));
            x1 = fold_xor(x1, k256, ld(p + 64));
            x2 = fold_xor(x2, k256, ld(p + 128));
            x3 = fold_xor(x3, k256, ld(p + 192));
            p += 256;
            n -= 256;
        }
        x0 = fold_xor(x0, K512(192), fold_xor(x1, K512(128), fold_xor(x2, K512(64), x3)));
    } else {
        p += 64;
        n -= 64;
    }
    const __m512i k64 = K512(64);
    while (n >= 64) {
        x0 = fold_xor(x0, k64, ld(p));
        p += 64;
        n -= 64;
    }
    /* Four 16-byte lanes at offsets 0, 16, 32, 48: fold the first three onto the last. */
    const __m512i kl = _mm512_set_epi64(0, 0, (long long)ME_CRC32C_FOLD_16_HI, (long long)ME_CRC32C_FOLD_16_LO,
                                        (long long)ME_CRC32C_FOLD_32_HI, (long long)ME_CRC32C_FOLD_32_LO,
                                        (long long)ME_CRC32C_FOLD_48_HI, (long long)ME_CRC32C_FOLD_48_LO);
    __m512i t = fold_xor(x0, kl, zero);
    __m128i acc = _mm512_extracti32x4_epi32(x0, 3);
    acc = _mm_ternarylogic_epi64(acc, _mm512_castsi512_si128(t), _mm512_extracti32x4_epi32(t, 1), 0x96);
    acc = _mm_xor_si128(acc, _mm512_extracti32x4_epi32(t, 2));
    const __m128i k16 = _mm_set_epi64x((long long)ME_CRC32C_FOLD_16_HI, (long long)ME_CRC32C_FOLD_16_LO);
    while (n >= 16) {
        acc = _mm_xor_si128(fold128(acc, k16), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    s = ME_CRC_U64(0, (uint64_t)_mm_cvtsi128_si64(acc));
    s = ME_CRC_U64(s, (uint64_t)_mm_extract_epi64(acc, 1));
    return hw_update_1way(s, p, n);
}

/* ------------------------------------------------------------ fused: zmm folding + crc32 x3 */

typedef __m512i fvec;

static inline fvec fv_load(const unsigned char *p)
{
    return _mm512_loadu_si512((const void *)p);
}

static inline fvec fv_k(uint64_t lo, uint64_t hi)
{
    return _mm512_set_epi64((long long)hi, (long long)lo, (long long)hi, (long long)lo, (long long)hi,
                            (long long)lo, (long long)hi, (long long)lo);
}

static inline fvec fv_fold(fvec x, fvec k)
{
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11));
}

static inline fvec fv_xor(fvec a, fvec b)
{
    return _mm512_xor_si512(a, b);
}

static inline fvec fv_zero(void)
{
    return _mm512_setzero_si512();
}

static inline fvec fv_state(uint32_t s)
{
    return _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)s));
}

static inline fvec fv_top(x128 x)
{
    return _mm512_inserti32x4(_mm512_setzero_si512(), x, 3);
}

/* The four 16-byte lanes of v: the first three folded onto the last. */
static inline x128 fv_low128(fvec v)
{
    const __m512i kl = _mm512_set_epi64(0, 0, (long long)ME_CRC32C_FOLD_16_HI, (long long)ME_CRC32C_FOLD_16_LO,
                                        (long long)ME_CRC32C_FOLD_32_HI, (long long)ME_CRC32C_FOLD_32_LO,
                                        (long long)ME_CRC32C_FOLD_48_HI, (long long)ME_CRC32C_FOLD_48_LO);
    __m512i t = fv_fold(v, kl);
    x128 acc = _mm512_extracti32x4_epi32(v, 3);
    acc = _mm_ternarylogic_epi64(acc, _mm512_castsi512_si128(t), _mm512_extracti32x4_epi32(t, 1), 0x96);
    return _mm_xor_si128(acc, _mm512_extracti32x4_epi32(t, 2));
}

#define FUSE_NAME fuse_v512
#define FUSE_CONST(x) ME_CRC32C_V512_##x
#define FUSE_LANES ME_CRC32C_V512_LANES
#define FUSE_WORDS ME_CRC32C_V512_WORDS
#define FUSE_LONG_ITERS ME_CRC32C_V512_LONG_ITERS
#define FUSE_SHORT_ITERS ME_CRC32C_V512_SHORT_ITERS
#define FUSE_VBYTES 64
#include "crc32c_fuse_tpl.h"

_Static_assert(ME_CRC32C_V512_MIN >= ME_CRC32C_V512_LANES * 64, "the fused kernel needs one span");

uint32_t me_crc32c_update_avx512_fused(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < ME_CRC32C_V512_MIN || n > ME_CRC32C_V512_MAX)
        return me_crc32c_update_avx512(s, p, n);
    return fuse_v512(s, p, n);
}
