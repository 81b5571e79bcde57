"""DSSE envelopes (Dead Simple Signing Envelope v1) around in-toto Statement v1 payloads.

The signature is over PAE(payloadType, payload), never over re-serialized JSON, so what was
signed is exactly the bytes in the envelope. Parsing is strict: unexpected or missing fields,
another payload type, or more than one signature are errors that name the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tunegate.errors import IntegrityError
from tunegate.provenance import canonical_json

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(statement: dict[str, Any], key: Ed25519PrivateKey, keyid: str) -> dict[str, Any]:
    payload = canonical_json(statement).encode("utf-8")
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode("ascii")}],
    }


def parse_envelope(doc: Any, where: str) -> tuple[bytes, str, bytes]:
    """Return (payload bytes, keyid, signature) of a strictly-shaped single-signature envelope."""
    if not isinstance(doc, dict):
        raise IntegrityError(f"{where}: an envelope must be a JSON object")
    expected = {"payload", "payloadType", "signatures"}
    if set(doc) != expected:
        extra, missing = sorted(set(doc) - expected), sorted(expected - set(doc))
        raise IntegrityError(f"{where}: unexpected envelope fields {extra} / missing {missing}")
    if doc["payloadType"] != PAYLOAD_TYPE:
        raise IntegrityError(f"{where}: wrong payload type {doc['payloadType']!r}, expected {PAYLOAD_TYPE!r}")
    sigs = doc["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise IntegrityError(f"{where}: expected exactly one signature")
    if set(sigs[0]) != {"keyid", "sig"}:
        raise IntegrityError(f"{where}: a signature must have exactly the fields keyid and sig")
    try:
        payload = base64.b64decode(doc["payload"], validate=True)
        sig = base64.b64decode(sigs[0]["sig"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise IntegrityError(f"{where}: payload or sig is not valid base64") from None
    return payload, str(sigs[0]["keyid"]), sig


def verify_signature(public_key: Ed25519PublicKey, payload: bytes, sig: bytes, where: str) -> None:
    try:
        public_key.verify(sig, pae(PAYLOAD_TYPE, payload))
    except InvalidSignature:
        raise IntegrityError(
            f"{where}: signature does not verify with the trusted key for its key id "
            "(signed by another key, or the payload was changed)"
        ) from None


def read_envelope(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not a readable DSSE envelope ({exc})") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{path}: an envelope must be a JSON object")
    if path.read_bytes() != (canonical_json(doc) + "\n").encode("utf-8"):
        # tunegate writes envelopes canonically; any other byte sequence was edited after signing
        raise IntegrityError(f"{path}: the envelope is not in canonical form: it was edited after signing")
    return doc
