"""A wall clock earlier than this release counts as unset: doctor and the health probes say so, bearer tokens
are refused with a reason naming the clock (an expired one would pass, a valid one fail), API keys go on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_edge.clock import CLOCK_FLOOR, clock_set, clock_state
from mcp_edge.health import evaluate


def test_before_the_floor_the_clock_is_unset_and_says_why() -> None:
    assert not clock_set(0.0) and not clock_set(CLOCK_FLOOR - 1) and clock_set(CLOCK_FLOOR)
    state = clock_state(86400.0)
    assert state["set"] is False and state["now"] == "1970-01-02T00:00:00Z" and "not set" in str(state["reason"])
    assert clock_state(CLOCK_FLOOR + 5)["set"] is True


def test_the_health_probes_and_doctor_show_the_clock() -> None:
    _, body = evaluate("live", "serving", [])
    assert body["clock"]["set"] is clock_set()
    done = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "doctor", "--json"], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout)["clock"]["set"] is clock_set()


def test_tokens_are_refused_while_the_clock_is_unset_and_api_keys_go_on(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    jwt = pytest.importorskip("jwt")
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.auth import ApiKeys, Auth, Denied
    from mcp_edge.runtime.principal import Principal

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public["kid"] = "k"
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public]}))
    keys = ApiKeys(tmp_path / "keys.json")
    api_key = keys.add("robot", [])
    keys.save()
    settings = Settings.load(data_dir=tmp_path, auth_required=True, auth_resource="https://box/mcp",
                             auth_servers=("https://issuer",), auth_jwks_file=str(tmp_path / "jwks.json"),
                             auth_api_keys_file=str(tmp_path / "keys.json"))
    auth = Auth(settings, "https://box/mcp")
    token = jwt.encode({"sub": "a", "iss": "https://issuer", "aud": "https://box/mcp",
                        "exp": int(time.time()) + 600}, key, algorithm="RS256", headers={"kid": "k"})
    bearer = {"authorization": f"Bearer {token}"}
    assert isinstance(auth.authenticate(bearer), Principal)  # the clock is set: accepted (and remembered)
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: 3600.0)  # 1970, as a box boots without a real-time clock
        refused = auth.authenticate(bearer)
        assert isinstance(refused, Denied) and refused.status == 401 and "clock" in refused.message
        assert isinstance(auth.authenticate({"authorization": f"Bearer {api_key}"}), Principal)
    assert isinstance(auth.authenticate(bearer), Principal)  # set again: accepted again


def test_a_failed_tls_handshake_while_the_clock_is_unset_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    from mcp_edge.transport.http_wire import Listener

    loop = asyncio.new_event_loop()
    try:
        listener = Listener(loop, [], lambda: asyncio.Protocol(), 0.5, ssl_context=object())
        with caplog.at_level(logging.WARNING, logger="mcp_edge.transport"):
            listener._clock_unset(OSError("certificate is not yet valid"))  # the clock is set: nothing said
            monkeypatch.setattr(time, "time", lambda: 3600.0)
            listener._clock_unset(OSError("certificate is not yet valid"))
            listener._clock_unset(OSError("again"))  # once a minute at most
    finally:
        loop.close()
    said = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(said) == 1 and "not set" in said[0] and "not yet valid" in said[0]
