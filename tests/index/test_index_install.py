"""Install, update, remove and verify against an index served over loopback HTTP by the test; a download cut
short leaves the installed version as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, Publisher, base_url, installer, published_v1, serve_folder

from mcp_edge.errors import IndexRefused
from mcp_edge.index.archive import tree_digest


def _answer(folder: Path) -> str:
    return (folder / "plugin.py").read_text().rsplit("return ", 1)[1].strip()


def test_install_update_remove_verify(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        url = base_url(http) + "index.json"
        box = installer(tmp_path, url, trust)
        assert [e.id for e in box.search("version")] == [PLUGIN_ID]
        change = box.install(PLUGIN_ID)
        assert change is not None and (change.old, change.new) == (None, "1.0.0")
        folder = tmp_path / "data" / "plugins" / PLUGIN_ID
        assert _answer(folder) == "'v1'"
        record = box.state.installed()[PLUGIN_ID]
        assert record["version"] == "1.0.0" and record["index_version"] == 1
        assert record["tree_sha256"] == tree_digest(folder)
        assert box.install(PLUGIN_ID) is None  # the same artifact again: nothing to do

        pub.publish("2.0.0", "v2")  # index version 2 lists 1.0.0 and 2.0.0
        changes = box.update()
        assert [(c.id, c.old, c.new) for c in changes] == [(PLUGIN_ID, "1.0.0", "2.0.0")]
        assert _answer(folder) == "'v2'"
        assert box.state.installed()[PLUGIN_ID]["index_version"] == 2
        assert box.update() == []  # nothing newer
        assert [r["ok"] for r in box.verify()] == [True]

        # an explicit older version is installed on request (the index still lists it): a downgrade by choice
        change = box.install(PLUGIN_ID, "1.0.0")
        assert change is not None and (change.old, change.new) == ("2.0.0", "1.0.0")
        assert _answer(folder) == "'v1'"

        (folder / "plugin.py").write_text((folder / "plugin.py").read_text() + "# changed on the box\n")
        rows = box.verify(PLUGIN_ID)
        assert not rows[0]["ok"] and "files changed" in rows[0]["reason"]

        removed = box.remove(PLUGIN_ID)
        assert removed.new is None and not folder.exists()
        assert PLUGIN_ID not in box.state.installed()
        with pytest.raises(IndexRefused, match="not installed from the index"):
            box.remove(PLUGIN_ID)
    staging = tmp_path / "data" / "plugins" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_interrupted_download_leaves_the_old_version(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        box = installer(tmp_path, base_url(http) + "index.json", trust)
        box.install(PLUGIN_ID)
        folder = tmp_path / "data" / "plugins" / PLUGIN_ID
        before = tree_digest(folder)
        record = box.state.installed()[PLUGIN_ID]

        pub.publish("2.0.0", "v2")
        http.cut.add(f"{PLUGIN_ID}-2.0.0.tar.gz")  # the server closes the connection halfway through
        with pytest.raises(IndexRefused, match="interrupted"):
            box.install(PLUGIN_ID)
        assert f"{PLUGIN_ID}-2.0.0.tar.gz" in http.requests
        assert tree_digest(folder) == before and _answer(folder) == "'v1'"
        assert box.state.installed()[PLUGIN_ID] == record
        plugins = tmp_path / "data" / "plugins"
        assert sorted(p.name for p in plugins.iterdir()) == [".staging", PLUGIN_ID]
        assert list((plugins / ".staging").iterdir()) == []  # no half folder left behind

        http.cut.clear()  # the next try gets the whole artifact
        change = box.install(PLUGIN_ID)
        assert change is not None and change.new == "2.0.0" and _answer(folder) == "'v2'"


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        box = installer(tmp_path, base_url(http) + "index.json", trust)
        box.install(PLUGIN_ID)
        folder = tmp_path / "data" / "plugins" / PLUGIN_ID
        pub.publish("2.0.0", "v2")
        artifact = pub.out / f"{PLUGIN_ID}-2.0.0.tar.gz"
        data = bytearray(artifact.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, one byte changed
        artifact.write_bytes(bytes(data))
        with pytest.raises(IndexRefused, match=r"SHA-256 .* tampered or corrupted"):
            box.update([PLUGIN_ID])
        assert _answer(folder) == "'v1'" and box.state.installed()[PLUGIN_ID]["version"] == "1.0.0"

        artifact.write_bytes(bytes(data) + b"more")  # longer than the index says
        with pytest.raises(IndexRefused, match="bytes; the index says"):
            box.update([PLUGIN_ID])
        assert _answer(folder) == "'v1'"


def test_artifact_signature_by_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """The index is signed by a trusted key but an artifact's own signature is not: refused."""
    from mcp_edge.index.signing import canonical, load_private_key, sign

    pub = Publisher(tmp_path / "pub")
    other = Publisher(tmp_path / "other")
    trust = pub.trust_into(tmp_path / "trust")
    pub.publish("1.0.0", "v1")
    index_path = pub.out / "index.json"
    doc = json.loads(index_path.read_text())
    entry = doc["signed"]["plugins"][0]
    entry["signatures"] = [sign(load_private_key(other.key), b"anything")]
    doc["signatures"] = [sign(load_private_key(pub.key), canonical(doc["signed"]))]
    index_path.write_text(json.dumps(doc))
    box = installer(tmp_path, str(index_path), trust)  # a plain path works as the index's location too
    with pytest.raises(IndexRefused, match=r"artifact of plugin hello 1\.0\.0: signed only by unknown key"):
        box.install(PLUGIN_ID)
    assert not (tmp_path / "data" / "plugins" / PLUGIN_ID).exists()


def test_manifest_that_disagrees_with_the_index_is_refused(tmp_path: Path) -> None:
    """The artifact holds another plugin id than its index entry: refused after unpacking, nothing installed."""
    from index_helpers import write_plugin

    from mcp_edge.index.build import build_index

    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    src = tmp_path / "src"
    write_plugin(src / "other", "1.0.0", "x", plugin_id="other")
    build_index(src, pub.out, pub.key)
    doc = json.loads((pub.out / "index.json").read_text())
    from mcp_edge.index.signing import canonical, load_private_key, sign

    doc["signed"]["plugins"][0]["id"] = PLUGIN_ID
    doc["signed"]["plugins"][0].pop("tree_sha256")
    doc["signatures"] = [sign(load_private_key(pub.key), canonical(doc["signed"]))]
    (pub.out / "index.json").write_text(json.dumps(doc))
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    with pytest.raises(IndexRefused, match=r"plugin\.toml says id 'other', the index says 'hello'"):
        box.install(PLUGIN_ID)
    assert not (tmp_path / "data" / "plugins" / PLUGIN_ID).exists()


def test_an_install_cut_short_after_its_swap_is_set_right(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies between the swap and writing installed.json (here: that write fails): the next run
    finds the folder holds an artifact of the trusted index and corrects the record instead of refusing."""
    from mcp_edge.index.state import IndexState

    pub, trust = published_v1(tmp_path)
    index = str(pub.out / "index.json")
    box = installer(tmp_path, index, trust)
    box.install(PLUGIN_ID)
    pub.publish("2.0.0", "v2")
    real = IndexState.record

    def fail_once(self: IndexState, plugin_id: str, entry: object) -> None:
        monkeypatch.setattr(IndexState, "record", real)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(IndexState, "record", fail_once)
    with pytest.raises(IndexRefused, match=f"{PLUGIN_ID}: .*No space left"):  # (every plugin failed: the reasons)
        box.update()
    folder = tmp_path / "data" / "plugins" / PLUGIN_ID
    assert _answer(folder) == "'v2'" and box.state.installed()[PLUGIN_ID]["version"] == "1.0.0"
    assert installer(tmp_path, index, trust).update() == []  # nothing to download again ...
    assert box.state.installed()[PLUGIN_ID]["version"] == "2.0.0"  # ... and the record says what is there
    assert [r["ok"] for r in box.verify()] == [True]


def test_a_server_that_drips_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    from index_helpers import box_settings

    from mcp_edge.index.installer import Installer

    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        box = Installer(box_settings(tmp_path, base_url(http) + "index.json", trust, index_deadline_s=0.5))
        box.refresh()
        http.slow.add(f"{PLUGIN_ID}-1.0.0.tar.gz")  # 64 bytes every 0.2 s: each read is in time, the whole is not
        with pytest.raises(IndexRefused, match="took longer than index_deadline_s"):
            box.install(PLUGIN_ID)
        assert not (tmp_path / "data" / "plugins" / PLUGIN_ID).exists()
        http.slow.add("index.json")
        with pytest.raises(IndexRefused, match="took longer than index_deadline_s"):
            box.refresh()
