"""CPU features and the ISA level the native kernels run (``mcp_edge.native.cpu``)."""

from mcp_edge.native._cpu import ISA_ENV, active, features, forced, levels

__all__ = ["ISA_ENV", "active", "features", "forced", "levels"]
