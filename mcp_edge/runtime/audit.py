"""A tamper-evident audit log: every tool call, denial, plugin load, reload and unload and configuration change
as JSON lines linked by a SHA-256 hash chain, written in batches (flash wears: a bounded write rate) and
fsynced every ``audit_flush_s`` and at shutdown.

A record (one line, keys sorted, no whitespace)::

    {"seq": 7, "ts": "2026-12-04T00:20:01.123456Z", "type": "call", "principal": {"id": "alice",
     "kind": "token"}, "method": "tools/call", "name": "echo", "args_sha256": "...", "outcome": "ok",
     "prev": "<hash of record 6>", "hash": "<SHA-256 of prev + this record without its hash>"}

``type`` is ``call`` (``outcome`` ok, error or refused, with the JSON-RPC ``code`` of an error), ``denial``
(``reason``), ``plugin`` (``event`` loaded, reloaded, unloaded, failed), ``config`` (``changed``), ``gap``
(``dropped``: records lost while the disk was full) or ``open`` (the first record of a run, naming the
previous file's last hash when it continues a chain). ``args_sha256`` is the SHA-256 of the arguments'
canonical JSON (sorted keys, no whitespace, UTF-8): the log proves what was asked without keeping it.

Rotation: past ``audit_max_bytes`` the file becomes ``NAME.1`` (``NAME.2``...; ``audit_keep`` kept) and a new
one starts whose first record's ``prev`` is the last hash of the old one, so ``mcp-edge audit verify`` checks
the chain across files. A full disk is reported (a log line, once) and never crashes the server: records wait
in memory up to ``audit_max_pending``, then are counted and dropped, and a ``gap`` record says how many once
writing works again. With ``audit_sign`` each file's final hash is signed with the box's Ed25519 audit key
(``NAME.sig``, next to the file; the key made once under the data dir's ``keys/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.principal import Principal

__all__ = ["AuditLog", "Problem", "args_digest", "audit_path", "verify"]

log = logging.getLogger("mcp_edge.audit")

GENESIS: Final = "0" * 64
_canonical = msgspec.json.Encoder(order="sorted")


def args_digest(arguments: Any) -> str:
    """SHA-256 (hex) of ``arguments`` as canonical JSON: sorted keys, no whitespace, UTF-8."""
    try:
        data = _canonical.encode(arguments)
    except (TypeError, msgspec.EncodeError):
        data = _canonical.encode(repr(arguments))
    return hashlib.sha256(data).hexdigest()


def _hash(prev: str, record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(prev.encode() + _canonical.encode(body)).hexdigest()


def audit_path(settings: Settings) -> Path:
    if settings.audit_file:
        return Path(settings.audit_file).expanduser()
    return Path(settings.data_dir) / "audit" / "audit.jsonl"


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class AuditLog:
    """The audit log of one running server (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.path = audit_path(settings)
        self.flush_s = settings.audit_flush_s
        self.max_bytes = settings.audit_max_bytes
        self.keep = settings.audit_keep
        self.max_pending = settings.audit_max_pending
        self.sign = settings.audit_sign
        self.key_dir = Path(settings.data_dir) / "keys"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.seq, self.prev = self._tail()
        self._pending: list[bytes] = []
        self.dropped = 0
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.record("open", continues=self.prev if self.prev != GENESIS else None)

    def _tail(self) -> tuple[int, str]:
        """(last seq, last hash) of the current file, so a restart continues the chain."""
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 65536))
                lines = f.read().splitlines()
        except FileNotFoundError:
            return 0, GENESIS
        for line in reversed(lines):
            try:
                rec = json.loads(line)
                return int(rec["seq"]), str(rec["hash"])
            except (ValueError, KeyError, TypeError):
                continue
        return 0, GENESIS

    # -- recording --------------------------------------------------------------------------------------

    def record(self, kind: str, **fields: Any) -> None:
        """Append a record of ``kind`` (its hash chained to the last one); written at the next flush."""
        if len(self._pending) >= self.max_pending and kind != "gap":
            self.dropped += 1  # (the next write that works records a gap saying how many)
            return
        self.seq += 1
        rec: dict[str, Any] = {"seq": self.seq, "ts": _now(), "type": kind, "prev": self.prev}
        rec.update({k: v for k, v in fields.items() if v is not None})
        rec["hash"] = self.prev = _hash(self.prev, rec)
        self._pending.append(_canonical.encode(rec) + b"\n")

    def call(self, principal: Principal, method: str, name: str | None, arguments: Any, outcome: str,
             code: int | None = None) -> None:
        self.record("call", principal={"id": principal.id, "kind": principal.kind}, method=method, name=name,
                    args_sha256=args_digest(arguments), outcome=outcome, code=code)

    def denial(self, principal: Principal | None, what: str, reason: str) -> None:
        who = {"id": principal.id, "kind": principal.kind} if principal is not None else None
        self.record("denial", principal=who, what=what, reason=reason)

    def plugin(self, plugin_id: str, event: str, reason: str | None = None) -> None:
        self.record("plugin", plugin=plugin_id, event=event, reason=reason)

    def config(self, changed: Iterable[str]) -> None:
        self.record("config", changed=sorted(changed))

    # -- writing ----------------------------------------------------------------------------------------

    def flush(self, sync: bool = True) -> None:
        """Write what is pending (one write) and fsync; a failure is reported once and retried next time."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        try:
            with open(self.path, "ab") as f:
                f.write(data)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
                size = f.tell()
        except OSError as exc:
            if not self._failing:
                self._failing = True
                what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
                log.error("audit: cannot write %s (%s): %d records wait in memory (at most %d, then they are "
                          "counted and dropped)", self.path, what, len(self._pending), self.max_pending)
            return
        if self._failing:
            log.warning("audit: writing %s again", self.path)
            self._failing = False
        self._pending.clear()
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            log.error("audit: %d records were lost while %s could not be written", dropped, self.path)
            self.record("gap", dropped=dropped)
            self.flush(sync)
            return
        if size >= self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        """Start a new file, the old one kept as NAME.1 (signed with audit_sign); the chain goes on."""
        if self.sign:
            self._sign(self.path)
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
                sig = older.with_name(older.name + ".sig")
                if sig.exists():
                    os.replace(sig, self.path.with_name(f"{self.path.name}.{i + 1}.sig"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        sig = self.path.with_name(self.path.name + ".sig")
        if sig.exists():
            os.replace(sig, self.path.with_name(f"{self.path.name}.1.sig"))
        stale = self.path.with_name(f"{self.path.name}.{self.keep + 1}")
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
        self.record("open", continues=self.prev)
        self.flush()

    def _sign(self, path: Path) -> None:
        try:
            from mcp_edge.runtime.keys import audit_signing_key

            key = audit_signing_key(self.key_dir)
            signature = key.sign(self.prev.encode())
            path.with_name(path.name + ".sig").write_text(json.dumps(
                {"hash": self.prev, "seq": self.seq, "ed25519": signature.hex()}) + "\n")
        except Exception as exc:  # never a reason to stop auditing
            log.error("audit: cannot sign %s: %s", path, exc)

    async def run(self) -> None:
        """Flush every ``audit_flush_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.flush_s)
            self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        """The last records written and fsynced (and the file's final hash signed with audit_sign)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.record("close")
        self.flush()
        if self.sign and not self._pending:
            self._sign(self.path)


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a chain of audit files."""

    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except ValueError:
                yield n, None


def verify(paths: Iterable[Path], public_key: bytes | None = None) -> tuple[int, Problem | None]:
    """Check the files in chain order (oldest first): (records checked, the first problem or None).

    A changed record fails its hash (tampered); a removed one leaves a gap in ``seq`` and a ``prev`` that
    names another hash (dropped); an added one repeats a ``seq`` or breaks ``prev`` (inserted); two swapped
    break both (reordered). With ``public_key`` (raw Ed25519), each file's ``.sig`` must sign its last hash."""
    prev: str | None = None
    seq: int | None = None
    count = 0
    files = [(path, list(_records(path))) for path in paths]
    seen_later = {rec["seq"] for _, recs in files for _, rec in recs
                  if isinstance(rec, dict) and isinstance(rec.get("seq"), int)}
    for path, records in files:
        last_hash = None
        for n, rec in records:
            where = str(path)
            if not isinstance(rec, dict) or not {"seq", "prev", "hash", "type"} <= rec.keys():
                return count, Problem(where, n, "not an audit record (tampered)")
            if _hash(rec["prev"], rec) != rec["hash"]:
                return count, Problem(where, n, f"record {rec['seq']} does not match its hash (tampered)")
            if seq is not None and rec["seq"] != seq + 1:
                kind = "dropped" if rec["seq"] > seq + 1 and seq + 1 not in seen_later else "inserted or reordered"
                return count, Problem(where, n, f"record {rec['seq']} follows record {seq} ({kind})")
            if prev is not None and rec["prev"] != prev:
                return count, Problem(where, n, f"record {rec['seq']} does not follow the record before it "
                                                "(its prev names another hash: dropped, inserted or reordered)")
            prev, seq, last_hash = rec["hash"], rec["seq"], rec["hash"]
            count += 1
        if public_key is not None and last_hash is not None:
            problem = _check_signature(path, last_hash, public_key)
            if problem is not None:
                return count, problem
    return count, None


def _check_signature(path: Path, last_hash: str, public_key: bytes) -> Problem | None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    sig_path = path.with_name(path.name + ".sig")
    try:
        sig = json.loads(sig_path.read_text())
    except FileNotFoundError:
        return Problem(str(sig_path), 0, "no signature for this file")
    except ValueError:
        return Problem(str(sig_path), 0, "not a signature file (tampered)")
    if not isinstance(sig, dict) or sig.get("hash") != last_hash:
        return Problem(str(sig_path), 0, "the signature is of another last hash (records added or removed)")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bytes.fromhex(sig["ed25519"]), last_hash.encode())
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return Problem(str(sig_path), 0, "the signature does not match the file's last hash (tampered)")
    return None
