"""``python -m mcp_edge.worker <in-socket> <out-socket>``: a plugin worker process (see mcp_edge.worker.main)."""

import sys

from mcp_edge.worker.main import main

sys.exit(main())
