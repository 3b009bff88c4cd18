"""The kubernetes plugin's bounds, without a cluster or an engine: log lines cut at max_line, host access refused
unless allow_host_access, nesting depth, the Podman backend's manifest store (max_store_bytes, ordered writes), a
patched object bounded by max_manifest_bytes, and a plugin that is shut down making no backend again."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_host import FakePluginContext, Host, error_of, ok, run

NO_ENGINE = "unix:///nonexistent/podman.sock"
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"},
       "spec": {"containers": [{"name": "main", "image": "localhost/busybox:latest"}]}}


def kube_host(data: Path, config: dict[str, Any]) -> Host:
    ctx = FakePluginContext("kubernetes", data, None)
    host = Host("kubernetes", config, ctx)
    host.registry.isolation = {"kubernetes": "inproc"}
    return host


def podman_host(data: Path, **config: Any) -> Host:
    return kube_host(data, {"backend": "podman", "host": NO_ENGINE, "allow_destructive": True, **config})


def sibling(host: Host, name: str) -> Any:
    package = type(host.plugin).__module__.rsplit(".", 1)[0]
    return importlib.import_module(f"{package}.{name}")


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    try:
        yield lis
    finally:
        lis.close()


def api_host(data: Path, port: int, **config: Any) -> Host:
    cfg = data / "kubeconfig"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "edge",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "edge", "context": {"cluster": "c", "user": "u", "namespace": "apps"}}],
    }))
    return kube_host(data, {"kubeconfig": str(cfg), "allow_destructive": True, "request_timeout_s": 2, **config})


# -- log lines -------------------------------------------------------------------------------------------------------

def test_line_cutter(workdir: Path) -> None:
    """Lines split as the bytes come (any chunking), a long one cut at max_line with a note, memory bounded."""
    async def main() -> Any:
        host = await podman_host(workdir).start()
        try:
            return sibling(host, "kube_backend")
        finally:
            await host.stop()

    kb = run(main())
    note = kb.cut_note(8)
    data = b"short\n" + b"x" * 8 + b"\n" + b"y" * 9 + b"\nz" * 2 + b"\n" + b"w" * 20
    for size in (1, 3, 7, len(data)):
        cutter = kb.LineCutter(8)
        out: list[str] = []
        for i in range(0, len(data), size):
            out += cutter.feed(data[i:i + size])
            assert len(cutter._tail) <= 8
        out += cutter.flush()
        assert out == ["short", "x" * 8, "y" * 8 + note, "z", "z", "w" * 8 + note], size
        assert cutter.cut_lines == 2
    # 5 MB without a newline, in 64 KiB chunks: one cut line, given at once; nothing kept meanwhile
    cutter = kb.LineCutter(1024)
    got: list[str] = []
    for _ in range(80):
        got += cutter.feed(b"q" * 65536)
        assert len(cutter._tail) <= 1024
    assert got == ["q" * 1024 + kb.cut_note(1024)]
    assert cutter.feed(b"rest of it\nnext\n") == ["next"] and cutter.flush() == []


# -- host access -----------------------------------------------------------------------------------------------------

def _pod(**spec: Any) -> dict[str, Any]:
    pod = json.loads(json.dumps(POD))
    pod["spec"].update(spec)
    return pod


def _container(**fields: Any) -> dict[str, Any]:
    return _pod(containers=[{"name": "main", "image": "localhost/busybox:latest", **fields}])


HOST_ACCESS = {
    "hostNetwork": (_pod(hostNetwork=True), "spec.hostNetwork"),
    "hostPID": (_pod(hostPID=True), "spec.hostPID"),
    "hostIPC": (_pod(hostIPC=True), "spec.hostIPC"),
    "hostPath": (_pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "spec.volumes[0].hostPath"),
    "privileged": (_container(securityContext={"privileged": True}), "spec.containers[0].securityContext.privileged"),
    "capabilities": (_container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}),
                     "spec.containers[0].securityContext.capabilities.add"),
    "seccomp": (_pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
                "spec.securityContext.seccompProfile.type"),
    "selinux": (_container(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
                "spec.containers[0].securityContext.seLinuxOptions.type"),
    "procMount": (_container(securityContext={"procMount": "Unmasked"}),
                  "spec.containers[0].securityContext.procMount"),
    "seccompAnnotation": ({**_pod(), "metadata": {"name": "box", "annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}},
        "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]"),
    "apparmorAnnotation": ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "box"},
                            "spec": {"selector": {"matchLabels": {"a": "b"}},
                                     "template": {"metadata": {"labels": {"a": "b"}, "annotations": {
                                         "container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
                                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
                           "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]"),
    "initContainer": (_pod(initContainers=[{"name": "init", "image": "i", "securityContext": {"privileged": True}}]),
                      "spec.initContainers[0].securityContext.privileged"),
    "deployment": ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "box"},
                    "spec": {"selector": {"matchLabels": {"a": "b"}},
                             "template": {"metadata": {"labels": {"a": "b"}},
                                          "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "i"}]}}}},
                   "spec.template.spec.hostNetwork"),
    "cronjob": ({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "box"},
                 "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                     "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "v", "hostPath": {"path": "/etc"}}]}}}}}},
                "spec.jobTemplate.spec.template.spec.volumes[0].hostPath"),
}


@pytest.mark.parametrize("case", sorted(HOST_ACCESS))
def test_host_access_refused_before_anything_is_sent(workdir: Path, listener: Listener, case: str) -> None:
    obj, path = HOST_ACCESS[case]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}, "data": {"k": "v"}}
    manifest = json.dumps([cm, obj])

    async def main() -> None:
        host = await podman_host(workdir / "podman").start()
        try:
            msg = error_of(await host.call("k8s.apply", {"manifest": manifest}))
            assert f"document 2 ({obj['kind']}/box): {path}" in msg and "allow_host_access = true" in msg, msg
            assert not (workdir / "podman" / "podman-objects.json").exists()  # not even the ConfigMap is kept
        finally:
            await host.stop()
        host = await api_host(workdir / "api", listener.port).start()
        try:
            msg = error_of(await host.call("k8s.apply", {"manifest": manifest}))
            assert f"{obj['kind']}/box): {path}" in msg and "allow_host_access" in msg, msg
            assert listener.accepted == 0  # nothing reached the API server
        finally:
            await host.stop()

    (workdir / "podman").mkdir()
    (workdir / "api").mkdir()
    run(main())


def test_host_access_allowed_with_the_key(workdir: Path, listener: Listener) -> None:
    """With allow_host_access the same manifests pass the check and go to the backend."""
    manifest = json.dumps([obj for obj, _ in HOST_ACCESS.values() if obj["kind"] == "Pod"][:1])

    async def main() -> None:
        host = await podman_host(workdir, allow_host_access=True).start()
        try:
            msg = error_of(await host.call("k8s.apply", {"manifest": manifest}))
            assert "cannot reach Podman" in msg and "allow_host_access" not in msg  # it went on, to the engine
        finally:
            await host.stop()
        host = await api_host(workdir, listener.port, allow_host_access=True).start()
        try:
            error_of(await host.call("k8s.apply", {"manifest": manifest}))
            assert listener.accepted >= 1  # sent to the API server (which answers nothing here)
        finally:
            await host.stop()

    run(main())


def test_patch_to_host_access_refused(workdir: Path) -> None:
    """A patch whose result reaches the host is refused like an apply (the stored manifest stays as it was)."""
    store = workdir / "podman-objects.json"
    store.write_text(json.dumps({"version": 1, "objects": {"Pod/box": {"manifest": POD, "applied_at": 0.0}}}))
    before = store.read_text()

    async def main() -> None:
        host = await podman_host(workdir).start()
        try:
            msg = error_of(await host.call("k8s.patch", {"kind": "Pod", "name": "box", "patch_type": "merge",
                                                         "patch": {"spec": {"hostPID": True}}}))
            assert "the patched object (Pod/box): spec.hostPID" in msg and "allow_host_access" in msg
            ops = [{"op": "add", "path": "/spec/containers/0/securityContext", "value": {"privileged": True}}]
            msg = error_of(await host.call("k8s.patch", {"kind": "Pod", "name": "box", "patch_type": "json",
                                                         "patch": ops}))
            assert "spec.containers[0].securityContext.privileged" in msg
            assert store.read_text() == before
        finally:
            await host.stop()

    run(main())


# -- nesting ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "[" * 100000,
    "{\"a\": " * 100000,
    "a: " + "[" * 100000,
    "kind: ConfigMap\ndata:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 700)),
])
def test_deep_nesting_refused(workdir: Path, text: str) -> None:
    async def main() -> None:
        host = await podman_host(workdir).start()
        try:
            msg = error_of(await host.call("k8s.apply", {"manifest": text}))
            assert "nested too deeply" in msg and "max_depth" in msg, msg
        finally:
            await host.stop()

    run(main())


def test_depth_limit_key(workdir: Path) -> None:
    """A document just within max_depth is checked as usual; one level more is refused; a patch too."""
    def cm(levels: int) -> dict[str, Any]:  # the object is level 1; "extra" adds ``levels`` more
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}, "data": {"x": "y"},
                "extra": _nest(levels)}

    async def main() -> None:
        host = await podman_host(workdir, max_depth=8, strict=False).start()
        try:
            # strict off: an unknown field is not refused by the schema, so only the depth decides
            ok(await host.call("k8s.apply", {"manifest": json.dumps(cm(7))}))  # 1 (object) + 7 = 8 levels
            msg = error_of(await host.call("k8s.apply", {"manifest": json.dumps(cm(8))}))
            assert "document 1 is nested too deeply: more than 8 levels" in msg
            msg = error_of(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "deep", "patch_type": "merge",
                                                         "patch": {"extra": _nest(8)}}))
            assert "ConfigMap/deep) is nested too deeply" in msg
        finally:
            await host.stop()

    run(main())


def _nest(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"n": value}
    return value


# -- the manifest store ----------------------------------------------------------------------------------------------

def _configmap(name: str, size: int) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                       "data": {"blob": "z" * size}})


def test_max_store_bytes(workdir: Path) -> None:
    store = workdir / "podman-objects.json"

    async def main() -> None:
        host = await podman_host(workdir, max_store_bytes=65536, max_manifest_bytes=1 << 20).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": _configmap("one", 30000)}))
            ok(await host.call("k8s.apply", {"manifest": _configmap("one", 31000)}))  # replacing: counted once
            before = store.read_text()
            msg = error_of(await host.call("k8s.apply", {"manifest": _configmap("two", 40000)}))
            assert "document 1 (ConfigMap/two)" in msg and "max_store_bytes (65536" in msg, msg
            assert store.read_text() == before
            msg = error_of(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "one", "patch_type": "merge",
                                                         "patch": {"data": {"more": "m" * 40000}}}))
            assert "max_store_bytes" in msg and store.read_text() == before
            ok(await host.call("k8s.apply", {"manifest": _configmap("one", 1000)}))  # smaller: room again
            ok(await host.call("k8s.apply", {"manifest": _configmap("two", 40000)}))
            assert len(store.read_text()) <= 65536
        finally:
            await host.stop()

    run(main())


def test_patched_object_bounded_by_max_manifest_bytes(workdir: Path) -> None:
    async def main() -> None:
        host = await podman_host(workdir, max_manifest_bytes=4096).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": _configmap("small", 100)}))
            msg = error_of(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "small", "patch_type": "merge",
                                                         "patch": {"data": {"big": "b" * 3000, "more": "c" * 3000}}}))
            assert "the patched object (ConfigMap/small) is" in msg and "max_manifest_bytes (4096)" in msg, msg
            kept = json.loads((workdir / "podman-objects.json").read_text())["objects"]["ConfigMap/small"]
            assert set(kept["manifest"]["data"]) == {"blob"}  # the stored manifest is as it was
        finally:
            await host.stop()

    run(main())


def test_store_writes_in_order(workdir: Path) -> None:
    """Many changes at once: each put awaits its write, writes never overlap, and the file ends as the last one."""
    async def main() -> Any:
        host = await podman_host(workdir).start()
        try:
            return sibling(host, "kube_podman")
        finally:
            await host.stop()

    podman = run(main())
    path = workdir / "store" / "podman-objects.json"

    async def changes() -> None:
        store = podman.Store(path, 100, 1 << 20)
        await asyncio.gather(*(store.put("ConfigMap", f"c{i % 7}", {"kind": "ConfigMap", "metadata": {
            "name": f"c{i % 7}"}, "data": {"i": str(i)}}) for i in range(50)))
        await asyncio.gather(store.drop("ConfigMap", "c0"), store.drop("ConfigMap", "c1"))
        on_disk = json.loads(path.read_text())["objects"]
        assert {k: v["manifest"] for k, v in on_disk.items()} == {k: v["manifest"] for k, v in store.objects.items()}
        assert sorted(on_disk) == [f"ConfigMap/c{i}" for i in range(2, 7)]
        assert on_disk["ConfigMap/c6"]["manifest"]["data"] == {"i": "48"}
        assert not list(path.parent.glob(".objects-*"))
        with pytest.raises(Exception, match="max_store_bytes"):
            await podman.Store(path, 100, 65536).put("ConfigMap", "huge", {"data": "h" * 70000})

    run(changes())


# -- shutdown and watches --------------------------------------------------------------------------------------------

def test_no_backend_after_shutdown(workdir: Path) -> None:
    async def main() -> None:
        host = await podman_host(workdir).start()
        plugin = host.plugin
        ok(await host.call("k8s.apply", {"manifest": _configmap("c", 10)}))
        assert plugin._backend is not None
        await host.stop()
        assert plugin._backend is None
        with pytest.raises(Exception, match="shut down"):
            await plugin.backend()
        assert plugin._backend is None

    run(main())


def test_watch_of_an_unknown_kind(workdir: Path, listener: Listener) -> None:
    """The API backend refuses a watch of a kind lightkube does not know before any task starts, and a follow task
    given one ends quietly (no task left holding an exception)."""
    async def main() -> None:
        host = await api_host(workdir, listener.port).start()
        try:
            kb = sibling(host, "kube_backend")
            backend = await host.plugin.backend()
            nope = kb.Kind("Nope", "example.com/v1", "nopes")

            async def notify(uri: str) -> None:
                return None

            with pytest.raises(kb.BackendError, match=r"kind Nope of apiVersion example\.com/v1 is not known"):
                await backend.watch(nope, "apps", "x", notify)
            assert not backend._watches
            task = asyncio.create_task(backend._follow(nope, "apps", notify))
            await asyncio.wait_for(task, 10)
            assert task.exception() is None
        finally:
            await host.stop()

    run(main())


def test_config_keys_documented() -> None:
    toml = (Path(__file__).parents[2] / "plugins" / "kubernetes" / "plugin.toml").read_text()
    doc = (Path(__file__).parents[2] / "docs" / "kubernetes.md").read_text()
    for key in ("allow_host_access", "max_line", "max_log_bytes", "max_store_bytes", "max_depth"):
        assert f"[config.schema.properties.{key}]" in toml and f"`{key}`" in doc, key

