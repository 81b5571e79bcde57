"""Ed25519 reviewer keys and the trusted-reviewer directory.

A reviewer key pair is two files: ``NAME.key`` (PKCS#8 PEM private key, mode 0600, optionally
encrypted with a passphrase) and ``NAME.pub`` (JSON: name, key id, roles, public key). The key id
is the sha256 of the 32 raw public-key bytes, so anyone can recompute it: a ``.pub`` whose key id
does not match its key is rejected, and a signature made with another key under a copied key id
fails verification. Only ``.pub`` files belong in ``gates/approvers/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tunegate.errors import ConfigError, DependencyError, InputError, IntegrityError
from tunegate.provenance import atomic_path, pretty_json, sha256_bytes

PUBKEY_FORMAT = "tunegate-ed25519-public-key/v1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte public key."""
    return sha256_bytes(raw_public_bytes(public_key))


@dataclass(frozen=True)
class Reviewer:
    """A trusted public key and who holds it."""

    name: str
    key_id: str
    roles: tuple[str, ...]
    public_key: Ed25519PublicKey
    path: str


def public_key_document(name: str, public_key: Ed25519PublicKey, roles: tuple[str, ...]) -> dict[str, object]:
    return {
        "format": PUBKEY_FORMAT,
        "name": name,
        "key_id": key_id(public_key),
        "algorithm": "ed25519",
        "public_key": base64.b64encode(raw_public_bytes(public_key)).decode("ascii"),
        "roles": list(roles),
    }


def generate_keypair(
    name: str,
    out_dir: str | Path,
    *,
    passphrase: bytes | None = None,
    roles: tuple[str, ...] = ("reviewer",),
) -> tuple[Path, Path]:
    """Write ``NAME.key`` (0600) and ``NAME.pub`` into ``out_dir``; refuse to overwrite."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"The 'name' parameter of keygen must be 1-64 characters of letters, digits, '.', '_' or '-'. "
            f"Got {name!r} instead."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (priv_path, pub_path):
        if p.exists():
            raise ConfigError(
                f"{p} already exists", hint="choose another --name or --out; keys are never overwritten"
            )
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    # Create with 0600 from the start: the key never exists on disk with looser permissions.
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(priv_path, 0o600)
    with atomic_path(pub_path) as tmp:
        tmp.write_text(pretty_json(public_key_document(name, key.public_key(), roles)), encoding="utf-8")
    return priv_path, pub_path


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    p = Path(path)
    if not p.is_file():
        raise DependencyError(f"{p}: private key not found", hint="create one with `tunegate keygen`")
    mode = p.stat().st_mode & 0o077
    if mode:
        raise ConfigError(
            f"{p}: private key is readable by group/others (mode {oct(p.stat().st_mode & 0o777)})",
            hint=f"chmod 600 {p}",
        )
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=passphrase)
    except TypeError:
        raise ConfigError(
            f"{p}: the private key is passphrase-protected", hint="pass --passphrase-env VAR"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{p}: not a readable PEM private key (or wrong passphrase)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{p}: expected an Ed25519 private key, found {type(key).__name__}")
    return key


def load_public_key_file(path: str | Path) -> Reviewer:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable public key document ({exc})", path=p) from None
    if not isinstance(doc, dict):
        raise InputError("a public key document must be a JSON object", path=p)
    for field in ("format", "name", "key_id", "algorithm", "public_key", "roles"):
        if field not in doc:
            raise InputError("missing field", path=p, field=field)
    if doc["format"] != PUBKEY_FORMAT or doc["algorithm"] != "ed25519":
        raise InputError(f"expected format {PUBKEY_FORMAT} / ed25519", path=p, field="format")
    try:
        raw = base64.b64decode(doc["public_key"], validate=True)
        pub = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InputError("not a base64 Ed25519 public key (32 bytes)", path=p, field="public_key") from None
    if key_id(pub) != doc["key_id"]:
        raise IntegrityError(
            f"{p}: key_id {str(doc['key_id'])[:16]}… does not match the key (sha256 of the raw key is "
            f"{key_id(pub)[:16]}…)"
        )
    roles = doc["roles"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InputError("roles must be a list of strings", path=p, field="roles")
    return Reviewer(str(doc["name"]), key_id(pub), tuple(roles), pub, str(p))


def load_reviewers(approvers_dir: str | Path) -> dict[str, Reviewer]:
    """key id -> Reviewer for every ``*.pub`` in the directory (fails closed on a bad file)."""
    d = Path(approvers_dir)
    if not d.is_dir():
        raise DependencyError(
            f"{d}: approvers directory not found", hint="set approval.approvers_dir or pass --approvers DIR"
        )
    out: dict[str, Reviewer] = {}
    for p in sorted(d.glob("*.pub")):
        r = load_public_key_file(p)
        if r.key_id in out:
            raise ConfigError(f"{p}: key id {r.key_id[:16]}… is listed twice (also in {out[r.key_id].path})")
        out[r.key_id] = r
    return out


def find_reviewer_for_key(
    private_key: Ed25519PrivateKey, key_path: Path, approvers_dir: Path | None
) -> tuple[str, str]:
    """(name, key id) for a private key: from the trusted list, else from the ``.pub`` beside it."""
    kid = key_id(private_key.public_key())
    if approvers_dir is not None and approvers_dir.is_dir():
        reviewers = load_reviewers(approvers_dir)
        if kid in reviewers:
            return reviewers[kid].name, kid
    sibling = key_path.with_suffix(".pub")
    if sibling.is_file():
        r = load_public_key_file(sibling)
        if r.key_id == kid:
            return r.name, kid
    raise DependencyError(
        f"{key_path}: no public key document found for key id {kid[:16]}…",
        hint="keep NAME.pub beside NAME.key, or add it to the approvers directory",
    )
