/* crc32c_armv8.c - CRC32C kernel of the neon level (crc+crypto): PMULL folding + crc32c x3, fused. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <arm_neon.h>

#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"

typedef uint64x2_t x128;
typedef uint64x2_t fvec;

static inline x128 x_load(const unsigned char *p)
{
    return vreinterpretq_u64_u8(vld1q_u8(p));
}

/* A folding constant pair: LO multiplies a lane's first 8 bytes, HI its last 8. */
static inline x128 x_k(uint64_t lo, uint64_t hi)
{
    return vcombine_u64(vcreate_u64(lo), vcreate_u64(hi));
}

/* x carried forward by k's distance: lo(x)*LO xor hi(x)*HI, carry-less. */
static inline x128 x_fold(x128 x, x128 k)
{
    poly64x2_t px = vreinterpretq_p64_u64(x), pk = vreinterpretq_p64_u64(k);
    poly128_t lo = vmull_p64(vgetq_lane_p64(px, 0), vgetq_lane_p64(pk, 0));
    poly128_t hi = vmull_high_p64(px, pk);
    return veorq_u64(vreinterpretq_u64_p128(lo), vreinterpretq_u64_p128(hi));
}

static inline x128 x_xor(x128 a, x128 b)
{
    return veorq_u64(a, b);
}

static inline x128 x_zero(void)
{
    return vdupq_n_u64(0);
}

/* The lane holding state c in its low 32 bits, folded by the distance of lo. */
static inline x128 x_mul_lo(uint32_t c, uint64_t lo)
{
    return vreinterpretq_u64_p128(vmull_p64((poly64_t)c, (poly64_t)lo));
}

/* The raw state after the 16 bytes of x, from state 0. */
static inline uint32_t x_crc(x128 x)
{
    return ME_CRC_U64(ME_CRC_U64(0, vgetq_lane_u64(x, 0)), vgetq_lane_u64(x, 1));
}

#define fv_load x_load
#define fv_fold x_fold
#define fv_xor x_xor
#define fv_k x_k
#define fv_zero x_zero

static inline fvec fv_state(uint32_t s)
{
    return vcombine_u64(vcreate_u64(s), vcreate_u64(0));
}

static inline fvec fv_top(x128 x)
{
    return x;
}

static inline x128 fv_low128(fvec v)
{
    return v;
}

#define FUSE_NAME fuse_neon
#define FUSE_CONST(x) ME_CRC32C_NEON_##x
#define FUSE_LANES ME_CRC32C_NEON_LANES
#define FUSE_WORDS ME_CRC32C_NEON_WORDS
#define FUSE_LONG_ITERS ME_CRC32C_NEON_LONG_ITERS
#define FUSE_SHORT_ITERS ME_CRC32C_NEON_SHORT_ITERS
#define FUSE_VBYTES 16
#include "crc32c_fuse_tpl.h"

_Static_assert(ME_CRC32C_NEON_MIN >= ME_CRC32C_NEON_LANES * 16, "the fused kernel needs one span");

uint32_t me_crc32c_update_armv8(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < ME_CRC32C_NEON_MIN)
        return hw_update(s, p, n);
    return fuse_neon(s, p, n);
}
