/* me_crc32c.h - CRC32C (Castagnoli): dispatched kernels, per-level variants, combine. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_CRC32C_H
#define MCP_EDGE_ME_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf[0..len) continuing from `crc` (0 to start), through the kernel
   picked by me_crc32c_set_level(). Same convention as zlib's crc32(). */
uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len);

/* Pick the kernel of ISA `level` (ME_LEVEL_*): 0, -EINVAL for an unknown level,
   -ENOTSUP when this build or this CPU cannot run it. Called once at import. */
int me_crc32c_set_level(int level);

/* The level of the kernel me_crc32c() calls now (found from the kernel in
   use, never from a recorded level). */
int me_crc32c_level(void);

/* Test hooks, for checking the dispatch: the address of the kernel
   me_crc32c() calls now, and of the kernel of `level` in this build (0 where
   this build has none: then the level has no kernel). */
uintptr_t me_crc32c_active_kernel(void);
uintptr_t me_crc32c_level_kernel(int level);

/* me_crc32c() through the kernel of `level`; the result goes to *out.
   Returns 0, -EINVAL or -ENOTSUP as me_crc32c_set_level(). */
int me_crc32c_variant(int level, uint32_t crc, const void *buf, size_t len, uint32_t *out);

/* CRC32C of A||B from crc(A), crc(B) and len(B). */
uint32_t me_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif /* MCP_EDGE_ME_CRC32C_H */
