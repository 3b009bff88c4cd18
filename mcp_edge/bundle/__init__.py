"""Firmware bundles: mcp-edge bundle (imported by that command only)."""
