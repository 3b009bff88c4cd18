"""What ``mcp-edge board list/show/detect`` print (the click commands in mcp_edge.commands call these)."""

from __future__ import annotations

from typing import Any

from mcp_edge.board.profiles import Board, Facts, Fit

__all__ = ["board_dict", "detect_dict", "render_detect", "render_list", "render_show"]


def board_dict(b: Board) -> dict[str, Any]:
    """A resolved profile as JSON-ready data: its tables, the chain and files, and derived figures."""
    return {"id": b.id, "chain": list(b.chain), "files": [str(f) for f in b.files], "tables": b.tables,
            "derived": _derived(b)}


def _derived(b: Board) -> dict[str, Any]:
    """Figures the runtime derives from the profile: the slab arena it pre-faults, the interpreter."""
    from mcp_edge.board.settings import field_default, parse_value

    sizes = parse_value("slab_sizes", b.settings.get("slab_sizes", list(field_default("slab_sizes"))), "profile")
    counts = parse_value("slab_counts", b.settings.get("slab_counts", list(field_default("slab_counts"))), "profile")
    arena = sum(s * c for s, c in zip(sizes, counts, strict=False))
    return {"slab_arena_bytes": arena, "interpreter": b.interpreter,
            "io_engine": b.settings.get("io_engine", "auto")}


def render_list(boards: list[Board]) -> str:
    rows = [("id", "arch", "level", "extends", "name")]
    for b in sorted(boards, key=lambda x: (x.arch, x.id)):
        rows.append((b.id, b.arch, b.cpu.expected_level, " -> ".join(b.chain[:-1]) or "-", b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows)


def render_show(b: Board) -> str:
    d = _derived(b)
    head = [f"# {b.id}: {b.description}", f"# resolved: {' -> '.join(b.chain)}"]
    head += [f"#   {f}" for f in b.files]
    head.append(f"# derived: slab arena {d['slab_arena_bytes'] / 1048576:.2f} MiB per NUMA node, I/O engine "
                f"{d['io_engine']}, bundle interpreter {d['interpreter']}")
    body = b.to_toml().split("\n", 1)[1]
    return "\n".join(head) + "\n\n" + body


def detect_dict(facts: Facts, ranked: list[Fit], picked: Board) -> dict[str, Any]:
    return {"picked": picked.id, "why": picked.picked,
            "facts": {"arch": facts.arch, "dt_model": facts.dt_model, "dmi_product": facts.dmi_product,
                      "cpu_model": facts.cpu_model, "features": sorted(facts.features)},
            "candidates": [{"id": f.board.id, "fits": f.fits, "priority": f.board.match.priority,
                            "reasons": list(f.reasons)} for f in ranked]}


def render_detect(facts: Facts, ranked: list[Fit], picked: Board) -> str:
    lines = [f"this machine: {facts.arch}; device-tree model {facts.dt_model or '(none)'!r}; "
             f"DMI product {facts.dmi_product or '(none)'!r}; CPU {facts.cpu_model or '(unnamed)'!r}; "
             f"features {', '.join(sorted(facts.features)) or 'none'}",
             f"picked {picked.id}: {picked.picked}"]
    others = [f for f in ranked if f.board.id != picked.id]
    if others:
        lines.append("others:")
        for f in others:
            verdict = "fits, ranked lower" if f.fits else "does not fit"
            lines.append(f"  {f.board.id}: {verdict} ({'; '.join(f.reasons)})")
    return "\n".join(lines)
