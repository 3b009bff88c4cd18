"""CPU features and the ISA level the native kernels run (``mcp_edge.native.cpu``)."""

from mcp_edge.native._cpu import ISA_ENV, active, best_level_for, feature_names, features, forced, levels

__all__ = ["ISA_ENV", "active", "best_level_for", "feature_names", "features", "forced", "levels"]
