"""The index is read strictly, before and after its signature: what an attacker in the path sends that Python's
json module takes but cannot put in canonical form (NaN, a lone surrogate, a far-future expiry with an offset)
is refused with the reason, not a traceback; a key given twice (readers would differ on which one counts) and
loosely typed or newline-ended fields are refused even when a trusted key signed them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from index_helpers import PLUGIN_ID, Publisher, installer, published_v1

from mcp_edge.commands import cli
from mcp_edge.errors import IndexRefused
from mcp_edge.index.signing import canonical, load_private_key, sign


def _published(tmp_path: Path) -> tuple[Publisher, Path, dict[str, Any]]:
    pub, trust = published_v1(tmp_path)
    return pub, trust, json.loads((pub.out / "index.json").read_text())


def _resign(pub: Publisher, doc: dict[str, Any]) -> None:
    doc["signatures"] = [sign(load_private_key(pub.key), canonical(doc["signed"]))]


@pytest.mark.parametrize(("mangle", "reason"), [
    (lambda t: re.sub(r'"expires": "[^"]*"', '"expires": "9999-12-31T23:59:59-01:00"', t),
     "expires '9999-12-31T23:59:59-01:00'"),
    (lambda t: t.replace('"description": "', '"description": "\\ud800', 1), "no canonical form"),
    (lambda t: t.replace('"size": ', '"size": NaN, "size": ', 1), "NaN is not a JSON number"),
])
def test_unsigned_junk_is_refused_with_a_reason(tmp_path: Path, mangle: Any, reason: str) -> None:
    pub, trust, _ = _published(tmp_path)
    path = pub.out / "index.json"
    path.write_text(mangle(path.read_text()))
    box = installer(tmp_path, str(path), trust)
    with pytest.raises(IndexRefused, match=reason):
        box.refresh()
    assert box.state.kept() is None
    env = {"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_TRUST_DIR": str(trust),
           "MCP_EDGE_PLUGIN_INDEX": str(path), "MCP_EDGE_PLUGIN_DIRS": ""}
    result = CliRunner().invoke(cli, ["plugin", "search"], env=env)
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit), \
        result.output
    assert reason.split()[0] in result.output


def test_a_key_given_twice_is_refused_even_under_a_good_signature(tmp_path: Path) -> None:
    """json keeps the last of two keys, and the signature covers that; a reader that keeps the first would see
    another index under the same signature. Refused."""
    pub, trust, doc = _published(tmp_path)
    path = pub.out / "index.json"
    text = json.dumps(doc)
    assert canonical(json.loads(text)["signed"]) == canonical(doc["signed"])
    path.write_text(text.replace('"signed": {', '"signed": {"version": 99, ', 1))  # the signature still verifies
    box = installer(tmp_path, str(path), trust)
    with pytest.raises(IndexRefused, match="'version' given twice in one object"):
        box.refresh()
    assert box.state.kept() is None


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("spec", True, "index spec True"),
    ("spec", 1.0, "index spec 1.0"),
    ("id", PLUGIN_ID + "\n", r"id is missing or malformed: 'hello\\n'"),
    ("sha256", "0" * 64 + "\n", "sha256 is missing or malformed"),
    ("version", "1.0.0\n", "version is missing or malformed"),
])
def test_loose_fields_are_refused_even_when_signed(tmp_path: Path, field: str, value: Any, reason: str) -> None:
    pub, trust, doc = _published(tmp_path)
    if field == "spec":
        doc["signed"]["spec"] = value
    else:
        doc["signed"]["plugins"][0][field] = value
    _resign(pub, doc)
    path = pub.out / "index.json"
    path.write_text(json.dumps(doc))
    box = installer(tmp_path, str(path), trust)
    with pytest.raises(IndexRefused, match=reason):
        box.refresh()
