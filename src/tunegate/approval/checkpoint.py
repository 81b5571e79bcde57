"""Signed ledger checkpoints: ``WORKDIR/audit/checkpoints.jsonl``.

After each stage the workdir key (``WORKDIR/audit/checkpoint_key``, Ed25519, created on first use
with mode 0600) signs ``{size, head, time, stage, key_id}`` of the hash-chained ledger. The key
authenticates the *workdir*, not a person: anyone who can write the workdir can also sign with
it. What makes truncation after approval detectable is that each reviewer's signed approval
embeds the latest checkpoint; a ledger shorter than, or diverging from, an embedded checkpoint
fails :func:`verify_checkpoints` and ``tunegate verify``.

Retention: tunegate never prunes or archives the ledger. :func:`check_retention` enforces that
the first entry is still seq 1 (nothing was cut from the front) and reports the oldest entry's age.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from filelock import FileLock

from tunegate import ledger
from tunegate.approval.keys import key_id, raw_public_bytes
from tunegate.errors import IntegrityError
from tunegate.provenance import atomic_write_text, canonical_json
from tunegate.workdir import audit_dir

CHECKPOINTS_REL = Path("audit") / "checkpoints.jsonl"
DEFAULT_KEY_REL = "audit/checkpoint_key"
CHECKPOINT_FIELDS = {"size", "head", "time", "stage", "key_id", "sig"}


def read_ledger(workdir: str | Path, *, allow_torn_tail: bool = False) -> list[dict[str, Any]]:
    """``ledger.read_entries``, with undecodable bytes reported as an integrity failure."""
    try:
        return ledger.read_entries(workdir, allow_torn_tail=allow_torn_tail)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, IntegrityError):
            raise
        raise IntegrityError(f"{ledger.ledger_path(workdir)}: not valid UTF-8 JSON lines ({exc})") from None


def check_ledger(workdir: str | Path, *, expect_at_least: int | None = None) -> ledger.LedgerReport:
    """``ledger.verify_ledger``, with undecodable bytes reported as a failed chain."""
    try:
        return ledger.verify_ledger(workdir, expect_at_least=expect_at_least)
    except (UnicodeDecodeError, ValueError) as exc:
        return ledger.LedgerReport(False, 0, ledger.GENESIS, 1, f"the ledger is not valid UTF-8 ({exc})")


def checkpoints_path(workdir: str | Path) -> Path:
    return Path(workdir) / CHECKPOINTS_REL


def _key_paths(workdir: Path, key_rel: str) -> tuple[Path, Path]:
    priv = workdir / key_rel
    return priv, priv.with_name(priv.name + ".pub")


def load_or_create_workdir_key(workdir: str | Path, key_rel: str = DEFAULT_KEY_REL) -> Ed25519PrivateKey:
    """The workdir's checkpoint key; created (0600) with its public half on first use."""
    wd = Path(workdir)
    priv, pub = _key_paths(wd, key_rel)
    priv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(priv.parent / ".checkpoint_key.lock"), timeout=30):
        if not priv.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            atomic_write_text(
                pub, base64.b64encode(raw_public_bytes(key.public_key())).decode("ascii") + "\n"
            )
            return key
    loaded = serialization.load_pem_private_key(priv.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise IntegrityError(f"{priv}: the workdir checkpoint key is not an Ed25519 key")
    return loaded


def load_workdir_public_key(workdir: str | Path, key_rel: str = DEFAULT_KEY_REL) -> Ed25519PublicKey | None:
    _, pub = _key_paths(Path(workdir), key_rel)
    if not pub.exists():
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(pub.read_text().strip(), validate=True))
    except ValueError:
        raise IntegrityError(f"{pub}: not a base64 Ed25519 public key") from None


def _body(cp: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in cp.items() if k != "sig"}).encode("utf-8")


def write_checkpoint(workdir: str | Path, stage: str, *, key_rel: str = DEFAULT_KEY_REL) -> dict[str, Any]:
    """Sign the ledger's current head and append it to ``audit/checkpoints.jsonl``."""
    wd = Path(workdir)
    key = load_or_create_workdir_key(wd, key_rel)
    with FileLock(str(audit_dir(wd) / "checkpoints.lock"), timeout=30):
        size, head_hash = ledger.head(wd)
        cp: dict[str, Any] = {
            "size": size,
            "head": head_hash,
            "time": ledger.now_utc(),
            "stage": stage,
            "key_id": key_id(key.public_key()),
        }
        cp["sig"] = base64.b64encode(key.sign(_body(cp))).decode("ascii")
        ledger.append_line(checkpoints_path(wd), canonical_json(cp), point="checkpoints")
    return cp


def read_checkpoints(workdir: str | Path) -> list[dict[str, Any]]:
    path = checkpoints_path(workdir)
    if not path.exists():
        return []
    lines, tail = ledger.split_jsonl(path, workdir=Path(workdir))
    if tail is not None:
        raise ledger.TornTailError(tail)
    out = []
    for i, line in enumerate(lines, start=1):
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise IntegrityError(f"{path}: checkpoint {i} is not valid JSON") from None
    return out


def latest_checkpoint(workdir: str | Path) -> dict[str, Any] | None:
    cps = read_checkpoints(workdir)
    return cps[-1] if cps else None


def verify_checkpoint(
    workdir: str | Path, cp: Any, entries: list[dict[str, Any]], *, where: str, key_rel: str = DEFAULT_KEY_REL
) -> None:
    """One checkpoint: shape, workdir signature, and agreement with the ledger (raises IntegrityError)."""
    if not isinstance(cp, dict) or set(cp) != CHECKPOINT_FIELDS:
        raise IntegrityError(
            f"{where}: a checkpoint must have exactly the fields {sorted(CHECKPOINT_FIELDS)}"
        )
    pub = load_workdir_public_key(workdir, key_rel)
    if pub is None:
        raise IntegrityError(f"{where}: the workdir checkpoint public key ({key_rel}.pub) is missing")
    if cp["key_id"] != key_id(pub):
        raise IntegrityError(
            f"{where}: checkpoint was signed by key {str(cp['key_id'])[:16]}…, not this workdir's key"
        )
    try:
        pub.verify(base64.b64decode(cp["sig"], validate=True), _body(cp))
    except (InvalidSignature, ValueError):
        raise IntegrityError(f"{where}: checkpoint signature does not verify") from None
    size = cp["size"]
    if not isinstance(size, int) or size < 0:
        raise IntegrityError(f"{where}: checkpoint size {size!r} is not a count")
    if len(entries) < size:
        raise IntegrityError(
            f"{where}: ledger has {len(entries)} entries but the checkpoint recorded {size}: "
            "the ledger was truncated"
        )
    actual = entries[size - 1].get("entry_hash") if size else ledger.GENESIS
    if actual != cp["head"]:
        raise IntegrityError(
            f"{where}: ledger entry {size} has hash {str(actual)[:16]}…, the checkpoint recorded "
            f"{str(cp['head'])[:16]}…: history before the checkpoint was rewritten"
        )


@dataclass
class AuditReport:
    """Result of ``tunegate audit verify``: the ledger chain, then every checkpoint."""

    ok: bool
    entries: int
    checkpoints: int
    first_bad: int | None = None
    problems: list[str] = field(default_factory=list)
    oldest_entry_time: str | None = None
    notes: list[str] = field(default_factory=list)


def verify_checkpoints(
    workdir: str | Path,
    *,
    extra: list[tuple[str, dict[str, Any]]] | None = None,
    key_rel: str = DEFAULT_KEY_REL,
) -> AuditReport:
    """Verify the ledger chain and every checkpoint (plus ``extra`` ones, e.g. embedded in approvals)."""
    wd = Path(workdir)
    problems: list[str] = []
    cps: list[dict[str, Any]] = []
    try:
        cps = read_checkpoints(wd)
    except IntegrityError as exc:
        problems.append(str(exc))
    floor = max((c.get("size", 0) for c in cps if isinstance(c.get("size"), int)), default=0)
    for _, c in extra or []:
        if isinstance(c, dict) and isinstance(c.get("size"), int):
            floor = max(floor, c["size"])
    rep = check_ledger(wd, expect_at_least=floor or None)
    first_bad = rep.first_bad
    if not rep.ok:
        problems.append(f"ledger: {rep.reason} (first bad entry: {rep.first_bad})")
    entries: list[dict[str, Any]] = []
    try:
        entries = read_ledger(wd, allow_torn_tail=True)  # a torn tail is reported above
    except IntegrityError as exc:
        problems.append(str(exc))
    labelled = [(f"{checkpoints_path(wd)} line {i}", c) for i, c in enumerate(cps, start=1)]
    for where, c in labelled + list(extra or []):
        try:
            verify_checkpoint(wd, c, entries, where=where, key_rel=key_rel)
        except IntegrityError as exc:
            problems.append(str(exc))
    try:
        check_retention(entries)
    except IntegrityError as exc:
        problems.append(str(exc))
    oldest = str(entries[0].get("time")) if entries else None
    return AuditReport(not problems, len(entries), len(cps), first_bad, problems, oldest)


def check_retention(entries: list[dict[str, Any]]) -> None:
    """tunegate never prunes: the ledger must still start at seq 1 with the genesis link."""
    if entries and (entries[0].get("seq") != 1 or entries[0].get("prev") != ledger.GENESIS):
        raise IntegrityError(
            "ledger does not start at entry 1: entries were removed from the front "
            "(tunegate never prunes the ledger; retention forbids removing entries)"
        )


def entry_age_days(entry: Mapping[str, Any], now: dt.datetime | None = None) -> float:
    t = dt.datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00"))
    return ((now or dt.datetime.now(dt.UTC)) - t).total_seconds() / 86400.0


def prunable_entries(entries: list[dict[str, Any]], retention_days: int) -> int:
    """How many leading entries are *older* than retention (informational; tunegate prunes none)."""
    n = 0
    for e in entries:
        if entry_age_days(e) <= retention_days:
            break
        n += 1
    return n
