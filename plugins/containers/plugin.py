"""containers: Docker or Podman through the Docker Engine API: containers, images, networks, and one resource per
container kept fresh by the engine's event stream.

The engine is the plugin's ``host`` config key, else ``$DOCKER_HOST`` from the runtime's environment
(``ctx.settings.environ``), else ``unix:///run/docker.sock``; ``mcp_edge.engine_api.EngineClient`` negotiates the
API version from ``/version``. The plugin initializes whether the engine is there or not: tools answer an
``isError`` result naming the host while it cannot be reached, and the events task retries with a backoff.

Destructive tools (stop, restart, remove, exec, image.remove, image.prune, network.remove) are refused unless a
role policy is configured (``settings.auth_policy_file``: the router has already decided this caller may use
the destructive class) or the plugin's ``allow_destructive`` is true.

Differences between Docker and Podman 4.3 that this plugin handles, each where it is handled (docs/containers.md
lists them): the multiplexed 8-byte frames of logs and exec (raw bytes with a TTY), Podman's ``died`` event,
Docker 29's events without ``status``/``id``/``from``, Podman's zeroed ``precpu_stats``, Podman's refusal of a
``dangling=false`` prune filter, and ``null`` where Docker gives ``[]`` or ``{}``.
"""

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from shapes import (
    Connected,
    ContainerList,
    Created,
    ExecResult,
    ImageList,
    LineSplitter,
    LogsResult,
    NetworkCreated,
    NetworkList,
    PruneResult,
    PullResult,
    Removed,
    StateResult,
    Stats,
    container_name,
    container_summary,
    container_uri,
    image_summary,
    list_filters,
    mapping,
    network_summary,
    parse_port,
    parse_since,
    stats_of,
)

from mcp_edge.engine_api import (
    Conflict,
    EngineClient,
    EngineError,
    EngineTLS,
    EngineUnavailable,
    FrameDecoder,
    JsonLines,
    NotFound,
    engine_host,
    engine_tls,
    normalize_event,
)
from mcp_edge.errors import PluginConfigError, PluginError, ResourceNotFoundError
from mcp_edge.plugin import (
    PluginBase,
    PluginContext,
    RequestContext,
    ResourceDef,
    ToolAnnotations,
    completion,
    resource,
    resource_template,
    tool,
)

__all__ = ["Containers", "ContainersError"]

log = logging.getLogger("mcp_edge.plugins.containers")

INDEX_URI = "docker://containers"
TEMPLATE = "docker://containers/{id}"
_READ = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
_DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,253}\Z")  # Docker's rule for container and network names
_REPUBLISH = frozenset({"create", "destroy", "remove", "rename"})
_GONE = frozenset({"destroy", "remove"})  # Docker says destroy, Podman 4.3 remove (and destroy): the name goes
_API_VERSION = re.compile(r"^[0-9]+\.[0-9]+\Z")
# container.create's network modes that join the box's own namespaces (or another container's): root on the host
# for practical purposes, so they take the destructive rule (_host_network). A plain network name does not.
_HOST_NETWORK = re.compile(r"^(host|container:.+|ns:.+)\Z", re.IGNORECASE | re.DOTALL)


class ContainersError(Exception):
    """A failure the model can act on (no such container, engine down, refused); the message says what to do.
    It becomes a tool result with ``isError``."""


def _ref(kind: str, value: str) -> str:
    """A container, image or network reference as one quoted path segment (``EngineClient.segment``: never
    empty, ``.`` or ``..``, which the HTTP client would fold into the path, nor control characters)."""
    try:
        return EngineClient.segment(value, f"{kind} name or id")
    except EngineError as exc:
        raise ContainersError(exc.message) from None


def _env_list(env: Mapping[str, str]) -> list[str]:
    """``env`` as the engine's ``NAME=value`` list; a name that is empty or holds ``=`` or NUL is refused (it
    would set another variable than the one named)."""
    bad = [k for k in env if not k or "=" in k or "\0" in k]
    if bad:
        raise ContainersError(f"env name {bad[0]!r}: a name may not be empty or hold = or NUL")
    return [f"{k}={v}" for k, v in env.items()]


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise ContainersError(str(exc)) from None


class Containers(PluginBase):
    """Docker/Podman containers, images and networks."""

    id = "containers"
    capabilities = frozenset({"tools", "resources"})

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        await super().initialize(config, ctx)
        self.host = engine_host(str(config.get("host") or ""), ctx.settings.environ)
        parts = urlsplit(self.host)
        if parts.scheme not in ("unix", "tcp", "http", "https") or not (parts.path if parts.scheme == "unix"
                                                                        else parts.hostname):
            # a malformed address is a mistake to fix now; an engine that is not there yet is not (see below)
            raise PluginConfigError(f"containers: engine host {self.host!r} must be unix:///path/to/socket, "
                                    f"tcp://host:port, http://host:port or https://host:port (the plugin's host "
                                    f"key, else $DOCKER_HOST)")
        self.timeout_s = float(config.get("timeout_s", 30))
        self.allow_destructive = bool(config.get("allow_destructive", False))
        self.list_max = int(config.get("list_max", 1000))
        self.logs_tail_max = int(config.get("logs_tail_max", 10000))
        self.logs_max_bytes = int(config.get("logs_max_bytes", 1 << 20))
        self.max_line = int(config.get("max_line", 16384))
        self.follow_timeout_s = float(config.get("follow_timeout_s", 300))
        self.follow_max_lines = int(config.get("follow_max_lines", 10000))
        self.exec_timeout_s = float(config.get("exec_timeout_s", 60))
        self.exec_max_bytes = int(config.get("exec_max_bytes", 1 << 20))
        self.stop_timeout_max_s = int(config.get("stop_timeout_max_s", 300))
        self.stats_interval_s = float(config.get("stats_interval_s", 0.5))
        self.pull_timeout_s = float(config.get("pull_timeout_s", 600))
        self.backoff_min = float(config.get("events_backoff_min_s", 0.5))
        self.backoff_max = max(float(config.get("events_backoff_max_s", 30)), self.backoff_min)
        environ = ctx.settings.environ
        try:
            # TLS settings matter to tcp:// and https:// only: a unix socket ignores a stale DOCKER_TLS_VERIFY
            tls = engine_tls(config, environ) if parts.scheme != "unix" else EngineTLS()
        except EngineError as exc:
            raise PluginConfigError(f"containers: {exc.message}") from None
        api_version = str(config.get("api_version") or environ.get("DOCKER_API_VERSION") or "")
        if api_version and not _API_VERSION.match(api_version):
            raise PluginConfigError(f"containers: API version {api_version!r} (the api_version key, else "
                                    f"$DOCKER_API_VERSION) must be like 1.41")
        self.republish_interval_s = float(config.get("republish_interval_s", 0.5))
        self.client = EngineClient(self.host, timeout=self.timeout_s, api_version=api_version or None,
                                   tls_verify=tls.verify, tls_cert=tls.cert, tls=tls.tls)
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._republisher: asyncio.Task[None] | None = None
        self._dirty = False
        self._last_listing = -1e9  # loop time of the last listing for publish_resources
        self._names: dict[str, str] = {}  # container id -> name, to notify a renamed or removed one's old URI
        # What the events task is doing (shown in the docker://containers index): for operators and tests.
        self.events_state = "starting"
        self.events_connects = 0
        self.events_failures = 0
        self.events_seen = 0
        self._events = asyncio.create_task(self._follow_events(), name="containers-events")
        ctx.logger.info("containers: engine %s", self.host)

    async def shutdown(self) -> None:
        for task in (self._events, self._republisher):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.aclose()

    # -- the engine ------------------------------------------------------------------------------------------

    def _unreachable(self, exc: EngineError) -> ContainersError:
        return ContainersError(f"the container engine at {self.host} cannot be reached ({exc.message}); start "
                               f"Docker or Podman there, or point the plugin at another engine with its host "
                               f"config key (MCP_EDGE_CONTAINERS_HOST) or DOCKER_HOST")

    async def _engine(self) -> EngineClient:
        """The client, connected (API version negotiated) on first use; ContainersError when unreachable."""
        if not self._connected:
            async with self._connect_lock:
                if not self._connected:
                    try:
                        await self.client.connect()
                    except EngineUnavailable as exc:
                        raise self._unreachable(exc) from None
                    except EngineError as exc:
                        raise ContainersError(f"the container engine at {self.host}: {exc}") from None
                    self._connected = True
                    log.info("containers: %s %s, API %s", self.client.flavor,
                             self.client.version.get("Version", "?"), self.client.api_version)
        return self.client

    @contextlib.contextmanager
    def _errors(self, kind: str = "", ref: str = "", lister: str = "") -> Any:
        """Engine errors as ContainersError: what was not found and how to find it, or the engine's message."""
        try:
            yield
        except NotFound as exc:
            if kind:
                hint = f"; {lister} shows them" if lister else ""
                raise ContainersError(f"no such {kind}: {ref!r}{hint} ({exc.message})") from None
            raise ContainersError(str(exc)) from None
        except Conflict as exc:
            raise ContainersError(f"{kind} {ref!r}: {exc.message}" if kind else str(exc)) from None
        except EngineUnavailable as exc:
            raise self._unreachable(exc) from None
        except EngineError as exc:
            raise ContainersError(f"the engine refused: {exc}") from None

    async def _request(self, method: str, path: str, *, kind: str = "", ref: str = "", lister: str = "",
                       **kwargs: Any) -> Any:
        eng = await self._engine()
        with self._errors(kind, ref, lister):
            return await eng.request(method, path, **kwargs)

    @contextlib.asynccontextmanager
    async def _stream(self, method: str, path: str, *, kind: str = "", ref: str = "", lister: str = "",
                      **kwargs: Any) -> AsyncIterator[Any]:
        eng = await self._engine()
        with self._errors(kind, ref, lister):
            async with eng.stream(method, path, **kwargs) as resp:
                yield resp

    async def _inspect(self, container: str) -> dict[str, Any]:
        data = await self._request("GET", f"/containers/{_ref('container', container)}/json", kind="container",
                                   ref=container, lister="container.list")
        if not isinstance(data, dict):
            raise ContainersError(f"the engine answered {type(data).__name__} for container {container!r}")
        return data

    def _destructive_allowed(self) -> bool:
        return bool(self.ctx.settings.auth_policy_file or self.allow_destructive)

    def _destructive(self, tool_name: str, what: str = "") -> None:
        """Refuse a destructive tool (or ``what`` a tool does) unless a role policy is configured or
        allow_destructive is on."""
        if self._destructive_allowed():
            return
        raise ContainersError(
            f"{what or tool_name + ' is destructive'} and destructive tools are off: no role policy is configured "
            f"and the plugin's allow_destructive is false. Turn them on with allow_destructive = true in the board "
            f"profile's [plugins.containers] table (or MCP_EDGE_CONTAINERS_ALLOW_DESTRUCTIVE=true), or configure a "
            f"role policy (auth_policy_file) whose roles grant the destructive class")

    async def _state(self, container: str, note: str | None = None) -> StateResult:
        info = await self._inspect(container)
        state = mapping(info.get("State"))
        code = state.get("ExitCode")
        return StateResult(id=str(info.get("Id") or ""), name=container_name(info),
                           state=str(state.get("Status") or ""), running=bool(state.get("Running")),
                           exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                           note=note)

    # -- containers ------------------------------------------------------------------------------------------

    @tool(name="container.list", title="List containers", annotations=_READ)
    async def container_list(self, all: bool = False, status: list[str] | None = None,
                             label: list[str] | None = None, name: str | None = None) -> ContainerList:
        """The containers of the engine: id, name, image, state, created, ports, labels and resource URI.

        Args:
            all: include stopped containers (default: running ones only).
            status: only these states (created, restarting, running, removing, paused, exited, dead).
            label: only containers with these labels (key or key=value; all must match).
            name: only containers whose name contains this text.
        """
        try:
            filters = list_filters(status or (), label or (), name)
        except ValueError as exc:
            raise ContainersError(str(exc)) from None
        if status:
            all = True  # a status filter names stopped states too: Docker needs all=1 to see them
        raw = await self._request("GET", "/containers/json", params={"all": all, "filters": filters or None})
        items = [container_summary(c) for c in raw or [] if isinstance(c, dict)]
        return ContainerList(containers=items[:self.list_max], total=len(items), truncated=len(items) > self.list_max)

    @tool(name="container.inspect", title="Inspect a container", annotations=_READ)
    async def container_inspect(self, container: str) -> dict[str, Any]:
        """The engine's whole description of one container (config, state, mounts, network settings).

        Args:
            container: the container's name or id (or a unique prefix of the id).
        """
        return await self._inspect(container)

    @tool(name="container.create", title="Create a container", annotations=_WRITE)
    async def container_create(self, image: str, name: str | None = None, command: list[str] | None = None,
                               entrypoint: list[str] | None = None, env: dict[str, str] | None = None,
                               labels: dict[str, str] | None = None, working_dir: str | None = None,
                               user: str | None = None, tty: bool = False, ports: list[str] | None = None,
                               network: str | None = None, start: bool = False) -> Created:
        """Create a container from a local image (nothing is pulled: use image.pull first), and start it if asked.

        Args:
            image: the image reference (localhost/busybox:latest) or id.
            name: the container's name ([a-zA-Z0-9][a-zA-Z0-9_.-]*); the engine makes one up without it.
            command: the command and its arguments (the image's CMD without it).
            entrypoint: replaces the image's entrypoint.
            env: environment variables.
            labels: labels to set.
            working_dir: the working folder inside the container.
            user: user[:group] to run as.
            tty: give the container a terminal (its logs are then one stream, not stdout and stderr apart).
            ports: published ports, each container_port[/tcp|udp], host_port:container_port or
                ip:host_port:container_port.
            network: the network to attach it to (network.list shows them; bridge, none, default). The modes that
                join the box's namespaces (host, container:<id>, ns:<path>) are refused unless destructive tools
                are allowed.
            start: start it once created.
        """
        if name is not None and not _NAME.match(name):
            raise ContainersError(f"container name {name!r}: use letters, digits, _ . - (not first), at most 254")
        if not image:
            raise ContainersError("image is empty: give an image reference (image.list shows the local ones)")
        body: dict[str, Any] = {"Image": image, "Tty": tty, "OpenStdin": False, "AttachStdout": False,
                                "AttachStderr": False}
        if command is not None:
            body["Cmd"] = command
        if entrypoint is not None:
            body["Entrypoint"] = entrypoint
        if env:
            body["Env"] = _env_list(env)
        if labels:
            body["Labels"] = labels
        if working_dir:
            body["WorkingDir"] = working_dir
        if user:
            body["User"] = user
        host_config: dict[str, Any] = {}
        if ports:
            exposed: dict[str, Any] = {}
            bindings: dict[str, list[dict[str, str]]] = {}
            for spec in ports:
                try:
                    key, binding = parse_port(spec)
                except ValueError as exc:
                    raise ContainersError(str(exc)) from None
                exposed[key] = {}
                if binding is not None:
                    bindings.setdefault(key, []).append(binding)
            body["ExposedPorts"] = exposed
            if bindings:
                host_config["PortBindings"] = bindings
        if network is not None:
            host_config["NetworkMode"] = self._network_mode(network)
        if host_config:
            body["HostConfig"] = host_config
        created = await self._request("POST", "/containers/create", params={"name": name}, json_body=body,
                                      kind="image", ref=image, lister="image.list")
        ident = str((created or {}).get("Id") or "")
        warnings = [str(w) for w in (created or {}).get("Warnings") or [] if w]
        shown = name or container_name(await self._inspect(ident))
        if start:
            try:
                await self._request("POST", f"/containers/{_ref('container', ident)}/start", kind="container",
                                    ref=ident)
            except ContainersError as exc:
                raise ContainersError(f"created the container {shown} ({ident[:12]}) but it did not start: {exc}; "
                                      f"container.logs may say why, container.remove removes it") from None
        return Created(id=ident, name=shown, started=start, warnings=warnings, uri=container_uri(shown))

    def _network_mode(self, network: str) -> str:
        """container.create's network as HostConfig.NetworkMode. The engine reads that field as a mode, not only a
        network name: ``host``, ``container:<id>`` and ``ns:<path>`` put the container in the box's (or another
        container's) network namespace, which a tool marked write must not do; they take the destructive rule.
        The tool exposes no other HostConfig mode (pid, ipc, userns, privileged, binds, mounts, cap_add, devices
        are never set)."""
        if _HOST_NETWORK.match(network):
            self._destructive("container.create", f"container.create with network {network!r} joins the "
                                                  f"namespace of the host or of another container; that is "
                                                  f"host access")
            return network
        if not _NAME.match(network):
            raise ContainersError(f"network {network!r}: give a network's name (letters, digits, _ . -, not "
                                  f"first; network.list shows them) or bridge, none, default")
        return network

    @tool(name="container.start", title="Start a container", annotations=_WRITE)
    async def container_start(self, container: str) -> StateResult:
        """Start a created or stopped container.

        Args:
            container: the container's name or id.
        """
        before = await self._state(container)
        await self._request("POST", f"/containers/{_ref('container', container)}/start", kind="container",
                            ref=container, lister="container.list")
        return await self._state(container, "it was already running" if before.running else None)

    @tool(name="container.stop", title="Stop a container", annotations=_DESTRUCTIVE)
    async def container_stop(self, container: str,
                             timeout_s: Annotated[int, msgspec.Meta(ge=0)] | None = None) -> StateResult:
        """Stop a running container: SIGTERM (or its stop signal), then SIGKILL after the timeout.

        Args:
            container: the container's name or id.
            timeout_s: seconds to wait before killing it (the container's own stop timeout without it).
        """
        self._destructive("container.stop")
        if timeout_s is not None and timeout_s > self.stop_timeout_max_s:
            raise ContainersError(f"timeout_s {timeout_s} is over the plugin's stop_timeout_max_s "
                                  f"({self.stop_timeout_max_s})")
        wait = (timeout_s if timeout_s is not None else self.stop_timeout_max_s) + self.timeout_s
        await self._request("POST", f"/containers/{_ref('container', container)}/stop", params={"t": timeout_s},
                            kind="container", ref=container, lister="container.list", timeout=wait)
        return await self._state(container)

    @tool(name="container.restart", title="Restart a container", annotations=_DESTRUCTIVE)
    async def container_restart(self, container: str,
                                timeout_s: Annotated[int, msgspec.Meta(ge=0)] | None = None) -> StateResult:
        """Stop (if running) and start a container again.

        Args:
            container: the container's name or id.
            timeout_s: seconds to wait for it to stop before killing it.
        """
        self._destructive("container.restart")
        if timeout_s is not None and timeout_s > self.stop_timeout_max_s:
            raise ContainersError(f"timeout_s {timeout_s} is over the plugin's stop_timeout_max_s "
                                  f"({self.stop_timeout_max_s})")
        wait = (timeout_s if timeout_s is not None else self.stop_timeout_max_s) + self.timeout_s
        await self._request("POST", f"/containers/{_ref('container', container)}/restart",
                            params={"t": timeout_s}, kind="container", ref=container, lister="container.list",
                            timeout=wait)
        return await self._state(container)

    @tool(name="container.remove", title="Remove a container", annotations=_DESTRUCTIVE)
    async def container_remove(self, container: str, force: bool = False, volumes: bool = False) -> Removed:
        """Remove a container (a running one only with force).

        Args:
            container: the container's name or id.
            force: kill it first if it is running.
            volumes: also remove its anonymous volumes.
        """
        self._destructive("container.remove")
        await self._request("DELETE", f"/containers/{_ref('container', container)}",
                            params={"force": force, "v": volumes}, kind="container", ref=container,
                            lister="container.list")
        return Removed(removed=container, kind="container")

    @tool(name="container.logs", title="Read a container's logs", annotations=_READ)
    async def container_logs(self, container: str, tail: Annotated[int, msgspec.Meta(ge=0)] = 100,
                             timestamps: bool = False, since: str | None = None, follow: bool = False,
                             ctx: RequestContext | None = None) -> LogsResult:
        """A container's output, stdout and stderr apart (one stream when it has a TTY).

        With follow=true new lines are sent as progress notifications (message: the lines, each prefixed
        [stdout] or [stderr]) until the container stops, the request is cancelled, or the plugin's
        follow_max_lines / follow_timeout_s is reached; the result then holds what was seen (the last lines,
        within logs_tail_max lines and logs_max_bytes bytes).

        Args:
            container: the container's name or id.
            tail: the last lines to return (at most the plugin's logs_tail_max; 0 with follow: only new lines).
            timestamps: prefix each line with its RFC 3339 time.
            since: only lines after this time: unix seconds, RFC 3339, or a duration before now (10m, 1h30m).
            follow: keep streaming new lines as progress notifications.
        """
        if tail > self.logs_tail_max:
            raise ContainersError(f"tail {tail} is over the plugin's logs_tail_max ({self.logs_tail_max}): ask "
                                  f"for fewer lines, or use since")
        info = await self._inspect(container)
        tty = bool(mapping(info.get("Config")).get("Tty"))
        ident = str(info.get("Id") or container)
        params = {"stdout": True, "stderr": True, "tail": tail, "timestamps": timestamps, "since": _since(since),
                  "follow": follow}
        keep = self.logs_tail_max if follow else tail
        out: dict[str, collections.deque[str]] = {"stdout": collections.deque(), "stderr": collections.deque()}
        order: collections.deque[tuple[str, int]] = collections.deque()  # (stream, bytes) of each kept line
        kept_bytes = 0
        seen = 0
        truncated = False
        ended: str | None = None
        splitters = {"stdout": LineSplitter(self.max_line), "stderr": LineSplitter(self.max_line)}
        decoder = None if tty else FrameDecoder()

        def add(stream: str, line: str) -> bool:
            """Keep one line; False when a bound says stop (not following: logs_max_bytes reached)."""
            nonlocal kept_bytes, truncated
            size = len(line.encode("utf-8", "replace")) + 1
            if not follow and kept_bytes + size > self.logs_max_bytes:
                truncated = True
                return False
            out[stream].append(line)
            order.append((stream, size))
            kept_bytes += size
            while follow and order and (kept_bytes > self.logs_max_bytes or len(order) > keep):
                old, old_size = order.popleft()  # following: keep the newest lines within the bounds
                out[old].popleft()
                kept_bytes -= old_size
                truncated = True
            return True

        async def lines_of(chunk: bytes) -> list[tuple[str, str]]:
            if decoder is None:  # a TTY: one raw stream, no frames
                return [("stdout", line) for line in splitters["stdout"].feed(chunk)]
            got: list[tuple[str, str]] = []
            for stream, payload in decoder.feed(chunk):
                name = "stderr" if stream == "stderr" else "stdout"
                got += [(name, line) for line in splitters[name].feed(payload)]
            return got

        async def read(resp: Any) -> str | None:
            nonlocal seen
            async for chunk in resp.aiter_raw():
                batch = await lines_of(chunk)
                for stream, line in batch:
                    seen += 1
                    if not add(stream, line):
                        return "max_bytes"
                if follow and batch and ctx is not None:
                    await ctx.report_progress(seen, None, "\n".join(f"[{s}] {t}" for s, t in batch))
                    if ctx.cancelled:
                        raise asyncio.CancelledError
                if follow and seen >= self.follow_max_lines:
                    return "max_lines"
            return "stopped"

        try:
            async with asyncio.timeout(self.follow_timeout_s if follow else self.timeout_s * 4):
                async with self._stream("GET", f"/containers/{_ref('container', ident)}/logs", params=params,
                                        kind="container", ref=container, lister="container.list") as resp:
                    ended = await read(resp)
        except TimeoutError:
            if not follow:
                raise ContainersError(f"the engine did not finish sending the logs of {container!r} within "
                                      f"{self.timeout_s * 4:g} s") from None
            ended = "timeout"
        if ended == "stopped":
            for name, splitter in splitters.items():
                for line in splitter.flush():
                    add(name, line)
        notes = []
        if truncated:
            notes.append(f"only the {'last' if follow else 'first'} {len(order)} lines are returned "
                         f"(logs_max_bytes {self.logs_max_bytes}, logs_tail_max {self.logs_tail_max})")
        if tty:
            notes.append("the container has a TTY: stdout and stderr arrive as one stream, all in stdout")
        if follow and ended == "timeout":
            notes.append(f"stopped following after follow_timeout_s ({self.follow_timeout_s:g} s)")
        if follow and ended == "max_lines":
            notes.append(f"stopped following after follow_max_lines ({self.follow_max_lines}) lines")
        return LogsResult(container=container, tty=tty, stdout=list(out["stdout"]), stderr=list(out["stderr"]),
                          lines=len(order), truncated=truncated, followed=follow,
                          ended=ended if follow else None, note="; ".join(notes) or None)

    @tool(name="container.stats", title="A container's resource usage", annotations=_READ)
    async def container_stats(self, container: str) -> Stats:
        """One sample of a running container's usage: CPU %, memory usage and limit, pids, network and block
        I/O bytes. Fields the engine does not report are left out and named in `missing`.

        Args:
            container: the container's name or id.
        """
        path = f"/containers/{_ref('container', container)}/stats"
        params = {"stream": False}
        first = await self._request("GET", path, params=params, kind="container", ref=container,
                                    lister="container.list")
        if not isinstance(first, dict):
            raise ContainersError(f"the engine answered no statistics for {container!r} (is it running?)")
        result = stats_of(first)
        if result.cpu_percent is None and isinstance(first.get("cpu_stats"), dict):
            # Podman 4.3 answers stream=false with precpu_stats zeroed (Docker waits and fills it): take a
            # second sample and compute the CPU share between the two.
            await asyncio.sleep(self.stats_interval_s)
            second = await self._request("GET", path, params=params, kind="container", ref=container)
            if isinstance(second, dict):
                result = stats_of(second, previous=first)
        if not result.name:
            result.name = container
        return result

    @tool(name="container.exec", title="Run a command in a container", annotations=_DESTRUCTIVE)
    async def container_exec(self, container: str, command: list[str], env: dict[str, str] | None = None,
                             working_dir: str | None = None, user: str | None = None) -> ExecResult:
        """Run a command in a running container (no TTY) and return its exit code, stdout and stderr.

        Output beyond the plugin's exec_max_bytes is dropped (truncated: true); a command still running after
        exec_timeout_s is reported with timed_out: true and may still be running in the container (the Engine API
        cannot signal an exec: container.restart or container.stop ends it).

        Args:
            container: the container's name or id.
            command: the program and its arguments, e.g. ["sh", "-c", "ls /"].
            env: extra environment variables.
            working_dir: the folder to run in.
            user: user[:group] to run as.
        """
        self._destructive("container.exec")
        if not command or not command[0]:
            raise ContainersError("command is empty: give the program and its arguments, e.g. [\"ls\", \"/\"]")
        body: dict[str, Any] = {"Cmd": command, "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
                                "Tty": False}
        if env:
            body["Env"] = _env_list(env)
        if working_dir:
            body["WorkingDir"] = working_dir
        if user:
            body["User"] = user
        made = await self._request("POST", f"/containers/{_ref('container', container)}/exec", json_body=body,
                                   kind="container", ref=container, lister="container.list")
        exec_id = str((made or {}).get("Id") or "")
        if not exec_id:
            raise ContainersError(f"the engine made no exec instance in {container!r}: {made!r}")
        buf = {"stdout": bytearray(), "stderr": bytearray()}
        truncated = timed_out = False
        decoder = FrameDecoder()
        try:
            async with asyncio.timeout(self.exec_timeout_s):
                async with self._stream("POST", f"/exec/{_ref('exec', exec_id)}/start",
                                        json_body={"Detach": False, "Tty": False}) as resp:
                    async for chunk in resp.aiter_raw():
                        for stream, payload in decoder.feed(chunk):
                            name = "stderr" if stream == "stderr" else "stdout"
                            room = self.exec_max_bytes - len(buf["stdout"]) - len(buf["stderr"])
                            if len(payload) > room:
                                truncated = True  # keep reading (and dropping): the command must not block
                            buf[name] += payload[:max(room, 0)]
        except TimeoutError:
            timed_out = True
        code: int | None = None
        if not timed_out:
            # The exec's status can lag the end of its stream by a moment: ask until it says it ended.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout_s
            while True:
                info = await self._request("GET", f"/exec/{_ref('exec', exec_id)}/json")
                if isinstance(info, dict) and not info.get("Running") and isinstance(info.get("ExitCode"), int):
                    code = int(info["ExitCode"])
                    break
                if loop.time() > deadline:
                    break
                await asyncio.sleep(0.05)
        notes = []
        if truncated:
            notes.append(f"output over exec_max_bytes ({self.exec_max_bytes}) was dropped")
        if timed_out:
            # Not killed: the exec inspect's Pid is the host's, which means nothing inside the container's PID
            # namespace (and the Engine API has no exec kill): the command is left as it is.
            notes.append(f"no answer within exec_timeout_s ({self.exec_timeout_s:g} s): the command may still be "
                         f"running in the container (it was not stopped; container.restart or container.stop "
                         f"ends it)")
        return ExecResult(container=container, command=command, exit_code=code,
                          stdout=buf["stdout"].decode("utf-8", "replace"),
                          stderr=buf["stderr"].decode("utf-8", "replace"), truncated=truncated,
                          timed_out=timed_out, note="; ".join(notes) or None)

    # -- images ----------------------------------------------------------------------------------------------

    @tool(name="image.list", title="List images", annotations=_READ)
    async def image_list(self, all: bool = False, reference: str | None = None,
                         label: list[str] | None = None) -> ImageList:
        """The local images: id, tags, size, created, labels.

        Args:
            all: include intermediate images.
            reference: only images whose reference matches this (e.g. localhost/busybox or busybox:*).
            label: only images with these labels (key or key=value).
        """
        try:
            filters = list_filters(label=label or ())
        except ValueError as exc:
            raise ContainersError(str(exc)) from None
        if reference:
            filters["reference"] = [reference]
        raw = await self._request("GET", "/images/json", params={"all": all, "filters": filters or None})
        items = [image_summary(i) for i in raw or [] if isinstance(i, dict)]
        return ImageList(images=items[:self.list_max], total=len(items))

    @tool(name="image.inspect", title="Inspect an image", annotations=_READ)
    async def image_inspect(self, image: str) -> dict[str, Any]:
        """The engine's whole description of one local image.

        Args:
            image: the image's reference (localhost/busybox:latest) or id.
        """
        data = await self._request("GET", f"/images/{_ref('image', image)}/json", kind="image", ref=image,
                                   lister="image.list")
        if not isinstance(data, dict):
            raise ContainersError(f"the engine answered {type(data).__name__} for image {image!r}")
        return data

    # Destructive: it re-points an existing local tag (the old image can be left dangling) and can fill the disk.
    @tool(name="image.pull", title="Pull an image",
          annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=True))
    async def image_pull(self, image: str, tag: str | None = None, ctx: RequestContext | None = None
                         ) -> PullResult:
        """Pull an image from its registry; the engine's progress lines are sent as progress notifications.

        Args:
            image: the image reference (registry/repo[:tag] or repo@digest).
            tag: the tag, when image has none (latest without either).
        """
        self._destructive("image.pull")
        if not image or any(c.isspace() for c in image):
            raise ContainersError(f"{image!r} is not an image reference")
        name, _, own_tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        if "@" in image:
            name, own_tag = image, ""
        use_tag = tag or own_tag or ("" if "@" in image else "latest")
        ref = f"{name}:{use_tag}" if use_tag else name
        params = {"fromImage": name, "tag": use_tag or None}
        status = ""
        count = 0
        lines = JsonLines()
        try:
            async with asyncio.timeout(self.pull_timeout_s):
                async with self._stream("POST", "/images/create", params=params) as resp:
                    async for chunk in resp.aiter_raw():
                        for item in lines.feed(chunk):
                            count += 1
                            if not isinstance(item, dict):
                                continue
                            # The engine answers HTTP 200 and then reports a failure inside the stream
                            err = item.get("error") or (item.get("errorDetail") or {}).get("message")
                            if err:
                                raise ContainersError(f"pulling {ref} failed: {err}")
                            status = str(item.get("status") or item.get("stream") or status).strip()
                            if ctx is not None and status:
                                detail = f"{item.get('id')}: " if item.get("id") else ""
                                await ctx.report_progress(count, None, f"{detail}{status} "
                                                                       f"{item.get('progress') or ''}".strip())
        except TimeoutError:
            raise ContainersError(f"pulling {ref} did not finish within pull_timeout_s "
                                  f"({self.pull_timeout_s:g} s)") from None
        except EngineError as exc:
            raise ContainersError(f"pulling {ref}: {exc}") from None
        ident = None
        with contextlib.suppress(ContainersError):
            info = await self._request("GET", f"/images/{_ref('image', ref)}/json")
            ident = str(info.get("Id")) if isinstance(info, dict) else None
        return PullResult(image=ref, status=status, id=ident, progress_lines=count)

    @tool(name="image.remove", title="Remove an image", annotations=_DESTRUCTIVE)
    async def image_remove(self, image: str, force: bool = False) -> Removed:
        """Remove a local image, or one of its tags when it has several (the image stays until its last tag
        goes).

        Args:
            image: the image's reference or id.
            force: remove it even if containers use it (and every tag of an id).
        """
        self._destructive("image.remove")
        raw = await self._request("DELETE", f"/images/{_ref('image', image)}", params={"force": force},
                                  kind="image", ref=image, lister="image.list")
        items = [i for i in raw or [] if isinstance(i, dict)]
        return Removed(removed=image, kind="image", deleted=[str(i["Deleted"]) for i in items if i.get("Deleted")],
                       untagged=[str(i["Untagged"]) for i in items if i.get("Untagged")])

    @tool(name="image.prune", title="Remove unused images", annotations=_DESTRUCTIVE)
    async def image_prune(self, all: bool = False, label: list[str] | None = None) -> PruneResult:
        """Remove dangling images (untagged and unused), or with all=true every image no container uses.

        Args:
            all: remove every unused image, not only dangling ones.
            label: only images with these labels (key or key=value).
        """
        self._destructive("image.prune")
        try:
            filters: dict[str, list[str]] = list_filters(label=label or ())
        except ValueError as exc:
            raise ContainersError(str(exc)) from None
        eng = await self._engine()
        if all and eng.flavor == "podman":
            # Podman 4.3's compatible API refuses filters={"dangling":["false"]} with HTTP 500 ("specifying
            # dangling filter more than once"): its own libpod API prunes every unused image with all=true.
            raw = await self._request("POST", "/images/prune", params={"all": True, "filters": filters or None},
                                      libpod=True)
            deleted = [str(i.get("Id")) for i in raw or [] if isinstance(i, dict) and i.get("Id") and not i.get("Err")]
            size = sum(int(i.get("Size") or 0) for i in raw or [] if isinstance(i, dict) and not i.get("Err"))
            return PruneResult(deleted=deleted, space_reclaimed=size)
        if all:
            filters["dangling"] = ["false"]
        raw = await self._request("POST", "/images/prune", params={"filters": filters or None})
        raw = raw if isinstance(raw, dict) else {}
        deleted = [str(i.get("Deleted") or i.get("Untagged")) for i in raw.get("ImagesDeleted") or []
                   if isinstance(i, dict)]
        return PruneResult(deleted=deleted, space_reclaimed=int(raw.get("SpaceReclaimed") or 0))

    # -- networks --------------------------------------------------------------------------------------------

    @tool(name="network.list", title="List networks", annotations=_READ)
    async def network_list(self, name: str | None = None, label: list[str] | None = None) -> NetworkList:
        """The engine's networks: id, name, driver, scope, labels and connected containers.

        Args:
            name: only networks whose name contains this text.
            label: only networks with these labels (key or key=value).
        """
        try:
            filters = list_filters(label=label or (), name=name)
        except ValueError as exc:
            raise ContainersError(str(exc)) from None
        raw = await self._request("GET", "/networks", params={"filters": filters or None})
        items = [network_summary(n) for n in raw or [] if isinstance(n, dict)]
        return NetworkList(networks=items[:self.list_max], total=len(items))

    @tool(name="network.inspect", title="Inspect a network", annotations=_READ)
    async def network_inspect(self, network: str) -> dict[str, Any]:
        """The engine's whole description of one network (IPAM, options, connected containers).

        Args:
            network: the network's name or id.
        """
        data = await self._request("GET", f"/networks/{_ref('network', network)}", kind="network", ref=network,
                                   lister="network.list")
        if not isinstance(data, dict):
            raise ContainersError(f"the engine answered {type(data).__name__} for network {network!r}")
        return data

    @tool(name="network.create", title="Create a network", annotations=_WRITE)
    async def network_create(self, name: str, driver: str | None = None, internal: bool = False,
                             labels: dict[str, str] | None = None, subnet: str | None = None,
                             gateway: str | None = None) -> NetworkCreated:
        """Create a network.

        Args:
            name: the network's name ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
            driver: bridge (the default); any other driver (macvlan, ipvlan: containers straight on the box's
                LAN) needs destructive tools allowed.
            internal: no route to the outside.
            labels: labels to set.
            subnet: the subnet in CIDR form (10.89.7.0/24); the engine picks one without it.
            gateway: the gateway address within the subnet.
        """
        if not _NAME.match(name):
            raise ContainersError(f"network name {name!r}: use letters, digits, _ . - (not first), at most 254")
        body: dict[str, Any] = {"Name": name, "CheckDuplicate": True, "Internal": internal}
        if driver and driver != "bridge":
            self._destructive("network.create", f"a {driver!r} network can put containers straight on the box's "
                                                "own networks (only bridge is a plain write)")
        if driver:
            body["Driver"] = driver
        if labels:
            body["Labels"] = labels
        if subnet or gateway:
            conf = {k: v for k, v in (("Subnet", subnet), ("Gateway", gateway)) if v}
            body["IPAM"] = {"Driver": "default", "Config": [conf]}
        raw = await self._request("POST", "/networks/create", json_body=body, kind="network", ref=name)
        raw = raw if isinstance(raw, dict) else {}
        return NetworkCreated(id=str(raw.get("Id") or ""), name=name, warning=str(raw.get("Warning") or "") or None)

    @tool(name="network.remove", title="Remove a network", annotations=_DESTRUCTIVE)
    async def network_remove(self, network: str) -> Removed:
        """Remove a network no container is connected to.

        Args:
            network: the network's name or id.
        """
        self._destructive("network.remove")
        await self._request("DELETE", f"/networks/{_ref('network', network)}", kind="network", ref=network,
                            lister="network.list")
        return Removed(removed=network, kind="network")

    @tool(name="network.connect", title="Connect a container to a network", annotations=_WRITE)
    async def network_connect(self, network: str, container: str, aliases: list[str] | None = None) -> Connected:
        """Connect a container to a network.

        Args:
            network: the network's name or id.
            container: the container's name or id.
            aliases: extra DNS names of the container on this network.
        """
        body: dict[str, Any] = {"Container": container}
        if aliases:
            body["EndpointConfig"] = {"Aliases": aliases}
        # raw: Podman 4.3 answers the text OK here (Docker: an empty body), which is not JSON
        await self._request("POST", f"/networks/{_ref('network', network)}/connect", json_body=body,
                            kind="network or container", ref=f"{network}, {container}",
                            lister="network.list and container.list", raw=True)
        return Connected(network=network, container=container, connected=True)

    # -- resources -------------------------------------------------------------------------------------------

    async def _all_containers(self) -> list[dict[str, Any]]:
        raw = await self._request("GET", "/containers/json", params={"all": True})
        return [c for c in raw or [] if isinstance(c, dict)]

    @resource(INDEX_URI, name="containers", title="Containers", mime_type="application/json")
    async def index(self) -> dict[str, Any]:
        """Every container of the engine with its resource URI, state and image; the events task's status."""
        items = [container_summary(c) for c in await self._all_containers()]
        return {"engine": self.host, "events": self.events_state,
                "containers": [{"uri": c.uri, "id": c.id, "name": c.name, "state": c.state, "image": c.image}
                               for c in items[:self.list_max]],
                "total": len(items)}

    @resource_template(TEMPLATE, name="container", title="A container", mime_type="application/json")
    async def container_resource(self, id: str) -> dict[str, Any]:
        """One container's state and config (id or name in the URI); subscribe to hear of its changes."""
        try:
            info = await self._inspect(id)
        except ContainersError as exc:
            if "no such container" in str(exc):
                raise ResourceNotFoundError(f"{TEMPLATE.replace('{id}', id)}: {exc}") from None
            raise
        return {"id": info.get("Id"), "name": container_name(info), "image": mapping(info.get("Config")).get("Image"),
                "created": info.get("Created"), "state": info.get("State"), "config": info.get("Config")}

    @completion(resource_template=TEMPLATE, argument="id")
    async def complete_id(self, value: str, context: Mapping[str, str]) -> list[str]:
        names = sorted(container_name(c) for c in await self._all_containers())
        return [n for n in names if n.startswith(value)]

    # -- events ----------------------------------------------------------------------------------------------

    async def _republish(self) -> None:
        """Publish one resource per container (PluginContext.publish_resources) and remember their names."""
        containers = await self._all_containers()
        self._names = {str(c.get("Id")): container_name(c) for c in containers}
        limit = int(self.ctx.settings.max_published_resources)
        defs = [ResourceDef(uri=container_uri(container_name(c) or str(c.get("Id"))),
                            name=container_name(c) or str(c.get("Id"))[:12],
                            title=f"container {container_name(c)}",
                            description=f"state and config of the container {container_name(c)} "
                                        f"({c.get('Image')})",
                            mimeType="application/json")
                for c in containers[:limit]]
        if len(containers) > limit:
            log.warning("containers: %d containers, only the first %d (max_published_resources) are listed",
                        len(containers), limit)
        try:
            await self.ctx.publish_resources(defs)  # staged by the catalog when the plugin is not indexed yet
        except PluginError as exc:
            log.warning("containers: resources not published: %s", exc)

    def _mark_dirty(self) -> None:
        """A container came, went or was renamed: republish, at most one listing per republish_interval_s (a
        burst of events gives one listing at its end)."""
        self._dirty = True
        if self._republisher is None or self._republisher.done():
            self._republisher = asyncio.create_task(self._republish_soon(), name="containers-republish")

    async def _republish_soon(self) -> None:
        loop = asyncio.get_running_loop()
        while self._dirty:
            wait = self._last_listing + self.republish_interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty = False  # events from here on need a listing after this one
            self._last_listing = loop.time()
            try:
                await self._republish()
            except ContainersError as exc:
                log.warning("containers: cannot list containers to publish them: %s", exc)

    async def _on_event(self, raw: Any) -> None:
        try:
            event = normalize_event(raw)
        except EngineError as exc:
            log.debug("containers: skipped an event: %s", exc)
            return
        if event.type != "container" or not event.id:
            return
        self.events_seen += 1
        uris = {container_uri(event.id)}
        for name in (event.name, self._names.get(event.id, "")):
            if name:
                uris.add(container_uri(name))
        if event.action in _GONE:
            self._names.pop(event.id, None)
        elif event.name:
            self._names[event.id] = event.name
        for uri in sorted(uris):
            await self.ctx.notify_resource_updated(uri)
        await self.ctx.notify_resource_updated(INDEX_URI)
        if event.action in _REPUBLISH:
            self._mark_dirty()

    async def _follow_events(self) -> None:
        """Follow the engine's container events for as long as the plugin lives, reconnecting with a backoff
        (events_backoff_min_s doubling up to events_backoff_max_s) when the engine is away or restarts."""
        delay = self.backoff_min
        last_reason = ""
        while True:
            reason = "the engine ended the event stream"
            try:
                async with self._stream("GET", "/events", params={"filters": {"type": ["container"]}}) as resp:
                    self.events_connects += 1
                    self.events_state = "following"
                    last_reason = ""
                    delay = self.backoff_min
                    log.info("containers: following the events of %s", self.host)
                    # containers may have come and gone while the stream was down: list them again
                    self._last_listing = asyncio.get_running_loop().time()
                    await self._republish()
                    lines = JsonLines()
                    async for chunk in resp.aiter_raw():
                        for item in lines.feed(chunk):
                            await self._on_event(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine away, restarting, or answering nonsense: retried below
                reason = str(exc)
            self.events_failures += 1
            self.events_state = f"retrying in {delay:g} s: {reason}"
            # A box without an engine would log this every events_backoff_max_s for ever: a warning when the
            # reason is new, the repeats at debug (the docker://containers index always shows the state).
            level = logging.DEBUG if reason == last_reason else logging.WARNING
            log.log(level, "containers: event stream of %s: %s; retrying in %g s", self.host, reason, delay)
            last_reason = reason
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
