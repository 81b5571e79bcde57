"""Reviewer keys (keygen, 0600, passphrase, key id) and the DSSE encoding."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunegate.approval.dsse import pae
from tunegate.approval.keys import generate_keypair, load_private_key, load_public_key_file, raw_public_bytes
from tunegate.cli import app
from tunegate.errors import ConfigError, IntegrityError


def test_keygen_cli_writes_0600_key_and_public_doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYPASS", "correct horse")
    res = CliRunner().invoke(
        app, ["keygen", "--name", "dana", "--out", str(tmp_path), "--passphrase-env", "KEYPASS"]
    )
    assert res.exit_code == 0, res.output
    priv, pub = tmp_path / "dana.key", tmp_path / "dana.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in priv.read_bytes()
    doc = json.loads(pub.read_text())
    assert doc["name"] == "dana" and doc["roles"] == ["reviewer"]
    key = load_private_key(priv, b"correct horse")
    assert doc["key_id"] == hashlib.sha256(raw_public_bytes(key.public_key())).hexdigest()
    assert doc["key_id"] in res.output
    with pytest.raises(ConfigError, match="passphrase-protected"):
        load_private_key(priv)
    with pytest.raises(ConfigError, match="already exists"):
        generate_keypair("dana", tmp_path)


def test_public_key_with_wrong_key_id_is_rejected(tmp_path: Path) -> None:
    _, pub = generate_keypair("erin", tmp_path)
    doc = json.loads(pub.read_text())
    doc["key_id"] = "0" * 64
    pub.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="does not match the key"):
        load_public_key_file(pub)


def test_loose_private_key_permissions_refused(tmp_path: Path) -> None:
    priv, _ = generate_keypair("frank", tmp_path)
    priv.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_private_key(priv)


def test_pae_matches_dsse_spec_vector() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md test vector
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
