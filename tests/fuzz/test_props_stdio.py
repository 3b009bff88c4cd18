"""The stdio transport under random bytes: a real ``mcp-edge serve --stdio`` process (the probe plugin loaded).

Whatever a client writes on stdin, the process lives on, still answers (a ping sent after the bytes gets its
response), and writes only JSON-RPC messages on stdout, one per line. One process serves every example
(respawned if an example killed it, which fails that example); its frame limit is small (4 KiB) so that
the oversize path is reached too.
"""

from __future__ import annotations

import json

from fuzzing import examples
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from stdio_server import ANSWER_S, MAX_FRAME, StdioServer, replay
from strategies import byte_streams, deep_nesting

payloads = st.one_of(byte_streams, deep_nesting(), st.binary(min_size=MAX_FRAME - 8, max_size=2 * MAX_FRAME))

NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@settings(max_examples=examples(0.5), phases=NO_SHRINK)  # a real process: no minutes of shrinking
@given(payload=payloads)
def test_stdio_survives_any_bytes(stdio_server: StdioServer, payload: bytes) -> None:
    replay(stdio_server, payload)


def test_stdio_after_the_fuzzing_exits_cleanly_on_eof(stdio_server: StdioServer) -> None:
    """The process that took every example above still answers, then exits 0 at EOF with nothing stray on stdout."""
    stdio_server.ensure()
    stdio_server.send(b'{"jsonrpc":"2.0","id":"last","method":"ping"}\n')
    stdio_server.until("last")
    proc = stdio_server.proc
    assert proc is not None and proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    rest = stdio_server.buf + proc.stdout.read()
    assert proc.wait(ANSWER_S) == 0
    for line in rest.splitlines():
        assert json.loads(line).get("jsonrpc") == "2.0", line[:300]
    assert stdio_server.spawned == 1, "an example killed the server (see the failure above)"
