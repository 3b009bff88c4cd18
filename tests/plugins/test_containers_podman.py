"""The containers plugin against a real Podman (the session's ``podman`` fixture): every tool with its effect
checked (through the tools, the podman CLI and the Docker CLI), logs with follow, progress and cancellation,
resources and their update notifications, the destructive-tool rule, bad input, and an engine that is not there.

The plugin is loaded through a real Registry, in the test's process (``isolation = inproc`` for the test;
tests/plugins/test_containers_e2e.py runs it in its worker). Nothing is pulled: the image is the fixture's
``localhost/busybox:latest``. Names are unique per test (the engine is shared by the session).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from plugin_host import PLUGINS, FakePluginContext, FakeRequest, Host, error_of, ok, run
from podman_service import IMAGE, PodmanService

from mcp_edge.engine_api import EngineTLS
from mcp_edge.errors import InvalidArgumentsError
from mcp_edge.plugin import Registry
from mcp_edge.plugin.types import TextResourceContents

WAIT = 60.0  # only to end a broken test, never a timing assertion
TEMPLATE = "docker://containers/{id}"


class InprocHost(Host):
    """plugin_host.Host with the plugin in the test's process (its manifest says process)."""

    def __init__(self, config: dict[str, Any], ctx: FakePluginContext) -> None:
        super().__init__("containers", config, ctx)
        self.registry = Registry([PLUGINS], entry_points=False, config={"containers": dict(config)},
                                 enabled=["containers"], context_factory=lambda _pid, _config: ctx, environ={},
                                 isolation={"containers": "inproc"})
        ctx.registry = self.registry  # type: ignore[attr-defined]  # publish_resources goes through it


@asynccontextmanager
async def plugin(host: str, workdir: Path, *, settings: dict[str, Any] | None = None,
                 environ: dict[str, str] | None = None,
                 **config: Any) -> AsyncIterator[tuple[InprocHost, FakePluginContext]]:
    ctx = FakePluginContext("containers", workdir, None, overrides=settings or {})
    if environ is not None:  # what the runtime's environment passes to plugins (settings.environ)
        ctx.settings = dataclasses.replace(ctx.settings, environ=environ)
    h = InprocHost({"host": host, **config}, ctx)
    await h.start()
    try:
        yield h, ctx
    finally:
        await h.stop()


def unique(prefix: str = "mcpt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def docker(podman: PodmanService, *args: str) -> str:
    """The Docker CLI against the test engine (cross-check)."""
    return subprocess.run(["docker", *args], env=podman.env(), capture_output=True, text=True, check=True,
                          timeout=60).stdout


async def create(h: Host, name: str, command: list[str], **kw: Any) -> dict[str, Any]:
    return ok(await h.call("container.create", {"image": IMAGE, "name": name, "command": command, **kw}))


def rm(podman: PodmanService, *names: str) -> None:
    podman.podman("rm", "-f", "-t", "0", *names, check=False)


def text_of(contents: list[Any]) -> dict[str, Any]:
    first = contents[0]
    assert isinstance(first, TextResourceContents)
    data: dict[str, Any] = json.loads(first.text)
    return data


# -- containers ------------------------------------------------------------------------------------------------

def test_container_lifecycle(podman: PodmanService, workdir: Path) -> None:
    name = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            made = await create(h, name, ["sh", "-c", f"echo out-{name}; echo err-{name} >&2; exec sleep 600"],
                                labels={"mcp-test": name}, env={"GREETING": "hello there"})
            assert made["name"] == name and made["started"] is False and made["uri"] == f"docker://containers/{name}"
            assert podman.podman("inspect", "-f", "{{.Id}}", name).stdout.strip() == made["id"]

            started = ok(await h.call("container.start", {"container": name}))
            assert started["running"] is True and started["state"] == "running" and started["id"] == made["id"]

            listed = ok(await h.call("container.list", {"label": [f"mcp-test={name}"]}))
            assert [c["name"] for c in listed["containers"]] == [name]
            entry = listed["containers"][0]
            assert entry["state"] == "running" and entry["image"] == IMAGE and entry["labels"]["mcp-test"] == name
            assert name in docker(podman, "ps", "--format", "{{.Names}}").split()

            async def both() -> dict[str, Any] | None:
                got = ok(await h.call("container.logs", {"container": name}))
                return got if got["stdout"] and got["stderr"] else None
            logs = await until("both lines in the logs", both)
            assert logs["stdout"] == [f"out-{name}"] and logs["stderr"] == [f"err-{name}"]
            assert logs["tty"] is False and logs["truncated"] is False

            ran = ok(await h.call("container.exec", {"container": name,
                                                     "command": ["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"]}))
            assert (ran["exit_code"], ran["stdout"], ran["stderr"], ran["truncated"]) == (3, "hello there\n",
                                                                                         "oops\n", False)

            stats = ok(await h.call("container.stats", {"container": name}))
            assert stats["id"] == made["id"] and stats["name"] == name
            assert stats["pids"] >= 1 and stats["memory_usage"] > 0 and stats["cpu_percent"] is not None
            assert "cpu_percent" not in stats["missing"]

            stopped = ok(await h.call("container.stop", {"container": name, "timeout_s": 1}))
            assert stopped["running"] is False and stopped["state"] == "exited"
            assert name not in docker(podman, "ps", "--format", "{{.Names}}").split()
            assert f"{name} exited" in docker(podman, "ps", "-a", "--format", "{{.Names}} {{.State}}")
            # Podman answers a stopped container's stats with HTTP 200 and no body
            assert "no statistics" in error_of(await h.call("container.stats", {"container": name}))

            again = ok(await h.call("container.restart", {"container": name, "timeout_s": 1}))
            assert again["running"] is True
            assert name in docker(podman, "ps", "--format", "{{.Names}}").split()

            gone = ok(await h.call("container.remove", {"container": name, "force": True}))
            assert gone == {"removed": name, "kind": "container", "deleted": [], "untagged": []}
            assert name not in docker(podman, "ps", "-a", "--format", "{{.Names}}").split()
            assert "no such container" in error_of(await h.call("container.inspect", {"container": name}))

    try:
        run(main())
    finally:
        rm(podman, name)


def test_list_filters_and_inspect(podman: PodmanService, workdir: Path) -> None:
    name = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir) as (h, _):
            made = await create(h, name, ["true"], ports=["127.0.0.1:18080:80", "53/udp"])
            running = ok(await h.call("container.list", {"name": name}))
            assert running["containers"] == []  # created, not running: only with all or a status
            created = ok(await h.call("container.list", {"status": ["created"], "name": name}))
            assert [c["id"] for c in created["containers"]] == [made["id"]]
            assert ok(await h.call("container.list", {"all": True, "name": name}))["total"] == 1
            assert ok(await h.call("container.list", {"status": ["exited"], "name": name}))["containers"] == []
            info = ok(await h.call("container.inspect", {"container": name}))
            assert info["Id"] == made["id"] and info["Config"]["Cmd"] == ["true"]
            bindings = info["HostConfig"]["PortBindings"]
            assert bindings["80/tcp"][0]["HostPort"] == "18080"
            assert "no such container" in error_of(await h.call("container.start", {"container": unique("no")}))

    try:
        run(main())
    finally:
        rm(podman, name)


def test_logs_tty_is_one_stream(podman: PodmanService, workdir: Path) -> None:
    name = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir) as (h, _):
            await create(h, name, ["sh", "-c", "echo to-out; echo to-err >&2"], tty=True, start=True)
            await until("the container to exit", lambda: _state(h, name, "exited"))
            logs = ok(await h.call("container.logs", {"container": name}))
            assert logs["tty"] is True and logs["stderr"] == []
            assert logs["stdout"] == ["to-out", "to-err"]
            assert "TTY" in logs["note"]

    try:
        run(main())
    finally:
        rm(podman, name)


async def _state(h: Host, name: str, want: str) -> bool:
    return bool(ok(await h.call("container.inspect", {"container": name}))["State"]["Status"] == want)


def test_logs_tail_since_timestamps_and_bounds(podman: PodmanService, workdir: Path) -> None:
    name = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir, logs_tail_max=1000, logs_max_bytes=1024) as (h, _):
            await create(h, name, ["sh", "-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1)); "
                                                "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"], start=True)
            await until("the container to exit", lambda: _state(h, name, "exited"))
            last = ok(await h.call("container.logs", {"container": name, "tail": 5}))
            assert [line.split("-")[1] for line in last["stdout"]] == ["196", "197", "198", "199", "200"]
            stamped = ok(await h.call("container.logs", {"container": name, "tail": 2, "timestamps": True}))
            assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) line-", x)
                       for x in stamped["stdout"]), stamped
            future = ok(await h.call("container.logs", {"container": name, "since": str(int(time.time()) + 3600)}))
            assert future["stdout"] == [] and future["lines"] == 0
            recent = ok(await h.call("container.logs", {"container": name, "tail": 3, "since": "1h"}))
            assert len(recent["stdout"]) == 3
            capped = ok(await h.call("container.logs", {"container": name, "tail": 200}))
            assert capped["truncated"] is True and "logs_max_bytes" in capped["note"]
            assert sum(len(x) + 1 for x in capped["stdout"]) <= 1024 and capped["stdout"][0].startswith("line-1-")
            huge = error_of(await h.call("container.logs", {"container": name, "tail": 10**9}))
            assert "logs_tail_max (1000)" in huge
            bad = error_of(await h.call("container.logs", {"container": name, "since": "yesterday"}))
            assert "since 'yesterday'" in bad

    try:
        run(main())
    finally:
        rm(podman, name)


def test_logs_follow_until_stopped_and_bounds(podman: PodmanService, workdir: Path) -> None:
    short, ticker, quiet = unique(), unique(), unique()

    async def main() -> None:
        async with plugin(podman.host, workdir, follow_max_lines=5) as (h, _):
            await create(h, short, ["sh", "-c", "echo first; echo warn >&2; sleep 2; echo second"], start=True)
            req = FakeRequest()
            got = ok(await h.call("container.logs", {"container": short, "follow": True}, req))
            assert got["ended"] == "stopped" and got["followed"] is True
            assert got["stdout"] == ["first", "second"] and got["stderr"] == ["warn"]
            messages = "\n".join(m or "" for _, _, m in req.progress)
            assert "[stdout] second" in messages and "[stderr] warn" in messages
            assert [p for p, _, _ in req.progress] == sorted(p for p, _, _ in req.progress)

            await create(h, ticker, ["sh", "-c", "while true; do echo tick; sleep 0.1; done"], start=True)
            capped = ok(await h.call("container.logs", {"container": ticker, "follow": True, "tail": 0},
                                     FakeRequest()))
            assert capped["ended"] == "max_lines" and capped["lines"] >= 5 and "follow_max_lines" in capped["note"]

        async with plugin(podman.host, workdir, follow_timeout_s=0.5) as (h, _):
            await create(h, quiet, ["sleep", "600"], start=True)
            timed = ok(await h.call("container.logs", {"container": quiet, "follow": True}, FakeRequest()))
            assert timed["ended"] == "timeout" and timed["stdout"] == [] and "follow_timeout_s" in timed["note"]

    try:
        run(main())
    finally:
        rm(podman, short, ticker, quiet)


class Conn:
    """One connection through the proxy: what the client sent (the first 64 KiB) and whether it closed."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.closed = False


class SocketProxy:
    """A unix socket that forwards to the engine's and records each connection; ``cut()`` drops every
    connection, as an engine restart does."""

    def __init__(self, path: Path, target: Path) -> None:
        self.path, self.target = path, target
        self.writers: list[asyncio.StreamWriter] = []
        self.conns: list[Conn] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
        self.writers += [writer, up_writer]
        conn = Conn()
        self.conns.append(conn)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await src.read(65536):
                    if record and len(conn.sent) < 65536:
                        conn.sent += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if record:
                    conn.closed = True  # the client closed its end (or the proxy cut it)
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def cut(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


def test_logs_follow_cancelled(podman: PodmanService, workdir: Path) -> None:
    """A cancelled follow ends at once (CancelledError out of the call), closes its connection to the engine
    (seen through a proxy in front of the engine's socket) and reports nothing more."""
    name = unique()

    def follows(proxy: SocketProxy) -> list[Conn]:
        return [c for c in proxy.conns if b"/logs?" in c.sent and b"follow=1" in c.sent]

    async def main() -> None:
        proxy = SocketProxy(workdir / "proxy.sock", podman.sock)
        await proxy.start()
        try:
            await cancel(proxy)
        finally:
            await proxy.stop()

    async def cancel(proxy: SocketProxy) -> None:
        async with plugin(f"unix://{proxy.path}", workdir) as (h, _):
            await create(h, name, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done"],
                         start=True)
            three = asyncio.Event()
            req = FakeRequest(on_progress=lambda: three.set() if len(req.progress) >= 3 else None)
            task = asyncio.create_task(h.call("container.logs", {"container": name, "follow": True, "tail": 0},
                                              req))
            await asyncio.wait_for(three.wait(), WAIT)
            streams = follows(proxy)
            assert len(streams) == 1 and not streams[0].closed
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, WAIT)
            await until("the follow's connection closed", lambda: _async(streams[0].closed))
            seen = len(req.progress)

            def ticks() -> int:
                return len(podman.podman("logs", name).stdout.split())
            mark = ticks()
            await until("the container to print more", lambda: _async(ticks() >= mark + 10))
            assert len(req.progress) == seen  # nothing read (nor reported) after the cancellation

            # ctx.cancelled seen between notifications (the runtime also sets it) ends the call the same way
            req2 = FakeRequest(cancel_after=2)
            with pytest.raises(asyncio.CancelledError):
                await h.call("container.logs", {"container": name, "follow": True, "tail": 0}, req2)
            assert len(req2.progress) == 2
            await until("the second follow's connection closed", lambda: _async(
                len(follows(proxy)) == 2 and all(c.closed for c in follows(proxy))))
            # the plugin goes on serving
            assert ok(await h.call("container.logs", {"container": name, "tail": 1}))["lines"] == 1

    try:
        run(main())
    finally:
        rm(podman, name)


async def _async(value: Any) -> Any:
    return value


def test_exec_bounds_and_errors(podman: PodmanService, workdir: Path) -> None:
    name, idle = unique(), unique()

    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True, exec_max_bytes=1024,
                          exec_timeout_s=1) as (h, _):
            await create(h, name, ["sleep", "600"], start=True)
            big = ok(await h.call("container.exec", {"container": name,
                                                     "command": ["sh", "-c", "yes | head -c 100000; echo e >&2"]}))
            assert big["truncated"] is True and big["exit_code"] == 0 and "exec_max_bytes" in big["note"]
            assert len(big["stdout"]) + len(big["stderr"]) == 1024
            slow = ok(await h.call("container.exec", {"container": name, "command": ["sleep", "30"]}))
            assert slow["timed_out"] is True and slow["exit_code"] is None and "exec_timeout_s" in slow["note"]
            # regression: the note said the command "was left running" as if that were known; it may be
            assert "may still be running in the container" in slow["note"]
            # regression: exec passed env names unchecked ("A=B" set A, not a variable called A=B)
            for bad in ({"A=B": "x"}, {"": "x"}, {"A\u0000": "x"}):
                assert "env name" in error_of(await h.call("container.exec", {"container": name, "command": ["env"],
                                                                              "env": bad})), bad
            good = ok(await h.call("container.exec", {"container": name, "command": ["env"], "env": {"MCPT": "1"}}))
            assert "MCPT=1" in good["stdout"].split()
            missing = ok(await h.call("container.exec", {"container": name, "command": ["no-such-program"]}))
            assert missing["exit_code"] not in (0, None)
            assert "command is empty" in error_of(await h.call("container.exec", {"container": name,
                                                                                    "command": []}))
            await create(h, idle, ["true"])
            # Podman 4.3 answers HTTP 500 (Docker 409) with its own words
            stopped = error_of(await h.call("container.exec", {"container": idle, "command": ["true"]}))
            assert "can only create exec sessions on running containers" in stopped

    try:
        run(main())
    finally:
        rm(podman, name, idle)


# -- images ------------------------------------------------------------------------------------------------

def test_images_list_inspect_remove_prune(podman: PodmanService, workdir: Path) -> None:
    tag = f"localhost/{unique('copy')}:t1"
    label = unique("prune")
    box = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            images = ok(await h.call("image.list", {}))
            busybox = [i for i in images["images"] if IMAGE in i["tags"]]
            assert len(busybox) == 1 and busybox[0]["size"] > 0
            info = ok(await h.call("image.inspect", {"image": IMAGE}))
            assert info["Id"] == busybox[0]["id"] and IMAGE in info["RepoTags"]
            only = ok(await h.call("image.list", {"reference": "localhost/busybox"}))
            assert [i["id"] for i in only["images"]] == [busybox[0]["id"]]

            podman.podman("tag", IMAGE, tag)
            assert tag in ok(await h.call("image.inspect", {"image": tag}))["RepoTags"]
            removed = ok(await h.call("image.remove", {"image": tag}))
            assert removed["untagged"] == [tag] and removed["deleted"] == []
            assert podman.podman("image", "exists", tag, check=False).returncode != 0
            assert podman.podman("image", "exists", IMAGE, check=False).returncode == 0
            assert "no such image" in error_of(await h.call("image.inspect", {"image": tag}))

            # a dangling image (no tag, no container) for prune: a commit without a name
            await create(h, box, ["true"])
            dangling = podman.podman("commit", "-q", box).stdout.strip()
            pruned = ok(await h.call("image.prune", {}))
            assert dangling in pruned["deleted"] and pruned["space_reclaimed"] > 0
            assert podman.podman("image", "exists", dangling, check=False).returncode != 0

            # all=true removes unused tagged images too: limited to a label so the shared image stays
            labelled = f"localhost/{label}:v1"
            made = podman.podman("commit", "-q", "--change", f"LABEL mcp-prune={label}", box, labelled).stdout.strip()
            everything = ok(await h.call("image.prune", {"all": True, "label": [f"mcp-prune={label}"]}))
            assert everything["deleted"] == [made]
            assert podman.podman("image", "exists", labelled, check=False).returncode != 0
            assert podman.podman("image", "exists", IMAGE, check=False).returncode == 0

    try:
        run(main())
    finally:
        rm(podman, box)
        podman.podman("rmi", "-f", tag, f"localhost/{label}:v1", check=False)


def test_pull_errors_are_clear(podman: PodmanService, workdir: Path) -> None:
    """The engine answers HTTP 200 and reports the failure inside the stream: an isError naming the registry."""
    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            far = error_of(await h.call("image.pull", {"image": "localhost:1/nothing:latest"}, FakeRequest()))
            assert far.startswith("ContainersError: pulling localhost:1/nothing:latest failed:")
            assert "localhost:1" in far and "connection refused" in far
            # Podman's compatible API always asks the registry, even for an image it has: here there is none,
            # so the present localhost/busybox:latest gives the registry's error (and the image stays).
            here = error_of(await h.call("image.pull", {"image": "localhost/busybox", "tag": "latest"}))
            assert here.startswith("ContainersError: pulling localhost/busybox:latest failed:")
            assert "localhost" in here and "connection refused" in here
            assert podman.podman("image", "exists", IMAGE, check=False).returncode == 0
            assert "not an image reference" in error_of(await h.call("image.pull", {"image": "a b"}))

    run(main())


# -- networks ----------------------------------------------------------------------------------------------

def test_networks(podman: PodmanService, workdir: Path) -> None:
    net, box = unique("net"), unique()

    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            made = ok(await h.call("network.create", {"name": net, "labels": {"mcp-test": net},
                                                      "subnet": "10.99.7.0/24"}))
            assert made["name"] == net and made["id"]
            assert net in docker(podman, "network", "ls", "--format", "{{.Name}}").split()
            listed = ok(await h.call("network.list", {"name": net}))
            assert [n["name"] for n in listed["networks"]] == [net]
            assert listed["networks"][0]["labels"] == {"mcp-test": net}
            assert ok(await h.call("network.list", {"label": [f"mcp-test={net}"]}))["total"] == 1

            await create(h, box, ["sleep", "600"], start=True)
            joined = ok(await h.call("network.connect", {"network": net, "container": box}))
            assert joined == {"network": net, "container": box, "connected": True}
            info = ok(await h.call("network.inspect", {"network": net}))
            assert [c["Name"] for c in info["Containers"].values()] == [box]
            assert info["IPAM"]["Config"][0]["Subnet"] == "10.99.7.0/24"
            assert ok(await h.call("network.list", {"name": net}))["networks"][0]["containers"] == [box]

            assert "no such network" in error_of(await h.call("network.connect", {"network": unique("no"),
                                                                                   "container": box}))
            ok(await h.call("container.remove", {"container": box, "force": True}))
            gone = ok(await h.call("network.remove", {"network": net}))
            assert gone["removed"] == net
            assert net not in docker(podman, "network", "ls", "--format", "{{.Name}}").split()
            assert "no such network" in error_of(await h.call("network.inspect", {"network": net}))
            assert "network name" in error_of(await h.call("network.create", {"name": "../x"}))

    try:
        run(main())
    finally:
        rm(podman, box)
        podman.podman("network", "rm", "-f", net, check=False)


# -- the destructive rule ----------------------------------------------------------------------------------

DESTRUCTIVE = {
    "container.stop": {"container": "NAME"}, "container.restart": {"container": "NAME"},
    "container.remove": {"container": "NAME", "force": True}, "container.exec": {"container": "NAME",
                                                                                  "command": ["true"]},
    "image.remove": {"image": IMAGE}, "image.prune": {}, "network.remove": {"network": "podman"},
    # it re-points a local tag (the old image may be left dangling) and can fill the disk
    "image.pull": {"image": "localhost:1/nothing:latest"},
}


def test_destructive_tools_refused_without_policy_or_allow(podman: PodmanService, workdir: Path) -> None:
    name = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir) as (h, _):
            defs = h.tool_defs()
            for tool in DESTRUCTIVE:
                ann = defs[tool].annotations
                assert ann is not None and ann.destructiveHint is True, tool
            for tool in ("container.list", "container.logs", "container.stats", "image.list", "network.inspect"):
                ann = defs[tool].annotations
                assert ann is not None and ann.readOnlyHint is True, tool
            for tool in ("container.create", "container.start", "network.create", "network.connect"):
                ann = defs[tool].annotations
                assert ann is not None and ann.destructiveHint is False and not ann.readOnlyHint, tool
            await create(h, name, ["sleep", "600"], start=True)
            for tool, args in DESTRUCTIVE.items():
                args = {k: (name if v == "NAME" else v) for k, v in args.items()}
                msg = error_of(await h.call(tool, args))
                assert f"{tool} is destructive" in msg and "allow_destructive = true" in msg
                assert "[plugins.containers]" in msg and "auth_policy_file" in msg
            # a network on another driver can put containers straight on the box's LAN: destructive too
            lan = unique("lan")
            msg = error_of(await h.call("network.create", {"name": lan, "driver": "macvlan"}))
            assert "'macvlan' network" in msg and "allow_destructive = true" in msg
            assert lan not in docker(podman, "network", "ls", "--format", "{{.Name}}").split()
            assert name in docker(podman, "ps", "--format", "{{.Names}}").split()  # nothing happened
            assert podman.podman("image", "exists", IMAGE, check=False).returncode == 0

    try:
        run(main())
    finally:
        rm(podman, name)


def test_destructive_allowed_by_config_or_policy(podman: PodmanService, workdir: Path) -> None:
    a, b = unique(), unique()
    policy = workdir / "policy.toml"
    policy.write_text('[roles.admin]\nclasses = ["read", "write", "destructive"]\nplugins = ["containers"]\n\n'
                      '[principals]\n"anonymous" = ["admin"]\n')

    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            await create(h, a, ["sleep", "600"], start=True)
            assert ok(await h.call("container.stop", {"container": a, "timeout_s": 0}))["running"] is False
        async with plugin(podman.host, workdir, settings={"auth_policy_file": str(policy)}) as (h, _):
            await create(h, b, ["sleep", "600"], start=True)
            assert ok(await h.call("container.stop", {"container": b, "timeout_s": 0}))["running"] is False
            assert ok(await h.call("container.remove", {"container": b}))["removed"] == b

    try:
        run(main())
    finally:
        rm(podman, a, b)


# -- bad input ---------------------------------------------------------------------------------------------

def test_bad_inputs(podman: PodmanService, workdir: Path) -> None:
    async def main() -> None:
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            ghost = unique("ghost")
            for tool, args in (("container.inspect", {"container": ghost}), ("container.logs", {"container": ghost}),
                               ("container.stats", {"container": ghost}), ("container.stop", {"container": ghost}),
                               ("container.remove", {"container": ghost})):
                assert f"no such container: '{ghost}'" in error_of(await h.call(tool, args)), tool
            # a path in a name stays one path segment: the engine looks for a container called that
            for sneaky in ("../../version", "../images/json", "x/../../info", "a/b", "%2e%2e"):
                msg = error_of(await h.call("container.inspect", {"container": sneaky}))
                assert "no such container" in msg and "ApiVersion" not in msg, sneaky
            for dots in ("..", ".", ""):
                assert "is not a valid container name or id" in error_of(await h.call("container.inspect",
                                                                                   {"container": dots}))
            assert "is not a valid image name or id" in error_of(await h.call("image.inspect", {"image": "a\nb"}))
            # one path segment: Podman parses it as an image reference and refuses it
            sneaky = error_of(await h.call("image.inspect", {"image": "../../version"}))
            assert "invalid reference format" in sneaky and "ApiVersion" not in sneaky
            for bad_args in ({"container": 5}, {}, {"container": "x", "tail": "many"}, {"container": "x", "tail": -1},
                             {"container": "x", "follow": "yes"}, {"container": "x", "extra": 1}):
                with pytest.raises(InvalidArgumentsError):
                    await h.call("container.logs", bad_args)
            with pytest.raises(InvalidArgumentsError):
                await h.call("container.exec", {"container": "x", "command": "ls /"})
            assert "container name 'a/b'" in error_of(await h.call("container.create", {"image": IMAGE,
                                                                                          "name": "a/b"}))
            # regression: a trailing newline passed a `...$` pattern (Python's $ matches before a final newline)
            assert "container name 'web\\n'" in error_of(await h.call("container.create", {"image": IMAGE,
                                                                                             "name": "web\n"}))
            assert "label" in error_of(await h.call("container.list", {"label": ["a=b", "c\n"]}))
            assert "port 'http'" in error_of(await h.call("container.create", {"image": IMAGE, "ports": ["http"]}))
            assert "env name" in error_of(await h.call("container.create", {"image": IMAGE, "env": {"A=B": "c"}}))
            missing = error_of(await h.call("container.create", {"image": "localhost/no-such-image:1"}))
            assert "no such image" in missing and "image.list" in missing
            assert "status 'up'" in error_of(await h.call("container.list", {"status": ["up"]}))
            broken = unique()
            try:
                failed = error_of(await h.call("container.create", {"image": IMAGE, "name": broken, "start": True,
                                                                    "command": ["no-such-program"]}))
                assert f"created the container {broken}" in failed and "did not start" in failed
                assert podman.podman("container", "exists", broken, check=False).returncode == 0
            finally:
                rm(podman, broken)
            assert "stop_timeout_max_s" in error_of(await h.call("container.stop", {"container": ghost,
                                                                                     "timeout_s": 10**6}))

    run(main())


# -- the engine away ---------------------------------------------------------------------------------------

def test_engine_down(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No socket: the plugin initializes, tools say which host cannot be reached, the events task retries (one
    warning for the reason, the repeats at debug)."""
    caplog.set_level(logging.DEBUG, logger="mcp_edge.plugins.containers")
    sock = workdir / "no-engine" / "docker.sock"

    async def main() -> None:
        async with plugin(f"unix://{sock}", workdir, events_backoff_min_s=0.01, events_backoff_max_s=0.05) as (h, _):
            for tool, args in (("container.list", {}), ("image.list", {}), ("network.list", {}),
                               ("container.logs", {"container": "x"})):
                msg = error_of(await h.call(tool, args))
                assert f"the container engine at unix://{sock} cannot be reached" in msg, msg
                assert "MCP_EDGE_CONTAINERS_HOST" in msg
            await until("the events task to retry", lambda: _async(h.plugin.events_failures >= 3))
            assert h.plugin.events_state.startswith("retrying in") and str(sock) in h.plugin.events_state
            with pytest.raises(Exception, match="cannot be reached"):
                await h.read("docker://containers")
        assert h.plugin._events.done()  # shutdown() stopped the events task
        retries = [r for r in caplog.records if "event stream of" in r.getMessage()]
        assert len(retries) >= 3 and [r.levelno for r in retries].count(logging.WARNING) == 1

    run(main())


@pytest.mark.parametrize("host", ["ftp://engine", "unix://", "tcp://", "/run/docker.sock"])
def test_malformed_host_fails_initialize(host: str, workdir: Path) -> None:
    async def main() -> None:
        with pytest.raises(Exception, match="must be unix:///path/to/socket"):
            async with plugin(host, workdir):
                pass

    run(main())


def test_engine_comes_later(podman: PodmanService, workdir: Path) -> None:
    """The engine appears after the plugin started (DOCKER_HOST from the runtime's environment, here a
    symbolic link made later): tools and the events stream pick it up."""
    link = workdir / "late.sock"

    async def main() -> None:
        ctx = FakePluginContext("containers", workdir, None)
        ctx.settings = ctx.settings.__class__.load(board=ctx.board, environ={"DOCKER_HOST": f"unix://{link}"},
                                                   data_dir=workdir)
        h = InprocHost({"events_backoff_min_s": 0.01, "events_backoff_max_s": 0.05}, ctx)
        await h.start()
        try:
            assert f"unix://{link}" in error_of(await h.call("container.list", {}))
            link.symlink_to(podman.sock)
            assert ok(await h.call("container.list", {"all": True}))["total"] >= 0
            await until("the events stream", lambda: _async(h.plugin.events_state == "following"))
        finally:
            await h.stop()

    run(main())


# -- resources ---------------------------------------------------------------------------------------------

def test_resources_notifications_completion_and_published(podman: PodmanService, workdir: Path) -> None:
    name = unique()

    async def main() -> None:
        async with plugin(podman.host, workdir) as (h, ctx):
            await until("the events stream", lambda: _async(h.plugin.events_state == "following"))
            made = await create(h, name, ["sleep", "600"])
            by_id, by_name = f"docker://containers/{made['id']}", f"docker://containers/{name}"

            mark = len(ctx.updated)
            podman.podman("start", name)
            await until("updates for the start, by id and by name",
                        lambda: _async({by_id, by_name} <= set(ctx.updated[mark:])))
            state = text_of(await h.read(by_name))
            assert state["id"] == made["id"] and state["name"] == name and state["state"]["Running"] is True
            assert state["config"]["Cmd"] == ["sleep", "600"] and state["image"] == IMAGE
            assert text_of(await h.read(by_id))["name"] == name

            mark = len(ctx.updated)
            podman.podman("stop", "-t", "0", name)
            await until("updates for the stop", lambda: _async({by_id, by_name} <= set(ctx.updated[mark:])))
            assert text_of(await h.read(by_name))["state"]["Running"] is False

            index = text_of(await h.read("docker://containers"))
            assert {"uri": by_name, "id": made["id"], "name": name, "state": "exited", "image": IMAGE} in \
                index["containers"]
            assert index["events"] == "following"

            done = await h.registry.complete({"type": "ref/resource", "uri": TEMPLATE},
                                             {"name": "id", "value": name[:9]})
            assert name in done.values and all(v.startswith(name[:9]) for v in done.values)

            def listed() -> set[str]:
                return {r.uri for r in h.registry.resources()}
            await until("the container among the published resources", lambda: _async(by_name in listed()))

            # a rename: the old name's URI hears of it, the new name is published in its place
            renamed = f"{name}-b"
            by_new = f"docker://containers/{renamed}"
            mark = len(ctx.updated)
            podman.podman("rename", name, renamed)
            await until("updates for the rename, old and new name",
                        lambda: _async({by_id, by_name, by_new} <= set(ctx.updated[mark:])))
            await until("the new name published instead of the old",
                        lambda: _async(by_new in listed() and by_name not in listed()))

            podman.podman("rm", "-f", renamed)
            await until("the removed container gone from the resources", lambda: _async(by_new not in listed()))
            with pytest.raises(Exception, match="no such container"):
                await h.read(by_new)

    try:
        run(main())
    finally:
        rm(podman, name, f"{name}-b")


def test_events_reconnect_after_the_engine_went_away(podman: PodmanService, workdir: Path) -> None:
    """The event stream breaks (the engine restarted): the task follows again after its backoff and the
    notifications go on."""
    name = unique()

    async def main() -> None:
        proxy = SocketProxy(workdir / "proxy.sock", podman.sock)
        await proxy.start()
        try:
            async with plugin(f"unix://{proxy.path}", workdir, events_backoff_min_s=0.05,
                              events_backoff_max_s=0.2) as (h, ctx):
                await until("the events stream", lambda: _async(h.plugin.events_connects == 1))
                proxy.cut()
                await until("a second connection", lambda: _async(h.plugin.events_connects >= 2))
                assert h.plugin.events_failures >= 1
                mark = len(ctx.updated)
                podman.podman("create", "--name", name, IMAGE, "true")
                await until("the create heard on the new stream",
                            lambda: _async(f"docker://containers/{name}" in ctx.updated[mark:]))
        finally:
            await proxy.stop()

    try:
        run(main())
    finally:
        rm(podman, name)


# -- a scripted Docker 29 engine ---------------------------------------------------------------------------

class FakeDocker:
    """A unix-socket HTTP server that answers as Docker 29 (API 1.52) would, for what Podman here cannot show: a
    pull that succeeds with progress, a pull that fails half way, and events without the old fields."""

    CID = "c0ffee" * 10 + "abcd"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[str] = []
        self.events_open = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self.event_writer: asyncio.StreamWriter | None = None
        self.containers: list[dict[str, Any]] = [self.container(self.CID, "web")]

    @staticmethod
    def container(cid: str, name: str) -> dict[str, Any]:
        return {"Id": cid, "Names": [f"/{name}"], "Image": "nginx", "State": "running", "Status": "Up",
                "Created": 1700000000, "Ports": [], "Labels": {}}

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        if self.event_writer is not None:
            self.event_writer.close()
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                length = re.search(rb"(?i)content-length: (\d+)", head)
                if length:
                    await reader.readexactly(int(length[1]))
                self.requests.append(line)
                if not await self._answer(line.split()[1], writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _answer(self, target: str, writer: asyncio.StreamWriter) -> bool:
        """Write the answer to ``target``; False when the connection is done."""
        def send(status: str, body: bytes) -> None:
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                         f"\r\n".encode() + body)

        path = target.split("?", 1)[0]
        if path == "/version":
            send("200 OK", json.dumps({"ApiVersion": "1.52", "MinAPIVersion": "1.24", "Version": "29.0.1",
                                       "Components": [{"Name": "Engine", "Version": "29.0.1"}]}).encode())
        elif path == "/v1.52/events":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            await writer.drain()
            self.event_writer = writer
            self.events_open.set()
            return False  # left open: the test writes events into it
        elif path == "/v1.52/images/create":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            fail = "broken" in target
            lines = [{"status": "Pulling from app", "id": "1"}, {"status": "Pulling fs layer", "id": "a1b2"},
                     {"status": "Downloading", "progressDetail": {"current": 5, "total": 10},
                      "progress": "[=====>     ]", "id": "a1b2"}]
            lines += [{"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"}] if fail else \
                [{"status": "Pull complete", "id": "a1b2"}, {"status": "Digest: sha256:feed"},
                 {"status": "Status: Downloaded newer image for example.org/app:1"}]
            for item in lines:
                writer.write(json.dumps(item).encode() + b"\r\n")
                await writer.drain()
            writer.close()
            return False
        elif path == "/v1.52/images/example.org%2Fapp%3A1/json":
            send("200 OK", json.dumps({"Id": "sha256:" + "ab" * 32}).encode())
        elif path == "/v1.52/containers/json":
            send("200 OK", json.dumps(self.containers).encode())
        else:
            send("404 Not Found", json.dumps({"message": f"no route {path}"}).encode())
        await writer.drain()
        return True

    async def event(self, raw: dict[str, Any]) -> None:
        assert self.event_writer is not None
        self.event_writer.write(json.dumps(raw).encode() + b"\n")
        await self.event_writer.drain()


def test_docker_29_pull_progress_and_events(workdir: Path) -> None:
    async def main() -> None:
        fake = FakeDocker(workdir / "docker.sock")
        await fake.start()
        try:
            async with plugin(f"unix://{fake.path}", workdir, allow_destructive=True) as (h, ctx):
                req = FakeRequest()
                pulled = ok(await h.call("image.pull", {"image": "example.org/app:1"}, req))
                assert pulled == {"image": "example.org/app:1", "status": "Status: Downloaded newer image for "
                                  "example.org/app:1", "id": "sha256:" + "ab" * 32, "progress_lines": 6}
                assert "POST /v1.52/images/create?fromImage=example.org%2Fapp&tag=1 HTTP/1.1" in fake.requests
                messages = [m for _, _, m in req.progress]
                assert "a1b2: Downloading [=====>     ]" in messages and len(messages) == 6
                assert [p for p, _, _ in req.progress] == [1, 2, 3, 4, 5, 6]

                req2 = FakeRequest()
                failed = error_of(await h.call("image.pull", {"image": "example.org/broken"}, req2))
                assert failed == "ContainersError: pulling example.org/broken:latest failed: unexpected EOF"
                assert len(req2.progress) == 3  # what came before the error was reported

                # an API 1.52 event: no status, id or from; Actor and Action only
                await asyncio.wait_for(fake.events_open.wait(), WAIT)
                assert any(r.startswith("GET /v1.52/events?filters=") for r in fake.requests)
                mark = len(ctx.updated)
                await fake.event({"Type": "container", "Action": "start", "scope": "local",
                                  "Actor": {"ID": FakeDocker.CID, "Attributes": {"name": "web", "image": "nginx"}},
                                  "time": 1700000000, "timeNano": 1700000000000000000})
                want = {f"docker://containers/{FakeDocker.CID}", "docker://containers/web", "docker://containers"}
                await until("the 1.52 event's notifications", lambda: _async(want <= set(ctx.updated[mark:])))
                # an image event is not a container's: no notification
                mark = len(ctx.updated)
                await fake.event({"Type": "image", "Action": "pull", "Actor": {"ID": "example.org/app:1"}})
                await fake.event({"Type": "container", "Action": "die", "Actor": {"ID": FakeDocker.CID,
                                                                                   "Attributes": {"name": "web"}}})
                await until("the die event", lambda: _async("docker://containers/web" in ctx.updated[mark:]))
                assert not any("example.org" in u for u in ctx.updated[mark:])
        finally:
            await fake.stop()

    run(main())


def test_event_burst_coalesced_into_few_listings(workdir: Path) -> None:
    """Regression: each create/destroy/remove/rename event re-listed every container inline. A burst of them gives
    at most two listings (one may already be due when it starts) and the published list is the final one; Podman's
    remove drops the name as Docker's destroy does."""
    async def main() -> None:
        fake = FakeDocker(workdir / "docker.sock")
        await fake.start()
        try:
            # the interval only bounds how often a listing is made: the whole burst is written well within it
            async with plugin(f"unix://{fake.path}", workdir, republish_interval_s=2) as (h, _):
                def listings() -> int:
                    return sum(r.startswith("GET /v1.52/containers/json") for r in fake.requests)

                def published() -> set[str]:
                    return {r.uri for r in h.registry.resources() if r.uri.startswith("docker://containers/")}

                await asyncio.wait_for(fake.events_open.wait(), WAIT)
                await until("the first publication", lambda: _async(published() == {"docker://containers/web"}))
                before = listings()
                assert before == 1
                made = [(f"{i:064x}", f"box{i}") for i in range(1, 31)]
                for cid, name in made:
                    fake.containers.append(FakeDocker.container(cid, name))
                    await fake.event({"Type": "container", "Action": "create",
                                      "Actor": {"ID": cid, "Attributes": {"name": name}}})
                # the last ten go again: Podman says remove, Docker destroy
                for i, (cid, name) in enumerate(made[20:]):
                    fake.containers.remove(FakeDocker.container(cid, name))
                    await fake.event({"Type": "container", "Action": "remove" if i % 2 else "destroy",
                                      "Actor": {"ID": cid, "Attributes": {"name": name}}})
                want = {"docker://containers/web"} | {f"docker://containers/{n}" for _, n in made[:20]}
                await until("the final list published", lambda: _async(published() == want))
                await until("every event seen", lambda: _async(h.plugin.events_seen == 40))
                assert 1 <= listings() - before <= 2, fake.requests
                gone = {cid for cid, _ in made[20:]}
                assert not gone & set(h.plugin._names)  # both spellings of removal dropped the name
                assert {cid for cid, _ in made[:20]} <= set(h.plugin._names)
        finally:
            await fake.stop()

    run(main())


# -- host access through container.create ------------------------------------------------------------------

def test_create_host_network_modes_need_destructive(podman: PodmanService, workdir: Path) -> None:
    """Regression: container.create (a write tool) copied network into HostConfig.NetworkMode, so host,
    container:<id> and ns:<path> joined the box's network namespace. They now take the destructive rule."""
    name, plain, hosted, net = unique(), unique(), unique(), unique("net")

    async def main() -> None:
        async with plugin(podman.host, workdir) as (h, _):
            await create(h, name, ["sleep", "600"], start=True)
            for mode in ("host", "HOST", f"container:{name}", "ns:/proc/1/ns/net", "ns:/proc/self/ns/net"):
                msg = error_of(await h.call("container.create", {"image": IMAGE, "name": hosted, "network": mode}))
                assert f"network {mode!r} joins the namespace of the host or of another container" in msg, mode
                assert "allow_destructive = true" in msg and "auth_policy_file" in msg
                assert podman.podman("container", "exists", hosted, check=False).returncode != 0
            for bad in ("../x", "a/b", "bridge:opt", "-x", "net\n", ""):
                msg = error_of(await h.call("container.create", {"image": IMAGE, "name": hosted, "network": bad}))
                assert "give a network's name" in msg, bad
            # a network by name, and none, are not host access
            ok(await h.call("network.create", {"name": net}))
            ok(await h.call("container.create", {"image": IMAGE, "name": plain, "network": net}))
            assert net in json.loads(docker(podman, "inspect", plain))[0]["NetworkSettings"]["Networks"]
            rm(podman, plain)
            ok(await h.call("container.create", {"image": IMAGE, "name": plain, "network": "none"}))
            assert json.loads(docker(podman, "inspect", plain))[0]["HostConfig"]["NetworkMode"] == "none"
        async with plugin(podman.host, workdir, allow_destructive=True) as (h, _):
            made = ok(await h.call("container.create", {"image": IMAGE, "name": hosted, "network": "host"}))
            assert made["name"] == hosted
            assert json.loads(docker(podman, "inspect", hosted))[0]["HostConfig"]["NetworkMode"] == "host"

    try:
        run(main())
    finally:
        rm(podman, name, plain, hosted)
        podman.podman("network", "rm", "-f", net, check=False)


# -- TLS and the API version from the environment (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION) ---

def _certs(folder: Path) -> Path:
    """A self-signed certificate as ca.pem, cert.pem and key.pem (what DOCKER_CERT_PATH holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=engine",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")], check=True,
                   capture_output=True, timeout=60)
    (folder / "ca.pem").write_bytes((folder / "cert.pem").read_bytes())
    return folder


def test_tls_and_api_version_from_the_environment(workdir: Path) -> None:
    certs = _certs(workdir / "certs")
    other = _certs(workdir / "other")
    tcp = "tcp://127.0.0.1:1"  # nothing listens: what matters is what the client is built with

    async def main() -> None:
        env = {"DOCKER_HOST": tcp, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs),
               "DOCKER_API_VERSION": "1.41"}
        async with plugin("", workdir, environ=env, events_backoff_min_s=5, events_backoff_max_s=5) as (h, _):
            client = h.plugin.client
            assert client.host == tcp and client.pinned == "1.41"
            assert client.tls_settings == EngineTLS(tls=True, verify=str(certs / "ca.pem"),
                                                    cert=(str(certs / "cert.pem"), str(certs / "key.pem")))
            made = client._make()
            try:
                assert (made.base_url.scheme, made.base_url.host, made.base_url.port) == ("https", "127.0.0.1", 1)
            finally:
                await made.aclose()
            assert client.url("/containers/json") == "/v1.41/containers/json"
        # the config keys override the environment
        async with plugin("", workdir, environ=env, tls_ca=str(other / "ca.pem"), tls_cert=str(other / "cert.pem"),
                          tls_key=str(other / "key.pem"), api_version="1.43", events_backoff_min_s=5,
                          events_backoff_max_s=5) as (h, _):
            assert h.plugin.client.tls_settings == EngineTLS(tls=True, verify=str(other / "ca.pem"),
                                                             cert=(str(other / "cert.pem"), str(other / "key.pem")))
            assert h.plugin.client.pinned == "1.43"
        async with plugin("", workdir, environ=env, tls_verify=False, events_backoff_min_s=5,
                          events_backoff_max_s=5) as (h, _):
            assert h.plugin.client.tls_settings.tls is True and h.plugin.client.tls_settings.verify is False
        # no DOCKER_TLS_VERIFY: plain tcp:// as before
        async with plugin(tcp, workdir, environ={"DOCKER_CERT_PATH": str(certs)}, events_backoff_min_s=5,
                          events_backoff_max_s=5) as (h, _):
            assert h.plugin.client.tls_settings == EngineTLS() and h.plugin.client.pinned is None
        # a unix socket ignores the TLS variables, even a stale certificate folder
        async with plugin(f"unix://{workdir / 'none.sock'}", workdir, events_backoff_min_s=5, events_backoff_max_s=5,
                          environ={"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"}) as (h, _):
            assert h.plugin.client.tls_settings == EngineTLS()

    run(main())


@pytest.mark.parametrize(("environ", "config", "message"), [
    ({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent/certs"}, {},
     "the certificate folder '/nonexistent/certs' from DOCKER_CERT_PATH is not a folder"),
    ({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "EMPTY"}, {}, "ca.pem (from DOCKER_CERT_PATH) does not exist"),
    ({}, {"tls_ca": "/nonexistent/ca.pem"}, "tls_ca: '/nonexistent/ca.pem' does not exist"),
    ({}, {"tls_cert": "/nonexistent/cert.pem"}, "needs both tls_cert and tls_key"),
    ({"DOCKER_API_VERSION": "latest"}, {}, "API version 'latest'"),
])
def test_bad_tls_or_api_version_fails_initialize(environ: dict[str, str], config: dict[str, Any], message: str,
                                                 workdir: Path) -> None:
    (workdir / "empty").mkdir()
    environ = {k: (str(workdir / "empty") if v == "EMPTY" else v) for k, v in environ.items()}

    async def main() -> None:
        with pytest.raises(Exception, match=re.escape(message)):
            async with plugin("tcp://127.0.0.1:1", workdir, environ=environ, **config):
                pass

    run(main())


def test_unusable_tls_files_give_a_clear_error(workdir: Path) -> None:
    """Files that exist but hold no certificate: initialize passes (the paths are right), the first call says
    which files cannot be used."""
    certs = workdir / "junk"
    certs.mkdir()
    for n in ("ca", "cert", "key"):
        (certs / f"{n}.pem").write_text("not a certificate\n")

    async def main() -> None:
        async with plugin("tcp://127.0.0.1:1", workdir, environ={"DOCKER_TLS_VERIFY": "1",
                                                                 "DOCKER_CERT_PATH": str(certs)},
                          events_backoff_min_s=5, events_backoff_max_s=5) as (h, _):
            msg = error_of(await h.call("container.list", {}))
            assert "the TLS files cannot be used" in msg and str(certs / "ca.pem") in msg

    run(main())
