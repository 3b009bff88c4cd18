/* crc32c_tune.h - stream counts and block sizes of the CRC32C kernels, chosen by measurement. */
/* SPDX-License-Identifier: Apache-2.0 */
/* tools/gen_crc32c_tables.py reads the numbers here and derives the constants
   each size needs: run it after changing one (a test checks the tables).

   Measured on AMD EPYC Zen 3 (family 25 model 1, 2 vCPUs shared with other
   work, so every figure is the median of 7-15 runs of 31 interleaved rounds,
   and the ratio to ISA-L's crc32_iscsi_01 in the same run is what counts):
   256-bit VPCLMULQDQ folding alone runs ~22 GB/s, three crc32 streams alone
   ~20-22 GB/s, the fused kernel 29-35 GB/s at 64 KiB-1 MiB. */
#ifndef MCP_EDGE_CRC32C_TUNE_H
#define MCP_EDGE_CRC32C_TUNE_H

/* Three-stream crc32-instruction kernel (crc32c_hw_tpl.h; the sse42 and
   armv8crc levels, and the short inputs of the others): bytes per stream of
   each tier, largest first, multiples of 16. 4096 = 3 * 1344 + 64 puts a 4 KiB
   frame in one round; the 64-byte tier leaves under 192 bytes to one stream.
   x crc32_iscsi_01 at 200 B / 512 B / 1 KiB / 2 KiB / 4 KiB / 8 KiB, before the
   loop kept its states in 64-bit registers and took 16 bytes per stream per
   iteration (which took 4 KiB / 64 KiB / 1 MiB from 0.75/0.75/0.73 to
   1.02/1.02/0.99 x crc32_iscsi_01):
     4096/256 (before), serial merge  0.81 0.53 0.77 0.68 0.82 0.79
     4096/1344/256/64, serial merge   1.04 0.73 0.83 0.74 0.91 0.86
     4096/1344/256/64, merge by x^2B  0.99 0.77 0.86 0.80 0.99 0.95
     4096/1024/256/64                 1.03 0.73 0.83 0.79 0.90 0.84
     4096/1344/256/32                 0.85 0.72 0.87 0.81 0.91 0.90
     2048/1344/256/64                 1.00 0.77 0.89 0.82 0.90 0.96 */
#define ME_CRC32C_LONG_BLOCK 4096
#define ME_CRC32C_MID_BLOCK 1344
#define ME_CRC32C_SHORT_BLOCK 256
#define ME_CRC32C_TINY_BLOCK 64

/* Fused kernels (crc32c_fuse_tpl.h): LANES vector registers are folded per
   iteration while three crc32 streams take WORDS 8-byte words each; a block is
   LONG_ITERS (then SHORT_ITERS) iterations; inputs shorter than MIN go to the
   crc32-only kernel (hw_update).

   V256 (avx2-vpclmul), x ISA-L crc32_iscsi_01 at 4 KiB / 64 KiB / 1 MiB:
     lanes x words  3x6 1.11/1.41/1.33   4x6 1.05/1.27/1.28   3x4 1.06/1.26/1.21
                    4x3 1.37/1.37/1.33*  2x2 1.30/1.42/1.38*  (* a quieter run)
     3x6 iters long/short: 64/16 1.13/1.42/1.27  64/8 1.11/1.40/1.28
                           64/4 1.11/1.41/1.33   32/4 1.12/1.38/1.22  128/4 1.13/1.41/1.36
     folding alone beats one crc32 stream from 128 bytes (16.9 vs 10.9 GB/s).
   V128 (avx2-pclmul; 128-bit PCLMULQDQ folding alone ~10 GB/s here, so the
   streams take the larger share):
     3x8 0.94/1.11/1.14  2x8 0.89/1.09/1.13  2x4 0.91/1.11/1.05  4x6 0.83/1.06/1.10
     8x6 0.70/0.95/0.97; below one short block the crc32 kernel is faster.
   NEON: not measurable here (qemu); PMULL issues at least as fast as crc32
   on Cortex-A76/Neoverse-class cores, so the split leans on the vector side. */
#define ME_CRC32C_V256_LANES 3
#define ME_CRC32C_V256_WORDS 6
#define ME_CRC32C_V256_LONG_ITERS 64
#define ME_CRC32C_V256_SHORT_ITERS 4
#define ME_CRC32C_V256_MIN 128

/* V512 (avx512-fused, the avx512 level's kernel): zmm folding with the three
   crc32 streams beside it; below MIN the folding-only avx512 kernel runs.
   On AMD EPYC Zen 4 (family 25 model 17, 2 vCPUs), medians of 11 interleaved
   rounds, x ISA-L's dispatched crc32_iscsi (its AVX-512 kernel) at 64 KiB / 1 MiB:
     folding alone (avx512)  1.29/1.06
     lanes x words  4x4 1.44/1.18   4x3 1.47/1.21   4x2 1.53/1.10   4x6 1.26/1.10
                    4x8 1.39/1.11   2x4 1.32/0.97   6x4 1.34/1.14   8x4 1.35/1.14
   and at or above the folding-only kernel from 1 KiB (8.1 vs 7.8 GB/s through
   the Python call) to 1 MiB + 7 (63.6 vs 57.2). */
#define ME_CRC32C_V512_LANES 4
#define ME_CRC32C_V512_WORDS 4
#define ME_CRC32C_V512_LONG_ITERS 64
#define ME_CRC32C_V512_SHORT_ITERS 4
#define ME_CRC32C_V512_MIN 1024
/* From here on the folding-only kernel runs again: an input this large comes
   from memory rather than the caches, where the streams' scattered loads halve
   the fused kernel (same machine, GB/s, avx512 / avx512-fused: 4 MiB 57.2 /
   62.0, 8 MiB 54.9 / 59.5, 16 MiB 37.5 / 26.3, 32 MiB 28.7 / 14.5). */
#define ME_CRC32C_V512_MAX (8u << 20)

#define ME_CRC32C_V128_LANES 3
#define ME_CRC32C_V128_WORDS 8
#define ME_CRC32C_V128_LONG_ITERS 64
#define ME_CRC32C_V128_SHORT_ITERS 4
#define ME_CRC32C_V128_MIN 960

#define ME_CRC32C_NEON_LANES 4
#define ME_CRC32C_NEON_WORDS 3
#define ME_CRC32C_NEON_LONG_ITERS 64
#define ME_CRC32C_NEON_SHORT_ITERS 4
#define ME_CRC32C_NEON_MIN 256

#endif /* MCP_EDGE_CRC32C_TUNE_H */
