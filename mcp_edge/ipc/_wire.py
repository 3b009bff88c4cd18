"""The handshake that sets a ring up over a unix socket: three small messages, descriptors by SCM_RIGHTS.

::

    connector -> listener   HELLO   magic "MEIPC001", version, the role it wants (0 any), its pid
    listener  -> connector  OFFER   magic, version, status 0, the role it gets, its producer slot,
                                    how many descriptors follow (hub segment, [its own segment], eventfd)
                            or REFUSE  magic, version, status 1, then the reason in UTF-8
    connector -> listener   READY   magic, version, status 0  (it mapped and checked the segments)
                            or REFUSE

The sockets are SOCK_SEQPACKET: one message per send, never split or joined.
The peer's pid comes from SO_PEERCRED, not from what it says.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import NamedTuple

from mcp_edge.errors import HandshakeError

MAGIC = b"MEIPC001"
VERSION = 1
ROLE_ANY, ROLE_PRODUCER, ROLE_CONSUMER = 0, 1, 2
ROLE_NAMES = {ROLE_ANY: "any", ROLE_PRODUCER: "producer", ROLE_CONSUMER: "consumer"}
ROLES = {"producer": ROLE_PRODUCER, "consumer": ROLE_CONSUMER}
OK, REFUSE = 0, 1

HELLO = struct.Struct("<8sHHI")  # magic, version, wanted role, pid (informational)
OFFER = struct.Struct("<8sHHHHI")  # magic, version, status, role, producer slot, descriptors
STATUS = struct.Struct("<8sHH")  # magic, version, status (+ reason text when REFUSE)
MAX_MESSAGE = 512
MAX_REASON = 400


class Offer(NamedTuple):
    role: int
    slot: int
    nfds: int


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def refuse(sock: socket.socket, reason: str, message: str) -> HandshakeError:
    """Tell the peer why (best effort: it may be gone, or not speak the protocol) and give the error to raise."""
    text = f"{reason}: {message}".encode()[:MAX_REASON]
    with contextlib.suppress(OSError):
        sock.send(STATUS.pack(MAGIC, VERSION, REFUSE) + text)
    return HandshakeError(reason, message)


def _refused_by_peer(data: bytes) -> HandshakeError:
    text = data[STATUS.size:].decode(errors="replace")
    reason, _, message = text.partition(": ")
    return HandshakeError(reason or "refused", f"the peer refused: {message or text}")


def _check_head(data: bytes, what: str) -> None:
    if len(data) < STATUS.size or data[:8] != MAGIC:
        raise HandshakeError("not a peer", f"the {what} is not an mcp_edge ring handshake ({len(data)} bytes "
                                           f"starting {data[:8]!r})")
    _, version, status = STATUS.unpack_from(data)
    if version != VERSION:
        raise HandshakeError("not a peer", f"the peer speaks ring handshake version {version}, this side "
                                           f"{VERSION}")
    if status == REFUSE:
        raise _refused_by_peer(data)


def parse_hello(data: bytes) -> int:
    """The role a HELLO asks for; HandshakeError("not a peer") for anything else."""
    if len(data) != HELLO.size or data[:8] != MAGIC:
        raise HandshakeError("not a peer", f"expected a {HELLO.size}-byte ring HELLO starting {MAGIC!r}, got "
                                           f"{len(data)} bytes starting {data[:8]!r}")
    _, version, want, _pid = HELLO.unpack(data)
    if version != VERSION:
        raise HandshakeError("not a peer", f"the peer speaks ring handshake version {version}, this side "
                                           f"{VERSION}")
    if want not in ROLE_NAMES:
        raise HandshakeError("not a peer", f"the peer asks for an unknown role {want}")
    return int(want)


def parse_offer(data: bytes, fds: list[int]) -> Offer:
    _check_head(data, "listener's answer")
    if len(data) != OFFER.size:
        raise HandshakeError("not a peer", f"a ring OFFER is {OFFER.size} bytes, got {len(data)}")
    _, _, _, role, slot, nfds = OFFER.unpack(data)
    if role not in (ROLE_PRODUCER, ROLE_CONSUMER) or nfds != len(fds) or not 2 <= nfds <= 3:
        raise HandshakeError("not a peer", f"a malformed OFFER (role {role}, {nfds} descriptors announced, "
                                           f"{len(fds)} received)")
    return Offer(role, slot, nfds)


def parse_status(data: bytes) -> None:
    """READY passes; REFUSE raises the peer's reason; anything else: not a peer."""
    _check_head(data, "peer's answer")
