"""TLS for the HTTP transport, with the standard ``ssl`` module (imported only when ``tls_cert`` is set, so the
plain-HTTP server never loads OpenSSL).

- TLS 1.2 at least (``tls_min_version``), 1.3 preferred (the client picks the highest both speak); for 1.2 only
  ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 (1.3's suites are all of that kind); no compression, no
  renegotiation, a fresh ECDH key per connection.
- Rotation: every ``tls_reload_s`` the certificate, key and client CA files are looked at (size, mtime, inode);
  when they changed and load, the context takes them: connections made from then on get the new certificate,
  connections already open go on with the one they shook hands with. A pair that does not load (a key written
  before its certificate, a typo) is logged and the old one kept; the next look tries again.
- Mutual TLS: with ``tls_client_ca`` a client must present a certificate that CA signed (``tls_client_required``;
  else one is asked for and checked when sent); its identity (the first DNS or email SubjectAltName, else the
  subject's common name) becomes the connection's principal, kind ``certificate``, which the authorization
  policy names as ``certificate:NAME``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.errors import ConfigError

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.principal import Principal

__all__ = ["TlsContext", "cert_principal"]

log = logging.getLogger("mcp_edge.transport.tls")

TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _stamp(paths: list[Path]) -> tuple[Any, ...]:
    out: list[tuple[int, int, int] | None] = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class TlsContext:
    """The server's SSLContext and what keeps it current."""

    def __init__(self, settings: Settings) -> None:
        self.cert = Path(settings.tls_cert).expanduser()
        self.key = Path(settings.tls_key).expanduser() if settings.tls_key else self.cert
        self.ca = Path(settings.tls_client_ca).expanduser() if settings.tls_client_ca else None
        self.reload_s = settings.tls_reload_s
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if settings.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(TLS12_CIPHERS)
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        if self.ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED if settings.tls_client_required else ssl.CERT_OPTIONAL
        self.context = ctx
        self._stamp: tuple[Any, ...] = ()
        self._load(first=True)
        self._task: asyncio.Task[None] | None = None

    def _files(self) -> list[Path]:
        return [self.cert, self.key, *([self.ca] if self.ca is not None else [])]

    def _load(self, first: bool = False) -> bool:
        stamp = _stamp(self._files())
        try:
            self.context.load_cert_chain(self.cert, self.key)
            if self.ca is not None:
                self.context.load_verify_locations(cafile=str(self.ca))
        except (OSError, ssl.SSLError, ValueError) as exc:
            what = f"TLS certificate {self.cert} / key {self.key}" + (f" / client CA {self.ca}" if self.ca else "")
            if first:
                raise ConfigError(f"{what} do not load: {exc}") from None
            log.error("%s changed but do not load (%s): the previous ones stay in use", what, exc)
            self._stamp = stamp  # tried: try again when they change once more
            return False
        if not first:
            log.warning("TLS certificate reloaded from %s: new connections use it, open ones keep theirs", self.cert)
        self._stamp = stamp
        return True

    def check(self) -> bool:
        """Reload when the files changed; whether it did."""
        if _stamp(self._files()) == self._stamp:
            return False
        return self._load()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s)
            self.check()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def cert_principal(peercert: dict[str, Any] | None, scopes: frozenset[str] = frozenset()) -> Principal | None:
    """The principal of a verified client certificate (``getpeercert()``), or None without one."""
    from mcp_edge.runtime.principal import Principal

    if not peercert:
        return None
    name = None
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in ("DNS", "email", "URI"):
            name = value
            break
    if name is None:
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    name = value
    if not name:
        return None
    try:
        return Principal(str(name)[:255], "certificate", scopes=sorted(scopes)[:32])
    except ValueError:
        return None
