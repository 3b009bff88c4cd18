"""The index's trust rules, each refusal with its reason: rollback, same version with other content, expired
(freeze), unsigned, a bad signature, an unknown key, no trusted key at all; the box's kept state never moves
backwards and nothing installed changes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, Publisher, base_url, installer, published_v1, serve_folder

from mcp_edge.errors import ConfigError, IndexRefused
from mcp_edge.index.signing import TrustStore, canonical, key_id, load_private_key, sign


def test_rollback_to_an_older_index_is_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    old_index = (pub.out / "index.json").read_bytes()  # version 1, validly signed
    pub.publish("2.0.0", "v2")
    with serve_folder(pub.out) as http:
        box = installer(tmp_path, base_url(http) + "index.json", trust)
        box.install(PLUGIN_ID)
        assert box.state.kept()["version"] == 2
        (pub.out / "index.json").write_bytes(old_index)  # a mirror (or an attacker) serves version 1 again
        with pytest.raises(IndexRefused, match=r"version 1, older than version 2 .* a rollback, refused"):
            box.refresh()
        with pytest.raises(IndexRefused, match="rollback"):
            box.install(PLUGIN_ID, "1.0.0")
        assert box.state.kept()["version"] == 2
        assert box.state.installed()[PLUGIN_ID]["version"] == "2.0.0"


def test_same_version_with_other_content_is_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    box.refresh()
    doc = json.loads((pub.out / "index.json").read_text())
    doc["signed"]["plugins"][0]["description"] = "changed, same version"
    doc["signatures"] = [sign(load_private_key(pub.key), canonical(doc["signed"]))]  # even validly signed
    (pub.out / "index.json").write_text(json.dumps(doc))
    with pytest.raises(IndexRefused, match="version 1 again but with other content"):
        box.refresh()


def test_expired_index_is_refused(tmp_path: Path) -> None:
    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    pub.publish("1.0.0", "v1", expires=past)
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    with pytest.raises(IndexRefused, match=r"expired at .* frozen copy; refused"):
        box.install(PLUGIN_ID)
    assert box.state.kept() is None and not (tmp_path / "data" / "plugins" / PLUGIN_ID).exists()


def test_a_frozen_index_stops_being_trusted_at_its_expiry(tmp_path: Path) -> None:
    """A mirror that keeps serving the same (once valid) index: trusted until it expires, then refused."""
    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    pub.publish("1.0.0", "v1", expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    index = str(pub.out / "index.json")
    assert installer(tmp_path, index, trust).refresh().version == 1
    later = installer(tmp_path, index, trust, now=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    with pytest.raises(IndexRefused, match="expired"):
        later.refresh()


def test_unsigned_tampered_and_unknown_key_indexes_are_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    path = pub.out / "index.json"
    good = json.loads(path.read_text())

    def refused(doc: object, trust_dir: Path = trust) -> str:
        path.write_text(json.dumps(doc))
        with pytest.raises(IndexRefused) as info:
            installer(tmp_path, str(path), trust_dir).refresh()
        return str(info.value)

    assert "is not signed" in refused({**good, "signatures": []})
    tampered = json.loads(json.dumps(good))
    tampered["signed"]["plugins"][0]["sha256"] = "0" * 64  # point the box at another artifact
    assert "bad signature by trusted key" in refused(tampered)
    other = Publisher(tmp_path / "other")
    assert "signed only by unknown key" in refused(good, other.trust_into(tmp_path / "other-trust"))
    empty = tmp_path / "no-trust"
    empty.mkdir()
    assert "this box trusts no key" in refused(good, empty)
    assert "exactly 'signed' and 'signatures'" in refused(None)
    path.write_text("{not json")
    with pytest.raises(IndexRefused, match="not JSON"):
        installer(tmp_path, str(path), trust).refresh()
    assert installer(tmp_path, str(path), trust).state.kept() is None  # nothing refused was kept


def test_board_profile_keys_are_trusted(tmp_path: Path) -> None:
    pub = Publisher(tmp_path / "pub")
    pub.publish("1.0.0", "v1")
    empty = tmp_path / "no-trust"
    empty.mkdir()
    from index_helpers import box_settings

    from mcp_edge.index.installer import Installer

    settings = box_settings(tmp_path, str(pub.out / "index.json"), empty,
                            trusted_keys=(f"publisher={pub.public_hex}",))
    assert Installer(settings).refresh().version == 1
    store = TrustStore.load(empty, settings.trusted_keys)
    assert list(store.keys) == [key_id(bytes.fromhex(pub.public_hex))]
    with pytest.raises(ConfigError, match="not NAME=HEX"):
        TrustStore.load(empty, ["publisher=abcd"])


def test_a_trust_folder_file_that_is_not_a_key_is_named(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match=r"notes.txt: not an Ed25519 public key"):
        TrustStore.load(trust)


def test_no_index_configured_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no plugin index: set plugin_index"):
        installer(tmp_path, "", tmp_path).refresh()
