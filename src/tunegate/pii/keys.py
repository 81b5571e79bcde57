"""The pseudonymization key: read from ``TUNEGATE_PII_KEY`` (or a local key file), never written.

Pseudonyms are keyed HMACs, so whoever holds the key can test a guessed value against a
placeholder; without it a placeholder reveals nothing. The key therefore never appears in any
artifact, log or report. Reports carry only :func:`key_fingerprint`, a keyed digest of a fixed
label, so two runs can be shown to have used the same key without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from tunegate.errors import DependencyError

KEY_ENV = "TUNEGATE_PII_KEY"
MIN_KEY_CHARS = 32
MIN_DISTINCT_CHARS = 10
MIN_KEY_BITS = 96.0


def _estimated_bits(key: str) -> float:
    """A generous estimate of a key's entropy: length times the empirical bits per character."""
    import math
    from collections import Counter

    n = len(key)
    per_char = -sum(c / n * math.log2(c / n) for c in Counter(key).values()) if n else 0.0
    return max(0.0, per_char * n)


def _check(key: str, where: str) -> bytes:
    key = key.strip()
    hint = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
    if len(key) < MIN_KEY_CHARS:
        raise DependencyError(
            f"the PII key from {where} is too short ({len(key)} characters, need >= {MIN_KEY_CHARS})",
            hint=hint,
        )
    distinct = len(set(key))
    if distinct < MIN_DISTINCT_CHARS or _estimated_bits(key) < MIN_KEY_BITS:
        raise DependencyError(
            f"the PII key from {where} has too little entropy ({distinct} distinct characters, about "
            f"{_estimated_bits(key):.0f} bits; need >= {MIN_DISTINCT_CHARS} distinct and >= "
            f"{MIN_KEY_BITS:.0f} bits): a guessable key lets anyone recompute pseudonyms",
            hint=hint,
        )
    return key.encode("utf-8")


def load_pii_key(allow_file: Path | None = None) -> bytes:
    """The pseudonymization key: env ``TUNEGATE_PII_KEY`` first, else ``allow_file`` if given and present.

    Raises :class:`DependencyError` when neither is available: anonymizing without a key would
    make pseudonyms either random (inconsistent across runs) or guessable.
    """
    value = os.environ.get(KEY_ENV)
    if value:
        return _check(value, f"${KEY_ENV}")
    if allow_file is not None:
        path = Path(allow_file)
        if path.is_file():
            return _check(path.read_text(encoding="utf-8"), f"key file {path.name}")
    raise DependencyError(
        f"no PII pseudonymization key: set ${KEY_ENV}"
        + (f" or create the key file {Path(allow_file).name}" if allow_file is not None else ""),
        hint=f"export {KEY_ENV}=$(python -c 'import secrets; print(secrets.token_hex(32))') and keep it "
        "secret; the same key gives the same pseudonyms across runs",
    )


def create_pii_key_file(path: Path) -> Path:
    """Create a random key file readable by the owner only (for demos). Never overwrites a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path


def key_fingerprint(key: bytes) -> str:
    """A short keyed digest of a constant: the same key gives the same fingerprint; reveals nothing."""
    return hmac.new(key, b"tunegate-pii-key-fingerprint-v1", hashlib.sha256).hexdigest()[:16]
