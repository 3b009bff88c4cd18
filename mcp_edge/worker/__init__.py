"""Plugin worker processes: the message channel over a ring pair, the worker's main loop, and the protocol.

A ``process``-isolated plugin runs in a worker of its own. The runtime and the worker talk over two
shared-memory rings of the data plane (:mod:`mcp_edge.ipc`): one carries the runtime's messages to the worker,
the other the worker's back. Each message is one wire-format frame (docs/wire-format.md) written once into a
slab block of the sender's segment; only its 32-byte descriptor moves. See :mod:`mcp_edge.worker.channel`.
"""
