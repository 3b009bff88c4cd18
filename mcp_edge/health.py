"""Liveness, startup and readiness of a serving runtime: what ``/healthz/*`` answer and ``mcp-edge health`` checks.

Three probes, each a status and a JSON body:

- ``live``: 200 whenever the process answers at all (a wedged loop answers nothing, which is the signal).
- ``startup``: 200 once the plugins finished starting (every enabled one active or failed), else 503.
- ``ready``: 200 while serving with every enabled plugin active (or reloading: the old version serves on) or
  failed with its reason shown; 503 while starting, while a plugin restarts, and once shutdown began.

A plugin that failed counts as settled, not as "not ready": the box serves what it can and says what it cannot,
which is what a load balancer and ``systemctl status`` should see. Disabled plugins are listed and not counted.
The verdict is a pure function of the phase and ``Registry.status()`` rows (:func:`evaluate`), so the HTTP
endpoint, the supervisor and ``mcp-edge health --unix`` (which reads the rows from the ``mcp-edge://plugins``
resource) agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

__all__ = ["EXIT_NOT_READY", "EXIT_READY", "EXIT_UNREACHABLE", "PROBES", "Health", "Unreachable", "evaluate",
           "plugin_summary", "probe_unix", "probe_url"]

PROBES: Final = ("live", "startup", "ready")
STARTING: Final = "starting"
SERVING: Final = "serving"
STOPPING: Final = "stopping"

# Plugin states that serve requests; "reloading" keeps the old generation serving until the swap.
_SERVING_STATES: Final = frozenset({"active", "reloading"})


def _disabled(row: Mapping[str, Any]) -> bool:
    # After start, a record still "discovered" was never started: only a disabled one stays there.
    return bool(row.get("disabled")) or row.get("state") == "discovered"


def plugin_summary(rows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(one {id, state, reason, counted} per plugin, ids of the enabled plugins that are not settled yet)."""
    plugins: list[dict[str, Any]] = []
    waiting: list[str] = []
    for row in rows:
        pid = str(row.get("id", "?"))
        state = str(row.get("state", "?"))
        reason = row.get("reason") or None
        counted = not _disabled(row)
        plugins.append({"id": pid, "state": "disabled" if not counted else state, "reason": reason})
        if counted and not (state in _SERVING_STATES or (state == "failed" and reason)):
            waiting.append(pid)
    return plugins, waiting


def evaluate(probe: str, phase: str, rows: Iterable[Mapping[str, Any]]) -> tuple[bool, dict[str, Any]]:
    """(passes, JSON body) of ``probe`` for a runtime in ``phase`` (starting, serving, stopping) whose
    ``Registry.status()`` is ``rows``."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}: one of {', '.join(PROBES)}")
    plugins, waiting = plugin_summary(rows)
    if probe == "live":
        ok, why = True, "the process is serving"
    elif probe == "startup":
        ok = phase != STARTING
        why = "plugins started" if ok else "plugins are starting"
    elif phase == STARTING:
        ok, why = False, "plugins are starting"
    elif phase == STOPPING:
        ok, why = False, "the server is shutting down"
    elif waiting:
        ok, why = False, "not settled yet: " + ", ".join(waiting)
    else:
        ok = True
        failed = [p["id"] for p in plugins if p["state"] == "failed"]
        why = "every enabled plugin is active" if not failed else \
            "serving; failed (see reasons): " + ", ".join(failed)
    from mcp_edge.clock import clock_state

    body = {"probe": probe, "ok": ok, "phase": phase, "why": why, "plugins": plugins, "clock": clock_state()}
    return ok, body


class Health:
    """The runtime's phase and where its plugin states come from; the supervisor moves the phase.

    ``rows`` is a callable giving ``Registry.status()`` (set once the registry exists). Plain ``__slots__``:
    this is built on the start path.
    """

    __slots__ = ("phase", "rows", "transport")

    def __init__(self) -> None:
        self.phase = STARTING
        self.rows: Callable[[], Iterable[Mapping[str, Any]]] = tuple
        self.transport = ""

    def serving(self, rows: Callable[[], Iterable[Mapping[str, Any]]], transport: str) -> None:
        """Plugins started, the transport listens."""
        self.rows = rows
        self.transport = transport
        if self.phase == STARTING:
            self.phase = SERVING

    def stopping(self) -> None:
        self.phase = STOPPING

    def check(self, probe: str) -> tuple[bool, dict[str, Any]]:
        """``evaluate`` for this runtime now."""
        return evaluate(probe, self.phase, self.rows())


# -- the client side: ``mcp-edge health`` ------------------------------------------------------------------------

EXIT_READY: Final = 0
EXIT_NOT_READY: Final = 1
EXIT_UNREACHABLE: Final = 2


class Unreachable(Exception):
    """No verdict could be had: nothing listens, the answer was not a probe's, or it took too long."""


def probe_url(url: str, timeout: float) -> tuple[bool, dict[str, Any]]:
    """(passes, body) of an HTTP probe. ``url`` may name the server (``http://host:port``), its ``/mcp``
    endpoint (both mean ``/healthz/ready``) or a probe path itself."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable(f"{url!r} is not an http:// URL")
    path = parts.path.rstrip("/")
    if path in ("", "/mcp"):
        path = "/healthz/ready"
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_type(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"{parts.scheme}://{parts.netloc}{path}: {exc}") from None
    finally:
        conn.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if resp.status not in (200, 503) or not isinstance(body, dict) or "ok" not in body:
        raise Unreachable(f"{parts.scheme}://{parts.netloc}{path} answered {resp.status}, not a health probe: "
                          f"{raw[:200]!r}")
    return resp.status == 200, body


def probe_unix(path: str, timeout: float) -> tuple[bool, dict[str, Any]]:
    """(passes, body) of readiness over the unix socket transport: an MCP handshake, then the plugin states from
    the runtime's ``mcp-edge://plugins`` resource, judged by :func:`evaluate`. A server that refuses the handshake
    (shutting down) is not ready."""
    import json
    import socket

    from mcp_edge.plugin.registry import STATUS_URI

    def call(rid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        sock.sendall(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode() + b"\n")
        while True:
            line = reader.readline()
            if not line:
                raise Unreachable(f"{path}: the server closed the connection")
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("id") == rid:
                return msg

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        reader = sock.makefile("rb")
        hello = call(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                       "clientInfo": {"name": "mcp-edge health", "version": "1"}})
        if "error" in hello:
            return False, {"probe": "ready", "ok": False, "phase": STOPPING,
                           "why": str(hello["error"].get("message")), "plugins": []}
        sock.sendall(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        read = call(2, "resources/read", {"uri": STATUS_URI})
    except (OSError, ValueError) as exc:
        raise Unreachable(f"{path}: {exc}") from None
    finally:
        sock.close()
    if "error" in read:
        return False, {"probe": "ready", "ok": False, "phase": STOPPING, "why": str(read["error"].get("message")),
                       "plugins": []}
    try:
        rows = json.loads(read["result"]["contents"][0]["text"])["plugins"]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise Unreachable(f"{path}: {STATUS_URI} did not read as the plugin list ({exc})") from None
    return evaluate("ready", SERVING, rows)
