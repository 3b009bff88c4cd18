"""The runtime's log output: plain lines (the default) or JSON lines, on stderr or straight to the systemd
journal over its native socket protocol; every line scrubbed of secrets; the id of the request being served
on each record logged while serving it.

- ``log_format = "text"``: ``mcp-edge: LEVEL logger: message`` (``[req ID]`` before the message while a
  request is served); ``"json"``: one object a line, ``ts`` (RFC 3339, UTC, microseconds), ``level``,
  ``logger``, ``msg``, ``request_id`` when serving one, ``pid``, and ``exc`` with the traceback.
- ``log_target = "journald"``: each record one datagram to ``journal_socket`` (``MESSAGE``, ``PRIORITY``,
  ``SYSLOG_IDENTIFIER=mcp-edge``, ``SYSLOG_PID``, ``LOGGER``, ``CODE_FILE``/``LINE``/``FUNC``,
  ``MCP_EDGE_REQUEST_ID``), a record too big for a datagram through a sealed memfd as journald accepts it;
  no systemd-python. A journal that cannot be reached sends the records to stderr instead, once said so.
- Secrets: whatever the format or target, a line is scrubbed before it is written: ``Bearer`` credentials,
  anything shaped like a JWT, and the value after a key named like a credential (authorization, token,
  password, secret, api key, cookie...) become ``[redacted]``. Code should not log secrets; this is the net
  under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import struct
import sys
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings

__all__ = ["REQUEST_ID", "JournalHandler", "configure", "redact", "say"]

REQUEST_ID: ContextVar[str | int | None] = ContextVar("mcp_edge_request_id", default=None)
IDENTIFIER: Final = "mcp-edge"
TEXT_FORMAT: Final = "mcp-edge: %(levelname)s %(name)s: %(message)s"
_PRIORITY: Final = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
REDACTED: Final = "[redacted]"

_SECRET_KEY = (r"(?:authorization|proxy-authorization|password|passwd|passphrase|secret|client[_-]?secret|"
               r"token|access[_-]?token|refresh[_-]?token|id[_-]?token|api[_-]?key|apikey|x-api-key|cookie|"
               r"set-cookie|private[_-]?key)")
_PATTERNS: Final = (
    # "key": "value", 'key': 'value', key=value, key: value (JSON, reprs, headers, query strings)
    (re.compile(r"(?i)(([\"']?)" + _SECRET_KEY + r"\2\s*[:=]\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|"
                r"(?:(?:bearer|basic)\s+)?[^\s,;&}\]]+)"),
     lambda m: m.group(1) + (m.group(3)[0] + REDACTED + m.group(3)[0] if m.group(3)[:1] in "\"'" else REDACTED)),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), lambda m: m.group(1) + " " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), lambda m: REDACTED),
)


def redact(text: str) -> str:
    """``text`` with credentials replaced by ``[redacted]``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class _Text(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = REQUEST_ID.get()
        if rid is not None:
            head = f"mcp-edge: {record.levelname} {record.name}: "
            if line.startswith(head):
                line = f"{head}[req {rid}] {line[len(head):]}"
        return redact(line)


class _Json(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        import msgspec

        self._encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.created % 1 * 1e6):06d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "pid": record.process,
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return self._encode(out).decode()


def _field(name: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """Records to the systemd journal over its native datagram socket; stderr when it cannot be reached."""

    def __init__(self, path: str, fallback: TextIO | None = None) -> None:
        super().__init__()
        self.path = path
        self.fallback = logging.StreamHandler(fallback or sys.stderr)
        self.fallback.setFormatter(_Text())
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failed = False

    def payload(self, record: logging.LogRecord) -> bytes:
        """The datagram of ``record`` in the journal's native format."""
        message = redact(record.getMessage())
        if record.exc_info:
            message += "\n" + redact(logging.Formatter().formatException(record.exc_info))
        fields = [
            ("MESSAGE", message),
            ("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
            ("SYSLOG_IDENTIFIER", IDENTIFIER),
            ("SYSLOG_PID", str(record.process)),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname or ""),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
        ]
        rid = REQUEST_ID.get()
        if rid is not None:
            fields.append(("MCP_EDGE_REQUEST_ID", str(rid)))
        return b"".join(_field(k, v) for k, v in fields if v)

    def emit(self, record: logging.LogRecord) -> None:
        if self._sock is None:
            self.fallback.emit(record)
            return
        try:
            data = self.payload(record)
            try:
                self._sock.sendto(data, self.path)
            except OSError as exc:
                if exc.errno not in (90, 105):  # EMSGSIZE, ENOBUFS: too big for a datagram
                    raise
                self._send_memfd(data)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                sys.stderr.write(f"mcp-edge: the journal at {self.path} cannot be reached ({exc.strerror or exc}); "
                                 "logging to stderr\n")
            self._sock.close()
            self._sock = None
            self.fallback.emit(record)
        except Exception:
            self.handleError(record)

    def _send_memfd(self, data: bytes) -> None:
        fd = os.memfd_create("mcp-edge-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            import fcntl

            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
                        | fcntl.F_SEAL_SEAL)
            assert self._sock is not None
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))], 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        super().close()


_json_active = False


def configure(settings: Settings | None = None, *, level: int = logging.INFO, prefix: str = "") -> None:
    """Route the ``logging`` records of this process as ``settings`` say (None: plain lines on stderr)."""
    global _json_active
    fmt = settings.log_format if settings is not None else "text"
    target = settings.log_target if settings is not None else "stderr"
    handler: logging.Handler
    if target == "journald" and settings is not None:
        handler = JournalHandler(settings.journal_socket)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Json() if fmt == "json" else _Text())
    _json_active = fmt == "json" and target != "journald"
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        with contextlib.suppress(Exception):
            old.close()
    root.addHandler(handler)
    root.setLevel(level)


def say(line: str) -> None:
    """A line for the person at the console (where the server listens, what it loaded): a JSON line when the
    logs are JSON, else ``mcp-edge: line``; on stderr either way."""
    if _json_active:
        record = logging.LogRecord("mcp_edge", logging.INFO, "", 0, line, None, None)
        sys.stderr.write(_Json().format(record) + "\n")
    else:
        sys.stderr.write(f"mcp-edge: {redact(line)}\n")
    sys.stderr.flush()
