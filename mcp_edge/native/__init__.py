"""Native data path of mcp_edge: C kernels reached through Cython."""

from mcp_edge.native import cpu
from mcp_edge.native._crc import crc32c, crc32c_combine, crc32c_variant

__all__ = ["cpu", "crc32c", "crc32c_combine", "crc32c_variant"]
