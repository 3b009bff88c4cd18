"""The kubernetes plugin's bounds on the real Podman backend (tests/podman_service.py; nothing pulled): a container
writing a 4 MiB line without a newline gives a bounded pod.logs result that says it was cut, and host access is
refused with nothing sent unless allow_host_access is on, when the same pod runs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from plugin_host import FakePluginContext, FakeRequest, Host, error_of, ok, run
from podman_service import IMAGE, PodmanService

WAIT = 60.0  # only to avoid hangs, never a timing assertion


def kube_host(podman: PodmanService, data: Path, **config: Any) -> Host:
    ctx = FakePluginContext("kubernetes", data, None)
    host = Host("kubernetes", {"backend": "podman", "host": podman.host, "allow_destructive": True,
                               "stop_timeout_s": 0, "min_ready_s": 0.5, **config}, ctx)
    host.registry.isolation = {"kubernetes": "inproc"}
    return host


def pod(name: str, script: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", script]}],
                                **spec}})


def pods(podman: PodmanService) -> set[str]:
    return set(podman.podman("pod", "ps", "--format", "{{.Name}}").stdout.split())


# 8 bytes doubled 10 times: 8 KiB, written again and again (10 times a second) and never a newline
ENDLESS = ("s=yyyyyyyy; for i in 1 2 3 4 5 6 7 8 9 10; do s=$s$s; done; echo start; "
           "while true; do printf %s \"$s\"; sleep 0.1; done")
# a 4 MiB line (8 bytes doubled 19 times), a short line, then the container waits
LONG = ("s=yyyyyyyy; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do s=$s$s; done; "
        "printf %s \"$s\"; echo; echo after; sleep 1000")
NOTE = "[line cut at 4096 bytes (max_line): the rest of it is left out]"


def test_output_without_newlines_is_cut(podman: PodmanService, workdir: Path) -> None:
    """A container that never writes a newline: followed, its log is one line cut at max_line, then skipped, however
    long it goes on (before, each chunk was added to one growing buffer)."""
    name = f"endless-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        host = await kube_host(podman, workdir, max_line=4096, follow_timeout_s=3).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": pod(name, ENDLESS)}))
            rctx = FakeRequest()
            got = ok(await host.call("pod.logs", {"pod": name, "follow": True}, rctx))
            assert got["ended"] == "follow_timeout_s" and got["cut_lines"] >= 1, got["ended"]
            # Podman 4.3.1 does not always keep the newline after "start" (and may end a partial run where the
            # container wrote none): what counts is that each line is cut at max_line and few lines come back
            assert all(len(line.encode()) <= 4096 + len(NOTE) + 1 for line in got["lines"])
            assert all(line.endswith(NOTE) for line in got["lines"][-got["cut_lines"]:])
            assert got["cut_lines"] <= 3 and len(got["lines"]) <= 4  # of about 30 x 8 KiB written meanwhile
            # the progress notifications carried the same bounded lines
            assert [m for _, _, m in rctx.progress] == got["lines"]
        finally:
            ok(await host.call("k8s.delete", {"kind": "Pod", "name": name}))
            await host.stop()

    run(main())


def test_long_line_result_bounded(podman: PodmanService, workdir: Path) -> None:
    """A finished 4 MiB line: the result holds no line over max_line (Podman 4.3.1's tail returns such a line,
    stored in 8 KiB partial entries, empty; when it does not, the line comes cut)."""
    name = f"long-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        host = await kube_host(podman, workdir, max_line=4096).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": pod(name, LONG)}))
            got: dict[str, Any] = {}
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:  # until the container wrote its last line
                got = ok(await host.call("pod.logs", {"pod": name}))
                if "after" in got["lines"]:
                    break
                await asyncio.sleep(0.2)
            assert got["lines"][-1] == "after", got["lines"][-3:]
            assert all(len(line.encode()) <= 4096 + len(NOTE) + 1 for line in got["lines"])
            assert got["lines"][0] in ("", "y" * 4096 + " " + NOTE)
        finally:
            ok(await host.call("k8s.delete", {"kind": "Pod", "name": name}))
            await host.stop()

    run(main())


def test_host_access_refused_then_allowed(podman: PodmanService, workdir: Path) -> None:
    name = f"hostnet-{uuid.uuid4().hex[:8]}"
    manifest = pod(name, "sleep 1000", hostNetwork=True)

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            before = pods(podman)
            msg = error_of(await host.call("k8s.apply", {"manifest": manifest}))
            assert f"document 1 (Pod/{name}): spec.hostNetwork" in msg and "allow_host_access = true" in msg
            assert pods(podman) == before and not (workdir / "podman-objects.json").exists()
        finally:
            await host.stop()
        host = await kube_host(podman, workdir, allow_host_access=True).start()
        try:
            got = ok(await host.call("k8s.apply", {"manifest": manifest}))
            assert got["objects"][0]["action"] == "created"
            assert name in pods(podman)
            mode = podman.podman("pod", "inspect", name, "--format", "{{.InfraConfig.HostNetwork}}").stdout.strip()
            assert mode == "true"
        finally:
            ok(await host.call("k8s.delete", {"kind": "Pod", "name": name}))
            await host.stop()

    run(main())
