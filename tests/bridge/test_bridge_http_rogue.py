"""A misbehaving Streamable HTTP server (a raw one, on loopback, in the test's own loop): event streams with
CRLF and CR line ends, comments, fields the bridge skips and data over several lines are read right; an endless
line loses the server instead of growing without bound; a call given up closes its POST; a server that never
answers a notification's POST holds no call past its deadline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from bridge_helpers import WAIT
from ci_honesty import importorskip

from mcp_edge.board import Settings
from mcp_edge.errors import ProtocolError
from mcp_edge.plugin.bridge.client import BridgeLost, McpClient
from mcp_edge.plugin.bridge.http import HttpTransport

importorskip("httpx", "bridge", "the HTTP bridge tests need httpx (pip install -e '.[test]')")


ENDLESS = 4096  # 64 KiB chunks: 256 MiB, if the bridge read it all


async def _endless(writer: asyncio.StreamWriter) -> int:
    """Write x's until the other side hangs up (or ENDLESS chunks went): how many chunks went."""
    sent = 0
    try:
        while sent < ENDLESS:
            writer.write(b"x" * 65536)
            await writer.drain()
            sent += 1
    except ConnectionError:
        pass
    return sent


class RogueHttp:
    """One POST per connection (Connection: close); what each request gets is chosen by its method/tool."""

    def __init__(self) -> None:
        self.closed_calls: asyncio.Queue[str] = asyncio.Queue()
        self.notifications: list[str] = []
        self.endless_chunks = -1  # how much of the endless line went out before the bridge hung up
        self.error_chunks = -1  # ... of the endless error page

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if not head.startswith(b"POST"):
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            msg = json.loads(await reader.readexactly(length))
            await self.answer(msg, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):  # (cancelled: the end)
            pass
        finally:
            writer.close()

    async def answer(self, msg: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        method, mid = msg.get("method"), msg.get("id")
        if mid is None:
            self.notifications.append(str(method))
            if method == "notifications/cancelled":
                await asyncio.sleep(3600)  # never answered
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        start = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: s1\r\n"
                 b"Connection: close\r\n\r\n")
        if method == "initialize":
            result = json.dumps({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "rogue-http", "version": "1"}}}, indent=1).encode()
            lines = result.split(b"\n")  # one message over several data lines, CRLF line ends
            body = b": a comment\r\nevent: message\r\nid: 7\r\nretry: 100\r\n"
            body += b"".join(b"data: " + line + b"\r\n" for line in lines) + b"\r\n"
            writer.write(start + body)
            return
        if method == "tools/list":
            result = json.dumps({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
                {"name": n, "inputSchema": {"type": "object"}} for n in ("endless", "hang", "echo")]}}).encode()
            writer.write(start)
            # CR line ends, cut across writes; "data" with no space after the colon
            for piece in (b"data:", result[:10], b"\r", b"data:" + result[10:] + b"\r", b"\r"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
            return
        name = (msg.get("params") or {}).get("name")
        if name == "endless":  # one line that never ends
            writer.write(start + b"data: ")
            self.endless_chunks = await _endless(writer)
            return
        if name == "error":  # an HTTP error whose page never ends
            writer.write(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            self.error_chunks = await _endless(writer)
            return
        if name == "moved":
            writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere.invalid/mcp\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if name == "hang":  # never answers; says when the bridge closes the connection
            writer.write(start + b": waiting\n\n")
            await writer.drain()
            await reader.read()  # EOF: the bridge closed it
            await self.closed_calls.put(str(name))
            return
        text = json.dumps({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "ok"}]}})
        writer.write(start + b"data: " + text.encode() + b"\n\n")


def test_event_streams_are_read_right_and_bounded(tmp_path: Path) -> None:
    async def main() -> None:
        rogue = RogueHttp()
        server = await asyncio.start_server(rogue.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = Settings.load(environ={}, data_dir=tmp_path, bridge_max_message=256 * 1024)
        transport = HttpTransport(f"http://127.0.0.1:{port}/mcp", {}, plugin_id="rogue", settings=settings)
        client = McpClient(transport, "rogue", notify_timeout=WAIT)
        try:
            await client.connect("2025-11-25", WAIT)  # multi-line data, CRLF, comment, event/id/retry fields
            assert client.server_info == {"name": "rogue-http", "version": "1"}
            tools = json.loads(bytes(await client.request("tools/list", timeout=WAIT)))["tools"]  # CR, cut
            assert [t["name"] for t in tools] == ["endless", "hang", "echo"]
            with pytest.raises(TimeoutError):  # given up: its POST is closed, and notifications/cancelled
                await client.request("tools/call", {"name": "hang"}, timeout=0.3)  # (never answered) holds nothing
            assert await asyncio.wait_for(rogue.closed_calls.get(), WAIT) == "hang"
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await client.request("tools/call", {"name": "hang"})
            assert await asyncio.wait_for(rogue.closed_calls.get(), WAIT) == "hang"
            reply = json.loads(bytes(await client.request("tools/call", {"name": "echo"}, timeout=WAIT)))
            assert reply["content"][0]["text"] == "ok"
            with pytest.raises(BridgeLost) as lost:  # an endless line: the server is lost, with the reason
                await client.request("tools/call", {"name": "endless"}, timeout=WAIT)
            assert "bridge_max_message" in str(lost.value)
            while rogue.endless_chunks < 0:
                await asyncio.sleep(0.01)
            assert rogue.endless_chunks < ENDLESS // 2, "the bridge read on past bridge_max_message"
            assert "notifications/cancelled" in rogue.notifications
        finally:
            await client.close(0.5)
            server.close()

    asyncio.run(asyncio.wait_for(main(), 2 * WAIT))


def test_an_http_error_fails_its_call_and_its_page_is_not_read_whole(tmp_path: Path) -> None:
    async def main() -> None:
        rogue = RogueHttp()
        server = await asyncio.start_server(rogue.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = Settings.load(environ={}, data_dir=tmp_path)
        transport = HttpTransport(f"http://127.0.0.1:{port}/mcp", {}, plugin_id="rogue", settings=settings)
        client = McpClient(transport, "rogue", notify_timeout=WAIT)
        try:
            await client.connect("2025-11-25", WAIT)
            with pytest.raises(ProtocolError) as failed:
                await client.request("tools/call", {"name": "error"}, timeout=WAIT)
            assert "HTTP 500" in failed.value.message and "xxx" in failed.value.message
            while rogue.error_chunks < 0:
                await asyncio.sleep(0.01)
            assert rogue.error_chunks < ENDLESS // 2, "the bridge read the whole error page"
            reply = json.loads(bytes(await client.request("tools/call", {"name": "echo"}, timeout=WAIT)))
            assert reply["content"][0]["text"] == "ok"  # the session goes on
            with pytest.raises(ProtocolError) as moved:  # a redirect is not followed, and said so
                await client.request("tools/call", {"name": "moved"}, timeout=WAIT)
            assert "307" in moved.value.message and "http://elsewhere.invalid/mcp" in moved.value.message
            assert "does not follow redirects" in moved.value.message
        finally:
            await client.close(0.5)
            server.close()

    asyncio.run(asyncio.wait_for(main(), 2 * WAIT))
