"""An MCP client session against a served bundle, from outside its root (tools/firmware/e2e.sh runs it).

    python tools/firmware/client.py URL --isa LEVEL --board ID --arch ARCH

With the official SDK (``mcp.Client``): initialize, list the tools, write and read back a file with the fs
plugin, checksum it, and read the sysinfo summary, whose ISA level, board and architecture must be the expected
ones. Exit 0 when every step passes; any failure raises.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from mcp import Client


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def session(url: str, isa: str, board: str, arch: str) -> None:
    async with Client(url, read_timeout_seconds=120.0, mode="legacy") as c:
        assert c.server_info is not None and c.server_info.name == "mcp-edge", c.server_info
        tools = {t.name for t in (await c.list_tools()).tools}
        missing = {"fs_write", "fs_read", "fs_checksum", "sysinfo_summary"} - tools
        assert not missing, f"tools missing: {missing} (listed: {sorted(tools)})"
        body = f"written from outside the arm64 root {uuid.uuid4()}\n"
        wrote = await c.call_tool("fs_write", {"path": "e2e/hello.txt", "content": body, "create_dirs": True})
        assert not wrote.is_error, _text(wrote)
        read = await c.call_tool("fs_read", {"path": "e2e/hello.txt"})
        assert not read.is_error and read.structured_content is not None, _text(read)
        info = read.structured_content
        assert body in _text(read) and info["size"] == len(body.encode()), (info, _text(read))
        checksum = await c.call_tool("fs_checksum", {"path": "e2e/hello.txt"})
        assert not checksum.is_error and checksum.structured_content is not None, _text(checksum)
        assert checksum.structured_content.get("crc32c") == info["crc32c"], (checksum.structured_content, info)
        summary = await c.call_tool("sysinfo_summary")
        assert not summary.is_error and summary.structured_content is not None, _text(summary)
        cpu = summary.structured_content["cpu"]
        assert cpu["arch"] == arch, cpu
        assert cpu["isa_active"] == isa, cpu
        assert summary.structured_content["board"]["id"] == board, summary.structured_content["board"]
        print(json.dumps({"tools": len(tools), "isa_active": cpu["isa_active"], "isa_levels": cpu["isa_levels"],
                          "board": board, "checksum": checksum.structured_content}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--isa", required=True)
    parser.add_argument("--board", required=True)
    parser.add_argument("--arch", default="aarch64")
    args = parser.parse_args()
    asyncio.run(session(args.url, args.isa, args.board, args.arch))


if __name__ == "__main__":
    main()
