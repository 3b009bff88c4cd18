"""A mounted server over Streamable HTTP: each message a POST, its answer a JSON body or an SSE stream.

``httpx`` (the project's HTTP client, the ``bridge`` extra) is imported when the first URL server opens, never
on the runtime's start-up path. Each of our requests is POSTed from a task of its own, so a long call does not
hold the others; the messages on its response (the result, and the progress and log notifications of that
call when the server streams them) are delivered as they come. After the handshake the session id
(``Mcp-Session-Id``) and ``MCP-Protocol-Version`` ride on every request, and a GET stream, where the server
offers one, brings the notifications that belong to no call (list changes, resource updates).

The server is lost (and restarted by the supervisor) when it cannot be reached, or answers 404 to our
session (it restarted and forgot it); an HTTP error on one request fails that request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import PluginLoadError
from mcp_edge.plugin.bridge.client import Closed, Deliver, Incoming, decode

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["HttpTransport"]

log = logging.getLogger("mcp_edge.bridge")
_ACCEPT = "application/json, text/event-stream"
_batch = msgspec.json.Decoder(list[Incoming])


async def _start_of(resp: Any, size: int) -> str:
    """The first ``size`` bytes of a response's body, as text (the rest is never read: an error page may be
    endless)."""
    got = bytearray()
    async for chunk in resp.aiter_bytes():
        got += chunk
        if len(got) >= size:
            break
    return bytes(got[:size]).decode(errors="replace")


class HttpTransport:
    """One session with a Streamable HTTP server (see the module docstring)."""

    pid = 0

    def __init__(self, url: str, headers: dict[str, str], *, plugin_id: str, settings: Settings) -> None:
        self.url = url
        self.headers = dict(headers)
        self.plugin_id = plugin_id
        self.settings = settings
        self.session_id: str | None = None
        self.version: str | None = None
        self._client: Any = None
        self._deliver: Deliver | None = None
        self._closed: Closed | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._posts: dict[int, asyncio.Task[None]] = {}  # our requests' POSTs, by request id
        self._listen: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return self.url

    async def open(self, deliver: Deliver, closed: Closed) -> None:
        try:
            import httpx
        except ImportError:
            raise PluginLoadError(f"plugin {self.plugin_id}: a URL server needs httpx: "
                                  "pip install 'mcp-edge[bridge]'") from None
        timeout = httpx.Timeout(None, connect=self.settings.init_timeout_s)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        self._deliver, self._closed = deliver, closed

    def _head(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        head = {**self.headers, "Accept": _ACCEPT, "Content-Type": "application/json"}
        if self.session_id is not None:
            head["Mcp-Session-Id"] = self.session_id
        if self.version is not None:
            head["MCP-Protocol-Version"] = self.version
        if extra:
            head.update(extra)
        return head

    async def send(self, data: bytes, call: int | None = None, head: dict[str, str] | None = None) -> None:
        from mcp_edge.plugin.bridge.client import BridgeLost

        if self._client is None:
            raise BridgeLost(f"plugin {self.plugin_id}: its server session is closed", "its session is closed")
        if call is None:  # a notification or our answer: 202 expected, nothing to wait for
            await self._post(data, None, head)
            return
        task = asyncio.get_running_loop().create_task(self._post(data, call, head))
        self._tasks.add(task)
        self._posts[call] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._posts.get(call) is t:
                del self._posts[call]

        task.add_done_callback(done)

    def abandon(self, call: int) -> None:
        task = self._posts.pop(call, None)
        if task is not None:
            task.cancel()  # its connection is closed, not left waiting on an answer nobody wants

    async def _post(self, data: bytes, call: int | None, head: dict[str, str] | None) -> None:
        import httpx

        try:
            async with self._client.stream("POST", self.url, content=data, headers=self._head(head)) as resp:
                if call is not None and self.session_id is None:
                    sid = resp.headers.get("mcp-session-id")
                    if sid:
                        self.session_id = sid
                if resp.status_code == 404 and self.session_id is not None:
                    self._lost("ended our session (HTTP 404): it restarted or expired it")
                    return
                if 300 <= resp.status_code < 400:  # not followed: a Streamable HTTP endpoint does not move
                    where = resp.headers.get("location", "")[:200] or "nowhere said"
                    message = (f"the server redirected the request (HTTP {resp.status_code} to {where}); the bridge "
                               "does not follow redirects: set url to the address of the server's MCP endpoint")
                    if call is not None:
                        self._fail(call, message)
                    else:
                        log.warning("plugin %s: %s", self.plugin_id, message)
                    return
                if resp.status_code >= 400:
                    page = await _start_of(resp, 300)
                    if call is not None:
                        self._fail(call, f"HTTP {resp.status_code} from {self.url}: {page}")
                    else:
                        log.warning("plugin %s: the server answered HTTP %d to a notification: %s", self.plugin_id,
                                    resp.status_code, page)
                    return
                kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind == "text/event-stream":
                    await self._events(resp, call)
                elif kind == "application/json":
                    body = await self._body(resp)
                    if body is not None:
                        self._feed(body, call)
                elif call is not None:
                    self._fail(call, f"the server answered {resp.status_code} with content type {kind!r}")
                if call is not None:  # (ignored when the answer came: only a call still waiting fails)
                    self._fail(call, "the server ended its response without answering the request")
        except asyncio.CancelledError:
            raise
        except httpx.TransportError as exc:
            self._lost(f"cannot be reached at {self.url} ({type(exc).__name__}: {exc})")
        except Exception as exc:
            log.exception("plugin %s: a POST to its server failed", self.plugin_id)
            if call is not None:
                self._fail(call, f"{type(exc).__name__}: {exc}")

    async def _body(self, resp: Any) -> bytes | None:
        limit = self.settings.bridge_max_message
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                self._lost(f"sent a message over bridge_max_message ({limit} bytes)")
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _events(self, resp: Any, call: int | None) -> None:
        """Read an SSE stream: each event's data lines joined, one JSON-RPC message per event. Lines end with
        CRLF, LF or CR; comments and fields other than ``data`` are skipped. No line and no event may pass
        ``bridge_max_message`` (the stream is read in chunks, never a whole line at a time: a server that sends
        an endless line is lost, not buffered)."""
        limit = self.settings.bridge_max_message
        data: list[bytes] = []
        size = 0
        pending = bytearray()
        cr = False  # the last chunk ended with CR: an LF starting the next one ends nothing more

        def event() -> None:
            nonlocal size
            body = b"\n".join(data)
            data.clear()
            size = 0
            if body.strip():
                self._feed(body, call)

        async for chunk in resp.aiter_bytes():
            if cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            cr = chunk[-1:] == b"\r"
            pending += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, rest = pending.split(b"\n")
            if len(rest) > limit:
                self._lost(f"sent an event stream line over bridge_max_message ({limit} bytes)")
                return
            pending = bytearray(rest)
            for line in lines:
                if not line:
                    event()
                    continue
                field, colon, value = line.partition(b":")
                if field != b"data":  # a comment (":..."), event, id, retry: nothing the bridge uses
                    continue
                if colon and value[:1] == b" ":
                    value = value[1:]
                size += len(value) + 1
                if size > limit:
                    self._lost(f"sent a message over bridge_max_message ({limit} bytes)")
                    return
                data.append(bytes(value))
        if data:
            event()

    def _feed(self, body: bytes, call: int | None) -> None:
        if self._deliver is None:
            return
        try:
            msgs = _batch.decode(body) if body.lstrip()[:1] == b"[" else [decode(body)]
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("plugin %s: the server sent something that is not a JSON-RPC message (%s): %.200s",
                        self.plugin_id, exc, body.decode(errors="replace"))
            return
        for msg in msgs:
            self._deliver(msg, call)

    def _fail(self, call: int, message: str) -> None:
        if self._deliver is not None:
            self._deliver(decode(msgspec.json.encode({"jsonrpc": "2.0", "id": call,
                                                      "error": {"code": -32603, "message": message}})), call)

    def _lost(self, reason: str) -> None:
        closed, self._closed = self._closed, None
        if closed is not None:
            closed(reason)

    def initialized(self, result: dict[str, Any], version: str) -> None:
        self.version = version
        if self.session_id is None:  # no session (the 2026-07-28 revision, or a stateless server): no GET stream
            return
        self._listen = asyncio.get_running_loop().create_task(self._listen_stream(),
                                                              name=f"bridge-{self.plugin_id}-listen")

    async def _listen_stream(self) -> None:
        """The GET stream of notifications outside calls, while the server offers one (405: it does not)."""
        import httpx

        while self._client is not None:
            try:
                head = self._head({"Accept": "text/event-stream"})
                head.pop("Content-Type", None)
                async with self._client.stream("GET", self.url, headers=head) as resp:
                    if resp.status_code != 200:
                        return
                    await self._events(resp, None)
            except asyncio.CancelledError:
                raise
            except httpx.TransportError:
                pass  # a POST finds out whether the server is gone
            except Exception:
                log.debug("plugin %s: the server's GET stream failed", self.plugin_id, exc_info=True)
            await asyncio.sleep(1.0)

    async def close(self, grace: float) -> None:
        client, self._client = self._client, None
        self._closed = None
        if self._listen is not None:
            self._listen.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen
        for task in list(self._tasks):
            task.cancel()
        if client is None:
            return
        if self.session_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.delete(self.url, headers={**self.headers,
                                                                        "Mcp-Session-Id": self.session_id}),
                                       max(grace, 0.1))
        await client.aclose()
