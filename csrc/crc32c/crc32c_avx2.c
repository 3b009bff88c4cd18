/* crc32c_avx2.c - CRC32C kernel of the avx2 level: the crc32 instruction in three streams. */
/* SPDX-License-Identifier: Apache-2.0 */
/* 128-bit PCLMULQDQ folding was measured here at half the speed of three
   crc32 streams (PCLMULQDQ issues every other cycle on Zen 4 and at best every
   cycle on Intel, two per 16 bytes), so this level keeps the crc32 kernel,
   compiled with VEX encoding; only VPCLMULQDQ on 512-bit lanes (avx512) beats it. */
#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"

uint32_t me_crc32c_update_avx2(uint32_t s, const unsigned char *p, size_t n)
{
    return hw_update(s, p, n);
}
