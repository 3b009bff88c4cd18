# _crc's C-level API for other wrappers: the dispatched checksum, GIL-free.
from libc.stdint cimport uint32_t

from mcp_edge.native.includes.me_crc32c cimport me_crc32c
