"""``tunegate audit verify`` and ``audit repair``: the ledger chain, its checkpoints and those
embedded in approvals; and the one repair tunegate ever makes to them, removing a torn final
line (an append that never completed, see :mod:`tunegate.ledger`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.approval.checkpoint import (
    AuditReport,
    checkpoints_path,
    read_ledger,
    verify_checkpoints,
    write_checkpoint,
)
from tunegate.approval.dsse import parse_envelope, read_envelope
from tunegate.errors import IntegrityError, TunegateError
from tunegate.policy.schema import GatePolicy


def embedded_checkpoints(workdir: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(file, checkpoint) from every approval envelope in the workdir (signatures checked by verify)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for p in sorted(Path(workdir).glob("runs/*/approvals/*.dsse.json")):
        payload, _, _ = parse_envelope(read_envelope(p), str(p))
        try:
            cp = json.loads(payload)["predicate"]["checkpoint"]
        except (KeyError, TypeError, json.JSONDecodeError):
            raise IntegrityError(f"{p}: approval carries no checkpoint") from None
        out.append((f"{p} (embedded checkpoint)", cp))
    return out


def time_order_problems(entries: list[dict[str, Any]]) -> list[str]:
    """Ledger times must never go backwards, nor lie in the future (beyond the clock-skew allowance)."""
    from tunegate.approval.verify import MAX_CLOCK_SKEW, parse_time

    out: list[str] = []
    prev: dt.datetime | None = None
    limit = dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW
    for i, e in enumerate(entries, start=1):
        try:
            t = parse_time(str(e.get("time")), f"ledger entry {i}")
        except IntegrityError as exc:
            out.append(str(exc))
            continue
        if prev is not None and t < prev:
            out.append(f"ledger entry {i} is dated {e.get('time')}, before entry {i - 1}: times out of order")
        if t > limit:
            out.append(f"ledger entry {i} is dated {e.get('time')}, in the future")
        prev = t
    return out


def unfinished_promotions(entries: list[dict[str, Any]]) -> list[str]:
    """``promote_intent`` events with no later ``promote`` (or ``promote_abandoned``) of the same
    name and version: a crashed promotion that recovery could not settle yet."""
    from tunegate.approval.promote import unfinished_intents

    out = []
    for e in unfinished_intents(entries):
        d = e.get("details") or {}
        out.append(
            f"ledger entry {e.get('seq')}: promotion of run {d.get('run_id')} to {d.get('name')}/"
            f"v{d.get('version')} was started but not recorded as finished: run `tunegate promote` with "
            "the same --registry again (it completes or rolls back the interrupted promotion)"
        )
    return out


def audit_workdir(workdir: str | Path, *, policy: GatePolicy) -> AuditReport:
    """Ledger chain, checkpoints (own and embedded), time order, and every run's approval set."""
    from tunegate.approval.promote import recover_promotions
    from tunegate.approval.recovery import recover_approvals, staged_notes
    from tunegate.approval.verify import reconcile_approvals
    from tunegate.workdir import list_runs

    # first finish what a crashed sign / promote left (each only on a ledger that verifies)
    recovered: list[str] = []
    unsettled: list[str] = []
    for rid in list_runs(workdir, finished=False):
        try:
            recovered += [r.message() for r in recover_approvals(Path(workdir), rid)]
        except TunegateError as exc:
            unsettled.append(str(exc))
    recovered += recover_promotions(Path(workdir), policy=policy)
    for rid in list_runs(workdir, finished=False):  # what recovery could not settle (a torn tail)
        recovered += staged_notes(workdir, rid)
    try:
        extra = embedded_checkpoints(workdir)
    except IntegrityError as exc:
        rep = verify_checkpoints(workdir, key_rel=policy.approval.checkpoint_key)
        rep.ok = False
        rep.problems.extend([str(exc), *unsettled])
        rep.notes.extend(recovered)
        return rep
    rep = verify_checkpoints(workdir, extra=extra, key_rel=policy.approval.checkpoint_key)
    rep.notes.extend(recovered)
    rep.problems.extend(unsettled)
    rep.ok = not rep.problems
    try:
        entries = read_ledger(workdir)
    except IntegrityError:
        return rep  # already reported by verify_checkpoints (recovery notes included)
    rep.problems.extend(time_order_problems(entries))
    runs = set(list_runs(workdir, finished=False))
    runs |= {
        str((e.get("details") or {}).get("run_id"))
        for e in entries
        if e.get("stage") == "sign" and (e.get("details") or {}).get("run_id")
    }
    for rid in sorted(runs):
        try:
            reconcile_approvals(Path(workdir), rid, entries)
        except TunegateError as exc:
            rep.problems.append(str(exc))
    rep.notes.extend(unfinished_promotions(entries))
    rep.ok = not rep.problems
    return rep


def repair_audit_trail(workdir: str | Path, *, policy: GatePolicy) -> ledger.RepairResult:
    """Remove a torn final line from ``audit/ledger.jsonl`` and ``audit/checkpoints.jsonl``,
    record the repair in the ledger and sign a checkpoint over the repaired head.

    Refuses (:class:`IntegrityError`) when the ledger has any other problem. Returns an empty
    result (nothing written) when there is no torn tail.
    """
    result = ledger.repair_torn_tail(workdir, also=(checkpoints_path(workdir),))
    if result.event is not None:
        write_checkpoint(workdir, ledger.REPAIR_STAGE, key_rel=policy.approval.checkpoint_key)
    return result


__all__ = ["audit_workdir", "embedded_checkpoints", "repair_audit_trail"]
