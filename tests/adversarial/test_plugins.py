"""Issue 7, plugins: private helper modules per plugin folder (17), native shutdown and arguments (18),
``True`` is not ``1`` in the config validator (23)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mcp_edge.board import Settings
from mcp_edge.errors import InvalidArgumentsError, PluginError
from mcp_edge.plugin import (
    DefaultPluginContext,
    NullRequestContext,
    PluginState,
    Registry,
    TextContent,
    read_manifest,
)
from mcp_edge.plugin.config import validate

ROOT = Path(__file__).resolve().parents[2]
HEADER_DIR = ROOT / "plugins" / "include"
RCTX = NullRequestContext()
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- 17: each plugin folder is a package of its own ------------------------------------------------------------

HELPER_PLUGIN = '''
import helpers
from helpers import VALUE as FIRST
from mcp_edge.plugin import PluginBase, tool

class P(PluginBase):
    @tool
    async def {id}_value(self) -> str:
        return helpers.value()

    @tool
    async def {id}_late(self) -> str:
        import helpers as late  # an import at call time resolves inside the plugin too
        from sub.inner import NAME
        return FIRST + "/" + late.VALUE + "/" + NAME
'''


def helper_plugin(root: Path, plugin_id: str, value: str) -> Path:
    """A plugin folder whose plugin.py imports its own ``helpers`` and ``sub`` package by plain absolute names."""
    folder = root / plugin_id
    (folder / "sub").mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        f'[plugin]\nid = "{plugin_id}"\nversion = "1.0.0"\nabi = 1\nmodule = "plugin"\n')
    (folder / "plugin.py").write_text(textwrap.dedent(HELPER_PLUGIN.format(id=plugin_id)))
    (folder / "helpers.py").write_text(f"VALUE = {value!r}\n\n\ndef value() -> str:\n    return VALUE\n")
    (folder / "sub" / "__init__.py").write_text("")
    (folder / "sub" / "inner.py").write_text("import helpers\n\nNAME = 'inner of ' + helpers.VALUE\n")
    return folder


def test_plugins_with_same_helper_name_get_their_own(tmp_path: Path) -> None:
    a = helper_plugin(tmp_path, "alpha", "from alpha")
    b = helper_plugin(tmp_path, "beta", "from beta")
    before = set(sys.modules)
    reg = Registry([tmp_path], entry_points=False)
    run(reg.start())
    try:
        for pid in ("alpha", "beta"):
            rec = reg.get(pid)
            assert rec is not None and rec.state is PluginState.ACTIVE, rec and rec.reason
        alpha = run(reg.call_tool("alpha_value", {}, RCTX))
        beta = run(reg.call_tool("beta_value", {}, RCTX))
        assert alpha.content == [TextContent(text="from alpha")]
        assert beta.content == [TextContent(text="from beta")]
        late = run(reg.call_tool("beta_late", {}, RCTX))
        assert late.content == [TextContent(text="from beta/from beta/inner of from beta")]
        new = set(sys.modules) - before
        assert not {"helpers", "sub", "sub.inner", "plugin"} & new, "a plugin's module became a top-level module"
        assert str(a) not in sys.path and str(b) not in sys.path
    finally:
        run(reg.stop())


def test_package_plugin_imports_relatively_and_absolutely(tmp_path: Path) -> None:
    folder = tmp_path / "pkgplug"
    (folder / "plugin").mkdir(parents=True)
    (folder / "plugin.toml").write_text('[plugin]\nid = "pkgplug"\nversion = "1.0.0"\nabi = 1\nmodule = "plugin"\n')
    (folder / "helpers.py").write_text("VALUE = 'folder helper'\n")
    (folder / "plugin" / "inner.py").write_text("VALUE = 'inner'\n")
    (folder / "plugin" / "__init__.py").write_text(textwrap.dedent('''
        import helpers
        from . import inner
        from mcp_edge.plugin import PluginBase, tool

        class P(PluginBase):
            @tool
            async def pkg_value(self) -> str:
                return helpers.VALUE + "+" + inner.VALUE
    '''))
    reg = Registry([tmp_path], entry_points=False)
    run(reg.start())
    try:
        rec = reg.get("pkgplug")
        assert rec is not None and rec.state is PluginState.ACTIVE, rec and rec.reason
        assert run(reg.call_tool("pkg_value", {}, RCTX)).content == [TextContent(text="folder helper+inner")]
    finally:
        run(reg.stop())


def test_two_generations_side_by_side_then_purged(tmp_path: Path) -> None:
    from mcp_edge.plugin.loader import class_from_folder, purge

    folder = helper_plugin(tmp_path, "gen", "old")
    manifest = read_manifest(folder)
    old_cls, old_pkg = class_from_folder(manifest)
    (folder / "helpers.py").write_text("VALUE = 'the new one'\n\n\ndef value() -> str:\n    return VALUE\n")
    new_cls, new_pkg = class_from_folder(manifest)
    assert old_pkg != new_pkg and old_pkg.startswith("mcp_edge_plugins.gen.g")
    assert old_cls is not new_cls
    old_helpers, new_helpers = sys.modules[f"{old_pkg}.helpers"], sys.modules[f"{new_pkg}.helpers"]
    assert old_helpers is not new_helpers
    assert (old_helpers.VALUE, new_helpers.VALUE) == ("old", "the new one")
    assert run(old_cls().gen_value()) == "old" and run(new_cls().gen_value()) == "the new one"

    removed = purge(old_pkg)
    assert f"{old_pkg}.helpers" in removed and f"{old_pkg}.plugin" in removed
    assert not [name for name in sys.modules if name == old_pkg or name.startswith(old_pkg + ".")]
    assert sys.modules[f"{new_pkg}.helpers"] is new_helpers
    purge(new_pkg)
    assert not [name for name in sys.modules if name.startswith(new_pkg)]


def test_registry_stop_purges_its_plugin_packages(tmp_path: Path) -> None:
    helper_plugin(tmp_path, "tidy", "x")
    reg = Registry([tmp_path], entry_points=False)
    run(reg.start())
    rec = reg.get("tidy")
    assert rec is not None and rec.state is PluginState.ACTIVE, rec and rec.reason
    package = type(rec.plugin).__module__.rpartition(".")[0]
    assert f"{package}.helpers" in sys.modules
    run(reg.stop())
    assert not [name for name in sys.modules if name.startswith(package)]


def test_failed_import_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = helper_plugin(tmp_path, "broken", "x")
    (folder / "plugin.py").write_text("import helpers\nraise ImportError('no smbus here')\n")
    before = set(sys.modules)
    reg = Registry([tmp_path], entry_points=False)
    run(reg.start())
    rec = reg.get("broken")
    assert rec is not None and rec.state is PluginState.FAILED
    assert "no smbus here" in str(rec.reason)
    assert not [name for name in set(sys.modules) - before if name.startswith("mcp_edge_plugins.broken.")]


# --- 18: native plugins --------------------------------------------------------------------------------------

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")

# ``slow`` sleeps (x-blocking, so in a worker thread), then reports whether its state was shut down under it;
# ``shutdown`` marks the state dead instead of freeing it, so the test sees a use-after-free without crashing.
# ``count`` is declared with an integer argument; ``calls`` says how often C's call_tool ran for ``count``.
LIFECYCLE = r"""
    #define _POSIX_C_SOURCE 200809L
    #include <errno.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <time.h>
    #include "mcp_edge_plugin.h"
    struct st { int alive; };
    static struct st the_state;
    static int counted;
    static int init(const char *config, void **state) {
        (void)config; the_state.alive = 1; *state = &the_state; return 0;
    }
    static void shutdown(void *state) { ((struct st *)state)->alive = 0; }
    static int reply(const char *text, char **out, size_t *len) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "{\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}", text);
        *out = malloc((size_t)n + 1);
        memcpy(*out, buf, (size_t)n + 1);
        *len = (size_t)n;
        return 0;
    }
    static int call(void *state, const char *name, const char *a, size_t n, char **out, size_t *len) {
        (void)a; (void)n;
        struct st *s = state;
        if (s == NULL) return reply("called without its state", out, len);
        if (strcmp(name, "slow") == 0) {
            struct timespec ts = {0, 400 * 1000 * 1000};
            nanosleep(&ts, NULL);
            return reply(s->alive ? "alive" : "shut down under me", out, len);
        }
        if (strcmp(name, "count") == 0) { counted++; return reply("counted", out, len); }
        if (strcmp(name, "calls") == 0) {
            char num[32];
            snprintf(num, sizeof num, "%d", counted);
            return reply(num, out, len);
        }
        return -ENOENT;
    }
    static void release(char *p) { free(p); }
    static const struct mcp_edge_plugin_v1 T = {
        .abi_version = MCP_EDGE_PLUGIN_ABI, .id = "lifecycle",
        .tools_json = "[{\"name\":\"slow\",\"inputSchema\":{\"type\":\"object\"},\"x-blocking\":true},"
                      "{\"name\":\"count\",\"inputSchema\":{\"type\":\"object\",\"properties\":"
                      "{\"n\":{\"type\":\"integer\",\"minimum\":0},\"mode\":{\"enum\":[\"a\",\"b\"]}},"
                      "\"required\":[\"n\"],\"additionalProperties\":false}},"
                      "{\"name\":\"calls\",\"inputSchema\":{\"type\":\"object\"}}]",
        .init = init, .shutdown = shutdown, .call_tool = call, .free_result = release};
    MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void) { return &T; }
"""


def native_folder(root: Path, plugin_id: str, source: str) -> Path:
    folder = root / plugin_id
    folder.mkdir()
    (folder / f"{plugin_id}.c").write_text(textwrap.dedent(source))
    proc = subprocess.run(
        ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-fPIC", "-shared",
         f"-I{HEADER_DIR}", "-o", str(folder / f"{plugin_id}.so"), str(folder / f"{plugin_id}.c")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (folder / "plugin.toml").write_text(
        f'[plugin]\nid = "{plugin_id}"\nversion = "0.1.0"\nabi = 1\nlibrary = "{plugin_id}.so"\n')
    return folder


def lifecycle_registry(tmp_path: Path, drain_s: float) -> Registry:
    native_folder(tmp_path, "lifecycle", LIFECYCLE)
    settings = Settings.load(environ={}, native_drain_s=drain_s)
    reg = Registry([tmp_path], entry_points=False, isolation={"lifecycle": "inproc"},  # the in-process host's drain
                   context_factory=lambda pid, config: DefaultPluginContext(pid, settings=settings, config=config))
    run(reg.start())
    rec = reg.get("lifecycle")
    assert rec is not None and rec.state is PluginState.ACTIVE, rec and rec.reason
    return reg


async def stop_during_slow_call(reg: Registry) -> tuple[Any, list[BaseException]]:
    """Start ``slow`` in its thread, stop the registry while it runs; (the call's result, errors of late calls)."""
    host = reg.get("lifecycle").host  # type: ignore[union-attr]
    handler, instance = host.table.tools["slow"], host.plugin  # type: ignore[union-attr]
    started = threading.Event()
    real = instance.call_raw

    def spy(name: bytes, args: bytes) -> tuple[int, bytes]:
        started.set()
        return real(name, args)  # type: ignore[no-any-return]

    instance.call_raw = spy
    call = asyncio.ensure_future(handler.call(instance, {}, RCTX))
    assert await asyncio.to_thread(started.wait, 10.0)
    stopping = asyncio.ensure_future(reg.stop())
    await asyncio.sleep(0.05)
    late: list[BaseException] = []
    try:
        await handler.call(instance, {}, RCTX)  # a new call while it drains: refused, C not called
    except PluginError as exc:
        late.append(exc)
    result = await call
    await stopping
    return result, late


@needs_cc
def test_native_shutdown_waits_for_running_calls(tmp_path: Path) -> None:
    reg = lifecycle_registry(tmp_path, drain_s=30.0)
    result, late = run(stop_during_slow_call(reg))
    assert result.content == [TextContent(text="alive")]
    assert len(late) == 1 and "shutting down" in str(late[0])
    rec = reg.get("lifecycle")
    assert rec is not None and rec.state is PluginState.STOPPED, rec.reason


@needs_cc
def test_native_shutdown_past_the_drain_is_skipped_not_run_under_the_call(tmp_path: Path) -> None:
    reg = lifecycle_registry(tmp_path, drain_s=0.05)
    result, _ = run(stop_during_slow_call(reg))
    assert result.content == [TextContent(text="alive")]  # its state was not shut down under it
    rec = reg.get("lifecycle")
    assert rec is not None and rec.state is PluginState.FAILED
    assert "still running after 0.05 s" in str(rec.reason) and "shutdown skipped" in str(rec.reason)


@needs_cc
def test_native_arguments_are_checked_before_c(tmp_path: Path) -> None:
    reg = lifecycle_registry(tmp_path, drain_s=1.0)
    try:
        bad: list[tuple[dict[str, Any] | None, str]] = [
            ({}, "n: is required"),
            (None, "n: is required"),
            ({"n": "1"}, "n: expected integer, got string '1'"),
            ({"n": True}, "n: expected integer, got boolean True"),
            ({"n": -1}, "n: must be at least 0"),
            ({"n": 1, "mode": "c"}, "mode: must be one of 'a', 'b'"),
            ({"n": 1, "extra": 2}, "extra: is not a known key"),
        ]
        for args, message in bad:
            with pytest.raises(InvalidArgumentsError, match="invalid arguments for tool 'count'") as info:
                run(reg.call_tool("count", args, RCTX))
            assert message in str(info.value)
            assert info.value.code == -32602
        calls = run(reg.call_tool("calls", {}, RCTX))
        assert calls.content == [TextContent(text="0")]  # C never saw a bad argument
        ok = run(reg.call_tool("count", {"n": 2, "mode": "b"}, RCTX))
        assert ok.content == [TextContent(text="counted")]
        assert run(reg.call_tool("calls", {}, RCTX)).content == [TextContent(text="1")]
    finally:
        run(reg.stop())


# --- 23: the config validator's enum and const ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "schema"), [
    (True, {"enum": [1]}),
    (1, {"enum": [True]}),
    (False, {"enum": [0]}),
    (0, {"enum": [False]}),
    (True, {"const": 1}),
    (1, {"const": True}),
    (0, {"const": False}),
    (False, {"const": 0}),
    ([True], {"const": [1]}),
    ({"a": 0}, {"enum": [{"a": False}]}),
    (1, {"enum": ["1"]}),
])
def test_booleans_are_not_numbers_in_enum_and_const(value: Any, schema: dict[str, Any]) -> None:
    assert validate(value, schema) is not None


@pytest.mark.parametrize(("value", "schema"), [
    (True, {"enum": [True, 1]}),
    (1, {"enum": [True, 1]}),
    (1.0, {"const": 1}),
    ([1, {"b": False}], {"const": [1.0, {"b": False}]}),
    (None, {"enum": [None]}),
])
def test_equal_json_values_still_match(value: Any, schema: dict[str, Any]) -> None:
    assert validate(value, schema) is None
