"""Drift check, the library entry point: :func:`check_drift` (the CLI and the nightly flow call it).

Reads the workdir's training split and the production prompts, computes the policy's checks,
writes the report (``WORKDIR/drift/<time>/``), marks the hold-out as no longer representative on
drift and appends a ledger event (digests and statistics only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.drift.config import DriftPolicy
from tunegate.drift.detect import TRAIN_REL, PromptEncoder, compute_checks, read_current, read_reference
from tunegate.drift.report import (
    MARKER_REL,
    DriftReport,
    find_promotion,
    write_marker,
    write_report,
)
from tunegate.errors import InputError
from tunegate.provenance import digest_json, git_info, package_versions, sha256_file

DRIFT_DIR = "drift"


@dataclass(frozen=True)
class DriftOutcome:
    report: DriftReport
    out_dir: Path
    files: dict[str, Path]
    marker: Path | None
    ledger_seq: int


def load_drift_policy(
    path: str | Path | None, workdir: str | Path | None = None
) -> tuple[DriftPolicy, str | None]:
    """The ``drift:`` section of the gate policy (and the whole policy's digest): ``path``, else the
    policy pinned in ``workdir`` (a different ``path`` than the pinned one is refused)."""
    from tunegate.policy.pinned import resolve_policy

    gate = resolve_policy(workdir, path)
    # ``drift`` is a GatePolicy section; a policy model without it gives the defaults.
    section = getattr(gate, "drift", None)
    return (section if isinstance(section, DriftPolicy) else DriftPolicy()), gate.digest()


def _report_dir(workdir: Path, out: str | Path | None, time: str) -> Path:
    if out is not None:
        return Path(out)
    stamp = time.replace("-", "").replace(":", "")
    (workdir / DRIFT_DIR).mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = workdir / DRIFT_DIR / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()  # exclusive: two checks in the same second keep both reports
        except FileExistsError:
            continue
        return candidate
    raise InputError("too many drift reports in the same second", path=workdir / DRIFT_DIR)


def _ledger_key(workdir: Path, path: Path, prefix: str) -> str:
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return f"{prefix}:{path.name}"


def check_drift(
    reference: str | Path,
    current: str | Path,
    *,
    policy: DriftPolicy | None = None,
    out: str | Path | None = None,
    registry: str | Path | None = None,
    gate_policy_digest: str | None = None,
    encoder: PromptEncoder | None = None,
) -> DriftOutcome:
    """Run every drift check of ``policy``, write the report, mark the hold-out, append to the ledger."""
    from tunegate.ledger import append_event, now_utc

    policy = policy or DriftPolicy()
    workdir = Path(reference)
    if not workdir.is_dir():
        raise InputError("the reference workdir does not exist", path=workdir)
    # Inputs are read (and rejected) before the encoder loads: bad input fails in milliseconds.
    ref = read_reference(workdir, policy)
    cur = read_current(current, policy)
    encoder = encoder or PromptEncoder(policy.embedding_model, batch_size=policy.batch_size)
    checks = compute_checks(ref, cur, policy, encoder)
    alarms = [c.name for c in checks if c.status == "drift" and c.gating]
    drifted = bool(alarms)
    time = now_utc()
    out_dir = _report_dir(workdir, out, time)
    marker_path = workdir / MARKER_REL
    report = DriftReport(
        time=time,
        drifted=drifted,
        holdout_representative=not drifted,
        alarms=alarms,
        checks=checks,
        reference={
            "file": TRAIN_REL.as_posix(),
            "sha256": ref.sha256,
            "rows": ref.rows,
            "sampled": len(ref.texts),
            "label_source": ref.label_source,
        },
        current={
            "file": cur.name,
            "sha256": cur.sha256,
            "rows": cur.rows,
            "sampled": len(cur.texts),
            "label_source": cur.label_source,
        },
        promotion=find_promotion(workdir, registry),
        marker=MARKER_REL.as_posix() if drifted or marker_path.is_file() else None,
        policy=policy.model_dump(mode="json"),
        policy_digest=digest_json(policy.model_dump(mode="json")),
        encoder=encoder.describe(),
        provenance={
            "git": git_info(),
            "versions": package_versions(),
            "gate_policy_digest": gate_policy_digest,
            "seed": policy.seed,
        },
    )
    files = write_report(report, out_dir)
    marker = write_marker(workdir, report, files["json"]) if drifted else None
    outputs = {_ledger_key(workdir, p, "report"): sha256_file(p) for p in files.values()}
    if marker is not None:
        outputs[MARKER_REL.as_posix()] = sha256_file(marker)
    details: dict[str, Any] = {
        "drifted": drifted,
        "alarms": alarms,
        "statistics": {
            c.name: {"status": c.status, "value": c.value, "p_value": c.p_value, "threshold": c.threshold}
            for c in checks
        },
        "rows": {"reference": ref.rows, "current": cur.rows},
        "promotion": {
            "status": report.promotion.status,
            "run_id": report.promotion.run_id,
            "approval_digest": report.promotion.approval_digest,
        },
    }
    event = append_event(
        workdir,
        "drift",
        inputs={TRAIN_REL.as_posix(): ref.sha256, f"current:{cur.name}": cur.sha256},
        outputs=outputs,
        config_digest=report.policy_digest,
        details=details,
    )
    return DriftOutcome(
        report=report, out_dir=out_dir, files=files, marker=marker, ledger_seq=int(event["seq"])
    )
