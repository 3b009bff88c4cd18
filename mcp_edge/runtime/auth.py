"""Authentication on HTTP, as the MCP authorization spec asks of a resource server (revisions 2025-11-25 and
2026-07-28): bearer JWTs from the box's authorization servers, and API keys for boxes without one.

- **Protected Resource Metadata** (RFC 9728) at ``/.well-known/oauth-protected-resource/mcp`` and at the root
  ``/.well-known/oauth-protected-resource``: ``resource`` (this server's canonical URI, ``auth_resource``),
  ``authorization_servers`` (``auth_servers``), ``scopes_supported``, ``bearer_methods_supported``.
- **401** for a missing, malformed, expired or otherwise invalid credential, with ``WWW-Authenticate: Bearer
  resource_metadata="...", scope="..."`` (and ``error="invalid_token"`` when one was sent); **403** with
  ``error="insufficient_scope"`` and every scope the request needs in one challenge when the credential lacks
  some. A held scope covers the scopes below it (``mcp`` covers ``mcp:tools`` and ``mcp:tools:call``).
- **JWTs** (pyjwt, the ``auth`` extra): the signature against the keys of ``auth_jwks_file``, of
  ``auth_jwks_url``, or, with neither, of each issuer's ``jwks_uri`` found in its metadata (RFC 8414
  ``/.well-known/oauth-authorization-server``, then OpenID ``/.well-known/openid-configuration``); fetched at
  start (a box up before its network logs it and refuses tokens until they can be fetched), and again when a
  token names a key id not seen yet, at most once per ``auth_jwks_refresh_s``; the algorithm pinned to
  ``auth_algorithms`` (``none`` never), ``iss`` one of
  ``auth_servers``, ``aud`` this server (RFC 8707), ``exp`` (and ``nbf``, ``iat``) with ``auth_leeway_s`` of
  clock skew; ``sub`` becomes the principal's id, ``scope``/``scp`` its scopes. A verified token is
  remembered (by its SHA-256, up to ``auth_token_cache`` of them) until its ``exp``, so a client's next
  requests cost a look-up, not a signature check.
- **A clock that is not set** (earlier than this release: a box without a real-time clock before time sync)
  refuses every bearer token with a 401 whose reason says so (``mcp_edge.clock``); API keys do not depend on
  the date and keep working.
- **API keys** (``Authorization: Bearer mcpe_<id>_<secret>`` or ``X-API-Key``): only the SHA-256 of each
  secret is stored (``auth_api_keys_file``, made by ``mcp-edge apikey``), compared with
  ``hmac.compare_digest``; an unknown id is compared against a dummy digest, so timing tells nothing.

The credential itself never goes further than this module: plugins, workers and upstream servers see the
``Principal`` (id, kind, scopes), never the token or the key.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.errors import ConfigError
from mcp_edge.runtime.principal import MAX_LABELS, Principal

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings

__all__ = ["ApiKeys", "Auth", "Denied", "covers", "key_digest", "new_api_key", "parse_api_key"]

log = logging.getLogger("mcp_edge.auth")

PRM_PATH: Final = "/.well-known/oauth-protected-resource"  # (the HTTP transport routes it, by the same name)
API_KEY_PREFIX: Final = "mcpe_"
_KEY_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_DUMMY: Final = hashlib.sha256(b"mcp-edge: no such key").hexdigest()
_DECISIONS: Final = 4096  # (scopes, method) decisions remembered; past it the table starts again


@dataclass(frozen=True)
class Denied:
    """Why a request may not go on: its HTTP status (401 or 403) and the ``WWW-Authenticate`` challenge."""

    status: int
    message: str
    challenge: str


def covers(held: Iterable[str], needed: str) -> bool:
    """Whether one of ``held`` is ``needed`` or above it (``a`` covers ``a:b`` and ``a:b:c``)."""
    return any(h == needed or needed.startswith(h + ":") for h in held)


# --------------------------------------------------------------------------- API keys


def key_digest(secret: str) -> str:
    """The stored form of a key's secret: SHA-256, hex (the secret is 256 random bits: no slow hash needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key(key_id: str) -> tuple[str, str]:
    """(the key to hand out, the digest to store) for ``key_id``."""
    if not _KEY_ID.fullmatch(key_id):
        raise ConfigError(f"API key id {key_id!r}: use 1-32 of a-z, 0-9 and -, starting with a letter or digit")
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"{API_KEY_PREFIX}{key_id}_{secret}", key_digest(secret)


def parse_api_key(text: str) -> tuple[str, str] | None:
    """(id, secret) of ``mcpe_<id>_<secret>``, or None if it is not shaped like one."""
    if not text.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = text[len(API_KEY_PREFIX):].partition("_")  # (an id has no "_"; a secret may)
    if not sep or not _KEY_ID.fullmatch(key_id) or len(secret) < 16:
        return None
    return key_id, secret


class ApiKeys:
    """The API keys file: ``{"keys": {id: {"sha256": hex, "scopes": [...], "created": unix time}}}``, 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        keys = cls(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return keys
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not an API keys file ({exc})") from None
        table = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: expected {{\"keys\": {{id: {{\"sha256\", \"scopes\"}}}}}}")
        for key_id, row in table.items():
            if not (isinstance(row, dict) and isinstance(row.get("sha256"), str) and len(row["sha256"]) == 64
                    and isinstance(row.get("scopes", []), list)):
                raise ConfigError(f"{path}: key {key_id!r} needs a 64-digit sha256 and a list of scopes")
            keys.keys[str(key_id)] = row
        return keys

    def save(self) -> None:
        from mcp_edge.atomic import replace_file

        replace_file(self.path, json.dumps({"keys": self.keys}, indent=1, sort_keys=True).encode(), 0o600,
                     sync=True)

    def add(self, key_id: str, scopes: Iterable[str]) -> str:
        """A new key for ``key_id`` (ConfigError if the id is taken): the key, shown once; its digest kept."""
        if key_id in self.keys:
            raise ConfigError(f"API key {key_id!r} exists: revoke it first")
        key, digest = new_api_key(key_id)
        self.keys[key_id] = {"sha256": digest, "scopes": sorted(set(scopes)), "created": int(time.time())}
        return key

    def revoke(self, key_id: str) -> None:
        if self.keys.pop(key_id, None) is None:
            raise ConfigError(f"no API key {key_id!r}")

    def check(self, text: str) -> tuple[str, list[str]] | None:
        """(id, scopes) of a valid key, else None; the comparison takes the same time either way."""
        parsed = parse_api_key(text)
        key_id, secret = parsed if parsed is not None else ("", text)
        row = self.keys.get(key_id)
        stored = row["sha256"] if row is not None else _DUMMY
        ok = hmac.compare_digest(key_digest(secret), stored)
        if not ok or row is None:
            return None
        return key_id, [str(s) for s in row.get("scopes", [])]


# --------------------------------------------------------------------------- JWKS


def _fetch(url: str, limit: int = 1 << 20) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:  # an https URL from the settings or the metadata
        return str(resp.read(limit).decode())


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be: RFC 8414 (the well-known part inserted before the issuer's path),
    then OpenID Connect Discovery (appended)."""
    base, sep, path = issuer.rstrip("/").partition("://")
    host, slash, rest = path.partition("/")
    suffix = f"/{rest}" if slash and rest else ""
    return [f"{base}{sep}{host}/.well-known/oauth-authorization-server{suffix}",
            f"{issuer.rstrip('/')}/.well-known/openid-configuration"]


def discover_jwks_uri(issuer: str) -> str:
    """The ``jwks_uri`` of ``issuer``'s metadata (RFC 8414 or OIDC); OSError/ValueError when none says."""
    problems = []
    for url in metadata_urls(issuer):
        try:
            doc = json.loads(_fetch(url))
        except (OSError, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            continue
        if isinstance(doc, dict) and isinstance(doc.get("jwks_uri"), str) and doc.get("issuer") == issuer:
            return str(doc["jwks_uri"])
        problems.append(f"{url}: no jwks_uri for issuer {issuer}")
    raise ValueError("; ".join(problems))


class Jwks:
    """Signing keys by key id, from a JWKS file, a URL, or the issuers' metadata (discovered)."""

    def __init__(self, file: str, url: str, refresh_s: float, issuers: tuple[str, ...] = ()) -> None:
        self.file, self.url, self.refresh_s = file, url, refresh_s
        self.issuers = issuers if not (file or url) else ()  # discovery: neither file nor URL given
        self.keys: dict[str | None, Any] = {}
        self.fetched_at = -1e18

    def load(self) -> None:
        """Read the keys (the file, or blocking fetches); ConfigError for a bad file or set, OSError/ValueError
        when a URL or the metadata cannot be fetched."""
        import jwt

        if self.file:
            try:
                texts = [Path(self.file).expanduser().read_text()]
            except OSError as exc:
                raise ConfigError(f"auth_jwks_file {self.file}: {exc.strerror or exc}") from None
        elif self.url:
            texts = [_fetch(self.url)]
        else:
            texts = [_fetch(discover_jwks_uri(issuer)) for issuer in self.issuers]
        keys: dict[str | None, Any] = {}
        for text in texts:
            try:
                found = jwt.PyJWKSet.from_json(text)
            except (jwt.PyJWKSetError, ValueError) as exc:
                raise ConfigError(f"{self.file or self.url or 'the issuers'}: not a usable JWKS ({exc})") from None
            keys.update({k.key_id: k for k in found.keys})
        self.keys = keys
        self.fetched_at = time.monotonic()

    def may_refresh(self) -> bool:
        return bool(self.url or self.issuers) and time.monotonic() - self.fetched_at >= self.refresh_s


# --------------------------------------------------------------------------- the authenticator


class Auth:
    """Who a request's credential says it is, and whether it may make the request."""

    def __init__(self, settings: Settings, resource: str) -> None:
        self.resource = settings.auth_resource or resource
        self.servers = tuple(settings.auth_servers)
        self.algorithms = tuple(settings.auth_algorithms)
        if "none" in {a.lower() for a in self.algorithms}:
            raise ConfigError("auth_algorithms must not allow 'none'")
        self.leeway = settings.auth_leeway_s
        self.base_scopes = tuple(settings.auth_scopes)
        self.method_scopes = _method_scopes(settings.auth_method_scopes)
        self.api_keys = ApiKeys.load(api_keys_path(settings))
        self.jwks: Jwks | None = None
        if settings.auth_jwks_file or settings.auth_jwks_url or self.servers:
            import importlib.util

            if importlib.util.find_spec("jwt") is None:
                raise ConfigError("bearer tokens (auth_servers) need pyjwt, which is not installed: "
                                  "pip install 'mcp-edge[auth]'")
            if not self.servers:
                raise ConfigError("auth_jwks_file/auth_jwks_url need auth_servers: the issuers tokens must name")
            self.jwks = Jwks(settings.auth_jwks_file, settings.auth_jwks_url, settings.auth_jwks_refresh_s,
                             self.servers)
            try:
                self.jwks.load()
            except (OSError, ValueError) as exc:  # (a ConfigError, a bad file or set, is raised as it is)
                if isinstance(exc, ConfigError):
                    raise
                # The box may be up before its network: tokens are refused until the keys can be fetched,
                # which each one with an unknown key id tries again (at most once per auth_jwks_refresh_s).
                log.warning("auth: the signing keys cannot be fetched yet (%s); bearer tokens are refused until "
                            "they can", exc)
        known = set(self.base_scopes)
        for _, scopes in self.method_scopes:
            known |= scopes
        self.known_scopes = frozenset(known)
        # Tokens already verified: SHA-256 of the token -> (its principal, its exp). A client sends the same
        # token with each request; a signature check costs tens of microseconds, a look-up one.
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        self._cache_size = settings.auth_token_cache
        self._allowed: dict[tuple[frozenset[str], str | None], bool] = {}  # (scopes, method) -> allowed

    @property
    def metadata_url(self) -> str | None:
        """Where the Protected Resource Metadata is (None without an authorization server to name)."""
        if not self.servers:
            return None
        base, _, path = self.resource.partition("://")
        host, slash, rest = path.partition("/")
        return f"{base}://{host}{PRM_PATH}" + (f"/{rest}" if slash and rest else "")

    def metadata(self) -> dict[str, Any]:
        """The RFC 9728 document."""
        out: dict[str, Any] = {"resource": self.resource, "authorization_servers": list(self.servers),
                               "bearer_methods_supported": ["header"], "resource_name": "mcp_edge"}
        if self.known_scopes:
            out["scopes_supported"] = sorted(self.known_scopes)
        return out

    def needed(self, method: str | None) -> tuple[str, ...]:
        """The scopes a request for ``method`` needs (the base ones, and those of each matching pattern)."""
        out = list(self.base_scopes)
        if method is not None:
            for pattern, scopes in self.method_scopes:
                if fnmatch.fnmatchcase(method, pattern):
                    out += [s for s in sorted(scopes) if s not in out]
        return tuple(out)

    def challenge(self, error: str | None = None, description: str | None = None,
                  scopes: Iterable[str] | None = None) -> str:
        parts = []
        if error:
            parts.append(f'error="{error}"')
        if description:
            parts.append(f'error_description="{_quoted(description)}"')
        scope = " ".join(scopes if scopes is not None else self.base_scopes)
        if scope:
            parts.append(f'scope="{scope}"')
        url = self.metadata_url
        if url:
            parts.append(f'resource_metadata="{url}"')
        return "Bearer" + (" " + ", ".join(parts) if parts else "")

    def denied(self, message: str, error: str | None = "invalid_token") -> Denied:
        return Denied(401, message, self.challenge(error, message if error else None))

    def authenticate(self, headers: Mapping[str, str]) -> Principal | Denied | None:
        """The principal of a request's credential, or why not; None when a JWT names a key id this server
        has not seen and the key set may be fetched again (``refresh``, then ask again)."""
        auth = headers.get("authorization")
        token = None
        if auth is not None:
            scheme, _, value = auth.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return self.denied("the Authorization header must be 'Bearer <token>'")
            token = value.strip()
        elif headers.get("x-api-key"):
            token = headers["x-api-key"].strip()
        if token is None:
            return self.denied("authentication required: send a bearer token (or an API key)", error=None)
        if token.startswith(API_KEY_PREFIX):
            found = self.api_keys.check(token)
            if found is None:
                return self.denied("the API key is not valid")
            return self._principal(found[0], "api-key", found[1])  # (kind api-key, id the key's name)
        return self._jwt(token)

    def _jwt(self, token: str) -> Principal | Denied | None:
        from mcp_edge.clock import clock_set, clock_state

        if not clock_set():  # an expired token would pass, a valid one fail: judge none until time sync
            return self.denied(f"bearer tokens cannot be checked: {clock_state()['reason']}")
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            if time.time() < hit[1] + self.leeway:
                return hit[0]
            del self._verified[digest]
        found = self._verify(token)
        if isinstance(found, tuple):
            principal, exp = found
            if self._cache_size > 0:
                if len(self._verified) >= self._cache_size:
                    self._verified.pop(next(iter(self._verified)))  # the oldest: insertion order
                self._verified[digest] = (principal, exp)
            return principal
        return found

    def _verify(self, token: str) -> tuple[Principal, float] | Denied | None:
        import jwt

        if self.jwks is None:
            return self.denied("bearer tokens are not accepted here (no auth_servers): use an API key")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return self.denied("the bearer token is not a JWT")
        alg = header.get("alg")
        if alg not in self.algorithms:
            return self.denied(f"the token's algorithm {alg!r} is not accepted here")
        key = self.jwks.keys.get(header.get("kid"))
        if key is None:
            if self.jwks.may_refresh():
                return None
            return self.denied("the token is signed with a key this server does not know")
        try:
            claims = jwt.decode(token, key=key, algorithms=list(self.algorithms), audience=self.resource,
                                issuer=list(self.servers), leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            return self.denied("the token has expired")
        except jwt.InvalidAudienceError:
            return self.denied(f"the token is not for this server (its audience must be {self.resource})")
        except jwt.InvalidIssuerError:
            return self.denied("the token's issuer is not one of this server's authorization servers")
        except jwt.ImmatureSignatureError:
            return self.denied("the token is not valid yet")
        except jwt.PyJWTError as exc:
            return self.denied(f"the token is not valid ({type(exc).__name__})")
        scope = claims.get("scope", claims.get("scp", ""))
        scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope] if isinstance(scope, list) \
            else []
        principal = self._principal(str(claims["sub"]), "token", scopes)
        if not isinstance(principal, Principal):
            return principal
        return principal, float(claims["exp"])

    def refresh(self) -> None:
        """Fetch the key set again (blocking: call it in a thread); a failure is logged, the old keys kept."""
        if self.jwks is None or not self.jwks.may_refresh():
            return
        try:
            self.jwks.load()
        except Exception as exc:
            self.jwks.fetched_at = time.monotonic()
            log.warning("auth: cannot fetch the key set from %s: %s", self.jwks.url, exc)

    def _principal(self, pid: str, kind: str, scopes: list[str]) -> Principal | Denied:
        # Only the scopes this server decides by travel with the principal (a token may carry hundreds).
        kept = [s for s in scopes if any(covers([s], k) or covers([k], s) for k in self.known_scopes)]
        try:
            return Principal(pid[:255], kind, scopes=sorted(set(kept))[:MAX_LABELS])
        except ValueError as exc:
            return self.denied(f"the credential's subject or scopes are not usable: {exc}")

    def forbidden(self, principal: Principal, method: str | None) -> Denied | None:
        """403 insufficient_scope naming every scope ``method`` needs when ``principal`` lacks one of them."""
        key = (principal.scopes, method)
        allowed = self._allowed.get(key)  # a client's next requests: one look-up
        if allowed is None:
            allowed = all(covers(principal.scopes, s) for s in self.needed(method))
            if len(self._allowed) >= _DECISIONS:
                self._allowed.clear()
            self._allowed[key] = allowed
        if allowed:
            return None
        need = self.needed(method)
        message = f"insufficient scope for {method or 'this request'}: it needs {' '.join(need)}"
        return Denied(403, message, self.challenge("insufficient_scope", message, need))


def api_keys_path(settings: Settings) -> Path:
    if settings.auth_api_keys_file:
        return Path(settings.auth_api_keys_file).expanduser()
    return Path(settings.data_dir) / "api-keys.json"


def _method_scopes(items: Iterable[str]) -> list[tuple[str, frozenset[str]]]:
    out = []
    for item in items:
        pattern, sep, scopes = item.partition("=")
        if not sep or not pattern.strip() or not scopes.split():
            raise ConfigError(f"auth_method_scopes: {item!r} is not METHOD=SCOPE [SCOPE...] "
                              "(e.g. tools/call=mcp:tools)")
        out.append((pattern.strip(), frozenset(scopes.split())))
    return out


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
