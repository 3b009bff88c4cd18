"""A client of the Docker Engine API (Docker, or Podman's compatible API and its libpod API), for plugins.

Used by the ``containers`` and ``kubernetes`` plugins, never by the runtime itself: it imports httpx (the HTTP
client chosen for them by import cost and RSS; docs/containers.md has the figures), which is in the
``containers`` extra and costs nothing to a box that does not load those plugins.

- ``EngineClient(host)`` talks to ``unix:///path`` (Docker's ``/run/docker.sock``, Podman's compat socket),
  ``tcp://host:port`` or ``http(s)://host:port``; ``connect()`` reads ``/version``, tells Docker from Podman and
  negotiates the API version: the lower of the server's ``ApiVersion`` and ``MAX_API`` (and not below its
  ``MinAPIVersion``); later paths go to ``/v<version>/...`` (``libpod=True``: ``/v<podman>/libpod/...``).
- Errors are ``EngineError`` with the HTTP status and the engine's own message (``NotFound`` for 404,
  ``Conflict`` for 409); a socket that cannot be reached is ``EngineUnavailable``, naming the host.
- ``FrameDecoder`` splits the 8-byte-header multiplexed stream of logs and exec output without a TTY
  (``[stream, 0, 0, 0, size:u32be]`` then ``size`` bytes; stream 0 stdin, 1 stdout, 2 stderr);
  ``JsonLines`` splits newline-delimited JSON (events, pull progress, stats); both are incremental and bounded.
- ``normalize_event`` gives one ``Event`` shape for both engines and every API version: Podman's ``died`` is
  Docker's ``die``, and the old top-level ``id``/``status``/``from`` fields (dropped by Docker 29, API 1.52)
  are used only where ``Actor``/``Action`` are missing.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = [
    "DEFAULT_HOST",
    "MAX_API",
    "MIN_API",
    "Conflict",
    "EngineClient",
    "EngineError",
    "EngineTLS",
    "EngineUnavailable",
    "Event",
    "FrameDecoder",
    "JsonLines",
    "NotFound",
    "engine_host",
    "engine_tls",
    "normalize_event",
    "version_tuple",
]

DEFAULT_HOST: Final = "unix:///run/docker.sock"
MAX_API: Final = "1.52"  # the newest Engine API this client knows (Docker 29)
MIN_API: Final = "1.24"  # the oldest it speaks (every field it reads exists from here on)
MAX_LINE: Final = 16 * 1024 * 1024  # a JSON line or a log frame longer than this is an error, not a buffer
_HEADER = struct.Struct(">BxxxI")
_ACTIONS: Final = {"died": "die"}  # Podman's spelling -> Docker's


class EngineError(Exception):
    """The engine answered with an error (``status``: the HTTP status), or could not be understood."""

    def __init__(self, message: str, status: int | None = None, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.path else ""
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.message}{code}"


class NotFound(EngineError):
    """404: no such container, image, network, pod or volume."""


class Conflict(EngineError):
    """409: the object is in a state that forbids the request (in use, already exists, not running)."""


class EngineUnavailable(EngineError):
    """The engine's socket or address cannot be reached."""


def version_tuple(v: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``; non-numeric parts count as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in v.strip().lstrip("v").split("."))


def engine_host(configured: str, environ: Mapping[str, str]) -> str:
    """The engine to talk to: the plugin's config, else ``$DOCKER_HOST`` (from the runtime's settings.environ),
    else ``DEFAULT_HOST``."""
    return configured or environ.get("DOCKER_HOST", "") or DEFAULT_HOST


@dataclass
@dataclass(frozen=True)
class EngineTLS:
    """How to speak TLS to a tcp:// engine (``engine_tls``): ``tls`` on or off, ``verify`` True (system CAs), a
    CA bundle's path or False (no check), ``cert`` the client's (cert.pem, key.pem) or None."""

    tls: bool = False
    verify: bool | str = True
    cert: tuple[str, str] | None = None


def engine_tls(config: Mapping[str, Any], environ: Mapping[str, str]) -> EngineTLS:
    """The TLS settings as the Docker CLI takes them, with config keys over the environment.

    ``DOCKER_TLS_VERIFY`` non-empty (any value, as the Docker CLI reads it) turns TLS on with verification
    against ``$DOCKER_CERT_PATH/ca.pem`` (``DOCKER_CERT_PATH`` defaults to ``$HOME/.docker``) and the client
    certificate ``cert.pem`` + ``key.pem`` there when both exist. The config keys ``tls_ca``, ``tls_cert``,
    ``tls_key`` (paths) and ``tls_verify`` (bool) override those; any of them set turns TLS on too (``tls_verify =
    false`` alone, without the environment, leaves it off). Raises EngineError naming the missing file or
    folder, and where its path came from."""
    def given(key: str) -> str:
        value = config.get(key)
        return str(value) if value not in (None, "") else ""

    env_on = bool(environ.get("DOCKER_TLS_VERIFY", ""))
    ca, cert, key = given("tls_ca"), given("tls_cert"), given("tls_key")
    verify_key = config.get("tls_verify")
    if not (env_on or ca or cert or key or verify_key is True):
        return EngineTLS()
    if env_on:
        folder = environ.get("DOCKER_CERT_PATH", "")
        where = "DOCKER_CERT_PATH"
        if not folder:
            home = environ.get("HOME", "")
            folder, where = (os.path.join(home, ".docker") if home else ""), "$HOME/.docker (no DOCKER_CERT_PATH)"
        if not folder or not os.path.isdir(folder):
            raise EngineError(f"DOCKER_TLS_VERIFY is set but the certificate folder {folder or '(none)'!r} from "
                              f"{where} is not a folder: set DOCKER_CERT_PATH to the folder holding ca.pem, "
                              f"cert.pem and key.pem (or the tls_ca, tls_cert, tls_key config keys)")
        in_folder = {n: os.path.join(folder, f"{n}.pem") for n in ("ca", "cert", "key")}
        ca = ca or (in_folder["ca"] if os.path.isfile(in_folder["ca"]) else "")
        if not ca and verify_key is not False:
            raise EngineError(f"DOCKER_TLS_VERIFY is set but {in_folder['ca']} (from {where}) does not exist: the "
                              f"engine's CA certificate is needed to verify it")
        if not cert and not key and os.path.isfile(in_folder["cert"]) and os.path.isfile(in_folder["key"]):
            cert, key = in_folder["cert"], in_folder["key"]
    if bool(cert) != bool(key):
        raise EngineError("a client certificate needs both tls_cert and tls_key (cert.pem and key.pem)")
    for what, path in (("tls_ca", ca), ("tls_cert", cert), ("tls_key", key)):
        if path and not os.path.isfile(path):
            raise EngineError(f"{what}: {path!r} does not exist or is not a file")
    verify: bool | str = False if verify_key is False else (ca or True)
    return EngineTLS(tls=True, verify=verify, cert=(cert, key) if cert else None)


@dataclass(frozen=True)
class Event:
    """One engine event, the same shape from Docker and Podman: ``type`` (container, image, network, volume,
    pod), ``action`` (Docker's word: create, start, die, stop, destroy, ...; ``exec_start: sh`` is
    ``exec_start``), ``id``, ``name`` (the container's or object's name, or ""), ``attributes`` and
    ``time_ns``."""

    type: str
    action: str
    id: str
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    time_ns: int = 0
    raw_action: str = ""


def normalize_event(raw: Mapping[str, Any]) -> Event:
    """An ``Event`` from one decoded line of ``/events`` (see the module docstring); EngineError if it is not
    an event."""
    if not isinstance(raw, Mapping):
        raise EngineError(f"an event must be a JSON object, not {type(raw).__name__}")
    actor: Mapping[str, Any] = raw.get("Actor") or {}
    if not isinstance(actor, Mapping):
        actor = {}
    attrs: Mapping[str, Any] = actor.get("Attributes") or {}
    if not isinstance(attrs, Mapping):
        attrs = {}
    raw_action = str(raw.get("Action") or raw.get("status") or raw.get("Status") or "")
    action = raw_action.split(":", 1)[0].strip()
    action = _ACTIONS.get(action, action)
    ident = str(actor.get("ID") or raw.get("id") or raw.get("ID") or "")
    kind = str(raw.get("Type") or raw.get("type") or ("container" if ident else ""))
    if not action or not kind:
        raise EngineError(f"not an engine event: {json.dumps(raw)[:200]}")
    time_ns = raw.get("timeNano") or raw.get("TimeNano")
    if not isinstance(time_ns, int):
        t = raw.get("time") or raw.get("Time")
        time_ns = int(t) * 1_000_000_000 if isinstance(t, int | float) else 0
    attributes = {str(k): str(v) for k, v in attrs.items()}
    if "image" not in attributes and raw.get("from"):
        attributes["image"] = str(raw["from"])
    return Event(kind, action, ident, attributes.get("name", ""), attributes, time_ns, raw_action)


class FrameDecoder:
    """Incremental decoder of the multiplexed stdout/stderr stream (see the module docstring)."""

    NAMES: Final = {0: "stdin", 1: "stdout", 2: "stderr", 3: "system"}

    def __init__(self, max_frame: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """The whole frames ``data`` completes, as (stream name, payload)."""
        self._buf += data
        out: list[tuple[str, bytes]] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= _HEADER.size:
            stream, size = _HEADER.unpack_from(buf, pos)
            if stream not in self.NAMES:
                raise EngineError(f"not a multiplexed stream: frame header names stream {stream}")
            if size > self.max_frame:
                raise EngineError(f"a frame of {size} bytes is over the {self.max_frame}-byte limit")
            end = pos + _HEADER.size + size
            if end > len(buf):
                break
            out.append((self.NAMES[stream], bytes(buf[pos + _HEADER.size:end])))
            pos = end
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (a stream that ends with some is truncated)."""
        return len(self._buf)


class JsonLines:
    """Incremental splitter of newline-delimited JSON: complete lines decoded, blank lines skipped."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self.max_line = max_line

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_line:
                    raise EngineError(f"a JSON line over the {self.max_line}-byte limit")
                return out
            line = bytes(self._buf[:nl]).strip()
            del self._buf[:nl + 1]
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise EngineError(f"not JSON: {line[:200]!r} ({exc})") from None

    def flush(self) -> list[Any]:
        """The last line when the stream ended without a newline."""
        if self._buf.strip():
            self._buf += b"\n"
            return self.feed(b"")
        return []


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500] or "no message"
    if isinstance(data, Mapping):
        return str(data.get("message") or data.get("cause") or data)[:500]
    return str(data)[:500]


def _error(status: int, body: bytes, method: str, path: str) -> EngineError:
    cls = {404: NotFound, 409: Conflict}.get(status, EngineError)
    return cls(_message(body), status, method, path)


class EngineClient:
    """One engine (see the module docstring). Use ``async with EngineClient(host) as c`` or call ``connect``
    and ``aclose``."""

    def __init__(self, host: str = DEFAULT_HOST, *, timeout: float = 30.0, api_version: str | None = None,
                 tls_verify: bool | str = True, tls_cert: tuple[str, str] | None = None,
                 tls: bool | None = None) -> None:
        self.host = host
        self.timeout = timeout
        self.pinned = api_version
        self.api_version = api_version or MIN_API
        self.flavor = "docker"
        self.libpod_version: str | None = None
        self.version: dict[str, Any] = {}
        self._tls_verify = tls_verify
        self._tls_cert = tls_cert
        # tcp:// speaks TLS when this is True, or (None) when a client certificate is given
        self.tls = tls
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> EngineClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _make(self) -> httpx.AsyncClient:
        import httpx

        parts = urlsplit(self.host)
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))
        if parts.scheme == "unix":
            path = parts.path or parts.netloc
            if not path:
                raise EngineError(f"{self.host!r}: a unix:// host needs a socket path")
            transport = httpx.AsyncHTTPTransport(uds=path)
            return httpx.AsyncClient(transport=transport, base_url="http://engine", timeout=timeout)
        if parts.scheme in ("tcp", "http", "https"):
            tls = parts.scheme == "https" or (parts.scheme == "tcp" and (
                self.tls if self.tls is not None else self._tls_cert is not None))
            if not parts.hostname:
                raise EngineError(f"{self.host!r}: no host name")
            port = parts.port or (2376 if tls else 2375)
            base = f"{'https' if tls else 'http'}://{parts.hostname}:{port}"
            return httpx.AsyncClient(base_url=base, timeout=timeout, verify=self._ssl() if tls else True)
        raise EngineError(f"{self.host!r}: the engine host must be unix://, tcp://, http:// or https://")

    @property
    def tls_settings(self) -> EngineTLS:
        """What this client was built with (tls None is reported as what it means for tcp://)."""
        tls = self.tls if self.tls is not None else self._tls_cert is not None
        return EngineTLS(tls=tls, verify=self._tls_verify, cert=self._tls_cert)

    def _ssl(self) -> ssl.SSLContext:
        """The TLS context: the CA bundle (or the system's, or no check) and the client certificate."""
        import ssl  # here, as httpx: a box without a TLS engine does not load OpenSSL for this module

        try:
            if self._tls_verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(self._tls_verify, str):
                context = ssl.create_default_context(cafile=self._tls_verify)
            else:
                context = ssl.create_default_context()
            if self._tls_cert is not None:
                context.load_cert_chain(*self._tls_cert)
        except (OSError, ssl.SSLError) as exc:
            raise EngineError(f"{self.host}: the TLS files cannot be used (CA {self._tls_verify!r}, client "
                              f"certificate {self._tls_cert!r}): {exc}") from None
        return context

    async def connect(self) -> None:
        """Reach the engine and negotiate the API version (EngineUnavailable when it cannot be reached)."""
        if self._client is None:
            self._client = self._make()
        info = await self.request("GET", "/version", versioned=False)
        if not isinstance(info, dict):
            raise EngineError(f"{self.host}: /version answered {type(info).__name__}, not an object")
        self.version = info
        for comp in info.get("Components") or []:
            if isinstance(comp, dict) and "podman" in str(comp.get("Name", "")).lower():
                self.flavor = "podman"
                self.libpod_version = str(comp.get("Version") or (comp.get("Details") or {}).get("APIVersion"))
        if self.pinned:
            self.api_version = self.pinned
            return
        server = str(info.get("ApiVersion") or MIN_API)
        lowest = str(info.get("MinAPIVersion") or MIN_API)
        chosen = min(server, MAX_API, key=version_tuple)
        if version_tuple(chosen) < version_tuple(lowest):
            raise EngineError(f"{self.host}: the engine speaks API {lowest}..{server}, this client "
                              f"{MIN_API}..{MAX_API}")
        self.api_version = chosen

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def at_least(self, version: str) -> bool:
        """Whether the negotiated API version is ``version`` or newer."""
        return version_tuple(self.api_version) >= version_tuple(version)

    def url(self, path: str, *, libpod: bool = False, versioned: bool = True) -> str:
        if libpod:
            if self.libpod_version is None:
                raise EngineError(f"{self.host} is {self.flavor}, not Podman: {path} needs Podman's libpod API")
            return f"/v{self.libpod_version}/libpod{path}"
        return f"/v{self.api_version}{path}" if versioned else path

    @staticmethod
    def quote(name: str) -> str:
        """A name or id as one path segment."""
        return quote(name, safe="")

    @staticmethod
    def segment(name: str, what: str = "name") -> str:
        """``quote`` for a name that came from outside: EngineError for an empty name, ``.`` or ``..`` (which the
        HTTP client folds into the path: ``/containers/../json`` is sent as ``/json``), control characters or more
        than 1024 characters, so that no argument reaches another API path."""
        if not name or name in (".", "..") or len(name) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise EngineError(f"{name[:100]!r} is not a valid {what}")
        return quote(name, safe="")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._make()
        return self._client

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json_body: Any = None, content: bytes | None = None,
                      headers: Mapping[str, str] | None = None, libpod: bool = False, versioned: bool = True,
                      timeout: float | None = None, raw: bool = False) -> Any:
        """One request: the decoded JSON body (None when empty; bytes when ``raw``), or EngineError."""
        import httpx

        url = self.url(path, libpod=libpod, versioned=versioned)
        kwargs: dict[str, Any] = {"params": _params(params), "headers": headers}
        if json_body is not None:
            kwargs["json"] = json_body
        elif content is not None:
            kwargs["content"] = content
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            resp = await self._http().request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError, ConnectionRefusedError) as exc:
            raise EngineUnavailable(f"cannot reach the engine at {self.host}: {exc or type(exc).__name__}",
                                    None, method, path) from None
        except httpx.TimeoutException:
            raise EngineError(f"no answer from the engine at {self.host} within the timeout", None, method,
                              path) from None
        except httpx.HTTPError as exc:
            raise EngineError(f"{type(exc).__name__}: {exc}", None, method, path) from None
        if resp.status_code >= 400:
            raise _error(resp.status_code, resp.content, method, path)
        if raw:
            return resp.content
        if not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError:
            # Some endpoints answer NDJSON (pull progress, kube play): the lines as a list.
            return JsonLines().feed(resp.content + b"\n")

    @asynccontextmanager
    async def stream(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                     json_body: Any = None, content: bytes | None = None,
                     headers: Mapping[str, str] | None = None, libpod: bool = False,
                     timeout: float | None = None) -> AsyncIterator[httpx.Response]:
        """A streaming response (``aiter_raw``/``aiter_bytes``), its status checked; no read timeout unless
        ``timeout`` is given (a followed log or the event stream may be quiet for long)."""
        import httpx

        url = self.url(path, libpod=libpod)
        req_timeout = httpx.Timeout(self.timeout, read=timeout) if timeout is not None else \
            httpx.Timeout(self.timeout, read=None)
        request = self._http().build_request(method, url, params=_params(params), headers=headers,
                                             json=json_body, content=content, timeout=req_timeout)
        try:
            resp = await self._http().send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError, ConnectionRefusedError) as exc:
            raise EngineUnavailable(f"cannot reach the engine at {self.host}: {exc or type(exc).__name__}",
                                    None, method, path) from None
        except httpx.HTTPError as exc:
            raise EngineError(f"{type(exc).__name__}: {exc}", None, method, path) from None
        try:
            if resp.status_code >= 400:
                body = await resp.aread()
                raise _error(resp.status_code, body, method, path)
            yield resp
        finally:
            await resp.aclose()


def _params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Query parameters as the engine reads them: booleans as 1/0 (Docker) — Podman takes ``true``/``false``
    and 1/0 alike — mappings and lists (``filters``) as JSON, None left out."""
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, Mapping | list | tuple):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out
