"""``tunegate drift``: compare production prompts with the training distribution of a workdir.

Exit 0: within the policy's thresholds. Exit 1: drift — the hold-out metrics are marked as no
longer representative (``WORKDIR/drift/holdout_not_representative.json``). Exit 2: bad input.
Every check is recorded in the workdir's audit ledger (digests and statistics only), so an
auditor sees that monitoring ran, not only that it once alarmed.

:func:`check_drift` is the library entry point (the nightly Prefect deployment calls it);
the typer command is a thin shell over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from tunegate.drift.config import DriftPolicy
from tunegate.drift.detect import TRAIN_REL, PromptEncoder, compute_checks, read_current, read_reference
from tunegate.drift.report import (
    MARKER_REL,
    DriftReport,
    find_promotion,
    write_marker,
    write_report,
)
from tunegate.errors import ConfigError, InputError
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


def _print_outcome(outcome: DriftOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    report = outcome.report
    table = Table(title="drift checks")
    for col in ("check", "status", "value", "threshold", "p-value"):
        table.add_column(col)
    for c in report.checks:
        style = {"drift": "bold red", "ok": "green", "skipped": "dim"}[c.status]
        table.add_row(
            c.name + ("" if c.gating else " (info)"),
            f"[{style}]{c.status}[/]",
            "" if c.value is None else f"{c.value:.4f}",
            str(c.threshold),
            "" if c.p_value is None else f"{c.p_value:.3g}",
        )
    console.print(table)
    console.print(f"adapter: {report.promotion.summary}", highlight=False)
    console.print(f"report: {outcome.files['json']}", highlight=False)
    if report.drifted:
        console.print(
            f"[bold red]drift[/]: {', '.join(report.alarms)} — hold-out metrics marked not representative "
            f"({outcome.marker})",
            highlight=False,
        )
    else:
        console.print("[green]no drift above the policy's thresholds[/]")


def register(app: typer.Typer) -> None:
    """Add ``tunegate drift`` to ``app``."""

    @app.command("drift")
    def drift_command(
        reference: Path = typer.Option(
            ..., "--reference", "-r", help="Workdir whose data/train.jsonl is the training distribution."
        ),
        current: Path = typer.Option(..., "--current", "-c", help="Production prompts (JSONL or CSV)."),
        policy: Path | None = typer.Option(
            None,
            "--policy",
            help="Gate policy YAML (its drift: section); default: the one pinned in the reference workdir.",
        ),
        out: Path | None = typer.Option(None, "--out", help="Report folder; default WORKDIR/drift/<time>/."),
        registry: Path | None = typer.Option(
            None, "--registry", help="Model registry, to name its HEAD in the report."
        ),
        text_field: str | None = typer.Option(None, "--text-field", help="Prompt column (drift.text_field)."),
        label_field: str | None = typer.Option(
            None, "--label-field", help="Gold-label column (drift.label_field)."
        ),
        prediction_field: str | None = typer.Option(
            None, "--prediction-field", help="Predicted-label column (drift.prediction_field)."
        ),
        max_samples: int | None = typer.Option(
            None, "--max-samples", help="Prompts per side (drift.max_samples)."
        ),
    ) -> None:
        """Compare production prompts with the training data; exit 1 and mark the hold-out on drift."""
        from pydantic import ValidationError

        section, gate_digest = load_drift_policy(policy, reference)
        overrides = {
            k: v
            for k, v in {
                "text_field": text_field,
                "label_field": label_field,
                "prediction_field": prediction_field,
                "max_samples": max_samples,
            }.items()
            if v is not None
        }
        if overrides:
            try:
                section = DriftPolicy.model_validate(section.model_dump() | overrides)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ConfigError(f"drift.{err['loc'][0]}: {err['msg']}") from None
        outcome = check_drift(
            reference, current, policy=section, out=out, registry=registry, gate_policy_digest=gate_digest
        )
        _print_outcome(outcome)
        if outcome.report.drifted:
            raise typer.Exit(1)
