"""The lifecycle table (and the page generated from it) and the catalog: plain data, routing, collisions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from mcp_edge.errors import PluginError, PluginLoadError
from mcp_edge.plugin.catalog import Catalog, PluginCatalog
from mcp_edge.plugin.lifecycle import TRANSITIONS, PluginState, move, render_dot, render_mermaid
from mcp_edge.plugin.types import PromptDef, ResourceDef, ResourceTemplateDef, ToolAnnotations, ToolDef

ROOT = Path(__file__).resolve().parents[2]
S = PluginState


def test_the_lifecycle_page_is_generated_from_the_table() -> None:
    page = subprocess.run([sys.executable, "-m", "mcp_edge.plugin.lifecycle"], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout
    assert (ROOT / "docs" / "plugin-lifecycle.md").read_text() == page, \
        "docs/plugin-lifecycle.md is stale: python -m mcp_edge.plugin.lifecycle > docs/plugin-lifecycle.md"


def test_every_state_has_a_row_and_every_move_is_drawn() -> None:
    assert set(TRANSITIONS) == set(PluginState)
    mermaid, dot = render_mermaid(), render_dot()
    for state, nexts in TRANSITIONS.items():
        for target in nexts:
            assert f"{state.value} --> {target.value}:" in mermaid
            assert f'"{state.value}" -> "{target.value}"' in dot


@pytest.mark.parametrize(("a", "b"), [(a, b) for a in S for b in TRANSITIONS[a]])
def test_moves_in_the_table_are_allowed(a: PluginState, b: PluginState) -> None:
    assert move("p", a, b) is b


@pytest.mark.parametrize(("a", "b"), [(a, b) for a in S for b in S if b not in TRANSITIONS[a]])
def test_moves_not_in_the_table_are_refused(a: PluginState, b: PluginState) -> None:
    with pytest.raises(PluginError, match=f"plugin p: no transition {a.value} -> {b.value}"):
        move("p", a, b)


def test_failed_and_stopped_are_not_final_and_workers_restart_and_reload() -> None:
    assert S.RESTARTING in TRANSITIONS[S.FAILED] and S.LOADED in TRANSITIONS[S.STOPPED]
    assert {S.RESTARTING, S.RELOADING} <= set(TRANSITIONS[S.ACTIVE])
    assert S.ACTIVE in TRANSITIONS[S.RESTARTING] and S.ACTIVE in TRANSITIONS[S.RELOADING]


def _offer(tag: str, *, templates: tuple[str, ...] = ()) -> PluginCatalog:
    return PluginCatalog(
        tools=[ToolDef(name=f"{tag}_tool", inputSchema={"type": "object"},
                       annotations=ToolAnnotations(readOnlyHint=True))],
        resources=[ResourceDef(uri=f"{tag}://fixed", name=f"{tag} fixed")],
        templates=[ResourceTemplateDef(uriTemplate=t, name=t) for t in templates],
        prompts=[PromptDef(name=f"{tag}_prompt")],
        completions=[("prompt", f"{tag}_prompt", "style")],
    )


def test_a_catalog_is_plain_data_that_survives_msgpack() -> None:
    offer = _offer("a", templates=("a://items/{id}",))
    again = PluginCatalog.decode(offer.encode())
    assert again == offer and again.kinds() == {"tools", "resources", "prompts", "completions"}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.tools\[0\]"):
        PluginCatalog.decode(msgspec.msgpack.encode({"tools": [{"name": 3}]}))


def test_routing_by_owner_and_collisions_name_both_plugins() -> None:
    cat = Catalog()
    cat.add("a", _offer("a"))
    cat.add("b", _offer("b"))
    assert (cat.tool_owner("a_tool"), cat.tool_owner("b_tool"), cat.tool_owner("x")) == ("a", "b", None)
    assert cat.prompt_owner("b_prompt") == "b" and cat.resource_owner("a://fixed") == "a"
    assert [t.name for t in cat.tools()] == ["a_tool", "b_tool"]
    clash = PluginCatalog(tools=[ToolDef(name="a_tool", inputSchema={})])
    with pytest.raises(PluginLoadError, match="tool 'a_tool' of plugin c collides with plugin a's"):
        cat.add("c", clash)
    assert "c" not in cat and [t.name for t in cat.tools()] == ["a_tool", "b_tool"]


def test_the_most_specific_template_wins() -> None:
    cat = Catalog()
    cat.add("wide", _offer("w", templates=("files://{+path}",)))
    cat.add("narrow", _offer("n", templates=("files://logs/{name}",)))
    assert cat.match("files://logs/syslog") == ("narrow", "files://logs/{name}")
    assert cat.match("files://etc/hosts") == ("wide", "files://{+path}")
    assert cat.match("other://x") is None


def test_replace_swaps_a_plugins_offer_and_says_which_lists_changed() -> None:
    cat = Catalog()
    cat.add("a", _offer("a"))
    cat.add("b", _offer("b"))
    assert cat.replace("a", _offer("a")) == set()  # a restarted worker with the same offer
    grown = _offer("a")
    grown.tools.append(ToolDef(name="a_new", inputSchema={"type": "object"}))
    assert cat.replace("a", grown) == {"tools"}
    assert cat.tool_owner("a_new") == "a"
    with pytest.raises(PluginLoadError, match="collides with plugin b's"):
        cat.replace("a", _offer("b"))
    assert cat.tool_owner("a_new") == "a"  # nothing changed on the collision
    assert cat.remove("a") is not None and cat.tool_owner("a_tool") is None and cat.remove("a") is None
