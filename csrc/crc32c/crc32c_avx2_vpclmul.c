/* crc32c_avx2_vpclmul.c - CRC32C kernel of the avx2 level with VPCLMULQDQ: 256-bit folding + crc32 x3, fused. */
/* SPDX-License-Identifier: Apache-2.0 */
/* For AVX2 CPUs with VPCLMULQDQ but no AVX-512 (Zen 3, Alder Lake/Gracemont):
   only ymm registers and VEX encodings here. */
#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"
#include "crc32c_clmul_x86.h"

typedef __m256i fvec;

static inline fvec fv_load(const unsigned char *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

static inline fvec fv_k(uint64_t lo, uint64_t hi)
{
    return _mm256_set_epi64x((long long)hi, (long long)lo, (long long)hi, (long long)lo);
}

static inline fvec fv_fold(fvec x, fvec k)
{
    return _mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00), _mm256_clmulepi64_epi128(x, k, 0x11));
}

static inline fvec fv_xor(fvec a, fvec b)
{
    return _mm256_xor_si256(a, b);
}

static inline fvec fv_zero(void)
{
    return _mm256_setzero_si256();
}

static inline fvec fv_state(uint32_t s)
{
    return _mm256_zextsi128_si256(_mm_cvtsi32_si128((int)s));
}

static inline fvec fv_top(x128 x)
{
    return _mm256_inserti128_si256(_mm256_setzero_si256(), x, 1);
}

/* The two 16-byte lanes of v: the first folded onto the second. */
static inline x128 fv_low128(fvec v)
{
    const x128 k16 = x_k(ME_CRC32C_FOLD_16_LO, ME_CRC32C_FOLD_16_HI);
    return x_xor(x_fold(_mm256_castsi256_si128(v), k16), _mm256_extracti128_si256(v, 1));
}

#define FUSE_NAME fuse_v256
#define FUSE_CONST(x) ME_CRC32C_V256_##x
#define FUSE_LANES ME_CRC32C_V256_LANES
#define FUSE_WORDS ME_CRC32C_V256_WORDS
#define FUSE_LONG_ITERS ME_CRC32C_V256_LONG_ITERS
#define FUSE_SHORT_ITERS ME_CRC32C_V256_SHORT_ITERS
#define FUSE_VBYTES 32
#include "crc32c_fuse_tpl.h"

_Static_assert(ME_CRC32C_V256_MIN >= ME_CRC32C_V256_LANES * 32, "the fused kernel needs one span");

uint32_t me_crc32c_update_avx2_vpclmul(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < ME_CRC32C_V256_MIN)
        return hw_update(s, p, n);
    return fuse_v256(s, p, n);
}
