"""The runtime between the protocol core and the plugins: router, principals, typed outcomes, stop tokens.

Import the module you need (``mcp_edge.runtime.router`` ...): this package imports none of them, so the
protocol core can use ``mcp_edge.runtime.outcome`` without loading the router.
"""

__all__: list[str] = []
