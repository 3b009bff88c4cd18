/* crc32c_sse42.c - CRC32C kernel for SSE4.2: the crc32 instruction, three streams. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "crc32c_internal.h"
#include "crc32c_hw_tpl.h"

uint32_t me_crc32c_update_sse42(uint32_t s, const unsigned char *p, size_t n)
{
    return hw_update(s, p, n);
}
