"""Redirects of the index or an artifact are followed from http(s) to http(s) only: one to ftp:// (which urllib
alone would follow) is refused with the reason; one to another http path of the same server still works."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from index_helpers import Publisher, installer

from mcp_edge.errors import IndexRefused


@contextmanager
def _redirecting(root: Path, moves: dict[str, str]) -> Iterator[str]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            if name in moves:
                self.send_response(302)
                self.send_header("Location", moves[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_redirect_to_another_scheme_is_refused(tmp_path: Path) -> None:
    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    pub.publish("1.0.0", "v1")
    with _redirecting(pub.out, {"old.json": "/index.json", "ftp.json": "ftp://127.0.0.1:9/index.json"}) as url:
        assert installer(tmp_path, url + "old.json", trust).refresh().version == 1  # http -> http: followed
        with pytest.raises(IndexRefused, match=r"ftp.json redirects to ftp://127.0.0.1:9/index.json: only "
                                               r"redirects to http\(s\) are followed"):
            installer(tmp_path, url + "ftp.json", trust).refresh()
