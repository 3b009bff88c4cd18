"""The signed plugin index: what a publisher builds and signs, what a box trusts, installs, updates and verifies
(docs/plugin-index.md). One job per module, imported where used (nothing here is on the runtime's start path
but :mod:`.guard`, and :mod:`.auto` when ``plugin_update_interval_s`` is set):

- :mod:`.signing`: Ed25519 keys, key ids, signatures, the trust store (``cryptography``, imported on use);
- :mod:`.format`: the index document, parsed and checked;
- :mod:`.state`: the rules an index must pass (signature, expiry, rollback) and what the box keeps;
- :mod:`.fetch`: bounded reads and streamed downloads over http(s), file:// or a path;
- :mod:`.archive`: packing a plugin folder, unpacking an artifact safely, the digest of a folder;
- :mod:`.installer`: install, update, remove, verify, with the atomic swap;
- :mod:`.build`: ``mcp-edge index build`` and ``plugin sign``;
- :mod:`.auto`: the running server's auto-update task;
- :mod:`.guard`: the start-up refusal of a file root over the installed plugins.
"""

__all__: list[str] = []
