"""The kubernetes plugin without a cluster or an engine: tool definitions, the destructive-tools rule, backend
choice, kubeconfig errors, offline validation on the API backend, and the patch functions themselves."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from plugin_host import FakePluginContext, Host, error_of, run

READ_ONLY = {"k8s.get", "k8s.list", "pod.logs", "deployment.rollout_status"}
DESTRUCTIVE = {"k8s.apply", "k8s.patch", "k8s.delete", "deployment.scale"}
NO_ENGINE = "unix:///nonexistent/podman.sock"

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: busybox}]
"""


def kube_host(data: Path, config: dict[str, Any], environ: dict[str, str] | None = None,
              **settings: Any) -> Host:
    ctx = FakePluginContext("kubernetes", data, None, overrides=settings)
    if environ is not None:
        ctx.settings = dataclasses.replace(ctx.settings, environ=environ)
    host = Host("kubernetes", config, ctx)
    host.registry.isolation = {"kubernetes": "inproc"}
    return host


def sibling(host: Host, name: str) -> Any:
    """A module of the plugin's folder, as the plugin's own package imports it."""
    package = type(host.plugin).__module__.rsplit(".", 1)[0]
    return importlib.import_module(f"{package}.{name}")


def kubeconfig(path: Path, server: str = "https://127.0.0.1:1", current: str | None = "edge") -> Path:
    data: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "edge", "context": {"cluster": "c", "user": "u", "namespace": "apps"}}],
    }
    if current is not None:
        data["current-context"] = current
    path.write_text(json.dumps(data))
    return path


def test_tool_definitions(workdir: Path) -> None:
    async def main() -> None:
        host = await kube_host(workdir, {"host": NO_ENGINE}).start()
        try:
            defs = host.tool_defs()
            assert set(defs) == READ_ONLY | DESTRUCTIVE
            for name, d in defs.items():
                assert d.inputSchema["type"] == "object", name
                assert d.outputSchema is not None and d.outputSchema.get("type") == "object", name
                assert d.annotations is not None
                if name in READ_ONLY:
                    assert d.annotations.readOnlyHint is True, name
                else:
                    assert d.annotations.destructiveHint is True and not d.annotations.readOnlyHint, name
            patch_types = defs["k8s.patch"].inputSchema["properties"]["patch_type"]["enum"]
            assert set(patch_types) == {"strategic", "merge", "json"}
            templates = {t.uriTemplate: t for t in host.registry.resource_templates()}
            assert templates["k8s://{namespace}/{kind}/{name}"].name == "k8s.watch"
        finally:
            await host.stop()

    run(main())


def test_destructive_tools_off_without_policy_or_allow(workdir: Path) -> None:
    calls = {
        "k8s.apply": {"manifest": DEPLOYMENT},
        "k8s.patch": {"kind": "Deployment", "name": "web", "patch": {"spec": {"replicas": 0}}},
        "k8s.delete": {"kind": "Deployment", "name": "web"},
        "deployment.scale": {"name": "web", "replicas": 0},
    }

    async def main() -> None:
        host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE}).start()
        try:
            for name, args in calls.items():
                msg = error_of(await host.call(name, args))
                assert f"{name} changes workloads and is off" in msg
                assert "allow_destructive = true" in msg and "[plugins.kubernetes]" in msg
                assert "MCP_EDGE_KUBERNETES_ALLOW_DESTRUCTIVE=true" in msg and "auth_policy_file" in msg
            # read-only tools are not refused by the rule: they reach the backend (here: no engine)
            msg = error_of(await host.call("k8s.list", {"kind": "Pod"}))
            assert "cannot reach Podman" in msg and NO_ENGINE in msg
        finally:
            await host.stop()
        # allowed by the config key, or by a configured role policy (the router decided): they reach the backend
        for config, settings in (({"allow_destructive": True}, {}), ({}, {"auth_policy_file": "/etc/policy.toml"})):
            host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE, **config}, **settings).start()
            try:
                for name, args in calls.items():
                    msg = error_of(await host.call(name, args))
                    assert "is off" not in msg, (name, msg)
                    assert "cannot reach Podman" in msg or "Deployment/web not found" in msg, (name, msg)
            finally:
                await host.stop()

    run(main())


def test_backend_choice(workdir: Path) -> None:
    cfg = kubeconfig(workdir / "config")
    home = workdir / "home"
    (home / ".kube").mkdir(parents=True)

    async def choice(config: dict[str, Any], environ: dict[str, str]) -> tuple[str, str]:
        host = await kube_host(workdir, config, environ).start()
        try:
            got: tuple[str, str] = host.plugin.choose_backend()
            return got
        finally:
            await host.stop()

    async def main() -> None:
        # auto: Podman when no kubeconfig is configured or found; its host from $DOCKER_HOST, or the config
        assert await choice({}, {}) == ("podman", "unix:///run/docker.sock")
        assert await choice({}, {"DOCKER_HOST": "unix:///run/podman/podman.sock"}) == \
            ("podman", "unix:///run/podman/podman.sock")
        assert await choice({"host": "unix:///x.sock"}, {"DOCKER_HOST": "unix:///y.sock"}) == ("podman", "unix:///x.sock")
        assert await choice({}, {"HOME": str(home)}) == ("podman", "unix:///run/docker.sock")
        # auto: the API server when a kubeconfig is configured, in $KUBECONFIG, or at ~/.kube/config
        assert await choice({"kubeconfig": str(cfg)}, {}) == ("api", str(cfg))
        assert await choice({}, {"KUBECONFIG": f"{cfg}:/other"}) == ("api", str(cfg))
        (home / ".kube" / "config").write_text(cfg.read_text())
        assert await choice({}, {"HOME": str(home)}) == ("api", str(home / ".kube" / "config"))
        # forced either way
        assert (await choice({"backend": "podman"}, {"KUBECONFIG": str(cfg)}))[0] == "podman"
        host = await kube_host(workdir, {"backend": "api"}, {}).start()
        try:
            msg = error_of(await host.call("k8s.get", {"kind": "Pod", "name": "x"}))
            assert "backend is \"api\" but there is no kubeconfig" in msg
        finally:
            await host.stop()

    run(main())


@pytest.mark.parametrize("case", ["missing", "not yaml", "not a mapping", "no contexts", "no current context",
                                  "unknown context", "missing cluster"])
def test_kubeconfig_errors(workdir: Path, case: str) -> None:
    path = workdir / "kubeconfig"
    config: dict[str, Any] = {"backend": "api", "kubeconfig": str(path)}
    if case == "missing":
        wanted = ["no such file", str(path)]
    elif case == "not yaml":
        path.write_text("clusters: [unclosed\n")
        wanted = ["not valid YAML at line", str(path)]
    elif case == "not a mapping":
        path.write_text("- a\n")
        wanted = ["must be a mapping"]
    elif case == "no contexts":
        path.write_text(json.dumps({"clusters": [{"name": "c", "cluster": {"server": "https://x"}}]}))
        wanted = ["has no contexts"]
    elif case == "no current context":
        kubeconfig(path, current=None)
        wanted = ["no current context", "edge"]
    elif case == "unknown context":
        kubeconfig(path)
        config["context"] = "prod"
        wanted = ["'prod' not found"]
    else:
        data = json.loads(kubeconfig(path).read_text())
        data["clusters"] = [{"name": "other", "cluster": {"server": "https://x"}}]
        path.write_text(json.dumps(data))
        wanted = ["context 'edge' is incomplete or names a missing cluster or user"]

    async def main() -> None:
        host = await kube_host(workdir, config, {}).start()
        try:
            msg = error_of(await host.call("k8s.list", {"kind": "pods"}))
            assert msg.startswith("KubeconfigError: kubeconfig ")
            for w in wanted:
                assert w in msg, msg
        finally:
            await host.stop()

    run(main())


def test_api_backend_validates_before_sending(workdir: Path) -> None:
    """On the API backend too, a bad manifest is refused offline: the server (none listens) is never asked."""
    cfg = kubeconfig(workdir / "config")

    async def main() -> None:
        host = await kube_host(workdir, {"kubeconfig": str(cfg), "allow_destructive": True,
                                         "request_timeout_s": 5}, {}).start()
        try:
            bad = DEPLOYMENT.replace("image: busybox", "image: busybox, imagePullPolicy: Sometimes, bogus: 1")
            msg = error_of(await host.call("k8s.apply", {"manifest": bad}))
            assert "document 1 (Deployment/web)" in msg and "spec.template.spec.containers[0]" in msg
            assert "bogus" in msg
            # a kind Podman cannot run is fine for an API server: it gets past validation and reaches the server
            svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"
            msg = error_of(await host.call("k8s.apply", {"manifest": svc}))
            assert "apply of Service/s: cannot reach the Kubernetes API server" in msg, msg
            assert host.plugin._backend.default_namespace == "apps"  # the context's namespace
            assert "unknown kind 'Widget'" in error_of(await host.call("k8s.get", {"kind": "Widget", "name": "w"}))
        finally:
            await host.stop()

    run(main())


def test_strict_and_version_keys(workdir: Path) -> None:
    extra = DEPLOYMENT.replace("{name: web}", "{name: web, bogus: 1}")

    async def main() -> None:
        host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE, "allow_destructive": True,
                                         "strict": False, "kubernetes_version": "1.25"}).start()
        try:
            assert host.plugin.version == "1.25"
            # not strict: an unknown field passes validation and reaches the backend (no engine here)
            assert "cannot reach Podman" in error_of(await host.call("k8s.apply", {"manifest": extra}))
        finally:
            await host.stop()
        host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE, "allow_destructive": True}).start()
        try:
            assert "bogus" in error_of(await host.call("k8s.apply", {"manifest": extra}))
        finally:
            await host.stop()
        with pytest.raises(Exception, match="no schemas for it here"):
            await kube_host(workdir, {"kubernetes_version": "1.2"}).start()

    run(main())


def test_patch_functions(workdir: Path) -> None:
    async def main() -> None:
        host = await kube_host(workdir, {"host": NO_ENGINE}).start()
        try:
            p = sibling(host, "kube_patch")
        finally:
            await host.stop()
        # RFC 7386's own examples
        assert p.merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
        assert p.merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
        assert p.merge_patch({"a": "b"}, {"a": None}) == {}
        assert p.merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
        assert p.merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
        assert p.merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
        assert p.merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
        # RFC 6902 (examples of its appendix A)
        doc = {"foo": ["bar", "baz"], "biscuits": [{"name": "Digestive"}, {"name": "Choco Leibniz"}]}
        assert p.json_patch(doc, [{"op": "add", "path": "/foo/1", "value": "qux"}])["foo"] == ["bar", "qux", "baz"]
        assert p.json_patch(doc, [{"op": "remove", "path": "/foo/0"}])["foo"] == ["baz"]
        assert p.json_patch(doc, [{"op": "move", "from": "/biscuits/0", "path": "/cookies"}])["cookies"] == \
            {"name": "Digestive"}
        assert p.json_patch(doc, [{"op": "copy", "from": "/biscuits/0", "path": "/best"}])["best"] == \
            {"name": "Digestive"}
        assert p.json_patch({"a/b": 1, "m~n": 2}, [{"op": "replace", "path": "/a~1b", "value": 3},
                                                   {"op": "remove", "path": "/m~0n"}]) == {"a/b": 3}
        assert p.json_patch(doc, [{"op": "add", "path": "/foo/-", "value": "end"}])["foo"][-1] == "end"
        assert doc["foo"] == ["bar", "baz"]  # inputs untouched
        for ops, wanted in (
            ([{"op": "test", "path": "/foo/0", "value": "nope"}], "(test)"),
            ([{"op": "add", "path": "/foo/5", "value": 1}], "out of range"),
            ([{"op": "remove", "path": "/missing"}], "does not exist"),
            ([{"op": "replace", "path": "/missing", "value": 1}], "does not exist"),
            ([{"op": "add", "path": "foo", "value": 1}], "must be empty or start with '/'"),
            ([{"op": "add", "path": "/foo/01", "value": 1}], "not an array index"),
            ([{"op": "frobnicate", "path": "/foo"}], "unknown op"),
            ([{"op": "add", "path": "/x"}], "'value' is missing"),
            ([{"op": "move", "from": "/foo", "path": "/foo/0"}], "into its own child"),
            ({"op": "add"}, "a list of operations"),
        ):
            with pytest.raises(p.PatchError, match=None) as err:
                p.json_patch(doc, ops)
            assert wanted in str(err.value), (ops, str(err.value))
        # strategic merge: lists merged by their keys, directives
        pod = {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}],
                                        "ports": [{"containerPort": 80}], "args": ["-v"]}],
                        "volumes": [{"name": "v", "emptyDir": {}}]}}
        got = p.strategic_merge(pod, {"spec": {"containers": [
            {"name": "a", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}],
             "ports": [{"containerPort": 443}], "args": ["-q"]},
            {"name": "side", "image": "y"}]}})
        c = got["spec"]["containers"]
        assert [x["name"] for x in c] == ["a", "side"]
        assert c[0]["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
        assert [x["containerPort"] for x in c[0]["ports"]] == [80, 443]
        assert c[0]["args"] == ["-q"] and c[0]["image"] == "x"  # a list without merge key is replaced
        got = p.strategic_merge(pod, {"spec": {"containers": [{"name": "a", "$patch": "delete"}],
                                               "volumes": [{"$patch": "replace"}, {"name": "w", "emptyDir": {}}]}})
        assert got["spec"]["containers"] == [] and got["spec"]["volumes"] == [{"name": "w", "emptyDir": {}}]
        got = p.strategic_merge(pod, {"spec": {"$patch": "replace", "containers": []}})
        assert got == {"spec": {"containers": []}}
        got = p.strategic_merge(pod, {"spec": {"containers": [{"name": "a", "$deleteFromPrimitiveList/args": ["-v"]}]}})
        assert got["spec"]["containers"][0]["args"] == []
        got = p.strategic_merge(pod, {"spec": {"volumes": None}})
        assert "volumes" not in got["spec"]
        with pytest.raises(p.PatchError, match="'name' is missing"):
            p.strategic_merge(pod, {"spec": {"containers": [{"image": "z"}]}})
        with pytest.raises(p.PatchError, match="unknown \\$patch directive"):
            p.strategic_merge(pod, {"spec": {"$patch": "explode"}})
        assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]  # inputs untouched

    run(main())


def test_store_survives_corruption(workdir: Path) -> None:
    """An unreadable store file is set aside (not lost) and the backend starts empty."""
    async def main() -> None:
        host = await kube_host(workdir, {"host": NO_ENGINE}).start()
        try:
            podman = sibling(host, "kube_podman")
        finally:
            await host.stop()
        path = workdir / "podman-objects.json"
        store = podman.Store(path, 2)
        await store.put("ConfigMap", "a", {"kind": "ConfigMap", "metadata": {"name": "a"}})
        assert podman.Store(path, 2).get("ConfigMap", "a") == {"kind": "ConfigMap", "metadata": {"name": "a"}}
        await store.put("ConfigMap", "b", {"kind": "ConfigMap", "metadata": {"name": "b"}})
        with pytest.raises(Exception, match="max_objects"):
            store.room_for("ConfigMap", "c")
        store.room_for("ConfigMap", "b")  # replacing one that is kept is fine
        store.room_for("ConfigMap", "b", [("ConfigMap", "a"), ("ConfigMap", "b")])
        await store.drop("ConfigMap", "b")
        with pytest.raises(Exception, match="keeps 1 and this apply adds 2"):  # new ones of one apply add up
            store.room_for("ConfigMap", "c", [("ConfigMap", "c"), ("ConfigMap", "d")])
        await store.put("ConfigMap", "b", {"kind": "ConfigMap", "metadata": {"name": "b"}})
        assert not list(workdir.glob(".objects-*"))  # no temporary file left
        path.write_text("{not json")
        again = podman.Store(path, 2)
        assert again.objects == {} and path.with_suffix(".bad").read_text() == "{not json"

    run(main())


def test_label_selectors(workdir: Path) -> None:
    async def main() -> None:
        host = await kube_host(workdir, {"host": NO_ENGINE}).start()
        try:
            backend = sibling(host, "kube_backend")
            api = sibling(host, "kube_api")
        finally:
            await host.stop()
        assert backend.parse_selector("app=web, tier!=db,debug,!old,x==y") == [
            ("app", "=", "web"), ("tier", "!=", "db"), ("debug", "exists", ""), ("old", "!", ""), ("x", "=", "y")]
        assert backend.parse_selector(None) == [] and backend.parse_selector(" , ") == []
        for bad in ("tier in (a)", "!a=b", "a=b=c", "=x"):
            with pytest.raises(backend.BackendError, match="label selector"):
                backend.parse_selector(bad)
        from lightkube.core.selector import build_selector

        assert build_selector(api._lightkube_selector("app=web,tier!=db,debug,!old")) == \
            "app=web,tier!=db,debug,!old"

    run(main())


def test_yaml_alias_bomb_refused(workdir: Path) -> None:
    """A few hundred bytes of YAML aliases that expand to 10^9 values: refused, not walked."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + \
        "\n".join("  " + line for line in lines) + "\n"

    async def main() -> None:
        host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE, "allow_destructive": True}).start()
        try:
            msg = error_of(await host.call("k8s.apply", {"manifest": bomb}))
            assert "document 1: holds far more values than its text" in msg
        finally:
            await host.stop()

    run(main())


def test_names_that_are_not_path_segments(workdir: Path) -> None:
    """Names travel as path segments of Podman's and the API server's URLs: "..", "/" and the like are refused."""
    from mcp_edge.errors import InvalidArgumentsError

    async def main() -> None:
        host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE, "allow_destructive": True}).start()
        try:
            for args in ({"kind": "Pod", "name": ".."}, {"kind": "Pod", "name": "a/b"}, {"kind": "Pod", "name": ""},
                         {"kind": "Pod", "name": "ok", "namespace": "../x"}, {"kind": "Pod", "name": "x\n"}):
                with pytest.raises(InvalidArgumentsError):
                    await host.call("k8s.get", args)
            with pytest.raises(InvalidArgumentsError):
                await host.call("pod.logs", {"pod": "p", "container": ".."})
            for name in ("..", "a/b", "x%2F", ""):
                text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {json.dumps(name)}}}\n"
                msg = error_of(await host.call("k8s.apply", {"manifest": text}))
                assert "metadata.name" in msg, msg
            text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ..}\n"
            assert "metadata.namespace '..' is not a valid name" in error_of(
                await host.call("k8s.apply", {"manifest": text}))
            with pytest.raises(Exception, match="not an object's URI"):
                await host.read("k8s://default/Pod/%2E%2E")
        finally:
            await host.stop()

    run(main())


def test_service_account_config(workdir: Path) -> None:
    """In a pod with no kubeconfig: the service account's token, CA and namespace, the server from the
    environment (IPv6 in brackets)."""
    account = workdir / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("tok\n")
    (account / "namespace").write_text("edge-apps")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")

    async def main() -> None:
        host = await kube_host(workdir, {"host": NO_ENGINE}).start()
        try:
            api = sibling(host, "kube_api")
        finally:
            await host.stop()
        env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
        assert api.in_cluster(env, account) and not api.in_cluster({}, account)
        assert not api.in_cluster(env, workdir / "nothing")
        cfg = api.service_account_config(env, account)
        assert cfg.cluster.server == "https://[fd00::1]:6443"
        assert cfg.cluster.certificate_auth == str(account / "ca.crt")
        assert cfg.context.namespace == "edge-apps" and cfg.user.token == "tok"

    run(main())


def test_max_objects_counts_the_whole_apply(workdir: Path) -> None:
    three = "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{k: v}}\n"
                    for i in range(3))

    async def main() -> None:
        host = await kube_host(workdir, {"backend": "podman", "host": NO_ENGINE, "allow_destructive": True,
                                         "max_objects": 2}).start()
        try:
            msg = error_of(await host.call("k8s.apply", {"manifest": three}))
            assert "document 1 (ConfigMap/c0)" in msg and "max_objects" in msg and "adds 3" in msg
            assert not (workdir / "podman-objects.json").exists()
        finally:
            await host.stop()

    run(main())
