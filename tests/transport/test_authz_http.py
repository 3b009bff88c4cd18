"""Authorization and rate limits over HTTP with the built-in plugins: for every built-in tool, a call without a
credential gets 401 and one by a principal whose roles do not allow it gets the forbidden refusal (-32012), while
the admin's succeeds past authorization; lists show each caller only its own; a rate limit answers 429 with
Retry-After and data.retryAfterMs, then lets the client in again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transport_helpers import ROOT, HttpClient, open_as, post_as, request, running_server

from mcp_edge.runtime.auth import ApiKeys

POLICY = """
[roles.admin]
metrics = true
plugins = ["fs", "sysinfo", "logs", "runtime", "native_hello"]
tools = ["*"]
resources = ["*"]
prompts = ["*"]

[roles.guest]
tools = ["no_such_tool"]

[principals]
"api-key:admin" = ["admin"]
"api-key:guest" = ["guest"]
"""






def _server(tmp_path: Path, **extra: Any) -> tuple[Any, dict[str, str]]:
    (tmp_path / "policy.toml").write_text(POLICY)
    keys = ApiKeys(tmp_path / "data" / "api-keys.json")
    made = {name: keys.add(name, []) for name in ("admin", "guest")}
    keys.save()
    settings = {"plugin_dirs": [str(ROOT / "plugins")], "auth_required": True,
                "auth_policy_file": str(tmp_path / "policy.toml"), **extra}
    return running_server(tmp_path, "--http", "--port", "0", settings=settings), made


def test_every_builtin_tool_refuses_the_unauthenticated_and_the_unauthorized(tmp_path: Path) -> None:
    server, keys = _server(tmp_path)
    with server as srv:
        c = HttpClient(srv.port)
        try:
            admin = open_as(c, keys["admin"])
            tools = [t["name"] for t in post_as(c, request(2, "tools/list", {}), keys["admin"], admin)
                     .json()["result"]["tools"]]
            assert len(tools) >= 5, tools  # the built-in plugins' tools
            guest = open_as(c, keys["guest"])
            assert post_as(c, request(3, "tools/list", {}), keys["guest"], guest).json()["result"]["tools"] == []
            for i, name in enumerate(tools):
                call = request(10 + i, "tools/call", {"name": name, "arguments": {}})
                assert post_as(c, call, None).status == 401, name
                denied = post_as(c, call, keys["guest"], guest)
                assert denied.status == 200 and denied.json()["error"]["code"] == -32012, (name, denied)
                allowed = post_as(c, call, keys["admin"], admin).json()
                assert allowed.get("error", {}).get("code") != -32012, (name, allowed)
        finally:
            c.close()
    assert "denied: api-key guest may not use tool" in srv.stderr()  # denials are logged


def test_a_rate_limit_answers_429_then_lets_the_client_in_again(tmp_path: Path) -> None:
    server, keys = _server(tmp_path, rate_limit_rps=5.0, rate_limit_burst=1)
    with server as srv:
        c = HttpClient(srv.port)
        try:
            sid = open_as(c, keys["admin"])  # (the handshake is the protocol core's: not counted)
            assert post_as(c, request(1, "tools/list", {}), keys["admin"], sid).status == 200  # the burst of 1
            reply = post_as(c, request(2, "tools/list", {}), keys["admin"], sid)
            assert reply.status == 429, reply
            assert int(reply.headers["retry-after"]) >= 1
            error = reply.json()["error"]
            assert error["code"] == -32011 and error["data"]["retryAfterMs"] > 0
            time.sleep(error["data"]["retryAfterMs"] / 1000 + 0.05)
            again = post_as(c, request(3, "tools/list", {}), keys["admin"], sid)
            assert again.status == 200 and "tools" in again.json()["result"]
        finally:
            c.close()


def test_metrics_need_a_role_that_may_scrape_them(tmp_path: Path) -> None:
    server, keys = _server(tmp_path, metrics=True)
    with server as srv:
        c = HttpClient(srv.port)
        try:
            def scrape(key: str | None) -> int:
                return c.request("GET", path="/metrics",
                                 headers={"Authorization": f"Bearer {key}"} if key else {}).status

            assert scrape(keys["admin"]) == 200
            assert scrape(keys["guest"]) == 403  # authenticated, but no role with metrics = true
            assert scrape(None) == 401
        finally:
            c.close()


def test_a_policy_with_a_bad_metrics_flag_is_refused() -> None:
    import pytest

    from mcp_edge.errors import ConfigError
    from mcp_edge.runtime.policy import Policy

    with pytest.raises(ConfigError, match=r"roles\.r\.metrics must be true or false"):
        Policy.from_dict({"roles": {"r": {"metrics": "yes"}}}, "p.toml")
