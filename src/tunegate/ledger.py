"""Hash-chained, append-only audit ledger: ``WORKDIR/audit/ledger.jsonl``.

Each line is one canonical-JSON event::

    {"seq": 3, "prev": "<entry_hash of seq 2>", "time": "...", "stage": "prepare",
     "inputs": {...digests}, "outputs": {...digests}, "config_digest": "...",
     "versions": {...}, "details": {...}, "entry_hash": "<sha256 of the event without entry_hash>"}

``verify_ledger`` recomputes every hash and link and reports the *first* bad entry, so an
edited, deleted, reordered or truncated entry is detected (truncation of the tail is detected
against a signed checkpoint, see :mod:`tunegate.approval`). One writer per workdir: appends
take a file lock. Events hold digests, counts and entity types only, never record text.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tunegate.errors import IntegrityError, LockError
from tunegate.provenance import canonical_json, package_versions, sha256_text

GENESIS = "0" * 64
LEDGER_REL = Path("audit") / "ledger.jsonl"


def ledger_path(workdir: str | Path) -> Path:
    return Path(workdir) / LEDGER_REL


def _lock(workdir: Path, timeout: float = 30.0) -> FileLock:
    (workdir / "audit").mkdir(parents=True, exist_ok=True)
    return FileLock(str(workdir / "audit" / "ledger.lock"), timeout=timeout)


def entry_hash(event: Mapping[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "entry_hash"}
    return sha256_text(canonical_json(body))


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def read_entries(workdir: str | Path) -> list[dict[str, Any]]:
    path = ledger_path(workdir)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IntegrityError(f"{path}: entry {i} is not valid JSON ({exc.msg})") from None
    return out


def head(workdir: str | Path) -> tuple[int, str]:
    """(number of entries, hash of the last entry) — GENESIS for an empty ledger."""
    entries = read_entries(workdir)
    if not entries:
        return 0, GENESIS
    return len(entries), str(entries[-1]["entry_hash"])


def append_event(
    workdir: str | Path,
    stage: str,
    *,
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    config_digest: str | None = None,
    details: Mapping[str, Any] | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """Append one event under the workdir's ledger lock and return it (with its hash)."""
    workdir = Path(workdir)
    try:
        with _lock(workdir):
            entries = read_entries(workdir)
            prev = entries[-1]["entry_hash"] if entries else GENESIS
            event: dict[str, Any] = {
                "seq": len(entries) + 1,
                "prev": prev,
                "time": time or now_utc(),
                "stage": stage,
                "inputs": dict(inputs or {}),
                "outputs": dict(outputs or {}),
                "config_digest": config_digest,
                "versions": {k: v for k, v in package_versions().items() if v is not None},
                "details": dict(details or {}),
            }
            event["entry_hash"] = entry_hash(event)
            path = ledger_path(workdir)
            # Append-only: one write of one line, flushed and fsynced before the lock is released.
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(canonical_json(event) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            return event
    except Timeout:
        raise LockError(
            f"{workdir}: the audit ledger is locked by another writer",
            hint="wait for the other tunegate process on this workdir to finish",
        ) from None


@dataclass(frozen=True)
class LedgerReport:
    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    reason: str | None = None


def verify_ledger(workdir: str | Path, *, expect_at_least: int | None = None) -> LedgerReport:
    """Recompute the chain. ``first_bad`` is the 1-based position of the first bad entry."""
    path = ledger_path(workdir)
    if not path.exists():
        return LedgerReport(False, 0, GENESIS, 1, f"{path} does not exist")
    prev = GENESIS
    n = 0
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            n = i
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                return LedgerReport(False, i - 1, prev, i, f"entry {i} is not valid JSON")
            if not isinstance(event, dict) or "entry_hash" not in event:
                return LedgerReport(False, i - 1, prev, i, f"entry {i} has no entry_hash")
            if event.get("seq") != i:
                return LedgerReport(
                    False, i - 1, prev, i, f"entry {i} has seq {event.get('seq')!r}: deleted or reordered"
                )
            if event.get("prev") != prev:
                return LedgerReport(
                    False, i - 1, prev, i, f"entry {i} does not link to entry {i - 1}: deleted or reordered"
                )
            if entry_hash(event) != event["entry_hash"]:
                return LedgerReport(False, i - 1, prev, i, f"entry {i} was edited: its hash does not match")
            prev = event["entry_hash"]
    if expect_at_least is not None and n < expect_at_least:
        return LedgerReport(
            False,
            n,
            prev,
            n + 1,
            f"ledger has {n} entries, a checkpoint recorded {expect_at_least}: truncated",
        )
    return LedgerReport(True, n, prev)
