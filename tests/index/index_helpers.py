"""Helpers of the plugin-index tests: a sample plugin in any version, a publisher's key, and the index served
over loopback HTTP by the test itself (``http.server`` in a thread) with a switch that cuts a download short."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_honesty import importorskip

importorskip("cryptography", "cryptography", "the plugin index tests need cryptography (pip install -e '.[test]')")

from mcp_edge.board.settings import Settings  # noqa: E402
from mcp_edge.index.build import build_index  # noqa: E402
from mcp_edge.index.installer import Installer  # noqa: E402
from mcp_edge.index.signing import generate_key  # noqa: E402

PLUGIN_ID = "hello"


def write_plugin(folder: Path, version: str, answer: str, plugin_id: str = PLUGIN_ID) -> Path:
    """A Python plugin ``plugin_id`` whose tool ``<id>_version`` answers ``answer``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(
        f'[plugin]\nid = "{plugin_id}"\nversion = "{version}"\ndescription = "Says which version answers"\n'
        'abi = 1\nmodule = "plugin"\ncapabilities = ["tools"]\n')
    cls = "".join(p.capitalize() for p in plugin_id.replace("-", "_").split("_"))
    (folder / "plugin.py").write_text(
        "from mcp_edge.plugin import PluginBase, tool\n\n\n"
        f"class {cls}(PluginBase):\n"
        f"    id = \"{plugin_id}\"\n"
        "    capabilities = frozenset({\"tools\"})\n\n"
        "    @tool\n"
        f"    async def {plugin_id.replace('-', '_')}_version(self) -> str:\n"
        "        \"\"\"Which version of the plugin answers.\"\"\"\n"
        f"        return {answer!r}\n")
    return folder


@dataclass
class Publisher:
    """A publisher: its key, its source folder of plugins and the folder it publishes."""

    root: Path
    key: Path = field(init=False)
    public_hex: str = field(init=False)
    out: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.key = self.root / "publisher.pem"
        generate_key(self.key)
        self.public_hex = (self.root / "publisher.pem.pub").read_text().strip()
        self.out = self.root / "www"

    def publish(self, version: str, answer: str, *, index_version: int | None = None,
                expires: dt.datetime | None = None, plugin_id: str = PLUGIN_ID) -> dict[str, Any]:
        src = self.root / f"src-{plugin_id}-{version}"
        write_plugin(src / plugin_id, version, answer, plugin_id)
        return build_index(src, self.out, self.key, version=index_version, expires=expires)

    def trust_into(self, trust_dir: Path) -> Path:
        trust_dir.mkdir(parents=True, exist_ok=True)
        (trust_dir / "publisher.pub").write_text(self.public_hex + "\n")
        return trust_dir


def published_v1(tmp: Path) -> tuple[Publisher, Path]:
    """A publisher in ``tmp/pub`` with version 1.0.0 (answering 'v1') of the sample plugin published, and the
    trust folder ``tmp/trust`` that trusts its key."""
    pub = Publisher(tmp / "pub")
    trust = pub.trust_into(tmp / "trust")
    pub.publish("1.0.0", "v1")
    return pub, trust


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/").split("?", 1)[0]
        self.server.requests.append(name)
        if name in self.server.slow:  # a server that drips: a little, then a pause, and so on
            data = (self.server.root / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for at in range(0, len(data), 64):
                    self.wfile.write(data[at:at + 64])
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):  # the client cut it off: what such a test wants
                pass
            return
        if name in self.server.cut:
            data = (self.server.root / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])  # then the connection closes: a download cut short
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut: set[str] = set()
        self.slow: set[str] = set()
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))


@contextmanager
def _serving(server: http.server.ThreadingHTTPServer) -> Iterator[None]:
    """``server`` answering in a thread for the ``with`` block, then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def serve_folder(root: Path) -> Iterator[_Server]:
    """``root`` served over HTTP on a loopback port for the ``with`` block; ``.url`` is its base URL."""
    root.mkdir(parents=True, exist_ok=True)
    server = _Server(root)
    with _serving(server):
        yield server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A folder's files over HTTP, without a log line per request: the base of a test's own handler."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_with(root: Path, handler: type[QuietHandler]) -> Iterator[str]:
    """``root`` served by ``handler`` (a QuietHandler of the test's own) on a loopback port for the ``with``
    block; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    server.daemon_threads = True
    with _serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/"


def base_url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def box_settings(tmp: Path, index: str, trust_dir: Path, **overrides: Any) -> Settings:
    """Settings of a box whose data folder is ``tmp/data`` and whose index is ``index``."""
    return Settings.load(environ={}, data_dir=tmp / "data", trust_dir=str(trust_dir), plugin_index=index,
                         **overrides)


def installer(tmp: Path, index: str, trust_dir: Path, **kw: Any) -> Installer:
    return Installer(box_settings(tmp, index, trust_dir), **kw)
