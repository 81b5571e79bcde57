"""Hash-chained, append-only audit ledger: ``WORKDIR/audit/ledger.jsonl``.

Each line is one canonical-JSON event::

    {"seq": 3, "prev": "<entry_hash of seq 2>", "time": "...", "stage": "prepare",
     "inputs": {...digests}, "outputs": {...digests}, "config_digest": "...",
     "versions": {...}, "details": {...}, "entry_hash": "<sha256 of the event without entry_hash>"}

``verify_ledger`` recomputes every hash and link and reports the *first* bad entry, so an
edited, deleted, reordered or truncated entry is detected (truncation of the tail is detected
against a signed checkpoint, see :mod:`tunegate.approval`). One writer per workdir: appends
take a file lock. Events hold digests, counts and entity types only, never record text.

Durability: an append is all-or-nothing. The whole line is built first, written with
``O_APPEND``, then fsynced; only then is it *acknowledged* (the call returns). When the write or
the fsync fails (a full disk, a file size limit) the file is truncated back to its previous size
and :class:`LedgerWriteError` is raised: the event never happened. A crash in the middle of a
write can still leave a *torn tail*: a final line without its newline, or a final line that is
not JSON. Such a line was never acknowledged; :func:`verify_ledger` reports it as a torn tail
(not as tampering), nothing appends after it, and :func:`repair_torn_tail` (``tunegate audit
repair WORKDIR``) removes exactly that line and records the repair as a ledger event. Anything
else that does not verify (an edited, deleted or reordered entry anywhere) is never repaired.
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

from tunegate.errors import IntegrityError, LockError, StageError
from tunegate.provenance import (
    canonical_json,
    fault_point,
    fsync_dir,
    package_versions,
    sha256_bytes,
    sha256_text,
)
from tunegate.workdir import audit_dir

GENESIS = "0" * 64
LEDGER_REL = Path("audit") / "ledger.jsonl"
REPAIR_STAGE = "ledger-repair"


class LedgerWriteError(StageError):
    """An append could not be written durably; the file was restored to its previous size."""


class TornTailError(IntegrityError):
    """The last line of an append-only JSONL file is torn (an append that never completed)."""

    def __init__(self, tail: TornTail) -> None:
        self.tail = tail
        super().__init__(
            f"{tail.path}: line {tail.line} is a torn final line ({tail.reason}; {tail.size} bytes): "
            "an append that never completed, not an acknowledged entry",
            hint=f"run `tunegate audit repair {tail.workdir}` to remove it (the repair is recorded)",
        )


@dataclass(frozen=True)
class TornTail:
    """The unacknowledged last line of an append-only file: where it starts and why it is torn."""

    path: Path
    workdir: Path
    line: int
    offset: int
    size: int
    sha256: str
    reason: str


def ledger_path(workdir: str | Path) -> Path:
    return Path(workdir) / LEDGER_REL


def _lock(workdir: Path, timeout: float = 30.0) -> FileLock:
    audit_dir(workdir).mkdir(parents=True, exist_ok=True)
    return FileLock(str(audit_dir(workdir) / "ledger.lock"), timeout=timeout)


def entry_hash(event: Mapping[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "entry_hash"}
    return sha256_text(canonical_json(body))


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_line(raw: bytes) -> Any:
    """The JSON value of one line, or ``None`` when it is not UTF-8 JSON."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def split_jsonl(
    path: str | Path, *, workdir: str | Path | None = None
) -> tuple[list[bytes], TornTail | None]:
    """The complete lines of an append-only JSONL file (without newlines) and its torn tail, if any.

    The last line is torn when it lacks its newline (the write never finished) or is not JSON
    (a crash left garbage or zeros). Lines before it are returned as they are, even if invalid:
    judging them is the caller's job (a bad line in the middle is tampering, never a torn tail).
    """
    path = Path(path)
    data = path.read_bytes()
    if not data:
        return [], None
    parts = data.split(b"\n")
    complete, last = parts[:-1], parts[-1]
    reason = None
    if last:  # bytes after the final newline: the line never got its newline
        reason = "no trailing newline"
    elif _parse_line(complete[-1]) is None:
        last = complete.pop()
        reason = "not valid JSON"
    if reason is None:
        return complete, None
    offset = sum(len(line) + 1 for line in complete)
    tail = TornTail(
        path=path,
        workdir=Path(workdir) if workdir is not None else path.parent.parent,
        line=len(complete) + 1,
        offset=offset,
        size=len(data) - offset,
        sha256=sha256_bytes(data[offset:]),
        reason=reason,
    )
    return complete, tail


def read_entries(workdir: str | Path, *, allow_torn_tail: bool = False) -> list[dict[str, Any]]:
    """Every ledger event, in order. Raises :class:`TornTailError` on a torn final line, unless
    ``allow_torn_tail`` (then only the acknowledged entries before it are returned)."""
    path = ledger_path(workdir)
    if not path.exists():
        return []
    lines, tail = split_jsonl(path, workdir=workdir)
    if tail is not None and not allow_torn_tail:
        raise TornTailError(tail)
    out = []
    for i, raw in enumerate(lines, start=1):
        event = _parse_line(raw)
        if event is None:
            raise IntegrityError(f"{path}: entry {i} is not valid JSON")
        out.append(event)
    return out


def head(workdir: str | Path) -> tuple[int, str]:
    """(number of entries, hash of the last entry) — GENESIS for an empty ledger."""
    entries = read_entries(workdir)
    if not entries:
        return 0, GENESIS
    return len(entries), str(entries[-1]["entry_hash"])


def append_line(path: str | Path, line: str, *, point: str) -> None:
    """Append one line all-or-nothing: write with O_APPEND, fsync, and on any failure truncate
    the file back to its previous size before raising :class:`LedgerWriteError`.

    The caller holds the file's writer lock. ``point`` names the fault-injection points
    (``<point>:before-write``, ``<point>:mid-write``, ``<point>:before-fsync``).
    """
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            fault_point(f"{point}:before-write")
            fault_point(f"{point}:mid-write", before_exit=lambda: os.write(fd, data[: len(data) // 2]))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            fault_point(f"{point}:before-fsync")
            os.fsync(fd)
        except OSError as exc:
            restored = True
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            except OSError:
                restored = False
            state = (
                "the file was restored to its previous size"
                if restored
                else "the file could not be restored: `tunegate audit verify` will report a torn tail"
            )
            raise LedgerWriteError(
                f"{path}: could not append ({exc.strerror or exc}); the entry was not recorded and {state}",
                hint="free disk space (or raise the file size limit) and run the command again",
            ) from None
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


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
    """Append one event under the workdir's ledger lock and return it (with its hash).

    All-or-nothing (see the module docstring): when this returns, the event is on disk; when it
    raises, the ledger is as it was. Refuses (:class:`TornTailError`) to append after a torn tail.
    """
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
            append_line(ledger_path(workdir), canonical_json(event), point=f"ledger:{stage}")
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
    torn_tail: TornTail | None = None


def verify_ledger(workdir: str | Path, *, expect_at_least: int | None = None) -> LedgerReport:
    """Recompute the chain. ``first_bad`` is the 1-based position of the first bad entry.

    A torn final line is reported as such (``torn_tail`` set, ``ok`` false): it is repairable with
    :func:`repair_torn_tail` only when every line before it verifies.
    """
    path = ledger_path(workdir)
    if not path.exists():
        return LedgerReport(False, 0, GENESIS, 1, f"{path} does not exist")
    lines, tail = split_jsonl(path, workdir=workdir)
    prev = GENESIS
    n = 0
    for i, raw in enumerate(lines, start=1):
        event = _parse_line(raw)
        bad = None
        if event is None:
            bad = f"entry {i} is not valid JSON"
        elif not isinstance(event, dict) or "entry_hash" not in event:
            bad = f"entry {i} has no entry_hash"
        elif event.get("seq") != i:
            bad = f"entry {i} has seq {event.get('seq')!r}: deleted or reordered"
        elif event.get("prev") != prev:
            bad = f"entry {i} does not link to entry {i - 1}: deleted or reordered"
        elif entry_hash(event) != event["entry_hash"]:
            bad = f"entry {i} was edited: its hash does not match"
        if bad is not None:
            return LedgerReport(False, i - 1, prev, i, bad)
        prev = event["entry_hash"]
        n = i
    if tail is not None:
        return LedgerReport(
            False,
            n,
            prev,
            tail.line,
            f"entry {tail.line} is a torn final line ({tail.reason}, {tail.size} bytes): an append that "
            f"never completed; {f'entries 1-{n} verify' if n else 'no entry before it'}; "
            f"run `tunegate audit repair {workdir}` to remove it",
            torn_tail=tail,
        )
    if expect_at_least is not None and n < expect_at_least:
        return LedgerReport(
            False,
            n,
            prev,
            n + 1,
            f"ledger has {n} entries, a checkpoint recorded {expect_at_least}: truncated",
        )
    return LedgerReport(True, n, prev)


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair_torn_tail` removed (empty when there was nothing to repair)."""

    removed: tuple[TornTail, ...]
    event: dict[str, Any] | None


def _truncate_tail(tail: TornTail) -> None:
    fd = os.open(tail.path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size != tail.offset + tail.size:
            raise IntegrityError(f"{tail.path}: changed while it was being repaired; run the repair again")
        os.ftruncate(fd, tail.offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_torn_tail(
    workdir: str | Path, *, also: tuple[str | Path, ...] = (), lock_timeout: float = 30.0
) -> RepairResult:
    """Remove an unacknowledged torn final line from the ledger (and from the append-only files
    in ``also``, e.g. ``audit/checkpoints.jsonl``), then record the repair as a ledger event.

    Refuses (:class:`IntegrityError`) whenever anything else is wrong: a ledger entry before the
    tail that does not verify is tampering or corruption, never repaired here.
    """
    wd = Path(workdir)
    path = ledger_path(wd)
    if not path.exists():
        raise IntegrityError(f"{path} does not exist: nothing to repair")
    try:
        with _lock(wd, lock_timeout):
            rep = verify_ledger(wd)
            if not rep.ok and rep.torn_tail is None:
                raise IntegrityError(
                    f"{path}: {rep.reason}: this is not a torn final line, and `audit repair` only ever "
                    "removes one",
                    hint="restore the ledger from a backup or the registry bundle; investigate the change",
                )
            tails = [rep.torn_tail] if rep.torn_tail is not None else []
            for extra in also:
                p = Path(extra)
                with FileLock(str(p.with_suffix(".lock")), timeout=lock_timeout):
                    if p.exists():
                        _, t = split_jsonl(p, workdir=wd)
                        if t is not None:
                            _truncate_tail(t)
                            tails.append(t)
            if rep.torn_tail is not None:
                _truncate_tail(rep.torn_tail)
            if not tails:
                return RepairResult((), None)
    except Timeout:
        raise LockError(f"{wd}: the audit ledger is locked by another writer") from None
    removed = [
        {
            "file": _rel(t.path, wd),
            "line": t.line,
            "offset": t.offset,
            "bytes": t.size,
            "sha256": t.sha256,
            "reason": t.reason,
        }
        for t in tails
    ]
    event = append_event(wd, REPAIR_STAGE, details={"removed_torn_tails": removed})
    return RepairResult(tuple(tails), event)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name
