"""``tunegate audit verify``: the ledger chain, its checkpoints and those embedded in approvals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunegate.approval.checkpoint import AuditReport, verify_checkpoints
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


__all__ = ["audit_workdir", "embedded_checkpoints"]
