"""The audit log: what a running server records (calls with the arguments' digest, denials, plugin and config
events), a chain that verifies across rotated files, each kind of tampering found (changed, dropped, inserted,
reordered), a full disk reported without a crash and the loss recorded as a gap, Ed25519 signatures of each
file's last hash; and the box's keys (made once, 0600, listed without secrets, rotated)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.runtime import audit as audit_mod
from mcp_edge.runtime.audit import AuditLog, args_digest, verify
from mcp_edge.runtime.principal import Principal

PLUGINS = Path(__file__).resolve().parents[1] / "transport" / "metrics_plugins"
ALICE = Principal("alice", "token")


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings.load(data_dir=tmp_path / "data", plugin_dirs=(PLUGINS,), entry_points=False, reload_watch=False,
                         audit=True, **kw)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_digest_is_of_the_canonical_json() -> None:
    assert args_digest({"b": 1, "a": "é"}) == args_digest({"a": "é", "b": 1})
    assert args_digest({"b": 1, "a": "é"}) == hashlib.sha256('{"a":"é","b":1}'.encode()).hexdigest()


def test_a_server_records_calls_denials_and_plugin_events(tmp_path: Path) -> None:
    from mcp_edge.mcp.connection import Request, ServerConnection
    from mcp_edge.runtime.router import Session
    from mcp_edge.server import Server

    (tmp_path / "policy.toml").write_text('[roles.r]\ntools = ["ok", "fail"]\n[principals]\n"token:alice" = ["r"]\n')
    settings = _settings(tmp_path, auth_policy_file=str(tmp_path / "policy.toml"))

    async def main() -> None:
        running = await Server.configure(settings).start()
        try:
            session = Session(ServerConnection(running.router.info), principal=ALICE)
            for i, (name, args) in enumerate([("ok", {"text": "secret-arg"}), ("fail", {}), ("hold", {})]):
                await running.router.handle(Request(i, "tools/call", {"name": name, "arguments": args},
                                                    "2025-11-25", False), session, None)
        finally:
            await running.stop()

    asyncio.run(main())
    path = tmp_path / "data" / "audit" / "audit.jsonl"
    records = _lines(path)
    kinds = [(r["type"], r.get("event") or r.get("outcome") or "") for r in records]
    assert kinds[0] == ("open", "") and kinds[-1] == ("close", "")
    assert ("plugin", "loaded") in kinds and ("plugin", "unloaded") in kinds
    calls = [r for r in records if r["type"] == "call"]
    assert [(c["name"], c["outcome"]) for c in calls] == [("ok", "ok"), ("fail", "ok"), ("hold", "refused")]
    assert calls[0]["principal"] == {"id": "alice", "kind": "token"}
    assert calls[0]["args_sha256"] == args_digest({"text": "secret-arg"})
    assert "secret-arg" not in path.read_text()  # what was asked is proven, not kept
    assert [r["what"] for r in records if r["type"] == "denial"] == ["tool hold"]
    assert verify([path]) == (len(records), None)
    done = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "audit", "verify", str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and "chain OK" in done.stdout


def _chain(tmp_path: Path, n: int = 6, **kw: Any) -> tuple[Path, AuditLog]:
    log = AuditLog(_settings(tmp_path, **kw))
    for i in range(n):
        log.call(ALICE, "tools/call", f"t{i}", {"i": i}, "ok")
        if i % 5 == 4:
            log.flush()  # a batch
    log.flush()
    return log.path, log


@pytest.mark.parametrize(("damage", "words"), [
    (lambda ls: ls.__setitem__(3, ls[3].replace('"t2"', '"t9"')), "does not match its hash (tampered)"),
    (lambda ls: ls.pop(3), "(dropped)"),
    (lambda ls: ls.insert(3, ls[2]), "inserted or reordered"),
    (lambda ls: ls.__setitem__(slice(3, 5), [ls[4], ls[3]]), "inserted or reordered"),
    (lambda ls: ls.__setitem__(2, "not json"), "not an audit record"),
])
def test_each_kind_of_tampering_is_found(tmp_path: Path, damage: Any, words: str) -> None:
    path, _ = _chain(tmp_path)
    lines = path.read_text().splitlines()
    damage(lines)
    path.write_text("\n".join(lines) + "\n")
    _, problem = verify([path])
    assert problem is not None and words in problem.what, problem
    done = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "audit", "verify", str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1 and "broken" in done.stdout


def test_the_chain_goes_on_across_rotated_files_and_a_restart(tmp_path: Path) -> None:
    path, log = _chain(tmp_path, 40, audit_max_bytes=4096, audit_keep=20)
    asyncio.run(log.close())
    again = AuditLog(_settings(tmp_path, audit_max_bytes=4096, audit_keep=20))  # a restart continues the chain
    again.call(ALICE, "tools/call", "after", {}, "ok")
    asyncio.run(again.close())
    rotated = sorted(path.parent.glob("audit.jsonl.*"), key=lambda p: -int(p.name.rsplit(".", 1)[1]))
    assert len(rotated) >= 2
    files = [*rotated, path]
    count, problem = verify(files)
    assert problem is None and count == sum(len(_lines(f)) for f in files)
    _, gap = verify([*files[:1], *files[2:]])  # a whole file removed
    assert gap is not None and "dropped" in gap.what


def test_a_full_disk_is_reported_once_and_the_loss_is_a_gap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    path, log = _chain(tmp_path, 2, audit_max_pending=3)
    real = open

    def full(*a: Any, **k: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_mod, "open", full, raising=False)
    with caplog.at_level(logging.ERROR, logger="mcp_edge.audit"):
        for i in range(6):
            log.call(ALICE, "tools/call", f"x{i}", {}, "ok")
            log.flush()
    assert len([r for r in caplog.records if "disk is full" in r.getMessage()]) == 1
    assert log.dropped == 3
    monkeypatch.setattr(audit_mod, "open", real, raising=False)
    log.flush()  # the disk has room again: what waited, then the gap
    log.call(ALICE, "tools/call", "back", {}, "ok")
    log.flush()
    records = _lines(path)
    gaps = [r for r in records if r["type"] == "gap"]
    assert [g["dropped"] for g in gaps] == [3]
    assert verify([path])[1] is None  # what was written still chains


def test_signatures_of_each_files_last_hash(tmp_path: Path) -> None:
    from mcp_edge.runtime.keys import audit_public_key, key_dir

    path, log = _chain(tmp_path, 3, audit_sign=True)
    asyncio.run(log.close())
    public = audit_public_key(key_dir(tmp_path / "data"))
    assert verify([path], public)[1] is None
    done = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "audit", "verify", "--key", public.hex(), str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "signatures good" in done.stdout
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                   serialization.PublicFormat.Raw)
    _, wrong = verify([path], other)
    assert wrong is not None and "does not match" in wrong.what
    sig = path.with_name(path.name + ".sig")
    doc = json.loads(sig.read_text())
    doc["hash"] = "0" * 64
    sig.write_text(json.dumps(doc))
    _, moved = verify([path], public)
    assert moved is not None and "another last hash" in moved.what


def test_the_boxs_keys_are_made_once_listed_and_rotated(tmp_path: Path) -> None:
    from mcp_edge.runtime.keys import audit_signing_key, key_dir, list_keys, rotate, secret_once

    data = tmp_path / "data"
    (data).mkdir()
    (data / "request-state.key").write_bytes(b"k" * 32)  # left by an earlier version: moved, kept
    assert secret_once(data) == b"k" * 32 and not (data / "request-state.key").exists()
    audit_signing_key(key_dir(data))
    rows = {r["name"]: r for r in list_keys(data, trust_dir=tmp_path / "trust")}
    assert rows["request-state"]["mode"] == rows["audit"]["mode"] == "0600"
    assert all(b"k" * 8 not in json.dumps(r).encode() for r in rows.values())
    before = rows["audit"]["fingerprint"]
    rotate(data, "audit")
    rotate(data, "request-state")
    after = {r["name"]: r for r in list_keys(data, trust_dir=tmp_path / "trust")}
    assert after["audit"]["fingerprint"] != before and secret_once(data) != b"k" * 32
    with pytest.raises(ValueError, match="no key"):
        rotate(data, "tls")


def test_keys_list_shows_the_trusted_keys_of_the_trust_folder_and_the_board(tmp_path: Path) -> None:
    from mcp_edge.runtime.keys import list_keys

    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "vendor.pub").write_text("ab" * 32)
    rows = list_keys(tmp_path / "data", trust, ("index=" + "cd" * 32,))
    trusted = {r["name"]: r for r in rows if r["kind"] == "trusted"}
    assert set(trusted) == {"vendor.pub", "index"} and trusted["index"]["path"] == "board profile"
    assert trusted["index"]["fingerprint"] == "sha256:" + hashlib.sha256(bytes.fromhex("cd" * 32)).hexdigest()[:32]
    with pytest.raises(ValueError, match="NAME=HEX"):
        list_keys(tmp_path / "data", trust, ("broken",))
    done = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "keys", "list", "--json"], capture_output=True,
                          text=True, check=False,
                          env={**__import__("os").environ, "MCP_EDGE_DATA_DIR": str(tmp_path / "d2"),
                               "MCP_EDGE_TRUST_DIR": str(trust), "MCP_EDGE_TRUSTED_KEYS": "index=" + "cd" * 32})
    assert done.returncode == 0, done.stderr
    assert {r["name"] for r in json.loads(done.stdout)} >= {"request-state", "audit", "vendor.pub", "index"}
