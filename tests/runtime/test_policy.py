"""Authorization and rate limits: the policy file refused with the file and the key when wrong; roles by
principal id or kind:id, patterns, plugins and tool classes; no role, nothing; the router enforcing it on calls
and filtering lists; token buckets that trip, say how long to wait, recover, and stay bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError
from mcp_edge.mcp.refusals import FORBIDDEN, RATE_LIMITED
from mcp_edge.plugin.types import ToolAnnotations, ToolDef
from mcp_edge.runtime.outcome import Failure, Result
from mcp_edge.runtime.policy import Policy, RateLimits, tool_class
from mcp_edge.runtime.principal import Principal

PLUGINS = Path(__file__).resolve().parents[1] / "transport" / "metrics_plugins"
POLICY = {
    "roles": {
        "reader": {"tools": ["*"], "resources": ["meter://*"], "classes": ["read"]},
        "operator": {"tools": ["ok", "fail"], "prompts": ["*"]},
        "owner": {"plugins": ["meter"]},
    },
    "principals": {"token:alice": ["reader"], "api-key:robot": ["operator"], "uid:0": ["owner"]},
}
ALICE = Principal("alice", "token")
ROBOT = Principal("robot", "api-key")
ROOT = Principal("uid:0", "unix-peer", uid=0)
NOBODY = Principal("mallory", "token")


@pytest.mark.parametrize(("data", "match"), [
    ({"rolez": {}}, "unknown key 'rolez'"),
    ({"roles": {"r": {"tool": ["x"]}}}, r"roles.r: unknown key 'tool'"),
    ({"roles": {"r": {"classes": ["admin"]}}}, "'admin' is not one of read, write, destructive"),
    ({"roles": {"r": {"tools": "x"}}}, "roles.r.tools must be a list"),
    ({"roles": {}, "principals": {"alice": ["ghost"]}}, "names role 'ghost'"),
])
def test_a_bad_policy_is_refused_naming_the_file_and_key(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        Policy.from_dict(data, "/etc/mcp-edge/policy.toml")
    assert "/etc/mcp-edge/policy.toml" in str(err.value)


def test_a_policy_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[roles\n")
    with pytest.raises(ConfigError, match="not TOML"):
        Policy.load(tmp_path / "p.toml")


def test_tool_classes_follow_the_annotations_and_mcps_defaults() -> None:
    def t(**ann: Any) -> ToolDef:
        return ToolDef(name="x", inputSchema={}, annotations=ToolAnnotations(**ann) if ann else None)

    assert tool_class(t(readOnlyHint=True)) == "read"
    assert tool_class(t(destructiveHint=False)) == "write"
    assert tool_class(t()) == tool_class(t(destructiveHint=True)) == tool_class(None) == "destructive"


def test_roles_patterns_plugins_and_classes() -> None:
    p = Policy.from_dict(POLICY)
    assert p.roles_of(ALICE) == {"reader"} and p.roles_of(ROBOT) == {"operator"} and p.roles_of(ROOT) == {"owner"}
    assert p.allows(ALICE, "tool", "anything", "meter", "read")
    assert not p.allows(ALICE, "tool", "anything", "meter", "write")  # the class is not the role's
    assert p.allows(ALICE, "resource", "meter://count", "meter")
    assert p.allows(ROBOT, "tool", "ok", "meter", "destructive") and not p.allows(ROBOT, "tool", "hold", "meter")
    assert p.allows(ROOT, "tool", "hold", "meter", "destructive") and not p.allows(ROOT, "tool", "hold", "other")
    assert not any(p.allows(NOBODY, k, "ok", "meter", "read") for k in ("tool", "resource", "prompt"))
    assert p.roles_of(Principal("x", "token", roles=["reader"])) == {"reader"}  # roles the credential carries


def _serve(tmp_path: Path, principal: Principal, calls: list[tuple[str, dict[str, Any]]],
           **kw: Any) -> list[Any]:
    from mcp_edge.mcp.connection import Request, ServerConnection
    from mcp_edge.runtime.router import Session
    from mcp_edge.server import Server

    (tmp_path / "policy.toml").write_text(_toml(POLICY))
    settings = Settings.load(data_dir=tmp_path, plugin_dirs=(PLUGINS,), entry_points=False, reload_watch=False,
                             auth_policy_file=str(tmp_path / "policy.toml"), **kw)

    async def main() -> list[Any]:
        running = await Server.configure(settings).start()
        try:
            router = running.router
            session = Session(ServerConnection(router.info), principal=principal)
            return [await router.handle(Request(i, m, p, "2025-11-25", False), session, None)
                    for i, (m, p) in enumerate(calls)]
        finally:
            await running.stop()

    return asyncio.run(main())


def _toml(data: dict[str, Any]) -> str:
    lines = []
    for name, role in data["roles"].items():
        lines.append(f"[roles.{name}]")
        lines += [f"{k} = {list(v)!r}".replace("'", '"') for k, v in role.items()]
    lines.append("[principals]")
    lines += [f'"{k}" = {v!r}'.replace("'", '"') for k, v in data["principals"].items()]
    return "\n".join(lines) + "\n"


def _names(outcome: Any, key: str) -> list[str]:
    import json

    assert isinstance(outcome, Result), outcome
    return sorted(i.get("name") or i.get("uri") for i in json.loads(outcome.encoded)["result"][key])


def test_the_router_enforces_the_policy_and_filters_the_lists(tmp_path: Path) -> None:
    call = ("tools/call", {"name": "ok", "arguments": {"text": "x"}})
    read_only = ("tools/call", {"name": "imported", "arguments": {"module": "sys"}})
    listing = ("tools/list", {})
    alice = _serve(tmp_path, ALICE, [call, read_only, listing, ("resources/read", {"uri": "meter://count"})])
    assert isinstance(alice[0], Failure) and alice[0].code == FORBIDDEN and "alice" in alice[0].message
    assert isinstance(alice[1], Result) and isinstance(alice[3], Result)
    assert _names(alice[2], "tools") == ["imported"]  # only the read-only tool is hers to see
    nobody = _serve(tmp_path, NOBODY, [call, listing, ("resources/list", {}), ("resources/read",
                                                                               {"uri": "meter://count"})])
    assert isinstance(nobody[0], Failure) and nobody[0].code == FORBIDDEN
    assert _names(nobody[1], "tools") == [] and _names(nobody[2], "resources") == []
    assert isinstance(nobody[3], Failure) and nobody[3].code == FORBIDDEN
    robot = _serve(tmp_path, ROBOT, [call, ("tools/call", {"name": "hold", "arguments": {"seconds": 0}}), listing])
    assert isinstance(robot[0], Result) and isinstance(robot[1], Failure)
    assert _names(robot[2], "tools") == ["fail", "ok"]


def test_rate_limits_refuse_with_the_wait_and_recover(tmp_path: Path) -> None:
    call = ("tools/call", {"name": "ok", "arguments": {"text": "x"}})
    out = _serve(tmp_path, ROOT, [call, call, call], rate_limit_rps=0.01, rate_limit_burst=2)
    assert isinstance(out[0], Result) and isinstance(out[1], Result)
    refused = out[2]
    assert isinstance(refused, Failure) and refused.code == RATE_LIMITED
    assert refused.retry_after_s is not None and refused.retry_after_s > 0
    assert refused.data["retryAfterMs"] == round(refused.retry_after_s * 1000)


def test_buckets_trip_refill_and_stay_bounded() -> None:
    limits = RateLimits(rps=10, burst=2, tool_rps=1, tool_burst=1, keys=3)
    assert limits.take("a", None, now=0.0) == 0 and limits.take("a", None, now=0.0) == 0
    assert limits.take("a", None, now=0.0) == pytest.approx(0.1)  # empty: one token comes in 0.1 s
    assert limits.take("a", None, now=0.1) == 0  # recovered
    assert limits.take("b", "t", now=0.0) == 0 and limits.take("b", "t", now=0.05) == pytest.approx(0.95)
    assert limits.take("b", "u", now=0.2) == 0  # another tool: its own bucket (the principal refilled)
    for i in range(10):
        limits.take(f"p{i}", None, now=1.0)
    assert len(limits._buckets) == 3  # the least recently used went
