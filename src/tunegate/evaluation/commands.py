"""CLI commands of tunegate.evaluation, registered on the main typer app by ``tunegate.cli``.

``evaluate`` and ``decide`` are thin over :func:`tunegate.evaluation.run.evaluate_run` and
:func:`~tunegate.evaluation.run.decide_run`; ``decide`` exits 1 when the gate fails (a result,
not an error). ``human-export`` / ``human-import`` handle the blind reviewer sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunegate.workdir import split_path


def _policy(workdir: Path, path: Path | None, reason: str | None = None):  # type: ignore[no-untyped-def]
    from tunegate.policy.pinned import resolve_policy

    return resolve_policy(workdir, path, change_reason=reason)


_REASON = typer.Option(
    None, "--policy-change-reason", help="Needed when --policy differs from the pinned policy (ledgered)."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("evaluate")
    def evaluate_cmd(
        workdir: Path = typer.Argument(..., help="The tunegate workdir."),
        run: str | None = typer.Option(None, "--run", help="Run id (default: the latest run)."),
        policy: Path | None = typer.Option(None, "--policy", help="Gate policy YAML (default: pinned)."),
        policy_change_reason: str | None = _REASON,
        device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
        registry: Path | None = typer.Option(
            None, "--registry", help="Also compare with the model promoted there under this run's name."
        ),
    ) -> None:
        """Score baselines and tuned on the frozen hold-out, run the regression, write evidence.json."""
        from tunegate.evaluation.run import evaluate_run

        pol = _policy(workdir, policy, policy_change_reason)
        ev = evaluate_run(workdir, run_id=run, policy=pol, device=device, registry=registry)
        typer.echo(f"run {ev.run_id}: evidence written (device {ev.provenance.get('device')})")
        for b in ev.baselines or []:
            if b.skipped:
                typer.echo(f"  baseline {b.name}: skipped ({b.reason})")
                continue
            typer.echo(f"  vs {b.name}:")
            for name, m in sorted(b.metrics.items()):
                typer.echo(
                    f"    {name:22s} baseline {m.baseline:.4f}  tuned {m.tuned:.4f}  delta {m.delta:+.4f} "
                    f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]"
                )
        for t in ev.regression or []:
            if t.skipped:
                typer.echo(f"  lm-eval {t.task}: skipped ({t.reason})")
            else:
                typer.echo(
                    f"  lm-eval {t.task} {t.metric}: delta {t.delta:+.4f} [{t.ci_low:+.4f}, {t.ci_high:+.4f}]"
                    f" n={t.n}" + (f" LIMIT={t.limit}" if t.limit else "")
                )

    @app.command("decide")
    def decide_cmd(
        workdir: Path = typer.Argument(..., help="The tunegate workdir."),
        run: str | None = typer.Option(None, "--run", help="Run id (default: the latest run)."),
        policy: Path | None = typer.Option(None, "--policy", help="Gate policy YAML (default: pinned)."),
        policy_change_reason: str | None = _REASON,
    ) -> None:
        """Apply the policy's checks to evidence.json; write decision.json. Exit 0 pass, 1 fail."""
        from tunegate.evaluation.run import decide_run

        d = decide_run(workdir, run_id=run, policy=_policy(workdir, policy, policy_change_reason))
        for c in d.checks:
            mark = "PASS" if c.passed else ("WARN" if c.severity == "warning" else "FAIL")
            typer.echo(f"  {mark} {c.name}: {c.message}")
        typer.echo(f"gate: {d.verdict.upper()}")
        raise typer.Exit(0 if d.passed else 1)

    @app.command("human-export")
    def human_export_cmd(
        workdir: Path = typer.Argument(..., help="The tunegate workdir."),
        run: str | None = typer.Option(None, "--run", help="Run id (default: the latest run)."),
        policy: Path | None = typer.Option(None, "--policy", help="Gate policy YAML (default: pinned)."),
        policy_change_reason: str | None = _REASON,
    ) -> None:
        """Write a blind, stratified A/B sample (CSV + HTML) and its key under runs/<id>/human/."""
        from tunegate.errors import InputError
        from tunegate.evaluation.human import export_human_sample
        from tunegate.evaluation.run import PREDICTIONS_NAME, _read_holdout, _run_dir
        from tunegate.evaluation.scoring import Predictions

        pol = _policy(workdir, policy, policy_change_reason)
        run_dir = _run_dir(workdir, run)
        pred_path = run_dir / PREDICTIONS_NAME
        if not pred_path.is_file():
            raise InputError(
                "no predictions for this run", path=pred_path, hint="run `tunegate evaluate` first"
            )
        rows = [json.loads(x) for x in pred_path.read_text(encoding="utf-8").splitlines() if x.strip()]
        records = {r.id: r for r in _read_holdout(split_path(workdir, "holdout"))}
        recs = [records[row["id"]] for row in rows]
        ids = [row["id"] for row in rows]
        base = Predictions(ids, [row["baseline"] for row in rows])
        tuned = Predictions(ids, [row["tuned"] for row in rows])
        paths = export_human_sample(
            recs, base, tuned, run_dir / "human", n=pol.evaluation.human_sample_size, seed=pol.evaluation.seed
        )
        for k, p in paths.items():
            typer.echo(f"{k}: {p}")

    @app.command("human-import")
    def human_import_cmd(
        workdir: Path = typer.Argument(..., help="The tunegate workdir."),
        ratings: Path = typer.Argument(..., help="CSV with columns rater,item,preference (A, B or tie)."),
        run: str | None = typer.Option(None, "--run", help="Run id (default: the latest run)."),
    ) -> None:
        """Unblind reviewer ratings and save them (with inter-rater agreement) as evidence."""
        from tunegate.evaluation.human import import_human_ratings
        from tunegate.evaluation.run import _run_dir
        from tunegate.provenance import atomic_write_json

        run_dir = _run_dir(workdir, run)
        hum = import_human_ratings(ratings, run_dir / "human" / "human_eval_key.json")
        atomic_write_json(run_dir / "human" / "human_evidence.json", hum.model_dump(mode="json"))
        typer.echo(
            f"{hum.n_ratings} ratings from {hum.n_raters} raters on {hum.n_items} items: tuned wins "
            f"{hum.tuned_win_rate:.2f}, baseline {hum.baseline_win_rate:.2f}, tie {hum.tie_rate:.2f}; "
            f"Fleiss kappa {hum.fleiss_kappa}, mean Cohen kappa {hum.cohen_kappa_mean}"
        )
