/* crc32c_avx2.c - CRC32C kernel for AVX2 machines: PCLMULQDQ folding of 8x16-byte lanes. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <immintrin.h>

#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"

/* Below this length the crc32 instruction alone is faster than folding. */
#define FOLD_MIN 512

#define K128(d) _mm_set_epi64x((long long)ME_CRC32C_FOLD_##d##_HI, (long long)ME_CRC32C_FOLD_##d##_LO)

static inline __m128i fold(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

static inline __m128i ld(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

uint32_t me_crc32c_update_avx2(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < FOLD_MIN)
        return hw_update(s, p, n);
    size_t head = (size_t)(-(uintptr_t)p & 15);
    if (head) {
        s = hw_update_1way(s, p, head);
        p += head;
        n -= head;
    }
    __m128i x[8];
    for (int i = 0; i < 8; i++)
        x[i] = ld(p + 16 * i);
    x[0] = _mm_xor_si128(x[0], _mm_cvtsi32_si128((int)s));
    p += 128;
    n -= 128;
    const __m128i k128 = K128(128);
    while (n >= 128) {
        for (int i = 0; i < 8; i++)
            x[i] = _mm_xor_si128(fold(x[i], k128), ld(p + 16 * i));
        p += 128;
        n -= 128;
    }
    __m128i acc = x[7];
    acc = _mm_xor_si128(acc, fold(x[0], K128(112)));
    acc = _mm_xor_si128(acc, fold(x[1], K128(96)));
    acc = _mm_xor_si128(acc, fold(x[2], K128(80)));
    acc = _mm_xor_si128(acc, fold(x[3], K128(64)));
    acc = _mm_xor_si128(acc, fold(x[4], K128(48)));
    acc = _mm_xor_si128(acc, fold(x[5], K128(32)));
    acc = _mm_xor_si128(acc, fold(x[6], K128(16)));
    const __m128i k16 = K128(16);
    while (n >= 16) {
        acc = _mm_xor_si128(fold(acc, k16), ld(p));
        p += 16;
        n -= 16;
    }
    s = ME_CRC_U64(0, (uint64_t)_mm_cvtsi128_si64(acc));
    s = ME_CRC_U64(s, (uint64_t)_mm_extract_epi64(acc, 1));
    return hw_update_1way(s, p, n);
}
