/* crc32c_armv8.c - CRC32C kernel for ARMv8 (crc+crypto): PMULL folding of 8x16-byte lanes. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <arm_neon.h>

#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"

/* Below this length the crc32 instruction alone is faster than folding. */
#define FOLD_MIN 512

/* The two 64-bit folding constants of distance d as one vector: LO in lane 0, HI in lane 1. */
#define K128(d) vcombine_p64(vcreate_p64(ME_CRC32C_FOLD_##d##_LO), vcreate_p64(ME_CRC32C_FOLD_##d##_HI))

/* x carried forward by k's distance: lo(x)*LO xor hi(x)*HI, carry-less. */
static inline uint64x2_t fold(uint64x2_t x, poly64x2_t k)
{
    poly64x2_t px = vreinterpretq_p64_u64(x);
    poly128_t lo = vmull_p64(vgetq_lane_p64(px, 0), vgetq_lane_p64(k, 0));
    poly128_t hi = vmull_high_p64(px, k);
    return veorq_u64(vreinterpretq_u64_p128(lo), vreinterpretq_u64_p128(hi));
}

static inline uint64x2_t ld(const unsigned char *p)
{
    return vreinterpretq_u64_u8(vld1q_u8(p));
}

uint32_t me_crc32c_update_armv8(uint32_t s, const unsigned char *p, size_t n)
{
    if (n < FOLD_MIN)
        return hw_update(s, p, n);
    size_t head = (size_t)(-(uintptr_t)p & 15);
    if (head) {
        s = hw_update_1way(s, p, head);
        p += head;
        n -= head;
    }
    uint64x2_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = ld(p + 16 * i);
    x[0] = veorq_u64(x[0], vcombine_u64(vcreate_u64(s), vcreate_u64(0)));
    p += 128;
    n -= 128;
    const poly64x2_t k128 = K128(128);
    while (n >= 128) {
        for (int i = 0; i < 8; i++)
            x[i] = veorq_u64(fold(x[i], k128), ld(p + 16 * i));
        p += 128;
        n -= 128;
    }
    uint64x2_t acc = x[7];
    acc = veorq_u64(acc, fold(x[0], K128(112)));
    acc = veorq_u64(acc, fold(x[1], K128(96)));
    acc = veorq_u64(acc, fold(x[2], K128(80)));
    acc = veorq_u64(acc, fold(x[3], K128(64)));
    acc = veorq_u64(acc, fold(x[4], K128(48)));
    acc = veorq_u64(acc, fold(x[5], K128(32)));
    acc = veorq_u64(acc, fold(x[6], K128(16)));
    const poly64x2_t k16 = K128(16);
    while (n >= 16) {
        acc = veorq_u64(fold(acc, k16), ld(p));
        p += 16;
        n -= 16;
    }
    s = ME_CRC_U64(0, vgetq_lane_u64(acc, 0));
    s = ME_CRC_U64(s, vgetq_lane_u64(acc, 1));
    return hw_update_1way(s, p, n);
}
