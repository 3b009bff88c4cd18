"""An MCP client session against a served bundle, from outside its root (tools/firmware/e2e.sh runs it).

    python tools/firmware/client.py URL --isa LEVEL --board ID --arch ARCH [--wasm]

With the official SDK (``mcp.Client``): initialize, list the tools, write and read back a file with the fs
plugin, checksum it, and read the sysinfo summary, whose ISA level, board and architecture must be the expected
ones. With ``--wasm`` also the wasm_hello plugin's tools (its module run by wasmtime on the server's arch):
``text_stats`` of a few texts, each answer the one tests/wasm's Python twin of the tool gives, and a note
written and read back through the data host functions. Exit 0 when every step passes; any failure raises.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import uuid
import zlib
from typing import Any

from mcp import Client


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# The texts text_stats is asked about: ASCII, multi-byte UTF-8, control and blank characters, no final newline.
TEXTS = ["", "hello", "héllo \"world\"\n\u2603 \U0001f600", "  two\twords \n\n", "line\nline\nline\n",
         "tab\tand\vvertical\fform\rcr", "ünïcödé " * 50, "x" * 10000, "end without newline\nlast"]
_WORD = re.compile(rb"[^ \t\n\r\v\f]+")


def text_stats(text: str) -> dict[str, Any]:
    """What wasm_hello's text_stats answers (tests/wasm/fixtures/text_stats_py counts the same way)."""
    data = text.encode()
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return {"bytes": len(data), "chars": len(text), "words": len(_WORD.findall(data)), "lines": lines,
            "crc32": f"{zlib.crc32(data):08x}"}


async def wasm_session(c: Client, tools: set[str]) -> dict[str, Any]:
    missing = {"text_stats", "note_write", "note_read"} - tools
    assert not missing, f"wasm_hello's tools missing: {missing} (listed: {sorted(tools)})"
    for text in TEXTS:
        got = await c.call_tool("text_stats", {"text": text})
        want = text_stats(text)
        assert not got.is_error, (text[:40], _text(got))
        assert got.structured_content == want, (text[:40], got.structured_content, want)
        assert _text(got) == " ".join(f"{k}={v}" for k, v in want.items()), (text[:40], _text(got))
    note = f"kept by the WASM plugin on the arm64 box {uuid.uuid4()}"
    wrote = await c.call_tool("note_write", {"name": "e2e-note", "text": note})
    assert not wrote.is_error and _text(wrote) == "saved", _text(wrote)
    read = await c.call_tool("note_read", {"name": "e2e-note"})
    assert not read.is_error and _text(read) == note, _text(read)
    return {"texts": len(TEXTS), "note": "written and read back"}


async def session(url: str, isa: str, board: str, arch: str, wasm: bool) -> None:
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
        wasm_hello = await wasm_session(c, tools) if wasm else None
        print(json.dumps({"tools": len(tools), "isa_active": cpu["isa_active"], "isa_levels": cpu["isa_levels"],
                          "board": board, "checksum": checksum.structured_content, "wasm_hello": wasm_hello}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--isa", required=True)
    parser.add_argument("--board", required=True)
    parser.add_argument("--arch", default="aarch64")
    parser.add_argument("--wasm", action="store_true", help="also call the wasm_hello plugin's tools")
    args = parser.parse_args()
    asyncio.run(session(args.url, args.isa, args.board, args.arch, args.wasm))


if __name__ == "__main__":
    main()
