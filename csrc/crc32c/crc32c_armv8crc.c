/* crc32c_armv8crc.c - CRC32C kernel of the armv8crc level (CRC32 without PMULL): crc32c in three streams. */
/* SPDX-License-Identifier: Apache-2.0 */
/* For cores with the CRC32 instructions but no crypto extension (Raspberry Pi
   4's Cortex-A72): compiled with +crc only, so nothing here can need PMULL. */
#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"

uint32_t me_crc32c_update_armv8crc(uint32_t s, const unsigned char *p, size_t n)
{
    return hw_update(s, p, n);
}
