"""The MCP bench's echo server on fastmcp (4.x), run by ``perf/bench_mcp.py``.

Usage: ``python fastmcp_echo.py --stdio`` or ``python fastmcp_echo.py --http --port P`` (Streamable HTTP at
``http://127.0.0.1:P/mcp``, fastmcp's defaults otherwise). It runs in its own venv (``build/perf/venvs/fastmcp``),
never in ours.
"""

import sys

from fastmcp import FastMCP

mcp = FastMCP("echo-server")


@mcp.tool
def echo(text: str) -> str:
    """Echo the given text back."""
    return text


def main(argv: list[str]) -> None:
    if argv[:1] == ["--http"] and len(argv) == 3 and argv[1] == "--port":
        mcp.run(transport="http", host="127.0.0.1", port=int(argv[2]), show_banner=False, log_level="WARNING")
    elif argv in ([], ["--stdio"]):
        mcp.run(show_banner=False)
    else:
        sys.exit("usage: fastmcp_echo.py [--stdio | --http --port P]")


if __name__ == "__main__":
    main(sys.argv[1:])
