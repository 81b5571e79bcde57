"""``tunegate audit verify`` and ``audit repair``: the ledger chain, its checkpoints and those
embedded in approvals; and the one repair tunegate ever makes to them, removing a torn final
line (an append that never completed, see :mod:`tunegate.ledger`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.approval.checkpoint import AuditReport, checkpoints_path, verify_checkpoints, write_checkpoint
from tunegate.approval.dsse import parse_envelope, read_envelope
from tunegate.errors import IntegrityError
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


def audit_workdir(workdir: str | Path, *, policy: GatePolicy) -> AuditReport:
    try:
        extra = embedded_checkpoints(workdir)
    except IntegrityError as exc:
        rep = verify_checkpoints(workdir, key_rel=policy.approval.checkpoint_key)
        rep.ok = False
        rep.problems.append(str(exc))
        return rep
    return verify_checkpoints(workdir, extra=extra, key_rel=policy.approval.checkpoint_key)


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
