"""Who is asking: the ``Principal`` every session carries, and its wire form (frame TLV type 0x0004).

Each transport attaches one to each session: stdio the parent process that spawned us, the unix socket the
peer's ``SO_PEERCRED`` credentials, HTTP ``ANONYMOUS`` or, with authentication on, the token's subject or the
API key's id with its scopes (:mod:`mcp_edge.runtime.auth`), in-process calls
``EMBEDDED``. Authorization, audit and rate limits look at this one object, in this process or, through the
``principal`` TLV (docs/wire-format.md), in a plugin worker.

Plain ``__slots__`` class, no imports beyond ``os``, ``struct``: it is on every session's path.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import Any, Final

from mcp_edge.errors import FrameError

__all__ = [
    "ANONYMOUS",
    "EMBEDDED",
    "KINDS",
    "MAX_ID_BYTES",
    "MAX_LABELS",
    "MAX_LABEL_BYTES",
    "MAX_TLV_VALUE",
    "Principal",
]

# Bounds of the wire form (docs/wire-format.md, csrc/frame/me_frame.h has the same numbers).
MAX_ID_BYTES: Final = 255  # the id, UTF-8
MAX_LABELS: Final = 32  # roles, and scopes, each
MAX_LABEL_BYTES: Final = 64  # one role or scope, UTF-8
# The whole value: the TLV (4-byte header + value) fits the default extension limit (4096) by itself.
MAX_TLV_VALUE: Final = 4092

# Kind names in the order of their wire codes: "token" is a bearer JWT's subject, "api-key" an API key's id
# (HTTP authentication, mcp_edge.runtime.auth), "certificate" a TLS client certificate's name (mutual TLS).
KINDS: Final = ("process", "unix-peer", "anonymous", "embedded", "token", "api-key", "certificate")
_CODES: Final = {name: code for code, name in enumerate(KINDS)}

_FIXED: Final = struct.Struct("<BBIII")  # kind, flags, pid, uid, gid
_HAS_PID, _HAS_UID, _HAS_GID = 0x1, 0x2, 0x4
_U32: Final = 0xFFFFFFFF
_PEERCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _bad(message: str) -> FrameError:
    return FrameError("bad TLV", f"principal: {message}")


def _utf8(text: str, what: str, limit: int) -> bytes:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty string, got {text!r:.40}")
    raw = text.encode()
    if len(raw) > limit:
        raise ValueError(f"{what} {text[:40]!r}... is {len(raw)} bytes of UTF-8, over {limit}")
    return raw


def _labels(values: Iterable[str], what: str) -> frozenset[str]:
    out = frozenset(values)
    if len(out) > MAX_LABELS:
        raise ValueError(f"{len(out)} {what}: at most {MAX_LABELS}")
    for value in out:
        _utf8(value, what[:-1], MAX_LABEL_BYTES)
    return out


class Principal:
    """Who a session's requests come from: ``id`` (stable, e.g. ``uid:1000``), ``kind`` (one of ``KINDS``),
    ``roles`` and ``scopes`` (empty until authorization gives some) and, where known, ``pid``/``uid``/``gid``.

    Immutable and hashable; every instance fits the wire bounds (checked when it is made), so ``to_tlv``
    never fails.
    """

    __slots__ = ("_tlv", "gid", "id", "kind", "pid", "roles", "scopes", "uid")

    id: str
    kind: str
    roles: frozenset[str]
    scopes: frozenset[str]
    pid: int | None
    uid: int | None
    gid: int | None
    _tlv: bytes | None

    def __init__(self, id: str, kind: str, *, roles: Iterable[str] = (), scopes: Iterable[str] = (),
                 pid: int | None = None, uid: int | None = None, gid: int | None = None) -> None:
        if kind not in _CODES:
            raise ValueError(f"principal kind {kind!r} is none of {', '.join(KINDS)}")
        _utf8(id, "principal id", MAX_ID_BYTES)
        for name, value in (("pid", pid), ("uid", uid), ("gid", gid)):
            if value is not None and (not isinstance(value, int) or not 0 <= value <= _U32):
                raise ValueError(f"{name} {value!r} is not a u32")
        setter = object.__setattr__
        setter(self, "id", id)
        setter(self, "kind", kind)
        setter(self, "roles", _labels(roles, "roles"))
        setter(self, "scopes", _labels(scopes, "scopes"))
        setter(self, "pid", pid)
        setter(self, "uid", uid)
        setter(self, "gid", gid)
        setter(self, "_tlv", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Principal is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Principal is immutable: cannot delete {name}")

    def _key(self) -> tuple[Any, ...]:
        return self.id, self.kind, self.roles, self.scopes, self.pid, self.uid, self.gid

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Principal) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in ("pid", "uid", "gid")
                        if getattr(self, name) is not None)
        labels = "".join(f", {name}={sorted(getattr(self, name))!r}" for name in ("roles", "scopes")
                         if getattr(self, name))
        return f"Principal({self.id!r}, {self.kind!r}{labels}{extra})"

    # -- constructors --------------------------------------------------------------------------------

    @classmethod
    def parent_process(cls) -> Principal:
        """stdio: the process that spawned us and holds our stdin/stdout. It gave us our credentials, so
        the id is our uid; ``pid`` is the parent's."""
        uid = os.getuid()
        return cls(f"uid:{uid}", "process", pid=os.getppid(), uid=uid, gid=os.getgid())

    @classmethod
    def from_peer(cls, sock: Any) -> Principal:
        """A unix socket's peer from ``SO_PEERCRED`` (the kernel's word: pid, uid, gid at connect time).

        ``sock`` is a socket or anything with its ``getsockopt`` (asyncio's ``TransportSocket``). OSError when
        the kernel cannot tell (not a unix socket).
        """
        import socket

        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        pid, uid, gid = _PEERCRED.unpack(raw)
        if uid < 0 or gid < 0:
            raise OSError(f"SO_PEERCRED gave no credentials (uid {uid}, gid {gid})")
        return cls(f"uid:{uid}", "unix-peer", pid=pid if pid > 0 else None, uid=uid, gid=gid)

    # -- wire form -----------------------------------------------------------------------------------

    def to_tlv(self) -> bytes:
        """The value of a ``principal`` TLV (type 0x0004; docs/wire-format.md has the layout). Roles and
        scopes go in sorted order, so equal principals have equal bytes. Made once per principal (it travels
        with every call to a worker)."""
        if self._tlv is not None:
            return self._tlv
        flags = ((_HAS_PID if self.pid is not None else 0) | (_HAS_UID if self.uid is not None else 0)
                 | (_HAS_GID if self.gid is not None else 0))
        parts = [_FIXED.pack(_CODES[self.kind], flags, self.pid or 0, self.uid or 0, self.gid or 0)]
        raw_id = self.id.encode()
        parts += [bytes((len(raw_id),)), raw_id]
        for labels in (self.roles, self.scopes):
            parts.append(bytes((len(labels),)))
            for label in sorted(labels):
                raw = label.encode()
                parts += [bytes((len(raw),)), raw]
        out = b"".join(parts)
        assert len(out) <= MAX_TLV_VALUE  # by the bounds checked in __init__
        object.__setattr__(self, "_tlv", out)
        return out

    @classmethod
    def from_tlv(cls, value: bytes | bytearray | memoryview) -> Principal:
        """The principal a TLV value names; ``FrameError("bad TLV", ...)`` saying what is wrong when it is
        malformed (truncated, overlong, a bound passed, a duplicate, bytes left over, bad UTF-8)."""
        data = bytes(value)
        if len(data) > MAX_TLV_VALUE:
            raise _bad(f"{len(data)} bytes, over the {MAX_TLV_VALUE}-byte bound")
        if len(data) < _FIXED.size:
            raise _bad(f"{len(data)} bytes, shorter than its {_FIXED.size}-byte fixed part")
        code, flags, pid, uid, gid = _FIXED.unpack_from(data)
        if code >= len(KINDS):
            raise _bad(f"unknown kind code {code}")
        if flags & ~(_HAS_PID | _HAS_UID | _HAS_GID):
            raise _bad(f"reserved flag bits set ({flags:#04x})")
        for bit, name, number in ((_HAS_PID, "pid", pid), (_HAS_UID, "uid", uid), (_HAS_GID, "gid", gid)):
            if not flags & bit and number:
                raise _bad(f"{name} {number} given but flagged absent")
        at = _FIXED.size

        def text(limit: int, what: str) -> str:
            nonlocal at
            if at >= len(data):
                raise _bad(f"truncated before the length of its {what}")
            n = data[at]
            if not 1 <= n <= limit:
                raise _bad(f"{what} length {n}, outside 1..{limit}")
            if at + 1 + n > len(data):
                raise _bad(f"truncated inside its {what} ({n} bytes announced, {len(data) - at - 1} left)")
            raw = data[at + 1:at + 1 + n]
            at += 1 + n
            try:
                return raw.decode()
            except UnicodeDecodeError:
                raise _bad(f"{what} is not UTF-8") from None

        ident = text(MAX_ID_BYTES, "id")
        groups: list[list[str]] = []
        for what in ("roles", "scopes"):
            if at >= len(data):
                raise _bad(f"truncated before the count of its {what}")
            count = data[at]
            at += 1
            if count > MAX_LABELS:
                raise _bad(f"{count} {what}, over {MAX_LABELS}")
            items = [text(MAX_LABEL_BYTES, what[:-1]) for _ in range(count)]
            if len(set(items)) != len(items):
                raise _bad(f"a duplicate in its {what}")
            groups.append(items)
        if at != len(data):
            raise _bad(f"{len(data) - at} bytes left over after its scopes")
        return cls(ident, KINDS[code], roles=groups[0], scopes=groups[1],
                   pid=pid if flags & _HAS_PID else None, uid=uid if flags & _HAS_UID else None,
                   gid=gid if flags & _HAS_GID else None)


ANONYMOUS: Final = Principal("anonymous", "anonymous")
"""HTTP clients until the hardening issue authenticates them."""

EMBEDDED: Final = Principal("embedded", "embedded")
"""Calls made in-process through ``RunningServer.call_tool``."""
