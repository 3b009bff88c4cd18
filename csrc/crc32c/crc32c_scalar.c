/* crc32c_scalar.c - portable CRC32C kernel: slicing-by-8 over constant tables. */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "crc32c_internal.h"
#include "crc32c_tables.h"

uint32_t me_crc32c_update_scalar(uint32_t s, const unsigned char *p, size_t n)
{
    const uint32_t(*t)[256] = me_crc32c_slice8;
    while (n && ((uintptr_t)p & 7)) {
        s = t[0][(s ^ *p++) & 0xff] ^ (s >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= s;
        s = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
            t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        s = t[0][(s ^ *p++) & 0xff] ^ (s >> 8);
    return s;
}
