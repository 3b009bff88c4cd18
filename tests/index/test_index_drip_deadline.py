"""index_deadline_s holds within one read too: a server that drips a large artifact (each piece in time for
index_timeout_s) is cut off at the deadline, not only once the 256 KiB read it is filling has come in whole (or
the server fell silent for index_timeout_s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, QuietHandler, box_settings, published_v1, serve_with

from mcp_edge.errors import IndexRefused
from mcp_edge.index.installer import Installer

BIG = 512 * 1024


@contextmanager
def _dripping(root: Path, name: str, sent: list[int]) -> Iterator[str]:
    """Serves ``root``; ``name`` is announced as BIG bytes, then 1 KiB every 0.05 s up to 64 KiB, then silence."""
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path.lstrip("/") != name:
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 1024)
                    self.wfile.flush()
                    sent[0] += 1024
                    time.sleep(0.05)
                time.sleep(5)  # then silence, the connection held
            except OSError:  # the client went away: what this test wants
                pass
            self.close_connection = True
            return None

    with serve_with(root, Handler) as url:
        yield url


def test_a_dripping_artifact_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    import json

    from mcp_edge.index.signing import canonical, load_private_key, sign

    pub, trust = published_v1(tmp_path)
    index = pub.out / "index.json"
    doc = json.loads(index.read_text())
    entry = doc["signed"]["plugins"][0]
    entry["size"], entry["url"] = BIG, "drip.tar.gz"  # (never completes: the hash does not matter)
    doc["signatures"] = [sign(load_private_key(pub.key), canonical(doc["signed"]))]
    index.write_text(json.dumps(doc))
    sent = [0]
    with _dripping(pub.out, "drip.tar.gz", sent) as url:
        box = Installer(box_settings(tmp_path, url + "index.json", trust, index_deadline_s=0.3,
                                          index_timeout_s=2.0))
        with pytest.raises(IndexRefused, match="took longer than index_deadline_s: cut off"):
            box.install(PLUGIN_ID)
    assert not (tmp_path / "data" / "plugins" / PLUGIN_ID).exists()
