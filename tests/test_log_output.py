"""Log output: secrets scrubbed from every line, JSON lines with the request id, the journal's native
protocol (a fake journal socket: fields, the binary form for multi-line values, a memfd for a big record,
stderr when the journal is gone), and a real server in JSON mode whose plugin logs a secret it was sent."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.logs import REQUEST_ID, JournalHandler, _Json, _Text, redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
SECRET = "s3cr3t-Value-42"


@pytest.mark.parametrize("line", [
    f'{{"api_key": "{SECRET}", "note": "n"}}',
    f"{{'token': '{SECRET}'}}",
    f"password={SECRET}&user=bob",
    f"Authorization: Bearer {SECRET}",
    f"authorization: basic {SECRET}",
    f"the client sent {JWT} as its token",
    f'{{"client_secret":"{SECRET}"}}',
    f"X-API-Key: {SECRET}",
    f"refresh_token: {SECRET}",
    f'"Cookie": "session={SECRET}"',
])
def test_redact_removes_the_secret_and_keeps_the_rest(line: str) -> None:
    out = redact(line)
    assert SECRET not in out and JWT not in out and "[redacted]" in out
    assert out[:4] == line[:4]  # what names the secret stays


@pytest.mark.parametrize("line", ["plugin echo loaded in 3 ms", "tokens per second: 12", "no secrets here: ok",
                                  "tool_timeout_s = 60"])
def test_redact_leaves_lines_without_secrets_alone(line: str) -> None:
    assert redact(line) == line


def _record(msg: str, *args: Any, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError(f"bad token={SECRET}")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("mcp_edge.test", logging.WARNING, __file__, 7, msg, args, info)


def test_json_lines_carry_the_request_id_and_a_scrubbed_traceback() -> None:
    token = REQUEST_ID.set(17)
    try:
        line = _Json().format(_record("called with %s", {"token": SECRET}, exc=True))
    finally:
        REQUEST_ID.reset(token)
    out = json.loads(line)
    assert out["level"] == "warning" and out["logger"] == "mcp_edge.test" and out["request_id"] == 17
    assert out["ts"].endswith("Z") and out["pid"] == os.getpid()
    assert "ValueError" in out["exc"] and SECRET not in line
    assert "request_id" not in json.loads(_Json().format(_record("outside a request")))


def test_text_lines_name_the_request() -> None:
    token = REQUEST_ID.set("abc")
    try:
        line = _Text().format(_record("hello %s", "there"))
    finally:
        REQUEST_ID.reset(token)
    assert line == "mcp-edge: WARNING mcp_edge.test: [req abc] hello there"


def _fields(datagram: bytes) -> dict[str, str]:
    out, rest = {}, datagram
    while rest:
        nl = rest.index(b"\n")
        head = rest[:nl]
        if b"=" in head:
            key, _, value = head.partition(b"=")
            out[key.decode()] = value.decode()
            rest = rest[nl + 1:]
        else:  # binary form: NAME\n, u64 LE length, value, \n
            (size,) = struct.unpack("<Q", rest[nl + 1:nl + 9])
            out[head.decode()] = rest[nl + 9:nl + 9 + size].decode()
            rest = rest[nl + 10 + size:]
    return out


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_the_journal_gets_native_fields(journal: Any) -> None:
    path, sock = journal
    handler = JournalHandler(path)
    token = REQUEST_ID.set(5)
    try:
        handler.emit(_record("first line\nsecond line with Bearer %s", SECRET))
    finally:
        REQUEST_ID.reset(token)
    fields = _fields(sock.recv(65536))
    assert fields["MESSAGE"] == "first line\nsecond line with Bearer [redacted]"
    assert fields["PRIORITY"] == "4" and fields["SYSLOG_IDENTIFIER"] == "mcp-edge"
    assert fields["LOGGER"] == "mcp_edge.test" and fields["MCP_EDGE_REQUEST_ID"] == "5"
    assert fields["SYSLOG_PID"] == str(os.getpid()) and fields["CODE_LINE"] == "7"
    handler.close()


def test_a_record_too_big_for_a_datagram_goes_as_a_sealed_memfd(journal: Any) -> None:
    path, sock = journal
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    handler = JournalHandler(path)
    big = "x" * (1 << 20)  # past the datagram limit of a unix socket here
    handler.emit(_record("big: %s", big))
    msg, ancdata, _, _ = sock.recvmsg(1024, socket.CMSG_LEN(struct.calcsize("i")))
    assert msg == b"" and ancdata, "expected an fd, no data"
    (fd,) = struct.unpack("i", ancdata[0][2][:4])
    try:
        size = os.fstat(fd).st_size
        fields = _fields(os.pread(fd, size, 0))  # (journald maps it; the offset is the sender's)
    finally:
        os.close(fd)
    assert fields["MESSAGE"] == "big: " + big
    handler.close()


def test_a_journal_that_is_gone_sends_records_to_stderr(tmp_path: Path) -> None:
    err = io.StringIO()
    handler = JournalHandler(str(tmp_path / "no-journal.sock"), fallback=err)
    real = sys.stderr
    sys.stderr = io.StringIO()
    try:
        handler.emit(_record("one"))
        handler.emit(_record("two with password=%s", SECRET))
        said = sys.stderr.getvalue()
    finally:
        sys.stderr = real
    assert "cannot be reached" in said and said.count("\n") == 1  # said once
    assert err.getvalue().splitlines() == ["mcp-edge: WARNING mcp_edge.test: one",
                                           "mcp-edge: WARNING mcp_edge.test: two with password=[redacted]"]


@pytest.mark.parametrize("mode", ["inproc", "process"])
def test_a_json_server_never_writes_a_secret_it_was_sent(tmp_path: Path, mode: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "transport"))
    from transport_helpers import HERE, WAIT, initialize, notification, probe_command, request, server_env

    env = server_env(tmp_path, {"plugin_dirs": [str(HERE / "metrics_plugins")], "log_format": "json",
                                "plugin_isolation": {"meter": mode}})
    lines = [initialize(1), notification("notifications/initialized"),
             request(2, "tools/call", {"name": "tell", "arguments": {"secret": SECRET, "note": "hello"},
                                       "_meta": {"authorization": f"Bearer {JWT}"}}),
             request(3, "tools/call", {"name": "no_such_tool", "arguments": {"password": SECRET}}),
             {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": f"token={SECRET}"}]
    done = subprocess.run(probe_command("--stdio"), input="".join(json.dumps(m) + "\n" for m in lines).encode(),
                          capture_output=True, env=env, cwd=tmp_path, timeout=WAIT, check=False)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert SECRET not in err and JWT not in err
    records = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    told = [r for r in records if r["logger"] == "meter"]
    assert [r["level"] for r in told] == ["warning", "warning", "info"], told
    assert all(r["request_id"] == 2 for r in told)
    assert "[redacted]" in told[0]["msg"] and "[redacted]" in told[1]["msg"] and told[2]["msg"] == "note: hello"
    assert any(r["msg"].startswith("serving MCP over stdio") for r in records)
