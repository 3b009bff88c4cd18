"""http_get's edges: the host it checks is the host it reaches (a URL with user:password@ is refused), a
redirect is answered as it is (never followed), and a server that answers a byte at a time cannot hold the call
past its deadline (the connection is cut there: a socket timeout alone is per read)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wasm_helpers import QuietHandler, answer, registry_of, serving, started, write_wasm_plugin

DRIP = 60  # bytes, one each 0.1 s: six seconds, far past the plugin's deadline


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    sent = 0  # bytes of the drip written so far (counted before each is written)


class _Handler(QuietHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/")
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"moved")
            return
        if self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", str(DRIP))
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(DRIP):
                    self.server.sent += 1
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            return
        self.reply(b"host " + (self.headers.get("Host") or "").encode())


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    with serving(srv):
        yield srv


def test_http_get_edges(misbehave: Path, tmp_path: Path, server: _Server) -> None:
    port = server.server_address[1]
    folder = write_wasm_plugin(tmp_path / "plugins", "misbehave", misbehave, f"""
        deadline_ms = 500
        host_functions = ["http_get"]
        http_hosts = ["127.0.0.1:{port}"]
    """)
    reg = registry_of([folder], tmp_path)

    async def call(url: str) -> tuple[bool, str]:
        return await answer(reg, "fetch", {"url": url})

    async def main() -> None:
        async with started(reg, "misbehave"):
            base = f"http://127.0.0.1:{port}"
            assert await call(f"{base}/") == (False, f"200 host 127.0.0.1:{port}")
            assert await call(f"http://evil@127.0.0.1:{port}/") == (True, "Invalid argument")
            assert await call(f"http://127.0.0.1:{port}@evil.invalid/") == (True, "Invalid argument")
            assert await call(f"http://u:p@127.0.0.1:{port}/") == (True, "Invalid argument")
            for other in (f"http://127.1:{port}/", f"http://2130706433:{port}/", f"http://127.0.0.1.:{port}/",
                          f"http://[::ffff:127.0.0.1]:{port}/", f"http://localhost:{port}/"):
                assert await call(other) == (True, "Permission denied"), other  # other spellings: not listed
            assert await call(f"HTTP://127.0.0.1:{port}/") == (False, f"200 host 127.0.0.1:{port}")
            assert await call(f"{base}/redirect") == (False, "302 moved")
            failed, text = await call(f"{base}/drip")
            sent = server.sent
            # the host's ETIMEDOUT, or the deadline's trap when the module had not answered by then
            assert failed and ("Operation timed out" in text or "deadline of 500 ms passed" in text), text
            assert sent < DRIP, "the call waited for the whole dripped body"
            assert await call(f"{base}/") == (False, f"200 host 127.0.0.1:{port}")

    asyncio.run(main())
