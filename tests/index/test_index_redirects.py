"""Redirects of the index or an artifact are followed from http(s) to http(s) only: one to ftp:// (which urllib
alone would follow) is refused with the reason; one to another http path of the same server still works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from index_helpers import QuietHandler, installer, published_v1, serve_with

from mcp_edge.errors import IndexRefused


@contextmanager
def _redirecting(root: Path, moves: dict[str, str]) -> Iterator[str]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            if name in moves:
                self.send_response(302)
                self.send_header("Location", moves[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    with serve_with(root, Handler) as url:
        yield url


def test_a_redirect_to_another_scheme_is_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    with _redirecting(pub.out, {"old.json": "/index.json", "ftp.json": "ftp://127.0.0.1:9/index.json"}) as url:
        assert installer(tmp_path, url + "old.json", trust).refresh().version == 1  # http -> http: followed
        with pytest.raises(IndexRefused, match=r"ftp.json redirects to ftp://127.0.0.1:9/index.json: only "
                                               r"redirects to http\(s\) are followed"):
            installer(tmp_path, url + "ftp.json", trust).refresh()
