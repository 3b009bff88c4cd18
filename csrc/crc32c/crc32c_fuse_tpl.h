/* crc32c_fuse_tpl.h - CRC32C with carry-less folding and crc32 streams running side by side. */
/* SPDX-License-Identifier: Apache-2.0 */
/* The carry-less multiplier and the crc32 unit sit on different execution
   ports, so a kernel that keeps both busy on different parts of the buffer
   beats either alone. Each block of the input is laid out as

       [ S1 | S2 | S3 | V ]     three crc32 streams of sb bytes, then iters * SPAN bytes

   and one loop walks all four at once: per iteration LANES vector registers
   are folded over V and each stream takes WORDS 8-byte words. The vector
   accumulators never wait for the streams: at the next block they jump over
   its streams (a fold by 3*sb + SPAN, no data), and each stream's final state
   is moved, by one carry-less multiply, to a 16-byte lane at the block's end
   and summed into a separate running lane `xs`, itself carried block to block.
   At the end xs joins the accumulators, the remaining bytes are folded in, and
   the last 16-byte lane is reduced with two crc32 instructions.

   A 32-bit state c at position e is the same as the bytes of c xored into the
   data at e: the lane [e, e+16) holding c in its low 32 bits. Folding that lane
   forward by d bytes (its low half times FOLD_d_LO) gives the equivalent lane
   at [e+d, e+d+16), ready to xor into what sits there.

   The includer defines, under its own target flags:
     FUSE_NAME          name of the function to define
     FUSE_CONST(x)      ME_CRC32C_<kind>_##x (constants of crc32c_tables.h)
     FUSE_LANES, FUSE_WORDS, FUSE_LONG_ITERS, FUSE_SHORT_ITERS, FUSE_VBYTES
     fvec and fv_load, fv_fold (x folded by the distance of k), fv_xor, fv_k
     (a constant pair in every 128-bit lane), fv_zero, fv_state (a 32-bit state
     in the low bits of the first lane), fv_top (a 16-byte lane into the last
     16 bytes), fv_low128 (a 16-byte lane reduced from an fvec at the same end)
     x128 and x_load, x_fold, x_xor, x_k, x_zero, x_mul_lo (a 32-bit state times
     a 64-bit constant), x_crc (the state after a 16-byte lane, from 0).
   and includes crc32c_hw_tpl.h first (ME_CRC_U64, hw_update_1way). */

#define FUSE_SPAN (FUSE_LANES * FUSE_VBYTES)
#define FUSE_SB(iters) ((size_t)(iters) * 8 * FUSE_WORDS)
#define FUSE_BLOCK_BYTES(iters) (3 * FUSE_SB(iters) + (size_t)(iters) * FUSE_SPAN)
#define FUSE_FV(x) fv_k(FUSE_CONST(x##_LO), FUSE_CONST(x##_HI))
#define FUSE_X(x) x_k(FUSE_CONST(x##_LO), FUSE_CONST(x##_HI))

/* One block of `iters` iterations at p; updates the accumulators, xs and the state. */
#define FUSE_RUN_BLOCK(ITERS, SIZE)                                                         \
    do {                                                                                    \
        const size_t sb_ = FUSE_SB(ITERS);                                                  \
        const unsigned char *q_ = p, *v_ = p + 3 * sb_;                                     \
        hw_state c1_ = s, c2_ = 0, c3_ = 0;                                                 \
        fvec kc_ = FUSE_FV(SIZE##_JUMP);                                                    \
        for (size_t i_ = 0; i_ < (ITERS); i_++) {                                           \
            for (int j_ = 0; j_ < FUSE_LANES; j_++)                                         \
                a[j_] = fv_xor(fv_fold(a[j_], kc_), fv_load(v_ + j_ * FUSE_VBYTES));        \
            kc_ = kspan;                                                                    \
            for (int w_ = 0; w_ < FUSE_WORDS; w_++) {                                       \
                c1_ = ME_CRC_STEP(c1_, hw_load64(q_ + 8 * w_));                             \
                c2_ = ME_CRC_STEP(c2_, hw_load64(q_ + sb_ + 8 * w_));                       \
                c3_ = ME_CRC_STEP(c3_, hw_load64(q_ + 2 * sb_ + 8 * w_));                   \
            }                                                                               \
            q_ += 8 * FUSE_WORDS;                                                           \
            v_ += FUSE_SPAN;                                                                \
        }                                                                                   \
        xs = x_xor(x_xor(x_fold(xs, FUSE_X(SIZE##_BLOCK)), x_mul_lo((uint32_t)c1_, FUSE_CONST(SIZE##_C1_LO))), \
                   x_xor(x_mul_lo((uint32_t)c2_, FUSE_CONST(SIZE##_C2_LO)), x_mul_lo((uint32_t)c3_, FUSE_CONST(SIZE##_C3_LO)))); \
        s = 0;                                                                              \
        p += FUSE_BLOCK_BYTES(ITERS);                                                       \
        n -= FUSE_BLOCK_BYTES(ITERS);                                                       \
    } while (0)

/* Raw state s over p[0..n), n >= FUSE_SPAN. */
static inline uint32_t FUSE_NAME(uint32_t s, const unsigned char *p, size_t n)
{
    fvec a[FUSE_LANES];
    const fvec kspan = FUSE_FV(SPAN);
    if (n >= FUSE_BLOCK_BYTES(FUSE_SHORT_ITERS)) {
        x128 xs = x_zero();
        for (int j = 0; j < FUSE_LANES; j++)
            a[j] = fv_zero(); /* the first block's jump folds nothing */
        while (n >= FUSE_BLOCK_BYTES(FUSE_LONG_ITERS))
            FUSE_RUN_BLOCK(FUSE_LONG_ITERS, LONG);
        while (n >= FUSE_BLOCK_BYTES(FUSE_SHORT_ITERS))
            FUSE_RUN_BLOCK(FUSE_SHORT_ITERS, SHORT);
        /* The accumulators and xs both end where the last block ended. */
        a[FUSE_LANES - 1] = fv_xor(a[FUSE_LANES - 1], fv_top(xs));
    } else {
        for (int j = 0; j < FUSE_LANES; j++)
            a[j] = fv_load(p + j * FUSE_VBYTES);
        a[0] = fv_xor(a[0], fv_state(s));
        p += FUSE_SPAN;
        n -= FUSE_SPAN;
    }
    while (n >= FUSE_SPAN) {
        for (int j = 0; j < FUSE_LANES; j++)
            a[j] = fv_xor(fv_fold(a[j], kspan), fv_load(p + j * FUSE_VBYTES));
        p += FUSE_SPAN;
        n -= FUSE_SPAN;
    }
    /* Lanes onto the last one: lane j is (LANES-1-j) registers before it. */
    fvec v = a[FUSE_LANES - 1];
#if FUSE_LANES > 1
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 2], FUSE_FV(LANE1)));
#endif
#if FUSE_LANES > 2
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 3], FUSE_FV(LANE2)));
#endif
#if FUSE_LANES > 3
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 4], FUSE_FV(LANE3)));
#endif
#if FUSE_LANES > 4
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 5], FUSE_FV(LANE4)));
#endif
#if FUSE_LANES > 5
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 6], FUSE_FV(LANE5)));
#endif
#if FUSE_LANES > 6
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 7], FUSE_FV(LANE6)));
#endif
#if FUSE_LANES > 7
    v = fv_xor(v, fv_fold(a[FUSE_LANES - 8], FUSE_FV(LANE7)));
#endif
#if FUSE_LANES > 8
#error "crc32c_fuse_tpl.h folds at most 8 lanes"
#endif
    if (FUSE_VBYTES > 16) {
        const fvec kvec = FUSE_FV(VEC);
        while (n >= FUSE_VBYTES) {
            v = fv_xor(fv_fold(v, kvec), fv_load(p));
            p += FUSE_VBYTES;
            n -= FUSE_VBYTES;
        }
    }
    x128 x = fv_low128(v);
    const x128 k16 = x_k(ME_CRC32C_FOLD_16_LO, ME_CRC32C_FOLD_16_HI);
    while (n >= 16) {
        x = x_xor(x_fold(x, k16), x_load(p));
        p += 16;
        n -= 16;
    }
    return hw_update_1way(x_crc(x), p, n);
}

#undef FUSE_RUN_BLOCK
#undef FUSE_X
#undef FUSE_FV
#undef FUSE_BLOCK_BYTES
#undef FUSE_SB
#undef FUSE_SPAN
