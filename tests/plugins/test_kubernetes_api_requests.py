"""What the API-server backend sends, checked against a recording HTTP endpoint on 127.0.0.1.

No Kubernetes API server can run here (test_kubernetes_cluster.py runs against a real one when
MCP_EDGE_TEST_KUBECONFIG is set). This test checks the other half that needs no cluster: the requests the
backend makes through lightkube (method, path, content type, field manager, patch bodies, selectors) and how it
reads answers and error statuses. The endpoint keeps objects in a dict and answers like the API server does for
these calls; it is not a Kubernetes implementation and the test asserts nothing about Kubernetes' behaviour.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from plugin_host import FakePluginContext, Host, error_of, ok, run


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 1
        self.watch_events: list[dict[str, Any]] = []  # sent to the next watch request, then it waits and ends


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message, "metadata": {}}


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append({"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                                     "type": self.headers.get("Content-Type", ""), "body": body})
        path = parts.path
        objs = self.server.objects
        if self.command == "GET" and parse_qs(parts.query).get("watch") == ["true"]:
            events, self.server.watch_events = self.server.watch_events, []
            if not events:
                time.sleep(0.2)  # a quiet watch: lightkube asks again when it ends
            self._send(200, "".join(json.dumps(e) + "\n" for e in events))
            return
        if path.endswith("/long/log"):  # a container that wrote 5 MB without a newline, then two short lines
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(80):
                self.wfile.write(b"y" * 65536)
            self.wfile.write(b"\nafter\nlast")
            self.close_connection = True
            return
        if path.endswith("/log"):
            self._send(200, "first line\nsecond line\n", "text/plain")
            return
        if self.command == "GET" and path.endswith(("/configmaps", "/pods")):
            items = [o for p, o in objs.items() if p.startswith(path + "/")]
            self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                             "items": items})
            return
        if self.command == "GET":
            if path in objs:
                self._send(200, objs[path])
            else:
                self._send(404, _status(404, "NotFound", f"{path.split('/')[-1]} not found"))
            return
        if self.command == "DELETE":
            if objs.pop(path, None) is None:
                self._send(404, _status(404, "NotFound", f"{path.split('/')[-1]} not found"))
            else:
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
            return
        if self.command == "PATCH":
            ctype = self.headers.get("Content-Type", "")
            if "apply-patch" in ctype:
                new = yaml.safe_load(body)
                old = objs.get(path)
                if old is not None and {k: v for k, v in old.items() if k not in ("metadata", "status")} == \
                        {k: v for k, v in new.items() if k not in ("metadata", "status")}:
                    self._send(200, old)
                    return
                self.server.version += 1
                new.setdefault("metadata", {})["resourceVersion"] = str(self.server.version)
                objs[path] = new
                self._send(201 if old is None else 200, new)
                return
            if path not in objs:
                self._send(404, _status(404, "NotFound", f"{path.split('/')[-1]} not found"))
                return
            if "json-patch" in ctype:
                self._send(422, _status(422, "Invalid", "json patch recorded, not applied"))
                return
            patch = json.loads(body)
            merged = json.loads(json.dumps(objs[path]))
            for key, value in patch.items():
                if isinstance(value, dict):
                    merged.setdefault(key, {}).update(value)
                else:
                    merged[key] = value
            self.server.version += 1
            merged["metadata"]["resourceVersion"] = str(self.server.version)
            objs[path] = merged
            self._send(200, merged)
            return
        self._send(405, _status(405, "MethodNotAllowed", self.command))

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def api_host(workdir: Path, server: Recorder, **config: Any) -> Host:
    port = server.server_address[1]
    cfg = workdir / "kubeconfig"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "edge",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "edge", "context": {"cluster": "c", "user": "u", "namespace": "apps"}}],
    }))
    ctx = FakePluginContext("kubernetes", workdir, None)
    host = Host("kubernetes", {"kubeconfig": str(cfg), "allow_destructive": True, **config}, ctx)
    host.registry.isolation = {"kubernetes": "inproc"}
    return host


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: busybox}]}
"""
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting, labels: {app: web}}\ndata: {text: hello}\n"


def test_api_backend_requests(workdir: Path, endpoint: Recorder) -> None:
    reqs = endpoint.requests
    cm_path = "/api/v1/namespaces/apps/configmaps/greeting"

    async def main() -> None:
        host = await api_host(workdir, endpoint, max_line=4096).start()
        try:
            got = ok(await host.call("k8s.apply", {"manifest": CM}))
            assert got["backend"] == "api"
            assert got["objects"][0] | {"detail": ""} == {
                "kind": "ConfigMap", "name": "greeting", "namespace": "apps", "action": "created", "detail": "",
                "uri": "k8s://apps/ConfigMap/greeting"}
            apply = [r for r in reqs if r["method"] == "PATCH"][-1]
            assert apply["path"] == cm_path and apply["type"] == "application/apply-patch+yaml"
            assert apply["query"]["fieldManager"] == ["mcp-edge"] and "force" not in apply["query"]
            assert yaml.safe_load(apply["body"])["data"] == {"text": "hello"}
            again = ok(await host.call("k8s.apply", {"manifest": CM}))
            assert again["objects"][0]["action"] == "unchanged"
            changed = ok(await host.call("k8s.apply", {"manifest": CM.replace("hello", "hi")}))
            assert changed["objects"][0]["action"] == "configured"

            obj = ok(await host.call("k8s.get", {"kind": "cm", "name": "greeting"}))
            assert obj["object"]["data"] == {"text": "hi"} and obj["uri"] == "k8s://apps/ConfigMap/greeting"
            listed = ok(await host.call("k8s.list", {"kind": "configmaps", "label_selector": "app=web,!old"}))
            assert [i["name"] for i in listed["items"]] == ["greeting"]
            assert reqs[-1]["query"]["labelSelector"] == ["app=web,!old"]

            merged = ok(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "greeting",
                                                      "patch": {"data": {"more": "yes"}}, "patch_type": "merge"}))
            assert merged["object"]["data"] == {"text": "hi", "more": "yes"}
            assert reqs[-1]["method"] == "PATCH" and reqs[-1]["type"] == "application/merge-patch+json"
            assert json.loads(reqs[-1]["body"]) == {"data": {"more": "yes"}}
            ok(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "greeting",
                                             "patch": {"metadata": {"labels": {"x": "y"}}}}))
            assert reqs[-1]["type"] == "application/strategic-merge-patch+json"
            ops = [{"op": "replace", "path": "/data/text", "value": "json"}]
            msg = error_of(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "greeting", "patch": ops,
                                                         "patch_type": "json"}))
            assert reqs[-1]["type"] == "application/json-patch+json" and json.loads(reqs[-1]["body"]) == ops
            assert "the API server refused patch of ConfigMap/greeting: json patch recorded" in msg
            assert "(HTTP 422)" in msg
            # a patch whose result is invalid is refused before it is sent
            sent = len(reqs)
            bad = error_of(await host.call("k8s.patch", {"kind": "ConfigMap", "name": "greeting",
                                                         "patch": {"data": {"n": 1}}, "patch_type": "merge"}))
            assert "data.n" in bad and [r["method"] for r in reqs[sent:]] == ["GET"]

            logs = ok(await host.call("pod.logs", {"pod": "hello", "tail": 2, "container": "main"}))
            assert logs["lines"] == ["first line", "second line"]
            log_req = reqs[-1]
            assert log_req["path"] == "/api/v1/namespaces/apps/pods/hello/log"
            assert log_req["query"]["tailLines"] == ["2"] and log_req["query"]["container"] == ["main"]
            assert log_req["query"]["limitBytes"] == [str(4 << 20)]  # the server sends no more than max_log_bytes

            # a line without end is cut at max_line as it streams in (not read whole), and says so
            long = ok(await host.call("pod.logs", {"pod": "long"}))
            assert long["cut_lines"] == 1 and long["dropped"] == 0
            assert long["lines"][0].startswith("y" * 4096) and "line cut at 4096 bytes (max_line)" in long["lines"][0]
            assert len(long["lines"][0]) < 4096 + 200 and long["lines"][1:] == ["after", "last"]

            deleted = ok(await host.call("k8s.delete", {"kind": "ConfigMap", "name": "greeting"}))
            assert deleted["namespace"] == "apps" and reqs[-1]["method"] == "DELETE"
            missing = error_of(await host.call("k8s.get", {"kind": "ConfigMap", "name": "greeting"}))
            assert "the API server refused get of ConfigMap/greeting: greeting not found (HTTP 404)" in missing
            # another namespace by argument; a cluster-scoped kind has none
            ok(await host.call("k8s.apply", {"manifest": CM, "namespace": "other"}))
            assert reqs[-1]["path"] == "/api/v1/namespaces/other/configmaps/greeting"
            ok(await host.call("k8s.apply", {"manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: n1}\n"}))
            assert reqs[-1]["path"] == "/api/v1/namespaces/n1"

            # scale and rollout of a Deployment
            dep_path = "/apis/apps/v1/namespaces/apps/deployments/web"
            ok(await host.call("k8s.apply", {"manifest": DEPLOYMENT}))
            scaled = ok(await host.call("deployment.scale", {"name": "web", "replicas": 3}))
            assert scaled["result"] == "Deployment/web scaled from 1 to 3"
            assert reqs[-1]["path"] == dep_path and reqs[-1]["type"] == "application/strategic-merge-patch+json"
            assert json.loads(reqs[-1]["body"]) == {"spec": {"replicas": 3}}
            waited = ok(await host.call("deployment.rollout_status", {"name": "web", "timeout_s": 0.3}))
            assert waited["timed_out"] and not waited["done"] and "0 of 3 replicas updated" in waited["message"]
            endpoint.objects[dep_path]["metadata"]["generation"] = 2
            endpoint.objects[dep_path]["status"] = {"observedGeneration": 2, "updatedReplicas": 3,
                                                    "availableReplicas": 3, "readyReplicas": 3}
            done = ok(await host.call("deployment.rollout_status", {"name": "web"}))
            assert done["done"] and done["message"] == "Deployment/web rolled out: 3 of 3 available"
            endpoint.objects[dep_path]["status"]["conditions"] = [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet web-1 has timed out progressing."}]
            failed = ok(await host.call("deployment.rollout_status", {"name": "web"}))
            assert failed["failed"] and "progress deadline" in failed["message"]
        finally:
            await host.stop()

    run(main())


def test_api_backend_watch(workdir: Path, endpoint: Recorder) -> None:
    """Reading a k8s:// resource starts one watch per (kind, namespace); its events notify the objects' URIs."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "greeting", "namespace": "apps",
                                                                "resourceVersion": "5"}, "data": {"a": "b"}}
    endpoint.objects["/api/v1/namespaces/apps/configmaps/greeting"] = cm

    async def main() -> None:
        host = await api_host(workdir, endpoint, max_watches=1).start()
        try:
            contents = await host.read("k8s://apps/ConfigMap/greeting")
            assert json.loads(contents[0].text)["data"] == {"a": "b"}  # type: ignore[union-attr]
            other = dict(cm, metadata={"name": "other", "namespace": "apps", "resourceVersion": "6"})
            endpoint.watch_events = [{"type": "MODIFIED", "object": other}]
            deadline = time.monotonic() + 30
            while "k8s://apps/ConfigMap/other" not in host.ctx.updated and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert "k8s://apps/ConfigMap/other" in host.ctx.updated
            watches = [r for r in endpoint.requests if r["query"].get("watch") == ["true"]]
            assert watches[0]["path"] == "/api/v1/namespaces/apps/configmaps"
            # an answer lightkube cannot read is an error that says so (not "cannot reach")
            endpoint.objects["/api/v1/namespaces/apps/pods/bad"] = {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "apps"}, "spec": {}}
            msg = error_of(await host.call("k8s.get", {"kind": "Pod", "name": "bad"}))
            assert "get of Pod/bad failed: ValidationError" in msg and "containers" in msg
            # the same kind and namespace again: no second watch; another kind: over max_watches
            await host.read("k8s://apps/ConfigMap/greeting")
            endpoint.objects["/api/v1/namespaces/apps/pods/p"] = {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "apps"},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
            with pytest.raises(Exception, match="max_watches"):
                await host.read("k8s://apps/Pod/p")
        finally:
            await host.stop()

    run(main())
