"""HTTP framing under arbitrary bytes: in process (``HttpConnection`` with a fake transport) and a real server.

Whatever a client sends on a connection, ``data_received`` never raises, nothing is logged with a traceback,
and what the server writes is a sequence of well-formed HTTP/1.1 responses (no 500, JSON bodies that parse,
no more final responses than requests) followed by a close; the real server answers the next client.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fuzzing import examples
from harness import check_http_parts, parse_http_responses
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from strategies import http_requests, http_streams
from transport_helpers import HttpClient, ServerProcess, running_server

ANSWER_S = 5.0  # a bounded wait, not a timing assertion


@settings(max_examples=examples(2.0))
@given(stream=http_streams())
def test_http_connection_in_process(stream: tuple[list[bytes], int | None]) -> None:
    chunks, requests = stream
    check_http_parts(chunks, requests=requests)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("http-fuzz"), "--http", "--port", "0",
                        settings={"max_body": 4096}) as server:
        yield server


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the server closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_S) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused early and closed: what it wrote is still there to read
        chunks: list[bytes] = []
        deadline = time.monotonic() + ANSWER_S
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server kept the connection open {ANSWER_S} s after the client's EOF")
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError("the server neither answered nor closed") from None
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@settings(max_examples=examples(0.5), phases=NO_SHRINK)  # a real process: no minutes of shrinking
@given(data=st.one_of(http_requests(), st.binary(max_size=400),
                      st.lists(http_requests(), min_size=2, max_size=3).map(b"".join)))
def test_real_http_server(http_server: ServerProcess, data: bytes) -> None:
    out = _exchange(http_server.port, data)
    for r in parse_http_responses(out, closed=True):
        assert r.status != 500, r
    assert http_server.proc.poll() is None, "the server died:\n" + http_server.stderr()[-3000:]
    client = HttpClient(http_server.port)
    try:
        reply = client.stateless("after", "tools/list")
        assert reply.status == 200 and reply.json()["id"] == "after", reply
    finally:
        client.close()
    assert "Traceback" not in http_server.stderr(), http_server.stderr()[-3000:]


