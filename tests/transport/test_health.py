"""Health: ``/healthz/live|startup|ready`` on a real HTTP server, ``mcp-edge health`` against real servers, and the
verdict as a pure function of the phase and the plugin states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_unix import _short_path
from transport_helpers import HERE, PROBE_PLUGINS, ROOT, WAIT, HttpClient, running_server, server_env

from mcp_edge.health import EXIT_NOT_READY, EXIT_READY, EXIT_UNREACHABLE, Health, evaluate

HEALTH_PLUGINS = HERE / "health_plugins"
# The probe (active), broken (fails in initialize), spare (disabled).
SETTINGS = {"plugin_dirs": [str(PROBE_PLUGINS), str(HEALTH_PLUGINS)], "disabled_plugins": ["spare"]}


def _states(body: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {p["id"]: (p["state"], p["reason"]) for p in body["plugins"]}


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with running_server(tmp_path, "--http", "--port", "0", settings=SETTINGS) as srv:
        yield srv


def test_the_three_probes_pass_with_a_failed_plugin_shown_and_a_disabled_one_left_out(server: Any) -> None:
    c = HttpClient(server.port)
    try:
        bodies = {}
        for probe in ("live", "startup", "ready"):
            reply = c.request("GET", path=f"/healthz/{probe}")
            assert reply.status == 200 and reply.headers["content-type"] == "application/json", reply
            bodies[probe] = reply.json()
    finally:
        c.close()
    ready = bodies["ready"]
    assert ready["ok"] is True and ready["phase"] == "serving" and "broken" in ready["why"]
    states = _states(ready)
    assert states["probe"] == ("active", None)
    assert states["broken"][0] == "failed" and "sensor bus" in str(states["broken"][1])
    assert states["spare"][0] == "disabled"
    assert bodies["live"]["ok"] and bodies["startup"]["ok"]


def test_probes_keep_the_host_check_but_skip_origin_and_sessions(server: Any) -> None:
    c = HttpClient(server.port)
    try:
        assert c.request("GET", path="/healthz/ready", headers={"Host": "evil.example"}).status == 403
        assert c.request("GET", path="/healthz/ready", headers={"Origin": "https://evil.example"}).status == 200
        assert c.request("POST", b"{}", path="/healthz/ready").status == 405
        assert c.request("GET", path="/healthz/nothing").status == 404
        assert c.request("GET", path="/healthz/live", headers={"Mcp-Session-Id": "unknown"}).status == 200
    finally:
        c.close()


def _health(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = server_env(tmp_path)
    return subprocess.run([sys.executable, "-m", "mcp_edge.cli", "health", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=WAIT, check=False)


def test_the_health_command_over_http(server: Any, tmp_path: Path) -> None:
    done = _health("--url", f"http://127.0.0.1:{server.port}/mcp", tmp_path=tmp_path)
    assert done.returncode == EXIT_READY, done.stderr
    body = json.loads(done.stdout)
    assert body["probe"] == "ready" and _states(body)["probe"] == ("active", None)
    live = _health("--url", f"http://127.0.0.1:{server.port}/healthz/live", tmp_path=tmp_path)
    assert live.returncode == EXIT_READY and json.loads(live.stdout)["probe"] == "live"


def test_the_health_command_over_a_unix_socket(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path), settings=SETTINGS):
        done = _health("--unix", str(path), tmp_path=tmp_path)
    assert done.returncode == EXIT_READY, done.stderr
    states = _states(json.loads(done.stdout))
    assert states["probe"] == ("active", None) and states["broken"][0] == "failed"


def test_the_health_command_says_unreachable_with_status_2(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    done = _health("--unix", str(path), tmp_path=tmp_path)
    assert done.returncode == EXIT_UNREACHABLE and "unreachable" in done.stderr and done.stdout == ""
    with running_server(tmp_path, "--http", "--port", "0", settings=SETTINGS) as srv:
        port = srv.port
    done = _health("--url", f"http://127.0.0.1:{port}", tmp_path=tmp_path)  # nothing listens there now
    assert done.returncode == EXIT_UNREACHABLE


# -- the verdict ------------------------------------------------------------------------------------------------


def _row(pid: str, state: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "state": state, "reason": reason, **extra}


@pytest.mark.parametrize(("phase", "rows", "ready"), [
    ("serving", [_row("a", "active"), _row("b", "failed", "boom")], True),
    ("serving", [_row("a", "active"), _row("b", "reloading")], True),  # the old version serves on
    ("serving", [_row("a", "active"), _row("off", "discovered", "disabled by configuration")], True),
    ("serving", [_row("a", "active"), _row("off", "stopped", disabled=True)], True),
    ("serving", [_row("a", "restarting")], False),
    ("serving", [_row("a", "initialized")], False),
    ("serving", [_row("a", "failed")], False),  # failed, but with no reason shown
    ("starting", [_row("a", "active")], False),
    ("stopping", [_row("a", "active")], False),
    ("serving", [], True),
])
def test_readiness(phase: str, rows: list[dict[str, Any]], ready: bool) -> None:
    ok, body = evaluate("ready", phase, rows)
    assert ok is ready and body["ok"] is ready and body["phase"] == phase
    assert evaluate("live", phase, rows)[0] is True
    assert evaluate("startup", phase, rows)[0] is (phase != "starting")


def test_the_health_object_moves_through_its_phases() -> None:
    health = Health()
    assert not health.check("startup")[0] and not health.check("ready")[0] and health.check("live")[0]
    health.serving(lambda: [_row("a", "active")], "stdio")
    assert health.check("startup")[0] and health.check("ready")[0]
    health.stopping()
    ok, body = health.check("ready")
    assert not ok and body["why"] == "the server is shutting down"
    with pytest.raises(ValueError, match="unknown probe"):
        health.check("deep")


def test_exit_statuses_are_distinct() -> None:
    assert (EXIT_READY, EXIT_NOT_READY, EXIT_UNREACHABLE) == (0, 1, 2)
