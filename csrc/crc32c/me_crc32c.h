/* me_crc32c.h - CRC32C (Castagnoli): dispatched kernels, each kernel by number, combine. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_CRC32C_H
#define MCP_EDGE_ME_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf[0..len) continuing from `crc` (0 to start), through the kernel
   picked by me_crc32c_set_level(). Same convention as zlib's crc32(). */
uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len);

/* Pick the kernel of ISA `level` (ME_LEVEL_*): the best of its kernels this CPU
   runs. 0, -EINVAL for an unknown level, -ENOTSUP when this build or this CPU
   cannot run it. Called once at import. */
int me_crc32c_set_level(int level);

/* The level of the kernel me_crc32c() calls now, and that kernel's number:
   both found from the kernel in use, never from a recorded choice. */
int me_crc32c_level(void);
int me_crc32c_active(void);

/* The kernels of this build, numbered 0..me_crc32c_kernel_count()-1, lowest
   level first: name ("avx2-vpclmul"), what it runs ("vpclmulqdq-256 + crc32
   x3"), its level, the CPU features it needs beyond its level (me_cpu.h bits),
   whether this CPU runs it. NULL, -EINVAL or 0 for a number out of range. */
int me_crc32c_kernel_count(void);
const char *me_crc32c_kernel_name(int kernel);
const char *me_crc32c_kernel_detail(int kernel);
int me_crc32c_kernel_level(int kernel);
uint32_t me_crc32c_kernel_needs(int kernel);
int me_crc32c_kernel_runnable(int kernel);

/* The kernel `level` runs on this CPU: its number, -EINVAL or -ENOTSUP. */
int me_crc32c_level_kernel(int level);

/* Test hooks, for checking the dispatch: the address of the kernel
   me_crc32c() calls now, and of kernel number `kernel` (0 when out of range). */
uintptr_t me_crc32c_active_kernel(void);
uintptr_t me_crc32c_kernel_address(int kernel);

/* me_crc32c() through kernel number `kernel`; the result goes to *out.
   Returns 0, -EINVAL (no such kernel) or -ENOTSUP (this CPU cannot run it). */
int me_crc32c_variant(int kernel, uint32_t crc, const void *buf, size_t len, uint32_t *out);

/* CRC32C of A||B from crc(A), crc(B) and len(B). */
uint32_t me_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif /* MCP_EDGE_ME_CRC32C_H */
