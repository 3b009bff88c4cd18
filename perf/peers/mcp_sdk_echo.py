"""The MCP bench's echo server on the official Python SDK (mcp 2.x ``MCPServer``), run by ``perf/bench_mcp.py``.

Usage: ``python mcp_sdk_echo.py --stdio`` or ``python mcp_sdk_echo.py --http --port P`` (Streamable HTTP at
``http://127.0.0.1:P/mcp``, the SDK's defaults otherwise: SSE responses, sessions). It runs in its own venv
(``build/perf/venvs/mcp-sdk``), never in ours.
"""

import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("echo-server", version="1.0.0", log_level="WARNING")


@mcp.tool()
def echo(text: str) -> str:
    """Echo the given text back."""
    return text


def main(argv: list[str]) -> None:
    if argv[:1] == ["--http"] and len(argv) == 3 and argv[1] == "--port":
        mcp.run(transport="streamable-http", host="127.0.0.1", port=int(argv[2]))
    elif argv in ([], ["--stdio"]):
        mcp.run()
    else:
        sys.exit("usage: mcp_sdk_echo.py [--stdio | --http --port P]")


if __name__ == "__main__":
    main(sys.argv[1:])
