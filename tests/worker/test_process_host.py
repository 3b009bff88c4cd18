"""ProcessHost: a plugin in a real worker process over real rings; crashes and hangs are real signals."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mcp_edge.board import Settings
from mcp_edge.errors import PluginLoadError, ToolNotFoundError
from mcp_edge.runtime.principal import Principal
from mcp_edge.worker.host import ProcessHost, WorkerLost, WorkerSpec

PLUGIN = Path(__file__).parent / "plugins" / "crashy"


def _settings(**overrides: Any) -> Settings:
    return Settings.load(environ={}, plugin_dirs=(), entry_points=False, **overrides)


class _Ctx:
    """What the runtime gives a host's start(): notifications land here."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def notify_resource_updated(self, uri: str) -> None:
        self.events.append(("resource_updated", uri))

    async def notify_list_changed(self, kind: str) -> None:
        self.events.append(("list_changed", kind))


class _Rctx:
    """A request context as the router makes one: principal, deadline, progress sink."""

    def __init__(self, principal: Principal | None = None, deadline_ns: int | None = None) -> None:
        self.principal = principal
        self.deadline_ns = deadline_ns
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.request_id = 1
        self.protocol_version = "2025-11-25"
        self.stateless = False
        self.client_capabilities: dict[str, Any] = {}
        self.input_responses = None
        self.request_state = None

        class _Req:
            progress_token = "tok"

        self._req = _Req()

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.progress.append((progress, total, message))

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        pass


async def _started(settings: Settings, lost: list[str] | None = None) -> ProcessHost:
    async def on_lost(host: ProcessHost, reason: str) -> None:
        if lost is not None:
            lost.append(reason)

    host = ProcessHost(WorkerSpec("crashy", "python", str(PLUGIN)), settings, on_lost=on_lost)
    await host.load()
    await host.start({}, _Ctx())
    return host


def _json(result: Any) -> Any:
    """A process plugin's result is the JSON the client gets (msgspec.Raw), decoded here to look at."""
    assert isinstance(result, msgspec.Raw)
    return msgspec.json.decode(result)


def _text(result: Any) -> str:
    text: str = _json(result)["content"][0]["text"]
    return text


def test_a_plugin_runs_in_its_own_process_and_answers_every_kind_of_call() -> None:
    async def go() -> None:
        host = ProcessHost(WorkerSpec("crashy", "python", str(PLUGIN)), _settings())
        catalog = await host.load()
        assert {t.name for t in catalog.tools} >= {"say", "crash", "sleep", "whoami"}
        assert [r.uri for r in catalog.resources] == ["crashy://pid"]
        assert [t.uriTemplate for t in catalog.templates] == ["crashy://items/{item}"]
        assert host.version == "1.0.0" and "tools" in host.capabilities
        await host.start({}, _Ctx())
        try:
            assert host.pid != os.getpid() and host.pid > 0
            assert _text(await host.call_tool("say", {"text": "hi"}, _Rctx())) == "hi"
            failed = await host.call_tool("fail", {}, _Rctx())
            assert _json(failed)["isError"] is True and "RuntimeError: it broke" in _text(failed)
            with pytest.raises(ToolNotFoundError, match="unknown tool: nope"):
                await host.call_tool("nope", {}, _Rctx())
            pid_res = await host.read_resource("crashy://pid", None, _Rctx())
            assert _json(pid_res)[0]["text"] == str(host.pid)
            items = await host.read_resource("crashy://items/7", "crashy://items/{item}", _Rctx())
            assert _json(items)[0]["text"] == "item 7"
            rctx = _Rctx()
            assert _text(await host.call_tool("progress", {"steps": 3}, rctx)) == "done"
            await asyncio.sleep(0.05)  # notes are delivered as they come, beside the result
            assert [m for _, _, m in rctx.progress] == ["step 1", "step 2", "step 3"]
        finally:
            await host.stop(5.0)
        assert not host.alive

    asyncio.run(go())


def test_the_principal_and_deadline_travel_as_frame_tlvs() -> None:
    async def go() -> None:
        host = await _started(_settings())
        try:
            who = Principal("uid:1234", "unix-peer", roles=frozenset({"ops"}), pid=77, uid=1234, gid=1234)
            deadline = 10**18
            result = await host.call_tool("whoami", {}, _Rctx(who, deadline))
            assert _json(result)["structuredContent"] == {"pid": host.pid, "principal": "uid:1234", "kind": "unix-peer",
                                                "deadline_ns": deadline}
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_the_worker_ends_a_call_at_its_deadline_and_serves_on() -> None:
    import time

    from mcp_edge.errors import PluginError

    async def go() -> None:
        host = await _started(_settings())
        try:
            # The host sets no timer of its own (the registry's supervision does): the worker's ends this call.
            with pytest.raises(PluginError, match="deadline passed in the plugin"):
                await host.call_tool("sleep", {"seconds": 30}, _Rctx(None, time.monotonic_ns() + 200_000_000))
            # A deadline that does not pass leaves the call alone; one already past ends it at once.
            assert _text(await host.call_tool("sleep", {"seconds": 0.05},
                                              _Rctx(None, time.monotonic_ns() + 20_000_000_000))) == "slept"
            with pytest.raises(PluginError, match="deadline passed in the plugin"):
                await host.call_tool("sleep", {"seconds": 30}, _Rctx(None, time.monotonic_ns() - 1))
            assert host.alive
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_worker_killed_mid_call_fails_its_calls_at_once_and_comes_back() -> None:
    async def go() -> None:
        lost: list[str] = []
        host = await _started(_settings(), lost)
        try:
            first_pid = host.pid
            waiting = asyncio.create_task(host.call_tool("sleep", {"seconds": 30}, _Rctx()))
            await asyncio.sleep(0.1)
            with pytest.raises(WorkerLost, match="was killed by SIGKILL"):
                await host.call_tool("crash", {}, _Rctx())
            with pytest.raises(WorkerLost, match="the call did not finish"):
                await waiting  # not a hang: failed with the crash
            assert lost and "SIGKILL" in lost[0]
            with pytest.raises(WorkerLost, match="not running"):
                await host.call_tool("say", {"text": "x"}, _Rctx())
            await host.restart()
            assert host.pid != first_pid and host.restarts == 1
            assert _text(await host.call_tool("say", {"text": "back"}, _Rctx())) == "back"
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_worker_killed_from_outside_is_found_by_its_pidfd() -> None:
    async def go() -> None:
        lost: list[str] = []
        host = await _started(_settings(), lost)
        try:
            os.kill(host.pid, signal.SIGKILL)
            for _ in range(500):
                if lost:
                    break
                await asyncio.sleep(0.01)
            assert lost == ["was killed by SIGKILL"]
            await host.restart()
            assert _text(await host.call_tool("say", {"text": "ok"}, _Rctx())) == "ok"
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_hung_worker_misses_heartbeats_and_is_killed() -> None:
    async def go() -> None:
        lost: list[str] = []
        host = await _started(_settings(heartbeat_interval_s=0.05, heartbeat_misses=2), lost)
        try:
            with pytest.raises(WorkerLost, match="hung: no heartbeat"):
                await host.call_tool("spin", {"seconds": 60}, _Rctx())
            assert lost and lost[0].startswith("hung")
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_cancelled_call_is_cancelled_in_the_worker_too() -> None:
    async def go() -> None:
        host = await _started(_settings())
        try:
            task = asyncio.create_task(host.call_tool("sleep", {"seconds": 30}, _Rctx()))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _text(await host.call_tool("say", {"text": "still here"}, _Rctx())) == "still here"
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_megabyte_result_crosses_in_one_block() -> None:
    async def go() -> None:
        host = await _started(_settings())
        try:
            result = await host.call_tool("big", {"size": 1 << 20}, _Rctx())
            assert _text(result) == "x" * (1 << 20)
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_plain_def_tools_run_inline_each_in_its_own_context_and_wait_for_room_when_they_must() -> None:
    async def go() -> None:
        host = await _started(_settings())
        try:
            for n in (1, 2, 3):  # what one call set is not what the next one finds
                assert _json(await host.call_tool("stamp", {"n": n}, _Rctx()))["structuredContent"] == {
                    "before": None, "n": n}
            # Nine MiB: more than the worker's four 2 MiB blocks hold at once, so the inline call's answer has
            # to wait for the runtime to take chunks: a task carries it on from there.
            size = 9 << 20
            assert _text(await host.call_tool("big_now", {"size": size}, _Rctx())) == "y" * size
            assert _text(await host.call_tool("say", {"text": "after"}, _Rctx())) == "after"
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_resume_carries_a_started_coroutine_on_in_a_task_with_its_results_and_cancellation() -> None:
    from mcp_edge.worker.main import _resume

    async def wait_on(fut: asyncio.Future[int]) -> str:
        try:
            return f"got {await fut}"
        except asyncio.CancelledError:
            return "cancelled"

    async def yields_bare() -> int:
        await asyncio.sleep(0)
        return 2

    async def go() -> None:
        loop = asyncio.get_running_loop()
        for outcome in ("result", "cancel"):
            fut: asyncio.Future[int] = loop.create_future()
            coro = wait_on(fut)
            waits_on = coro.send(None)
            assert waits_on is fut
            task = loop.create_task(_resume(coro, waits_on))
            await asyncio.sleep(0)
            if outcome == "result":
                fut.set_result(7)
                assert await task == "got 7"
            else:
                task.cancel()
                assert await task == "cancelled" and fut.cancelled()
        coro2 = yields_bare()
        assert coro2.send(None) is None
        assert await loop.create_task(_resume(coro2, None)) == 2

    asyncio.run(go())


def test_runs_inline_names_the_plain_def_handlers() -> None:
    from mcp_edge.plugin.hosts.inproc import InprocHost
    from mcp_edge.plugin.manifest import read_manifest

    async def go() -> None:
        host = InprocHost.from_folder(read_manifest(PLUGIN), init_timeout=10.0)
        assert not host.runs_inline("tool", "stamp")  # not loaded yet: unknown
        await host.load()
        assert host.runs_inline("tool", "stamp") and host.runs_inline("tool", "spin")
        assert not host.runs_inline("tool", "say") and not host.runs_inline("tool", "nope")
        assert not host.runs_inline("resource", "crashy://pid") and not host.runs_inline("complete", "x")

    asyncio.run(go())


def test_a_plugin_that_cannot_load_says_why_and_leaves_no_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plugin.toml").write_text('[plugin]\nid = "bad"\nversion = "1.0.0"\nabi = 1\nmodule = "plugin"\n')
    (bad / "plugin.py").write_text("raise ImportError('no such thing')\n")

    async def go() -> None:
        host = ProcessHost(WorkerSpec("bad", "python", str(bad)), _settings())
        with pytest.raises(PluginLoadError, match="no such thing"):
            await host.load()
        await host.stop(1.0)

    asyncio.run(go())


NATIVE_HELLO = Path(__file__).resolve().parents[2] / "plugins" / "native_hello"


def test_a_native_plugin_runs_in_a_worker() -> None:
    async def go() -> None:
        host = ProcessHost(WorkerSpec("native_hello", "native", str(NATIVE_HELLO)), _settings())
        catalog = await host.load()
        assert {t.name for t in catalog.tools} == {"native_echo", "native_add"}
        await host.start({"prefix": ">"}, _Ctx())
        try:
            assert _text(await host.call_tool("native_echo", {"text": "hi"}, _Rctx())) == ">hi"
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_segfault_in_a_native_plugin_kills_its_worker_not_the_runtime(tmp_path: Path) -> None:
    import shutil
    import subprocess

    folder = tmp_path / "segv"
    folder.mkdir()
    include = Path(__file__).resolve().parents[2] / "plugins" / "include"
    subprocess.run([shutil.which("cc") or "gcc", "-shared", "-fPIC", "-O1", f"-I{include}", "-o",
                    str(folder / "segv.so"), str(PLUGIN.parent / "segv" / "segv.c")], check=True)
    (folder / "plugin.toml").write_text('[plugin]\nid = "segv"\nversion = "1.0.0"\nabi = 1\nlibrary = "segv.so"\n')

    async def go() -> None:
        lost: list[str] = []

        async def on_lost(host: ProcessHost, reason: str) -> None:
            lost.append(reason)

        host = ProcessHost(WorkerSpec("segv", "native", str(folder)), _settings(), on_lost=on_lost)
        await host.load()
        await host.start({}, _Ctx())
        try:
            assert _text(await host.call_tool("ok", {}, _Rctx())) == "fine"
            with pytest.raises(WorkerLost, match="was killed by SIGSEGV"):
                await host.call_tool("segv", {}, _Rctx())
            assert lost == ["was killed by SIGSEGV"]
            await host.restart()
            assert _text(await host.call_tool("ok", {}, _Rctx())) == "fine"
        finally:
            await host.stop(5.0)

    asyncio.run(go())


def test_a_worker_drops_privileges_and_takes_its_limits_before_the_plugin_loads() -> None:
    async def go() -> None:
        host = await _started(_settings(worker_rlimit_nofile=77))
        try:
            got = _json(await host.call_tool("limits", {}, _Rctx()))["structuredContent"]
            assert got == {"nofile": 77, "no_new_privs": True}
        finally:
            await host.stop(5.0)

    asyncio.run(go())


SANDBOXED = '''
import errno, os
from mcp_edge.plugin import PluginBase, tool
class Boxed(PluginBase):
    @tool
    async def peek(self, path: str) -> str:
        try:
            with open(path, "rb") as f:
                f.read(1)
            return "ok"
        except OSError as exc:
            return errno.errorcode[exc.errno]
    @tool
    async def make_dir(self, path: str) -> str:
        try:
            os.mkdir(path)
            return "ok"
        except OSError as exc:
            return errno.errorcode[exc.errno]
'''


def test_a_plugins_sandbox_confines_its_worker(tmp_path: Path) -> None:
    from mcp_edge.system.confine import landlock_status, seccomp_status

    abi, why = landlock_status()
    if abi == 0 or seccomp_status():
        from ci_honesty import require_or_skip

        require_or_skip("landlock", f"this kernel cannot confine a worker: {why or seccomp_status()}")
    folder = tmp_path / "boxed"
    folder.mkdir()
    (folder / "plugin.toml").write_text('[plugin]\nid = "boxed"\nversion = "1.0.0"\nabi = 1\nmodule = "plugin"\n'
                                        'isolation = "process"\n[sandbox]\ndeny_syscalls = ["mkdir"]\n')
    (folder / "plugin.py").write_text(SANDBOXED)
    outside = tmp_path / "secret.txt"
    outside.write_text("no")

    async def go() -> None:
        host = ProcessHost(WorkerSpec("boxed", "python", str(folder)), _settings(data_dir=tmp_path / "data"))
        await host.load()
        await host.start({}, _Ctx())
        try:
            assert _text(await host.call_tool("peek", {"path": str(folder / "plugin.toml")}, _Rctx())) == "ok"
            assert _text(await host.call_tool("peek", {"path": str(outside)}, _Rctx())) == "EACCES"
            assert _text(await host.call_tool("make_dir", {"path": str(tmp_path / "data" / "d")}, _Rctx())) == "EPERM"
        finally:
            await host.stop(5.0)
        assert outside.read_text() == "no" and not (tmp_path / "data" / "d").exists()

    asyncio.run(go())


def test_the_board_profile_sandboxes_a_plugin_that_declares_none(tmp_path: Path) -> None:
    from mcp_edge.board.profiles import load as load_board
    from mcp_edge.system.confine import landlock_status, seccomp_status

    abi, why = landlock_status()
    if abi == 0 or seccomp_status():
        from ci_honesty import require_or_skip

        require_or_skip("landlock", f"this kernel cannot confine a worker: {why or seccomp_status()}")
    folder = tmp_path / "boxed"
    folder.mkdir()
    (folder / "plugin.toml").write_text('[plugin]\nid = "boxed"\nversion = "1.0.0"\nabi = 1\nmodule = "plugin"\n'
                                        'isolation = "process"\n')  # no [sandbox] of its own
    (folder / "plugin.py").write_text(SANDBOXED)
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("other")
    # The board narrows every process plugin (no mkdir) and this one further (reads: its folder, its data).
    profile = tmp_path / "boxy.toml"
    profile.write_text('[identity]\nid = "boxy"\narch = "x86_64"\n'
                       '[sandbox]\ndeny_syscalls = ["mkdir"]\n[sandbox.boxed]\nread = []\nwrite = []\n')
    board = load_board(profile)
    assert board.sandbox["deny_syscalls"] == ["mkdir"]

    async def go() -> None:
        settings = Settings.load(board, environ={}, plugin_dirs=(), entry_points=False, data_dir=tmp_path / "data")
        host = ProcessHost(WorkerSpec("boxed", "python", str(folder)), settings)
        await host.load()
        await host.start({}, _Ctx())
        try:
            assert _text(await host.call_tool("peek", {"path": str(folder / "plugin.toml")}, _Rctx())) == "ok"
            assert _text(await host.call_tool("peek", {"path": str(other / "f")}, _Rctx())) == "EACCES"
            assert _text(await host.call_tool("make_dir", {"path": str(tmp_path / "data" / "d")}, _Rctx())) == "EPERM"
        finally:
            await host.stop(5.0)
        assert not (tmp_path / "data" / "d").exists()

    asyncio.run(go())


def test_a_bad_board_sandbox_fails_the_profile_naming_the_key(tmp_path: Path) -> None:
    from mcp_edge.board.profiles import load as load_board
    from mcp_edge.errors import ConfigError

    profile = tmp_path / "bad.toml"
    profile.write_text('[identity]\nid = "bad"\narch = "x86_64"\n[sandbox]\ndeny_syscalls = ["nosuch"]\n')
    with pytest.raises(ConfigError, match=r"bad.toml: \[sandbox\] deny_syscalls: unknown syscall 'nosuch'"):
        load_board(profile)
