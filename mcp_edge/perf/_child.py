"""Entry point of a peer's child process: ``python -m mcp_edge.perf._child READ_FD WRITE_FD``.

Kept apart from :mod:`mcp_edge.perf.isolation` (which ``mcp_edge.perf`` imports) so that
``-m`` runs no second copy of it: the child's PeerSkipped is the one benches raise.
"""

import sys

from mcp_edge.perf.isolation import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
