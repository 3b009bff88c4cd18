"""Installing plugins from the trusted index into ``<data_dir>/plugins/<id>``: download, verify, unpack beside,
swap.

One install, in order, each step refusing with its reason and leaving what is installed as it was:

1. the index fetched and trusted (:func:`mcp_edge.index.state.accept`), the entry picked for this box's
   architecture and ABIs;
2. the artifact streamed into a fresh folder under ``<data_dir>/plugins/.staging/`` (bounded by the size the
   index gives and ``plugin_max_download``), its SHA-256 checked against the signed index, and its own
   signatures, when the index carries some, against the trusted keys;
3. unpacked safely (:func:`mcp_edge.index.archive.unpack`) beside it, its ``plugin.toml`` read: the id, version,
   kind and ABI must be the entry's; its files must match the entry's ``tree_sha256``;
4. swapped in: ``renameat2(RENAME_EXCHANGE)`` puts the new folder at ``plugins/<id>`` and the old one in the
   staging folder in one step (two renames where the filesystem cannot, the old one put back if the second
   fails); the old folder is removed only after that; ``installed.json`` records the result.

The staging folder is two levels below the plugins folder, so the runtime's scan (one level) never sees a
half-made plugin; what a killed install leaves there is removed by the next one.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.errors import ConfigError, IndexRefused, McpEdgeError
from mcp_edge.index.archive import tree_digest, unpack
from mcp_edge.index.fetch import download, read_bounded, resolve
from mcp_edge.index.format import Entry, Index, comparable, format_time, newer, this_arch
from mcp_edge.index.signing import TrustStore, artifact_message, file_digest, verify_signatures
from mcp_edge.index.state import IndexState, accept

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings

__all__ = ["Change", "Installer", "plugins_folder"]

log = logging.getLogger("mcp_edge.index")

STAGING: Final = ".staging"


def plugins_folder(data_dir: Path) -> Path:
    """Where plugins installed from the index live."""
    from mcp_edge.board.settings import installed_plugins_dir

    return installed_plugins_dir(data_dir)


@dataclass(frozen=True)
class Change:
    """One plugin installed, updated or removed."""

    id: str
    old: str | None
    new: str | None
    folder: Path

    def __str__(self) -> str:
        if self.new is None:
            return f"{self.id}: removed (was {self.old})"
        if self.old is None:
            return f"{self.id}: installed {self.new}"
        return f"{self.id}: {self.old} -> {self.new}"


class Installer:
    """The box's side of the plugin index, configured by ``settings`` (``source`` overrides ``plugin_index``)."""

    def __init__(self, settings: Settings, *, source: str | None = None, trust: TrustStore | None = None,
                 now: Callable[[], dt.datetime] | None = None, arch: str | None = None,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.source = source if source is not None else settings.plugin_index
        self.plugins = plugins_folder(settings.data_dir)
        self.state = IndexState(Path(settings.data_dir) / "plugin-index")
        self._trust = trust
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self.arch = arch or this_arch()
        self.stop = stop  # set: cut a download short and start no other (the server is stopping)

    @property
    def trust(self) -> TrustStore:
        if self._trust is None:
            self._trust = TrustStore.load(Path(self.settings.trust_dir), self.settings.trusted_keys)
        return self._trust

    # -- the index -----------------------------------------------------------------------------------------

    def refresh(self) -> Index:
        """The index fetched now, trusted (and remembered), or IndexRefused with the rule it broke."""
        if not self.source:
            raise ConfigError("no plugin index: set plugin_index (a URL or a path) or pass --index")
        s = self.settings
        data = read_bounded(self.source, s.index_max_bytes, s.index_timeout_s, "index", s.index_deadline_s,
                            self.stop)
        with self.state.locked():
            index = accept(data, self.source, self.trust, self.state.kept(), self._now())
            self.state.keep(index, data, self.source)
        return index

    def last_trusted(self) -> Index | None:
        """The last index this box trusted, its signature checked again against today's keys (an expired one
        still answers ``verify`` of what it installed); None when none was fetched yet."""
        data = self.state.cached()
        if data is None:
            return None
        kept = self.state.kept()
        from mcp_edge.index.format import parse_document

        index = parse_document(data, f"kept index {self.state.folder}")
        verify_signatures(index.signed_bytes, index.signatures, self.trust, "the kept index")
        if kept is not None and kept.get("version") != index.version:
            raise IndexRefused(f"{self.state.folder}: the kept index (version {index.version}) and trusted.json "
                               f"(version {kept.get('version')}) disagree (a write cut short): fetch the index "
                               "again (plugin search) to set them right")
        return index

    def search(self, text: str, index: Index | None = None) -> list[Entry]:
        """The newest entry this box runs of each plugin whose id or description holds ``text``."""
        index = index or self.refresh()
        needle = text.lower()
        out = []
        for plugin_id in sorted({e.id for e in index.plugins}):
            fitting = [e for e in index.versions_of(plugin_id) if e.fits(self.arch)]
            if fitting and (needle in plugin_id or needle in fitting[0].description.lower()):
                out.append(fitting[0])
        return out

    # -- installing ----------------------------------------------------------------------------------------

    def install(self, plugin_id: str, version: str | None = None, *, index: Index | None = None,
                only_newer: bool = False) -> Change | None:
        """Install ``version`` (default: the newest this box runs) of ``plugin_id``; None when that version is
        installed already (or, with ``only_newer``, nothing newer is offered)."""
        index = index or self.refresh()
        entry = index.pick(plugin_id, version, self.arch)
        with self.state.locked():
            kept = self.state.kept()
            if kept is not None and kept["version"] > index.version:  # (another installer trusted a newer one)
                raise IndexRefused(f"plugin {plugin_id}: the box trusts index version {kept['version']} now, this "
                                   f"install read version {index.version}: run it again")
            target = self.plugins / plugin_id
            have = self._reconcile(index, plugin_id, self.state.installed().get(plugin_id), target)
            if have is not None and target.is_dir():
                if have.get("sha256") == entry.sha256:
                    if only_newer or have.get("tree_sha256") in (None, tree_digest(target)):
                        return None
                    log.warning("plugin index: %s: its files changed since it was installed; installing %s again",
                                plugin_id, entry.version)  # (install repairs; update leaves local edits to verify)
                if only_newer and not newer(entry.version, str(have.get("version"))):
                    if not comparable(entry.version, str(have.get("version"))):
                        log.warning("plugin index: %s: not updated from %s to %s: not both PEP 440 versions, so "
                                    "which is newer cannot be told (plugin install %s==%s installs it)", plugin_id,
                                    have.get("version"), entry.version, plugin_id, entry.version)
                    return None
            old = have.get("version") if have is not None and target.is_dir() else None
            if old is None and target.exists():
                raise IndexRefused(f"{target} exists but was not installed from the index: remove it first")
            self._install(index, entry, target)
            self.state.record(plugin_id, {
                "version": entry.version, "sha256": entry.sha256, "size": entry.size,
                "tree_sha256": entry.tree_sha256 or tree_digest(target), "kind": entry.kind,
                "index_version": index.version, "url": entry.url,
                "installed_at": format_time(self._now()),
            })
        change = Change(plugin_id, str(old) if old is not None else None, entry.version, target)
        log.info("plugin index: %s (index version %d)", change, index.version)
        return change

    def _reconcile(self, index: Index, plugin_id: str, have: dict[str, Any] | None,
                   target: Path) -> dict[str, Any] | None:
        """What is installed, as the folder says: a process killed between the swap and the record leaves a
        folder whose files are an entry's of the trusted index (its ``tree_sha256``) but another record, or
        none; the record is set right from that entry. A folder that matches no entry is left to the checks."""
        if not target.is_dir() or (have is not None and have.get("tree_sha256") is None):
            return have
        digest = tree_digest(target)
        if have is not None and have.get("tree_sha256") == digest:
            return have
        for entry in index.versions_of(plugin_id):
            if entry.tree_sha256 == digest:
                fixed = {"version": entry.version, "sha256": entry.sha256, "size": entry.size,
                         "tree_sha256": digest, "kind": entry.kind, "index_version": index.version,
                         "url": entry.url, "installed_at": format_time(self._now())}
                self.state.record(plugin_id, fixed)
                log.warning("plugin index: %s: the record said %s, the folder holds %s (an install was cut "
                            "short after its swap); record set right", plugin_id,
                            have.get("version") if have else "nothing", entry.version)
                return fixed
        return have

    def _install(self, index: Index, entry: Entry, target: Path) -> None:
        s = self.settings
        if entry.size > s.plugin_max_download:
            raise IndexRefused(f"plugin {entry.id} {entry.version}: its artifact is {entry.size} bytes, more than "
                               f"plugin_max_download ({s.plugin_max_download})")
        staging = self.plugins / STAGING
        staging.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._clean(staging)
        work = Path(tempfile.mkdtemp(prefix=f"{entry.id}-", dir=staging))
        try:
            artifact = work / "artifact.tar.gz"
            url = resolve(self.source, entry.url)
            with artifact.open("wb") as out:
                sha = download(url, out, entry.size, s.index_timeout_s, s.index_deadline_s, self.stop)
            if sha != entry.sha256:
                raise IndexRefused(f"plugin {entry.id} {entry.version}: the artifact's SHA-256 is {sha}, the signed "
                                   f"index says {entry.sha256}: tampered or corrupted, refused")
            if entry.signatures:
                verify_signatures(artifact_message(sha, entry.size), list(entry.signatures), self.trust,
                                  f"artifact of plugin {entry.id} {entry.version}")
            tree = work / "tree"
            tree.mkdir(mode=0o755)
            unpack(artifact, tree, max_members=s.plugin_max_members, max_bytes=s.plugin_max_unpacked)
            self._check_tree(entry, tree)
            os.chmod(tree, 0o755)
            _swap(tree, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _check_tree(self, entry: Entry, tree: Path) -> None:
        from mcp_edge.plugin.manifest import read_manifest

        where = f"plugin {entry.id} {entry.version}"
        try:
            m = read_manifest(tree)
        except McpEdgeError as exc:
            raise IndexRefused(f"{where}: its plugin.toml is refused: {exc}") from None
        except ImportError as exc:
            raise IndexRefused(f"{where}: this runtime cannot run a {entry.kind} plugin: {exc}") from None
        for name, got, want in (("id", m.id, entry.id), ("version", m.version, entry.version),
                                ("kind", m.kind, entry.kind), ("abi", m.abi, entry.abi)):
            if got != want:
                raise IndexRefused(f"{where}: its plugin.toml says {name} {got!r}, the index says {want!r}")
        if entry.tree_sha256 is not None and tree_digest(tree) != entry.tree_sha256:
            raise IndexRefused(f"{where}: the unpacked files do not match the index's tree_sha256")

    @staticmethod
    def _clean(staging: Path) -> None:
        """Remove what a killed install left in the staging folder (the lock is held: none is running)."""
        for child in staging.iterdir():
            shutil.rmtree(child, ignore_errors=True)

    def update(self, ids: list[str] | None = None) -> list[Change]:
        """Update each plugin of ``ids`` (default: every installed one) to the newest version this box runs; a
        plugin the index no longer lists, or that fails, is logged and the others go on. The changes made;
        IndexRefused for the first failure when every one failed."""
        index = self.refresh()
        installed = self.state.installed()
        names = ids if ids else sorted(installed)
        changes: list[Change] = []
        failures: list[str] = []
        for plugin_id in names:
            if self.stop is not None and self.stop.is_set():
                break
            if plugin_id not in installed:  # update changes what is there; it never installs
                log.warning("plugin index: %s not updated: not installed from the index (plugin install %s)",
                            plugin_id, plugin_id)
                failures.append(f"{plugin_id}: not installed from the index (plugin install {plugin_id} installs it)")
                continue
            try:
                change = self.install(plugin_id, index=index, only_newer=True)
            except (McpEdgeError, OSError) as exc:  # (a full disk, a name too long: this plugin only)
                log.warning("plugin index: %s not updated: %s", plugin_id, exc)
                failures.append(f"{plugin_id}: {exc}")
                continue
            if change is not None:
                changes.append(change)
        if failures and not changes and len(failures) == len(names):
            raise IndexRefused("; ".join(failures))
        return changes

    def remove(self, plugin_id: str) -> Change:
        """Remove installed plugin ``plugin_id`` (only what the index installed); its folder leaves in one rename.
        A running server removes it then (its folder watcher, or SIGHUP: :mod:`mcp_edge.plugin.live`)."""
        with self.state.locked():
            have = self.state.installed().get(plugin_id)
            target = self.plugins / plugin_id
            if have is None:
                raise IndexRefused(f"plugin {plugin_id} was not installed from the index"
                                   + (f" ({target} is not ours to remove)" if target.exists() else ""))
            staging = self.plugins / STAGING
            staging.mkdir(mode=0o755, parents=True, exist_ok=True)
            if target.exists():
                gone = Path(tempfile.mkdtemp(prefix=f"{plugin_id}-removed-", dir=staging))
                os.rename(target, gone / "tree")
                shutil.rmtree(gone, ignore_errors=True)
            self.state.record(plugin_id, None)
        return Change(plugin_id, str(have.get("version")), None, target)

    # -- verifying -----------------------------------------------------------------------------------------

    def verify(self, plugin_id: str | None = None) -> list[dict[str, Any]]:
        """Check installed plugins (``plugin_id``, or all): their files against what was installed, and that the
        last trusted index (signature checked again) lists that artifact. One row per plugin: id, version, ok,
        reason."""
        installed = self.state.installed()
        if plugin_id is not None and plugin_id not in installed:
            raise IndexRefused(f"plugin {plugin_id} was not installed from the index")
        index = self.last_trusted()
        rows = []
        for pid in [plugin_id] if plugin_id else sorted(installed):
            have = installed[pid]
            row: dict[str, Any] = {"id": pid, "version": have.get("version"), "ok": False}
            folder = self.plugins / pid
            listed = [e for e in (index.plugins if index else ()) if e.id == pid and e.sha256 == have.get("sha256")]
            if not folder.is_dir():
                row["reason"] = f"{folder} is missing"
            elif tree_digest(folder) != have.get("tree_sha256"):
                row["reason"] = "its files changed since it was installed (tree_sha256 differs)"
            elif not listed:
                row["reason"] = "the last trusted index does not list this artifact any more"
            elif listed[0].tree_sha256 is not None and listed[0].tree_sha256 != have.get("tree_sha256"):
                row["reason"] = "the signed index gives another tree_sha256 for it"
            else:
                row["ok"], row["reason"] = True, f"matches index version {index.version if index else '?'}"
            rows.append(row)
        return rows

    def verify_artifact(self, path: Path) -> dict[str, Any]:
        """Check artifact file ``path``: its ``.sig`` (if beside it) against the trusted keys, and whether the
        last trusted index lists its SHA-256. IndexRefused when neither vouches for it, or the signature is bad."""
        try:
            sha, size = file_digest(path)
        except OSError as exc:
            raise IndexRefused(f"cannot read {path}: {exc.strerror or exc}") from None
        row: dict[str, Any] = {"path": str(path), "sha256": sha, "size": size}
        sig_path = path.with_name(path.name + ".sig")
        if sig_path.exists():
            import json

            try:
                sig = json.loads(sig_path.read_bytes())
            except (OSError, ValueError) as exc:
                raise IndexRefused(f"{sig_path}: not a signature file ({exc})") from None
            sigs = sig.get("signatures") if isinstance(sig, dict) else None
            row["signed_by"] = verify_signatures(artifact_message(sha, size), sigs, self.trust, f"artifact {path}")
        index = self.last_trusted()
        listed = [e for e in (index.plugins if index else ()) if e.sha256 == sha and e.size == size]
        if listed:
            row["index"] = f"{listed[0].id} {listed[0].version} in index version {index.version if index else '?'}"
        if "signed_by" not in row and not listed:
            raise IndexRefused(f"artifact {path}: no signature beside it ({sig_path.name}) and the last trusted "
                               "index does not list its SHA-256: nothing vouches for it")
        return row


def _swap(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``: one atomic exchange where the kernel and filesystem allow it (the old
    folder is then at ``new``), else two renames with the old one put back if the second fails."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    aside = new.with_name(new.name + ".old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    os.rename(aside, new)


def _exchange(a: Path, b: Path) -> bool:
    """``renameat2(a, b, RENAME_EXCHANGE)``; False where it is not available."""
    import ctypes

    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return False
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
