"""The click commands of ``mcp-edge`` (all but a well-formed ``serve``, which :mod:`mcp_edge.cli` parses itself)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mcp_edge.errors import IndexRefused, McpEdgeError

if TYPE_CHECKING:
    from mcp_edge.runtime.auth import ApiKeys

__all__ = ["cli"]


def _fail(exc: Exception) -> None:
    click.echo(f"mcp-edge: {exc}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mcp-edge", prog_name="mcp-edge")
def cli() -> None:
    """mcp_edge: an MCP runtime for edge appliances."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder whose filesystem is probed for O_DIRECT (default: $MCP_EDGE_DATA_DIR or the board's).",
)
def doctor(as_json: bool, data_dir: Path | None) -> None:
    """Report the CPU features, ISA level, io_uring, O_DIRECT, hugepages and NUMA of this box."""
    try:
        from mcp_edge.doctor import collect, render

        report = collect(data_dir)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps(report, indent=2) if as_json else render(report))


@cli.group()
def board() -> None:
    """Board profiles: list them, show one resolved, detect this box's, check this box against one."""


@board.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def board_list(as_json: bool) -> None:
    """Every profile found (boards folders, first of each id), with its architecture, level and base."""
    try:
        from mcp_edge.board.profiles import load_all
        from mcp_edge.board.report import board_dict, render_list

        boards = load_all()
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps([board_dict(b) for b in boards], indent=2) if as_json else render_list(boards))


@board.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved profile as JSON.")
def board_show(name: str, as_json: bool) -> None:
    """Profile NAME resolved: its bases merged in (the chain shown) and derived figures, as TOML."""
    try:
        from mcp_edge.board.profiles import resolve
        from mcp_edge.board.report import board_dict, render_show

        b = resolve(name)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps(board_dict(b), indent=2) if as_json else render_show(b))


@board.command("detect")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def board_detect(as_json: bool) -> None:
    """Which profile fits this machine, and why (and why not the others)."""
    try:
        from mcp_edge.board.profiles import Facts, detect, fits, load_all
        from mcp_edge.board.report import detect_dict, render_detect

        facts = Facts.here()
        picked = detect(facts=facts)
        ranked = fits(facts, load_all())
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps(detect_dict(facts, ranked, picked), indent=2) if as_json
               else render_detect(facts, ranked, picked))


@board.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder probed for O_DIRECT (default: the profile's data_dir).")
def board_check(name: str, as_json: bool, data_dir: Path | None) -> None:
    """Does this machine satisfy profile NAME? Each check pass, warn or fail with the reason; exit 1 on a fail."""
    try:
        from mcp_edge.board.check import Machine, check, render
        from mcp_edge.board.profiles import resolve

        b = resolve(name)
        checks = check(b, Machine.here(data_dir or b.data_dir))
    except McpEdgeError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"board": b.id, "chain": list(b.chain), "checks": [c.as_dict() for c in checks],
                               "ok": not any(c.status == "fail" for c in checks)}, indent=2))
    else:
        click.echo(render(b, checks))
    sys.exit(1 if any(c.status == "fail" for c in checks) else 0)


@cli.group()
def perf() -> None:
    """Benchmarks against peers, in one run, as ratios."""


@perf.command("run")
@click.option("--only", default=None, help="Comma-separated bench names (default: all).")
@click.option("--quick", is_flag=True, help="Shorter runs: for smoke tests, not for figures.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the results (DESIGN.md format).")
@click.option("--bench-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of bench_*.py files (default: ./perf, the checkout's, or the installed one).")
@click.option("--board", default=None, metavar="NAME",
              help="The board profile recorded in the results' fingerprint (default: the detected one).")
@click.option("--profile", is_flag=True,
              help="Record a py-spy flame graph of our server in the MCP bench (<json stem>.flame.svg).")
def perf_run(only: str | None, quick: bool, json_path: Path, bench_dir: Path | None, board: str | None,
             profile: bool) -> None:
    """Run the benchmarks and write their results as JSON."""
    try:
        from mcp_edge.perf import format_table, run

        names = [n.strip() for n in only.split(",") if n.strip()] if only else None
        result = run(only=names, quick=quick, json_path=json_path, bench_dir=bench_dir, progress=True,
                     board=board, profile=profile)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(format_table(result))
    click.echo(f"results written to {json_path}")


@perf.command("compare")
@click.argument("base", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def perf_compare(base: Path, new: Path, as_json: bool) -> None:
    """Compare two runs row by row; exit 1 on a regression beyond the noise (the rule is printed)."""
    try:
        from mcp_edge.perf.regression import compare_results, format_comparison, load_result

        comparison = compare_results(load_result(base), load_result(new))
    except McpEdgeError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(comparison.as_dict(), indent=1))
    else:
        click.echo(format_comparison(comparison))
    sys.exit(1 if comparison.regressions else 0)


@perf.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for report.md, report.html and the PNG plots (created if missing).")
def perf_report(runs: tuple[Path, ...], out: Path) -> None:
    """Write a Markdown and a self-contained HTML report with plots of one run (or one row per board of several)."""
    try:
        from mcp_edge.perf.document import write_report
        from mcp_edge.perf.regression import load_result

        files = write_report([(str(path), load_result(path)) for path in runs], out)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(f"report written to {out}: {', '.join(p.name for p in files)}")


@cli.command()
@click.option("--stdio", is_flag=True, help="Serve one client on stdin/stdout (what desktop MCP clients spawn).")
@click.option("--http", "http_", is_flag=True, help="Serve Streamable HTTP at /mcp (the default).")
@click.option("--unix", "unix_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Serve newline-delimited JSON-RPC on a unix socket at PATH (mode 0600).")
@click.option("--host", default=None, help="HTTP address to bind (default: $MCP_EDGE_HTTP_HOST or 127.0.0.1).")
@click.option("--port", default=None, help="HTTP port, 0 for any free one (default: $MCP_EDGE_HTTP_PORT or 8765).")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Override one setting (repeatable); `mcp-edge doctor` lists them all.")
@click.option("--board", default=None, metavar="NAME",
              help="The board profile to run with (default: detected; `mcp-edge board detect` says why).")
def serve(stdio: bool, http_: bool, unix_path: Path | None, host: str | None, port: str | None, quiet: bool,
          sets: tuple[str, ...], board: str | None) -> None:
    """Load the plugins and serve MCP: Streamable HTTP on 127.0.0.1 unless told otherwise."""
    from mcp_edge.cli import run_serve

    run_serve(stdio=stdio, http=http_, unix_path=unix_path, host=host, port=port, quiet=quiet, sets=list(sets),
              board=board)


@cli.group()
def plugins() -> None:
    """The plugins this box would run."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
@click.option("--plugin-dir", "plugin_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Search this folder instead of $MCP_EDGE_PLUGIN_DIRS and the board's (repeatable).")
@click.option("--no-entry-points", is_flag=True, help="Leave out plugins installed as distributions.")
@click.option("--no-init", is_flag=True, help="Load the plugins but do not initialize them.")
def plugins_list(as_json: bool, plugin_dirs: tuple[Path, ...], no_entry_points: bool, no_init: bool) -> None:
    """Discover, load and start the plugins, then show each one's state, reason and times."""
    try:
        from mcp_edge.plugin.cli import list_plugins, render_plugins

        rows = list_plugins(list(plugin_dirs) or None, entry_points=not no_entry_points, init=not no_init)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps(rows, indent=2) if as_json else render_plugins(rows))


_INDEX_OPT = click.option("--index", "index_src", default=None, metavar="URL|PATH",
                          help="The plugin index to read (default: the plugin_index setting).")


@cli.group()
def plugin() -> None:
    """Plugins from the signed plugin index (docs/plugin-index.md): search, info, install, update, remove,
    verify; and for authors, sign."""


@plugin.command("search")
@click.argument("text", default="")
@_INDEX_OPT
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def plugin_search(text: str, index_src: str | None, as_json: bool) -> None:
    """Plugins of the index (newest version this box runs) whose id or description holds TEXT."""
    try:
        from mcp_edge.index.cli import installer, render_entries

        click.echo(render_entries(installer(index_src).search(text), as_json))
    except McpEdgeError as exc:
        _fail(exc)


@plugin.command("info")
@click.argument("plugin_id")
@_INDEX_OPT
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def plugin_info(plugin_id: str, index_src: str | None, as_json: bool) -> None:
    """Every version of PLUGIN_ID the index lists (architecture, ABI, size, SHA-256) and what is installed."""
    try:
        from mcp_edge.index.cli import installer

        box = installer(index_src)
        index = box.refresh()
        entries = index.versions_of(plugin_id)
        if not entries:
            raise IndexRefused(f"the index (version {index.version}) lists no plugin {plugin_id}")
        have = box.state.installed().get(plugin_id)
    except McpEdgeError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"index_version": index.version, "installed": have,
                               "versions": [dict(e.as_dict(), fits=e.fits(box.arch)) for e in entries]}, indent=2))
        return
    click.echo(f"{plugin_id}: {entries[0].description}")
    click.echo(f"installed: {have['version'] if have else 'no'}")
    for e in entries:
        click.echo(f"  {e.version}\t{e.kind} abi {e.abi}\t{e.arch}\t{e.size} bytes\tsha256:{e.sha256[:16]}"
                   f"{'' if e.fits(box.arch) else chr(9) + '(not for this box)'}")


@plugin.command("install")
@click.argument("specs", nargs=-1, required=True, metavar="ID[==VERSION]...")
@_INDEX_OPT
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def plugin_install(specs: tuple[str, ...], index_src: str | None, as_json: bool) -> None:
    """Download, verify and install plugins into <data_dir>/plugins (the newest version this box runs, or the
    one named); a running server loads a new plugin at once (its folder watcher, or SIGHUP)."""
    from mcp_edge.index.cli import installer, render_changes, split_spec

    try:
        box = installer(index_src)
        index = box.refresh()
        changes = [c for c in (box.install(*split_spec(s), index=index) for s in specs) if c is not None]
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    click.echo(render_changes(changes, as_json, "already installed"))


@plugin.command("update")
@click.argument("plugin_ids", nargs=-1)
@_INDEX_OPT
@click.option("--auto", "auto", is_flag=True,
              help="For a timer: update every installed plugin; without a plugin_index, do nothing (exit 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def plugin_update(plugin_ids: tuple[str, ...], index_src: str | None, auto: bool, as_json: bool) -> None:
    """Update installed plugins (default: all) to the newest version the index offers for this box; a running
    server reloads them (its folder watcher, or SIGHUP)."""
    from mcp_edge.index.cli import installer, render_changes

    try:
        box = installer(index_src)
        if auto and not box.source:
            click.echo("mcp-edge: no plugin_index set: nothing to update", err=True)
            return
        changes = box.update(list(plugin_ids) or None)
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    click.echo(render_changes(changes, as_json, "up to date"))


@plugin.command("remove")
@click.argument("plugin_id")
def plugin_remove(plugin_id: str) -> None:
    """Remove a plugin installed from the index (a running server stops it once its running calls finish)."""
    from mcp_edge.index.cli import installer

    try:
        change = installer("").remove(plugin_id)
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    click.echo(str(change))


@plugin.command("verify")
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def plugin_verify(target: str | None, as_json: bool) -> None:
    """Check installed plugins (TARGET an id, or all) against what the signed index installed, or an artifact
    file TARGET against its .sig and the last trusted index. Exit 1 when one fails."""
    from mcp_edge.index.cli import installer, render_rows

    try:
        box = installer("")
        if target is not None and ("/" in target or target.endswith(".tar.gz")):
            row = box.verify_artifact(Path(target))
            click.echo(json.dumps(row, indent=2) if as_json else f"{target}: OK ("
                       + ", ".join(f"{k} {row[k]}" for k in ("signed_by", "index") if k in row) + ")")
            return
        rows = box.verify(target)
    except IndexRefused as exc:
        click.echo(f"mcp-edge: {exc}", err=True)
        sys.exit(1)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(render_rows(rows, as_json, lambda r: f"{r['id']}\t{r['version']}\t"
                                                   f"{'OK' if r['ok'] else 'FAILED'}\t{r['reason']}")
               if rows else "no plugin installed from the index")
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


@plugin.command("sign")
@click.argument("artifact", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True,
              help="The publisher's Ed25519 private key (PEM; mcp-edge index keygen makes one).")
def plugin_sign(artifact: Path, key_path: Path) -> None:
    """Sign ARTIFACT (its SHA-256 and size): writes ARTIFACT.sig."""
    from mcp_edge.index.build import sign_artifact

    try:
        click.echo(str(sign_artifact(artifact, key_path)))
    except McpEdgeError as exc:
        _fail(exc)


@plugin.command("timer-units")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              show_default=True, help="Folder for the .service and .timer files (/etc/systemd/system/).")
@click.option("--user", default=None, help="Run the update as this user (the runtime's).")
@click.option("--exec", "exec_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Absolute path of the mcp-edge executable (default: the one running now).")
def plugin_timer_units(out: Path, user: str | None, exec_path: Path | None) -> None:
    """Write a systemd timer (and its oneshot service) that runs `mcp-edge plugin update --auto` every
    plugin_update_interval_s (a day when 0)."""
    try:
        from mcp_edge.board.settings import Settings
        from mcp_edge.index.timer import timer_units

        units = timer_units(Settings.load(), exec_path=exec_path or _this_executable(), user=user)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            (out / name).write_text(text)
            click.echo(str(out / name))
    except (McpEdgeError, OSError) as exc:
        _fail(exc)


@cli.group("index")
def index_group() -> None:
    """For publishers: keys and the signed plugin index (docs/plugin-index.md)."""


@index_group.command("keygen")
@click.argument("key_path", type=click.Path(path_type=Path, dir_okay=False))
def index_keygen(key_path: Path) -> None:
    """Make an Ed25519 signing key at KEY_PATH (PEM, 0600) and its public half at KEY_PATH.pub (hex: what a
    box puts in its trust folder or trusted_keys)."""
    from mcp_edge.index.signing import generate_key

    try:
        kid = generate_key(key_path)
    except FileExistsError:
        _fail(FileExistsError(f"{key_path} exists: a key is never overwritten"))
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    click.echo(f"key id {kid}; public key in {key_path}.pub")


@index_group.command("build")
@click.argument("source", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the artifacts and index.json (an index already there is carried over).")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True,
              help="The publisher's Ed25519 private key (PEM).")
@click.option("--version", "version", type=int, default=None,
              help="The index version (default: one above the index already in the output folder, else 1).")
@click.option("--expires-days", type=float, default=30.0, show_default=True,
              help="Days until the index expires (boxes refuse it after).")
@click.option("--arch", type=click.Choice(["x86_64", "aarch64"]), default=None,
              help="The architecture of native plugins (default: this machine's).")
def index_build(source: Path, out: Path, key_path: Path, version: int | None, expires_days: float,
                arch: str | None) -> None:
    """Pack each plugin folder of SOURCE, sign the artifacts and the index, write them to the output folder."""
    from mcp_edge.index.build import build_index

    try:
        doc = build_index(source, out, key_path, version=version, expires_days=expires_days, arch=arch)
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    signed = doc["signed"]
    click.echo(f"index version {signed['version']} (expires {signed['expires']}): "
               f"{len(signed['plugins'])} artifact(s) in {out}")


@cli.command()
@click.option("--url", default=None, metavar="URL",
              help="The server's HTTP address, its /mcp endpoint or a /healthz/ probe URL "
                   "(default: the board's http_host and http_port, /healthz/ready).")
@click.option("--unix", "unix_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Ask the server on this unix socket instead (a handshake, then its plugin states).")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for an answer.")
def health(url: str | None, unix_path: Path | None, timeout: float) -> None:
    """Whether a running server is ready; prints its JSON. Exit 0 ready, 1 not ready, 2 unreachable."""
    from mcp_edge.health import EXIT_NOT_READY, EXIT_READY, EXIT_UNREACHABLE, Unreachable, probe_unix, probe_url

    if url is not None and unix_path is not None:
        click.echo("mcp-edge: choose one of --url and --unix", err=True)
        sys.exit(EXIT_UNREACHABLE)
    try:
        if unix_path is not None:
            ok, body = probe_unix(str(unix_path), timeout)
        else:
            if url is None:
                from mcp_edge.board.settings import Settings

                settings = Settings.load()
                host = settings.http_host if settings.http_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
                url = f"http://{f'[{host}]' if ':' in host else host}:{settings.http_port}/healthz/ready"
            ok, body = probe_url(url, timeout)
    except (Unreachable, McpEdgeError) as exc:
        click.echo(f"mcp-edge: unreachable: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    click.echo(json.dumps(body, indent=2))
    sys.exit(EXIT_READY if ok else EXIT_NOT_READY)


@cli.command("bundle")
@click.option("--board", "board_name", required=True, metavar="NAME", help="The board profile to build for.")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the overlay tarball, its manifest and the update image (created if missing).")
@click.option("--wheel", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="mcp_edge's wheel for the board (default: the newest matching one in the checkout's dist/).")
@click.option("--sign-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="PEM private key: also write a signed SWUpdate image (.swu) of the overlay.")
@click.option("--sign-cert", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="PEM certificate of --sign-key.")
def bundle(board_name: str, out: Path, wheel: Path | None, sign_key: Path | None, sign_cert: Path | None) -> None:
    """A root-filesystem overlay of mcp-edge for a board's firmware image (docs/firmware.md)."""
    try:
        from mcp_edge.bundle.build import build_bundle

        result = build_bundle(board_name, out, wheel=wheel, sign_key=sign_key, sign_cert=sign_cert)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(str(result.tarball))
    if result.swu is not None:
        click.echo(str(result.swu))


@cli.command("systemd-unit")
@click.option("--user", default=None, help="Run the service as this user and its group (default: root, "
                                           "still without capabilities).")
@click.option("--exec", "exec_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Absolute path of the mcp-edge executable (default: the one running now).")
def systemd_unit(user: str | None, exec_path: Path | None) -> None:
    """Print a hardened Type=notify systemd unit for this board (redirect it to /etc/systemd/system/)."""
    try:
        from mcp_edge.board.settings import Settings
        from mcp_edge.system.unit import unit_text

        if exec_path is None:
            exec_path = _this_executable()
        click.echo(unit_text(Settings.load(), exec_path=exec_path, user=user), nl=False)
    except McpEdgeError as exc:
        _fail(exc)


def _this_executable() -> Path:
    """The mcp-edge script beside this interpreter (a venv's bin/), else the one on PATH, else the argv[0]."""
    import shutil

    beside = Path(sys.executable).parent / "mcp-edge"
    if beside.is_file():
        return beside
    found = shutil.which("mcp-edge")
    return Path(found).resolve() if found else Path(sys.argv[0]).resolve()


@cli.group()
def apikey() -> None:
    """API keys for HTTP clients of a box with no authorization server (auth_required): only their SHA-256 is
    kept, in auth_api_keys_file (default <data_dir>/api-keys.json, mode 0600)."""


def _api_keys() -> tuple[ApiKeys, Path]:
    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.auth import ApiKeys, api_keys_path

    path = api_keys_path(Settings.load())
    return ApiKeys.load(path), path


@apikey.command("create")
@click.argument("key_id")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE", help="A scope the key carries (repeatable).")
def apikey_create(key_id: str, scopes: tuple[str, ...]) -> None:
    """Make a key named KEY_ID and print it, once: it cannot be shown again."""
    try:
        keys, path = _api_keys()
        key = keys.add(key_id, scopes)
        keys.save()
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    click.echo(key)
    click.echo(f"mcp-edge: key {key_id} stored (its SHA-256 only) in {path}; send it as "
               "'Authorization: Bearer <key>' or 'X-API-Key: <key>'", err=True)


@apikey.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def apikey_list(as_json: bool) -> None:
    """The keys: id, scopes and when each was made (never a secret)."""
    try:
        keys, _ = _api_keys()
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    rows = [{"id": k, "scopes": v.get("scopes", []), "created": v.get("created")}
            for k, v in sorted(keys.keys.items())]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']}\t{' '.join(row['scopes']) or '-'}\t{row['created']}")


@apikey.command("revoke")
@click.argument("key_id")
def apikey_revoke(key_id: str) -> None:
    """Remove key KEY_ID: a running server refuses it after a restart or SIGHUP."""
    try:
        keys, path = _api_keys()
        keys.revoke(key_id)
        keys.save()
    except (McpEdgeError, OSError) as exc:
        _fail(exc)
    click.echo(f"mcp-edge: key {key_id} revoked in {path}", err=True)


@cli.group()
def audit() -> None:
    """The audit log (Settings.audit): a SHA-256 hash chain of calls, denials, plugin and config events."""


@audit.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key", "key_hex", default=None, metavar="HEX",
              help="The audit public key (audit-ed25519.pub): each file's .sig must sign its last hash.")
def audit_verify(files: tuple[Path, ...], key_hex: str | None) -> None:
    """Check FILES, oldest first (audit.jsonl.2 audit.jsonl.1 audit.jsonl): the first tampered, dropped,
    inserted or reordered record, or OK. Exit 0 when the chain holds, 1 when not."""
    from mcp_edge.runtime.audit import verify

    try:
        key = bytes.fromhex(key_hex) if key_hex else None
    except ValueError:
        _fail(ValueError(f"--key {key_hex!r}: not hex"))
    count, problem = verify(files, key)
    if problem is not None:
        click.echo(f"mcp-edge: audit chain broken after {count} good records: {problem}")
        sys.exit(1)
    click.echo(f"mcp-edge: audit chain OK: {count} records in {len(files)} file(s)"
               + (", signatures good" if key else ""))


@cli.group()
def keys() -> None:
    """The box's own keys under <data_dir>/keys (requestState HMAC key, audit signing key) and the trusted
    public keys (/etc/mcp-edge/trust)."""


def _data_dir() -> Path:
    from mcp_edge.board.settings import Settings

    return Path(Settings.load().data_dir)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def keys_list(as_json: bool) -> None:
    """Each key: name, path, mode, when it was made, fingerprint (never a secret)."""
    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.keys import list_keys

    try:
        settings = Settings.load()
        rows = list_keys(Path(settings.data_dir), Path(settings.trust_dir), settings.trusted_keys)
    except (McpEdgeError, OSError, ValueError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = row.get("fingerprint", "not made yet") if row["exists"] else "not made yet"
        click.echo(f"{row['name']}\t{row['kind']}\t{row['path']}\t{row.get('mode', '-')}\t{state}")


@keys.command("create")
def keys_create() -> None:
    """Make the keys that do not exist yet (each is made once; existing ones are kept)."""
    from mcp_edge.runtime.keys import audit_signing_key, key_dir, secret_once

    try:
        data = _data_dir()
        secret_once(data)
        audit_signing_key(key_dir(data))
    except (McpEdgeError, OSError, ImportError) as exc:
        _fail(exc)
    click.echo(f"mcp-edge: keys in {key_dir(data)}", err=True)


@keys.command("rotate")
@click.argument("name", type=click.Choice(["request-state", "audit"]))
def keys_rotate(name: str) -> None:
    """Replace key NAME (request-state: outstanding requestStates fail; audit: later files are signed with the
    new key, earlier ones verify with the old public key only). Restart or SIGHUP the server to use it."""
    from mcp_edge.runtime.keys import rotate

    try:
        path = rotate(_data_dir(), name)
    except (McpEdgeError, OSError, ValueError, ImportError) as exc:
        _fail(exc)
    click.echo(f"mcp-edge: {name} key replaced: {path}", err=True)
