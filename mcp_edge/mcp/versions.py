"""Protocol revisions this server speaks, and how a request says which one it uses."""

from __future__ import annotations

from typing import Final

__all__ = [
    "BATCH_VERSIONS",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE",
    "STATELESS_VERSIONS",
    "SUPPORTED_VERSIONS",
    "has_batches",
    "negotiate",
]

# The handshake era (initialize / initialized, sessions), newest first. What a client of an older revision
# gets is shaped to that revision by mcp_edge.mcp.revisions.
HANDSHAKE_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST_HANDSHAKE: Final = HANDSHAKE_VERSIONS[0]
# The stateless era: no handshake, the version and capabilities ride in each request's _meta.
STATELESS_VERSIONS: Final = ("2026-07-28",)
SUPPORTED_VERSIONS: Final = STATELESS_VERSIONS + HANDSHAKE_VERSIONS
# Revisions with JSON-RPC batches: added in 2025-03-26, removed again in 2025-06-18.
BATCH_VERSIONS: Final = frozenset({"2025-03-26"})


def negotiate(requested: object) -> str:
    """The version to answer an initialize with: the client's if we speak it, else our latest."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return LATEST_HANDSHAKE


def has_batches(version: str | None) -> bool:
    """Whether a session of this revision may send JSON-RPC batches (None: not initialized, so no)."""
    return version in BATCH_VERSIONS
