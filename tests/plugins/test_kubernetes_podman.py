"""The kubernetes plugin on its Podman backend, end to end against the test engine (tests/podman_service.py).

Everything runs for real: ``kube play``/``kube down`` on Podman 4.3.1, checked with the podman CLI on the same
storage; nothing is pulled (the image is ``localhost/busybox:latest``). Names carry a per-test tag since the
engine is shared by the session.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from plugin_host import FakePluginContext, FakeRequest, Host, error_of, ok, run
from podman_service import IMAGE, PodmanService

WAIT = 60.0  # only to avoid hangs, never a timing assertion


def kube_host(podman: PodmanService, data: Path, **config: Any) -> Host:
    """The plugin in process on the Podman backend, destructive tools on, pods killed at once when removed."""
    ctx = FakePluginContext("kubernetes", data, None)
    host = Host("kubernetes", {"backend": "podman", "host": podman.host, "allow_destructive": True,
                               "stop_timeout_s": 0, "min_ready_s": 0.5, **config}, ctx)
    host.registry.isolation = {"kubernetes": "inproc"}  # the manifest says process; these tests call it in process
    return host


def tag() -> str:
    return uuid.uuid4().hex[:8]


def deployment(name: str, script: str = "echo hello $GREETING; while true; do sleep 1; done", replicas: int = 1,
               env: dict[str, str] | None = None, extra: str = "") -> str:
    env_yaml = "".join(f"\n        - {{name: {k}, value: {json.dumps(v)}}}" for k, v in (env or {}).items())
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", {json.dumps(script)}]
        env:
        - {{name: GREETING, value: hi}}{env_yaml}{extra}
"""


def pods(podman: PodmanService) -> set[str]:
    got = podman.podman("pod", "ps", "--format", "{{.Name}}", check=False)
    assert got.returncode == 0, got.stderr
    return set(got.stdout.split())


def volumes(podman: PodmanService) -> set[str]:
    return set(podman.podman("volume", "ls", "--format", "{{.Name}}").stdout.split())


def container_env(podman: PodmanService, container: str) -> dict[str, str]:
    out = podman.podman("exec", container, "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def rolled_out(host: Host, name: str) -> dict[str, Any]:
    got = ok(await host.call("deployment.rollout_status", {"name": name, "timeout_s": WAIT}))
    assert got["done"] and not got["failed"], got
    return got


def test_apply_get_list_delete(podman: PodmanService, workdir: Path) -> None:
    t = tag()
    web, cfg, data, solo = f"web-{t}", f"cfg-{t}", f"data-{t}", f"solo-{t}"
    manifest = deployment(web, env={}, extra=f"""
        - name: FROM_CM
          valueFrom: {{configMapKeyRef: {{name: {cfg}, key: greeting}}}}""") + f"""---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {cfg}}}
data: {{greeting: from-the-configmap}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {data}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {solo}, labels: {{role: single}}}}
spec:
  containers:
  - name: c
    image: {IMAGE}
    command: ["sh", "-c", "echo kept > /data/file; sleep 1000"]
    volumeMounts: [{{name: d, mountPath: /data}}]
  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {data}}}}}]
"""

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            rq = FakeRequest()
            got = ok(await host.call("k8s.apply", {"manifest": manifest}, rq))
            assert got["backend"] == "podman"
            actions = {(o["kind"], o["name"]): o["action"] for o in got["objects"]}
            assert actions == {("Deployment", web): "created", ("ConfigMap", cfg): "created",
                               ("PersistentVolumeClaim", data): "created", ("Pod", solo): "created"}
            assert [p[0] for p in rq.progress] == [1, 2, 3, 4]
            # Podman runs them: the Deployment's pod, the Pod, the volume of the claim
            assert {f"{web}-pod-0", solo} <= pods(podman)
            assert data in volumes(podman)
            # the ConfigMap reached the workload (sent with it: Podman keeps no ConfigMaps)
            env = container_env(podman, f"{web}-pod-0-main")
            assert env["FROM_CM"] == "from-the-configmap" and env["GREETING"] == "hi"
            # the Pod wrote into the claim's volume
            wait_until("the pod's file in the volume", lambda: podman.podman(
                "exec", f"{solo}-c", "cat", "/data/file", check=False).stdout == "kept\n")

            await rolled_out(host, web)
            obj = ok(await host.call("k8s.get", {"kind": "deploy", "name": web}))
            assert obj["uri"] == f"k8s://default/Deployment/{web}"
            status = obj["object"]["status"]
            assert status["readyReplicas"] == 1 and status["pods"][0]["name"] == f"{web}-pod-0"
            assert status["pods"][0]["containers"][0]["state"] == "running"
            pvc = ok(await host.call("k8s.get", {"kind": "pvc", "name": data}))["object"]
            assert pvc["status"]["phase"] == "Bound" and pvc["status"]["volume"]["name"] == data
            pod = ok(await host.call("k8s.get", {"kind": "Pod", "name": solo}))["object"]
            assert pod["status"]["phase"] in ("Running", "Pending")

            listed = ok(await host.call("k8s.list", {"kind": "pods"}))
            names = {i["name"]: i for i in listed["items"]}
            assert names[solo]["managed"] and not names[f"{web}-pod-0"]["managed"]
            assert names[f"{web}-pod-0"]["summary"] == "Running"
            only = ok(await host.call("k8s.list", {"kind": "pods", "label_selector": "role=single"}))
            assert [i["name"] for i in only["items"]] == [solo]
            deps = ok(await host.call("k8s.list", {"kind": "Deployment"}))
            assert {i["name"]: i["summary"] for i in deps["items"]}[web] == "1/1 ready"
            cms = ok(await host.call("k8s.list", {"kind": "configmaps"}))
            assert cfg in {i["name"] for i in cms["items"]}

            # the same manifest again changes nothing
            pod_id = podman.podman("pod", "inspect", "--format", "{{.Id}}", f"{web}-pod-0").stdout.strip()
            again = ok(await host.call("k8s.apply", {"manifest": manifest}))
            assert {o["action"] for o in again["objects"]} == {"unchanged"}
            assert podman.podman("pod", "inspect", "--format", "{{.Id}}", f"{web}-pod-0").stdout.strip() == pod_id
            # objects before a refused one stay applied, and the error says which
            extra = f"""---
apiVersion: v1
kind: Pod
metadata: {{name: noimage-{t}}}
spec: {{containers: [{{name: c, image: localhost/missing:latest}}]}}
"""
            msg = error_of(await host.call("k8s.apply", {"manifest": manifest + extra}))
            assert f"document 5 (Pod/noimage-{t}): Podman refused Pod/noimage-{t}" in msg
            assert f"(applied before it: ConfigMap/{cfg} unchanged; PersistentVolumeClaim/{data} unchanged; " \
                   f"Deployment/{web} unchanged; Pod/{solo} unchanged)" in msg
            assert f"noimage-{t}" not in pods(podman)

            # a changed ConfigMap re-plays the workloads that read it
            changed = ok(await host.call("k8s.apply", {"manifest": manifest.replace("from-the-configmap",
                                                                                    "changed-value")}))
            by_kind = {o["kind"]: o for o in changed["objects"]}
            assert by_kind["ConfigMap"]["action"] == "configured"
            assert by_kind["ConfigMap"]["detail"] == f"re-played Deployment/{web}"
            assert by_kind["Deployment"]["action"] == "unchanged"
            await rolled_out(host, web)
            assert container_env(podman, f"{web}-pod-0-main")["FROM_CM"] == "changed-value"

            # a volume in use cannot go; then everything is deleted
            busy = error_of(await host.call("k8s.delete", {"kind": "pvc", "name": data}))
            assert "delete the workloads that mount it first" in busy
            for kind, name in (("Deployment", web), ("Pod", solo), ("PersistentVolumeClaim", data),
                               ("ConfigMap", cfg)):
                ok(await host.call("k8s.delete", {"kind": kind, "name": name}))
            assert not {f"{web}-pod-0", solo} & pods(podman)
            assert data not in volumes(podman)
            gone = error_of(await host.call("k8s.get", {"kind": "Deployment", "name": web}))
            assert f"Deployment/{web} not found" in gone
            assert "not found" in error_of(await host.call("k8s.delete", {"kind": "cm", "name": cfg}))
        finally:
            await host.stop()

    run(main())


def test_manifests_survive_a_restart(podman: PodmanService, workdir: Path) -> None:
    """The last-applied manifests live in the data folder: a new plugin instance knows the objects."""
    name = f"keep-{tag()}"

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": deployment(name)}))
        finally:
            await host.stop()
        stored = json.loads((workdir / "podman-objects.json").read_text())
        assert f"Deployment/{name}" in stored["objects"]
        host = await kube_host(podman, workdir).start()
        try:
            again = ok(await host.call("k8s.apply", {"manifest": deployment(name)}))
            assert again["objects"][0]["action"] == "unchanged"
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
        finally:
            await host.stop()
        assert f"{name}-pod-0" not in pods(podman)

    run(main())


def test_patch_three_types(podman: PodmanService, workdir: Path) -> None:
    name = f"patch-{tag()}"
    main_c = f"{name}-pod-0-main"

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": deployment(name)}))
            await rolled_out(host, name)
            assert container_env(podman, main_c)["GREETING"] == "hi"

            # strategic merge: env merged by name (one added, one changed, the rest kept)
            smp = {"spec": {"template": {"spec": {"containers": [
                {"name": "main", "env": [{"name": "ADDED", "value": "by-strategic"}]}]}}}}
            got = ok(await host.call("k8s.patch", {"kind": "Deployment", "name": name, "patch": smp}))
            env_list = got["object"]["spec"]["template"]["spec"]["containers"][0]["env"]
            assert {e["name"] for e in env_list} == {"GREETING", "ADDED"}
            await rolled_out(host, name)
            env = container_env(podman, main_c)
            assert env["ADDED"] == "by-strategic" and env["GREETING"] == "hi"

            # JSON merge patch (RFC 7386): a label on the pod template reaches the pod
            merge = {"spec": {"template": {"metadata": {"labels": {"tier": "merged"}}}}}
            ok(await host.call("k8s.patch", {"kind": "deploy", "name": name, "patch": merge,
                                             "patch_type": "merge"}))
            await rolled_out(host, name)
            labels = json.loads(podman.podman("pod", "inspect", "--format", "{{json .Labels}}",
                                              f"{name}-pod-0").stdout)
            assert labels["tier"] == "merged"

            # JSON patch (RFC 6902): a test guarding a replace
            ops = [{"op": "test", "path": "/spec/template/spec/containers/0/env/0/name", "value": "GREETING"},
                   {"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "by-json"}]
            ok(await host.call("k8s.patch", {"kind": "Deployment", "name": name, "patch": ops,
                                             "patch_type": "json"}))
            await rolled_out(host, name)
            assert container_env(podman, main_c)["GREETING"] == "by-json"

            # refused patches change nothing: a failing test, a bad path, a field the schema lacks, a wrong type
            pod_id = podman.podman("pod", "inspect", "--format", "{{.Id}}", f"{name}-pod-0").stdout.strip()
            failing = [{"op": "test", "path": "/spec/replicas", "value": 7},
                       {"op": "replace", "path": "/spec/replicas", "value": 0}]
            assert "(test)" in error_of(await host.call("k8s.patch", {"kind": "Deployment", "name": name,
                                                                       "patch": failing, "patch_type": "json"}))
            bad_path = [{"op": "remove", "path": "/spec/nothing/here"}]
            assert "does not exist" in error_of(await host.call(
                "k8s.patch", {"kind": "Deployment", "name": name, "patch": bad_path, "patch_type": "json"}))
            unknown = {"spec": {"template": {"spec": {"containers": [{"name": "main", "imag": "typo"}]}}}}
            msg = error_of(await host.call("k8s.patch", {"kind": "Deployment", "name": name, "patch": unknown}))
            assert "spec.template.spec.containers[0]" in msg and "imag" in msg
            wrong = {"spec": {"replicas": "one"}}
            msg = error_of(await host.call("k8s.patch", {"kind": "Deployment", "name": name, "patch": wrong,
                                                         "patch_type": "merge"}))
            assert "spec.replicas" in msg and "'one'" in msg
            rename = {"metadata": {"name": "other"}}
            assert "may not change the kind or the name" in error_of(await host.call(
                "k8s.patch", {"kind": "Deployment", "name": name, "patch": rename, "patch_type": "merge"}))
            list_for_merge = error_of(await host.call("k8s.patch", {"kind": "Deployment", "name": name,
                                                                    "patch": ops, "patch_type": "merge"}))
            assert "patch_type=json" in list_for_merge
            assert podman.podman("pod", "inspect", "--format", "{{.Id}}",
                                 f"{name}-pod-0").stdout.strip() == pod_id
            assert container_env(podman, main_c)["GREETING"] == "by-json"

            # Podman itself refuses the patched Deployment (no such image, nothing may be pulled): what it left is
            # removed and the last good one runs again
            missing = {"spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": "localhost/missing:latest"}]}}}}
            msg = error_of(await host.call("k8s.patch", {"kind": "Deployment", "name": name, "patch": missing}))
            assert f"Podman refused Deployment/{name}" in msg and "localhost/missing" in msg
            await rolled_out(host, name)
            assert container_env(podman, main_c)["GREETING"] == "by-json"
            image = ok(await host.call("k8s.get", {"kind": "Deployment", "name": name}))["object"]["spec"]["template"]
            assert image["spec"]["containers"][0]["image"] == IMAGE

            # strategic $patch: delete removes an env entry
            delete = {"spec": {"template": {"spec": {"containers": [
                {"name": "main", "env": [{"name": "ADDED", "$patch": "delete"}]}]}}}}
            ok(await host.call("k8s.patch", {"kind": "Deployment", "name": name, "patch": delete}))
            await rolled_out(host, name)
            assert "ADDED" not in container_env(podman, main_c)
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
        finally:
            await host.stop()

    run(main())


def test_logs_follow_and_cancel(podman: PodmanService, workdir: Path) -> None:
    name = f"logs-{tag()}"
    script = "echo first line; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": deployment(name, script)}))
            await rolled_out(host, name)

            async def has_ticks() -> dict[str, Any]:
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline:
                    got = ok(await host.call("pod.logs", {"pod": f"{name}-pod-0"}))
                    if len(got["lines"]) >= 3:
                        return got
                    await asyncio.sleep(0.05)
                raise AssertionError("no log lines")

            got = await has_ticks()
            assert got["lines"][0] == "first line" and got["lines"][1] == "tick 1" and not got["followed"]
            tail = ok(await host.call("pod.logs", {"pod": name, "container": "main", "tail": 1}))
            assert len(tail["lines"]) == 1 and tail["lines"][0].startswith("tick ")

            # follow: lines come as progress; a cancelled request stops reading at the next line
            rq = FakeRequest(cancel_after=5)
            followed = ok(await host.call("pod.logs", {"pod": f"{name}-pod-0", "follow": True}, rq))
            assert followed["followed"] and followed["ended"] == "cancelled"
            assert [p[2] for p in rq.progress] == followed["lines"]
            assert len(followed["lines"]) == 5

            # follow with the call's task cancelled (as the runtime does on notifications/cancelled)
            seen = asyncio.Event()
            rq2 = FakeRequest(on_progress=seen.set)
            task = asyncio.create_task(host.call("pod.logs", {"pod": f"{name}-pod-0", "follow": True,
                                                              "tail": 1}, rq2))
            await asyncio.wait_for(seen.wait(), WAIT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            count = len(rq2.progress)
            await asyncio.sleep(0.3)  # lines keep coming every 0.1 s: none may reach a cancelled call
            assert len(rq2.progress) == count

            assert "has no container 'nope'" in error_of(await host.call(
                "pod.logs", {"pod": f"{name}-pod-0", "container": "nope"}))
            assert "not found" in error_of(await host.call("pod.logs", {"pod": f"nothing-{name}"}))
        finally:
            await host.stop()
        # max_log_lines bounds both: the last lines written so far, and how many a follow reads
        host = await kube_host(podman, workdir, max_log_lines=2).start()
        try:
            last = ok(await host.call("pod.logs", {"pod": name}))
            assert len(last["lines"]) == 2 and last["lines"][0].startswith("tick ")
            first_tick = int(last["lines"][0].split()[1])
            assert last["lines"][1] == f"tick {first_tick + 1}"
            followed = ok(await host.call("pod.logs", {"pod": name, "follow": True}, FakeRequest()))
            assert followed["ended"] == "max_log_lines" and len(followed["lines"]) == 2
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
        finally:
            await host.stop()

    run(main())


def test_scale_and_rollout(podman: PodmanService, workdir: Path) -> None:
    name = f"scale-{tag()}"

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": deployment(name)}))
            rq = FakeRequest()
            got = ok(await host.call("deployment.rollout_status", {"name": name, "timeout_s": WAIT}, rq))
            assert got["done"] and got["ready"] == 1 and rq.progress
            assert rq.progress[-1][2] == got["message"]

            scaled = ok(await host.call("deployment.scale", {"name": name, "replicas": 0}))
            assert "from 1 to 0" in scaled["result"]
            assert f"{name}-pod-0" not in pods(podman)
            zero = ok(await host.call("deployment.rollout_status", {"name": name}))
            assert zero["done"] and "scaled to 0" in zero["message"]
            assert ok(await host.call("k8s.get", {"kind": "Deployment", "name": name}))["object"]["spec"][
                "replicas"] == 0

            ok(await host.call("deployment.scale", {"name": name, "replicas": 1}))
            assert f"{name}-pod-0" in pods(podman)
            await rolled_out(host, name)

            more = error_of(await host.call("deployment.scale", {"name": name, "replicas": 2}))
            assert "max_replicas" in more and "at most 1" in more
            assert pods(podman) >= {f"{name}-pod-0"} and f"{name}-pod-1" not in pods(podman)
            too_many = error_of(await host.call("k8s.apply", {"manifest": deployment(name, replicas=3)}))
            assert "3 replicas" in too_many
            assert "not found" in error_of(await host.call("deployment.scale", {"name": f"x{name}", "replicas": 1}))
        finally:
            await host.stop()
        # a box that allows two: Podman 4.3.1 plays each replica as a pod <name>-pod-<i>
        host = await kube_host(podman, workdir, max_replicas=2).start()
        try:
            ok(await host.call("deployment.scale", {"name": name, "replicas": 2}))
            assert {f"{name}-pod-0", f"{name}-pod-1"} <= pods(podman)
            got = await rolled_out(host, name)
            assert got["ready"] == 2
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
            assert not {f"{name}-pod-0", f"{name}-pod-1"} & pods(podman)
        finally:
            await host.stop()

    run(main())


def test_rollout_reports_a_crashing_container(podman: PodmanService, workdir: Path) -> None:
    name = f"crash-{tag()}"

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": deployment(name, "echo failing; exit 3")}))
            got = ok(await host.call("deployment.rollout_status", {"name": name, "timeout_s": WAIT}))
            assert got["failed"] and not got["done"] and not got["timed_out"], got
            assert "container main" in got["message"] and f"{name}-pod-0" in got["message"]
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
        finally:
            await host.stop()

    run(main())


def test_watch_resource_notified(podman: PodmanService, workdir: Path) -> None:
    name = f"watch-{tag()}"
    uri = f"k8s://default/Deployment/{name}"

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            templates = {t.uriTemplate for t in host.registry.resource_templates()}
            assert "k8s://{namespace}/{kind}/{name}" in templates
            ok(await host.call("k8s.apply", {"manifest": deployment(name)}))
            await rolled_out(host, name)
            contents = await host.read(uri)
            obj = json.loads(contents[0].text)  # type: ignore[union-attr]
            assert obj["kind"] == "Deployment" and obj["status"]["readyReplicas"] == 1
            # a change made outside the plugin (the container stopped with the CLI) reaches subscribers
            host.ctx.updated.clear()
            podman.podman("stop", "-t", "0", f"{name}-pod-0-main")
            deadline = time.monotonic() + WAIT
            while uri not in host.ctx.updated and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert uri in host.ctx.updated
            assert f"k8s://default/Pod/{name}-pod-0" in host.ctx.updated
            # and a change made through the plugin
            host.ctx.updated.clear()
            ok(await host.call("deployment.scale", {"name": name, "replicas": 0}))
            assert uri in host.ctx.updated
            missing = f"k8s://default/Deployment/none-{name}"
            with pytest.raises(Exception, match="not found"):
                await host.read(missing)
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
        finally:
            await host.stop()

    run(main())


def test_refusals_send_nothing(podman: PodmanService, workdir: Path) -> None:
    """Bad manifests are refused whole, before anything reaches Podman: its pods and volumes stay as they were."""
    t = tag()
    good = deployment(f"ok-{t}")
    pvc = f"""---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: vol-{t}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"""
    cases = {
        "unknown field": (good + pvc.replace("accessModes", "accesModes"),
                          ["document 2 (PersistentVolumeClaim/vol-", "spec", "accesModes"]),
        "wrong type": (good.replace("replicas: 1", "replicas: many") + pvc,
                       ["document 1 (Deployment/ok-", "spec.replicas", "'many'"]),
        "missing apiVersion": (pvc + "---\nkind: ConfigMap\nmetadata: {name: x}\n",
                               ["document 2 (ConfigMap/x)", "apiVersion is missing"]),
        "missing kind": (good + "---\napiVersion: v1\nmetadata: {name: y}\n", ["document 2", "kind is missing"]),
        "missing name": (good + "---\napiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
                         ["document 2", "metadata.name is missing"]),
        "a kind Podman cannot run": (good + pvc + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                                     "spec: {ports: [{port: 80}]}\n",
                                     ["document 3 (Service/s)", "kind Service cannot run on the Podman backend"]),
        "unknown kind": (good + "---\napiVersion: v1\nkind: Deploymnet\nmetadata: {name: z}\n",
                         ["document 2 (Deploymnet/z)", "unknown kind 'Deploymnet'"]),
        "bad YAML": (good + "---\nkind: [unclosed\n", ["document 2", "not valid YAML", "line"]),
        "not a mapping": (good + "---\n- a\n- b\n", ["document 2", "must be an object"]),
        "another namespace": (good.replace("metadata:\n", "metadata:\n  namespace: prod\n", 1),
                              ["namespace 'prod'", "Podman has no namespaces"]),
        "empty": ("\n---\n", ["holds no object"]),
        "bad JSON": ('{"apiVersion": "v1",', ["not valid JSON"]),
    }

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            before = (pods(podman), volumes(podman))
            for label, (text, wanted) in cases.items():
                msg = error_of(await host.call("k8s.apply", {"manifest": text}))
                for w in wanted:
                    assert w in msg, (label, msg)
                assert (pods(podman), volumes(podman)) == before, label
            msg = error_of(await host.call("k8s.apply", {"manifest": good, "namespace": "staging"}))
            assert "namespace 'staging'" in msg and "only 'default'" in msg
            assert not (workdir / "podman-objects.json").exists()
            # Podman refuses a new Deployment (its image is missing and nothing may be pulled): nothing is left
            missing = deployment(f"noimage-{t}").replace(IMAGE, "localhost/missing:latest")
            msg = error_of(await host.call("k8s.apply", {"manifest": missing}))
            assert f"Podman refused Deployment/noimage-{t}" in msg and msg.endswith("(nothing was applied)")
            assert (pods(podman), volumes(podman)) == before
            assert "not found" in error_of(await host.call("k8s.get", {"kind": "Deployment", "name": f"noimage-{t}"}))
            # JSON input works as well as YAML: an array of objects
            doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"json-{t}"}, "data": {"k": "v"}}
            got = ok(await host.call("k8s.apply", {"manifest": json.dumps([doc])}))
            assert got["objects"][0]["name"] == f"json-{t}"
            ok(await host.call("k8s.delete", {"kind": "ConfigMap", "name": f"json-{t}"}))
        finally:
            await host.stop()
        # limits are config keys: a smaller max_documents and max_manifest_bytes
        host = await kube_host(podman, workdir, max_documents=1, max_manifest_bytes=2048).start()
        try:
            assert "max_documents" in error_of(await host.call("k8s.apply", {"manifest": good + pvc}))
            assert "max_manifest_bytes" in error_of(await host.call("k8s.apply", {"manifest": good + " " * 4096}))
            assert (pods(podman), volumes(podman)) == before
        finally:
            await host.stop()

    run(main())


def test_unmanaged_pod(podman: PodmanService, workdir: Path) -> None:
    """A pod Podman runs that the plugin did not create: listed, read through kube generate, not replaced."""
    name = f"other-{tag()}"
    podman.podman("pod", "create", "--name", name)
    podman.podman("run", "-d", "--pod", name, "--name", f"{name}-c", IMAGE, "sleep", "1000")

    async def main() -> None:
        host = await kube_host(podman, workdir).start()
        try:
            listed = ok(await host.call("k8s.list", {"kind": "Pod"}))
            item = {i["name"]: i for i in listed["items"]}[name]
            assert not item["managed"]
            got = ok(await host.call("k8s.get", {"kind": "Pod", "name": name}))["object"]
            assert got["metadata"]["annotations"]["mcp-edge/managed"] == "false"
            assert got["spec"]["containers"][0]["image"] == IMAGE
            clash = f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec: {{containers: [{{name: c, image: {IMAGE}}}]}}
"""
            assert "which this plugin did not create" in error_of(await host.call("k8s.apply", {"manifest": clash}))
            ok(await host.call("k8s.delete", {"kind": "Pod", "name": name}))
            assert name not in pods(podman)
        finally:
            await host.stop()

    run(main())


def test_network_key(podman: PodmanService, workdir: Path) -> None:
    """The network config key: the pods Podman plays join that network."""
    t = tag()
    net, name = f"kn-{t}", f"net-{t}"
    podman.podman("network", "create", net)

    async def main() -> None:
        host = await kube_host(podman, workdir, network=net).start()
        try:
            ok(await host.call("k8s.apply", {"manifest": deployment(name)}))
            await rolled_out(host, name)
            nets = json.loads(podman.podman("pod", "inspect", "--format", "{{json .InfraConfig.Networks}}",
                                            f"{name}-pod-0").stdout)
            assert nets == [net]
            ok(await host.call("k8s.delete", {"kind": "Deployment", "name": name}))
        finally:
            await host.stop()
            podman.podman("network", "rm", "-f", net, check=False)

    run(main())
