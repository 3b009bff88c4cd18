"""Reading the index and downloading artifacts: ``http://``, ``https://``, ``file://`` or a plain path, with
the standard library only (urllib), every read bounded in bytes and time (``Settings.index_max_bytes``,
``plugin_max_download``; ``index_timeout_s`` for each network read, ``index_deadline_s`` for the whole). A
download is streamed into a file the caller owns while it is hashed; one that ends early (the server closed the
connection) or runs long is refused, and the caller throws the partial file away."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, BinaryIO, Final

from mcp_edge.errors import IndexRefused

__all__ = ["download", "read_bounded", "resolve"]

_CHUNK: Final = 256 * 1024
_SCHEMES: Final = ("http", "https", "file")


def _is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme in _SCHEMES and "://" in text


def resolve(base: str, url: str) -> str:
    """``url`` as an absolute location: an absolute http(s)/file URL as is; a relative one beside ``base`` (the
    index's own URL or path). IndexRefused for another scheme."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme and "://" in url:
        if scheme not in _SCHEMES:
            raise IndexRefused(f"artifact URL {url!r}: only http, https and file URLs are fetched")
        return url
    if _is_url(base):
        return urllib.parse.urljoin(base, url)
    return str(Path(base).expanduser().parent / url)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects from http(s) to http(s) only, and never from https down to http (urllib alone follows one to
    ftp, or from https to plain http)."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        old, new = urllib.parse.urlsplit(req.full_url).scheme, urllib.parse.urlsplit(newurl).scheme
        if new not in ("http", "https") or (old == "https" and new == "http"):
            raise IndexRefused(f"{req.full_url} redirects to {newurl}: only redirects to http(s) are followed, "
                               "and none from https to http; refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(source: str, timeout: float) -> tuple[BinaryIO, int | None]:
    """A readable stream of ``source`` and its announced length (None: not announced)."""
    if _is_url(source) and not source.startswith("file:"):
        req = urllib.request.Request(source, headers={"User-Agent": "mcp-edge", "Accept-Encoding": "identity"})
        try:
            resp = urllib.request.build_opener(_Redirects).open(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise IndexRefused(f"cannot fetch {source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise IndexRefused(f"cannot fetch {source}: {reason}") from None
        length = resp.headers.get("Content-Length")
        return resp, int(length) if length and length.isdigit() else None
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(source).path) if source.startswith("file:")
                else source).expanduser()
    try:
        f = path.open("rb")
    except OSError as exc:
        raise IndexRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    return f, os.fstat(f.fileno()).st_size


def _read_some(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, whatever one read of the source gives (``read1``): a plain ``read(n)`` of a response
    waits until all ``n`` bytes came, so a server that drips would hold it (and the install lock) far past
    ``index_deadline_s``, which is checked between reads."""
    read1 = getattr(stream, "read1", None)
    return bytes(read1(n)) if read1 is not None else stream.read(n)


def _late(source: str, deadline: float, stop: threading.Event | None = None) -> None:
    if time.monotonic() > deadline:
        raise IndexRefused(f"reading {source} took longer than index_deadline_s: cut off")
    if stop is not None and stop.is_set():
        raise IndexRefused(f"reading {source} cut off: the server is stopping")


def read_bounded(source: str, limit: int, timeout: float, what: str, deadline_s: float = 600.0,
                 stop: threading.Event | None = None) -> bytes:
    """All of ``source``, refused past ``limit`` bytes or ``deadline_s`` seconds, or once ``stop`` is set."""
    import http.client

    deadline = time.monotonic() + deadline_s
    stream, length = _open(source, timeout)
    parts: list[bytes] = []
    got = 0
    with stream:
        if length is not None and length > limit:
            raise IndexRefused(f"{what} {source} is {length} bytes, more than {limit}")
        try:
            while got <= limit:
                chunk = _read_some(stream, min(_CHUNK, limit + 1 - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
                _late(source, deadline, stop)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise IndexRefused(f"cannot fetch {source}: {exc}") from None
    if got > limit:
        raise IndexRefused(f"{what} {source} is more than {limit} bytes")
    return b"".join(parts)


def download(source: str, out: BinaryIO, size: int, timeout: float, deadline_s: float = 600.0,
             stop: threading.Event | None = None) -> str:
    """Stream exactly ``size`` bytes of ``source`` into ``out``; their SHA-256. IndexRefused when it ends early
    (``interrupted``), runs past ``size`` or ``deadline_s`` seconds, is stopped (``stop`` set: the server is
    stopping), or cannot be fetched."""
    import http.client

    deadline = time.monotonic() + deadline_s
    h = hashlib.sha256()
    got = 0
    stream, length = _open(source, timeout)
    with stream:
        if length is not None and length != size:
            raise IndexRefused(f"{source} is {length} bytes; the index says {size}")
        try:
            while got <= size:
                chunk = _read_some(stream, min(_CHUNK, size + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
                if got > size:
                    break
                h.update(chunk)
                out.write(chunk)
                _late(source, deadline, stop)
        except http.client.IncompleteRead as exc:
            raise IndexRefused(f"download of {source} interrupted after {got + len(exc.partial)} of {size} bytes "
                               "(the connection closed)") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise IndexRefused(f"download of {source} interrupted after {got} of {size} bytes: {exc}") from None
    if got > size:
        raise IndexRefused(f"{source} is longer than the {size} bytes the index says")
    if got < size:
        raise IndexRefused(f"download of {source} interrupted after {got} of {size} bytes (the connection closed)")
    return h.hexdigest()
