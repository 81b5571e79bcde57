"""``tunegate drift``: compare production prompts with the training distribution of a workdir.

Exit 0: within the policy's thresholds. Exit 1: drift — the hold-out metrics are marked as no
longer representative (``WORKDIR/drift/holdout_not_representative.json``). Exit 2: bad input.
Every check is recorded in the workdir's audit ledger (digests and statistics only), so an
auditor sees that monitoring ran, not only that it once alarmed.

:func:`tunegate.drift.check.check_drift` is the library entry point (the nightly Prefect
deployment calls it); the typer command is a thin shell over it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunegate.drift.check import DRIFT_DIR, DriftOutcome, check_drift, load_drift_policy
from tunegate.drift.config import DriftPolicy
from tunegate.errors import ConfigError

__all__ = ["DRIFT_DIR", "DriftOutcome", "check_drift", "load_drift_policy", "register"]


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
