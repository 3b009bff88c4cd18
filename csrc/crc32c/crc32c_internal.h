/* crc32c_internal.h - the per-ISA CRC32C kernels, on raw (uninverted) states. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_CRC32C_INTERNAL_H
#define MCP_EDGE_CRC32C_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mcp_edge's CRC32C kernels are written for little-endian CPUs"
#endif

typedef uint32_t (*me_crc32c_kernel)(uint32_t state, const unsigned char *p, size_t n);

uint32_t me_crc32c_update_scalar(uint32_t state, const unsigned char *p, size_t n);
#if defined(__x86_64__)
uint32_t me_crc32c_update_sse42(uint32_t state, const unsigned char *p, size_t n);
uint32_t me_crc32c_update_avx2_pclmul(uint32_t state, const unsigned char *p, size_t n);
uint32_t me_crc32c_update_avx2_vpclmul(uint32_t state, const unsigned char *p, size_t n);
uint32_t me_crc32c_update_avx512(uint32_t state, const unsigned char *p, size_t n);
uint32_t me_crc32c_update_avx512_fused(uint32_t state, const unsigned char *p, size_t n);
#elif defined(__aarch64__)
uint32_t me_crc32c_update_armv8crc(uint32_t state, const unsigned char *p, size_t n);
uint32_t me_crc32c_update_armv8(uint32_t state, const unsigned char *p, size_t n);
#endif

#endif /* MCP_EDGE_CRC32C_INTERNAL_H */
