/* crc32c_avx2.c - CRC32C kernel of the avx2 level without VPCLMULQDQ: PCLMULQDQ folding + crc32 x3, fused. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"
#include "crc32c_clmul_x86.h"

typedef __m128i fvec;
#define fv_load x_load
#define fv_fold x_fold
#define fv_xor x_xor
#define fv_k x_k
#define fv_zero x_zero

static inline fvec fv_state(uint32_t s)
{
    return _mm_cvtsi32_si128((int)s);
}

static inline fvec fv_top(x128 x)
{
    return x;
}

static inline x128 fv_low128(fvec v)
{
    return v;
}

#define FUSE_NAME fuse_v128
#define FUSE_CONST(x) ME_CRC32C_V128_##x
#define FUSE_LANES ME_CRC32C_V128_LANES
#define FUSE_WORDS ME_CRC32C_V128_WORDS
#define FUSE_LONG_ITERS ME_CRC32C_V128_LONG_ITERS
#define FUSE_SHORT_ITERS ME_CRC32C_V128_SHORT_ITERS
#define FUSE_VBYTES 16
#include "crc32c_fuse_tpl.h"

_Static_assert(ME_CRC32C_V128_MIN >= ME_CRC32C_V128_LANES * 16, "the fused kernel needs one span");

uint32_t me_crc32c_update_avx2_pclmul(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < ME_CRC32C_V128_MIN)
        return hw_update(s, p, n);
    return fuse_v128(s, p, n);
}
