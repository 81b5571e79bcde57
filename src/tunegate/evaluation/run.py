"""The evaluation stage end to end: ``evaluate_run`` (writes evidence.json) and ``decide_run``.

Order of work, each step failing closed: verify the hold-out against its manifest; read the data
gate's report; load the base model and score it once per (base digest, hold-out digest, eval
config digest) -- cached in ``WORKDIR/baselines/<digest>/``; score the tuned model with the same
prompts and decoding; compare with paired bootstrap (+ McNemar); run the lm-eval regression on
both; count intruder dimensions for adapters; write evidence with the digests of every input,
and append a ledger event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunegate.errors import StageError
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.evidence import (
    DataGateEvidence,
    Evidence,
    HoldoutEvidence,
    IntruderEvidence,
    RegressionTaskEvidence,
    load_evidence,
)
from tunegate.evaluation.metrics import BertScorer, get_metric
from tunegate.evaluation.scoring import (
    Comparison,
    ModelHandle,
    Predictions,
    compare_classification,
    compare_generation,
    predict,
    score_generation,
)
from tunegate.policy.schema import GatePolicy, load_policy
from tunegate.provenance import (
    atomic_write_json,
    atomic_write_text,
    canonical_json,
    digest_json,
    git_info,
    package_versions,
    sha256_file,
    sha256_tree,
)
from tunegate.records import Record

EVIDENCE_NAME = "evidence.json"
DECISION_NAME = "decision.json"
PREDICTIONS_NAME = "predictions.jsonl"


# ---------------------------------------------------------------------------------------------
# pieces usable without a workdir (tests, benchmark)
# ---------------------------------------------------------------------------------------------


def make_bertscorer(policy: EvaluationPolicy, device: str = "cpu") -> BertScorer:
    return BertScorer(
        policy.bertscore_model,
        num_layers=policy.bertscore_num_layers,
        rescale=policy.bertscore_rescale,
        baseline_path=policy.bertscore_baseline_path,
        batch_size=policy.bertscore_batch_size,
        device=device,
    )


def score_model(
    handle: ModelHandle,
    records: list[Record],
    policy: EvaluationPolicy,
    labels: list[str] | None,
    resources: dict[str, Any],
) -> Predictions:
    """Predict and (for generation) score per example."""
    preds = predict(handle, records, policy, labels)
    if records[0].task != "classification":
        score_generation(preds, [r.target_text() for r in records], policy.generation_metrics, resources)
    return preds


def compare(
    records: list[Record],
    baseline: Predictions,
    tuned: Predictions,
    policy: EvaluationPolicy,
    labels: list[str] | None,
) -> Comparison:
    if records[0].task == "classification":
        assert labels is not None
        y = [labels.index(r.label) if r.label in labels else -1 for r in records]
        if any(v < 0 for v in y):
            raise StageError("a hold-out label is not in the run's label set: cannot score it")
        return compare_classification(y, baseline, tuned, labels, policy)
    return compare_generation(baseline, tuned, policy)


def plot_confusion(counts: Any, labels: list[str], path: Path, title: str) -> Path:
    """Confusion matrix PNG (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(counts)
    cols = [*labels, "<invalid>"]
    size = max(4.0, 0.5 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    if cm.size <= 400:
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None, "CreationDate": None})  # no timestamps: reproducible
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# the workdir stage
# ---------------------------------------------------------------------------------------------


def _run_dir(workdir: Path, run_id: str | None) -> Path:
    if run_id:
        d = workdir / "runs" / run_id
        if not (d / "run.json").is_file():
            from tunegate.errors import InputError

            raise InputError("no finished run with this id", path=d, hint="see WORKDIR/runs/")
        return d
    from tunegate.training.model_io import latest_run

    return latest_run(workdir)


def _read_holdout(path: Path) -> list[Record]:
    """A workdir's split (``WORKDIR/data/<split>.jsonl``), verified against the data gate's record
    before it is parsed (:func:`tunegate.data.splits.read_split`)."""
    from tunegate.data.splits import read_split, split_of_path

    return read_split(*split_of_path(path))


def _data_gate(workdir: Path) -> DataGateEvidence | None:
    path = workdir / "data" / "data_report.json"
    if not path.is_file():
        return None
    rep = json.loads(path.read_text(encoding="utf-8"))
    pii = rep.get("pii") or {}
    return DataGateEvidence(
        verdict="pass" if rep.get("verdict") == "pass" else "fail",
        failed_checks=sorted(
            c["name"] for c in rep.get("checks", []) if not c.get("passed") and c.get("severity") != "warning"
        ),
        residual_pii={str(k): int(v) for k, v in (pii.get("residual") or {}).items()},
        residual_ok=pii.get("residual_ok"),
        regex_only=pii.get("regex_only"),
        report_sha256=sha256_file(path),
    )


def _cached(path: Path) -> dict[str, Any] | None:
    if path.is_file():
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError:
            return None
    return None


def _baseline_key(base_digest: str, holdout_sha256: str, ev: Any, kind: str, labels: Any) -> str:
    return digest_json(
        {
            "base": base_digest,
            "holdout": holdout_sha256,
            "eval": digest_json(ev.score_digest_payload()),
            "kind": kind,
            "labels": labels,
        }
    )


def _baseline(
    workdir: Path,
    *,
    base_rec: dict[str, Any],
    base_digest: str,
    manifest: Any,
    records: list[Record],
    kind: str,
    labels: Any,
    policy: GatePolicy,
    device: str,
    resources: dict[str, Any],
) -> tuple[Path, Predictions, Any]:
    """Score the base model on the hold-out once per (base model, hold-out, eval config); reuse it."""
    from tunegate.training.model_io import load_base_model

    ev = policy.evaluation
    bdir = workdir / "baselines" / _baseline_key(base_digest, manifest.holdout_sha256, ev, kind, labels)
    cached = _cached(bdir / "predictions.json")
    if cached is not None and cached.get("record_ids") == [r.id for r in records]:
        return bdir, Predictions.from_dict(cached), None
    base_loaded = load_base_model(
        base_rec.get("path") or base_rec["name"], kind=kind, labels=labels, device=device
    )
    baseline = score_model(base_loaded, records, ev, labels, resources)
    atomic_write_json(bdir / "predictions.json", baseline.to_dict())
    atomic_write_json(
        bdir / "baseline.json",
        {
            "base_digest": base_digest,
            "holdout_sha256": manifest.holdout_sha256,
            "eval_config_digest": digest_json(ev.score_digest_payload()),
            "kind": kind,
        },
    )
    return bdir, baseline, base_loaded


def score_baseline(
    workdir: str | Path,
    *,
    model: str,
    policy: GatePolicy | None = None,
    kind: str = "auto",
    device: str = "cpu",
) -> dict[str, Any]:
    """Score the base model on the frozen hold-out *before* training (the pipeline's baseline stage).

    Uses the cache key ``evaluate_run`` uses, so the evaluation after training reuses this result.
    """
    from tunegate.data.split import verify_holdout
    from tunegate.training.model_io import detect_kind, resolve_model

    workdir = Path(workdir)
    policy = policy or load_policy()
    data_dir = workdir / "data"
    manifest = verify_holdout(data_dir)
    records = _read_holdout(data_dir / manifest.holdout_file)
    if not records:
        raise StageError(f"{data_dir / manifest.holdout_file}: the hold-out is empty")
    task = records[0].task
    src = resolve_model(model)
    from transformers import AutoConfig

    kind = detect_kind(AutoConfig.from_pretrained(str(src.path)), task, kind)
    labels = None
    if task == "classification":
        # the label set training uses: sorted labels of the training split
        train = _read_holdout(data_dir / "train.jsonl")
        labels = sorted({r.label for r in train if r.label})
    ev = policy.evaluation
    resources: dict[str, Any] = {}
    if task != "classification" and "bertscore_f1" in ev.generation_metrics:
        resources["bertscore"] = make_bertscorer(ev, device)
    bdir, _, _ = _baseline(
        workdir,
        base_rec=src.to_json(),
        base_digest=src.digest,
        manifest=manifest,
        records=records,
        kind=kind,
        labels=labels,
        policy=policy,
        device=device,
        resources=resources,
    )
    rel = bdir.relative_to(workdir).as_posix()
    return {"baseline_dir": rel, "base_digest": src.digest, "n": len(records)}


def evaluate_run(
    workdir: str | Path,
    *,
    run_id: str | None = None,
    policy: GatePolicy | None = None,
    device: str = "cpu",
) -> Evidence:
    """Score baseline and tuned on the frozen hold-out, run the regression and diagnostics, and
    write ``runs/<run_id>/evidence.json`` (+ predictions, confusion matrix). Returns the evidence."""
    from tunegate.data.split import verify_holdout
    from tunegate.ledger import append_event
    from tunegate.training.model_io import load_base_model, load_run_model, read_run

    workdir = Path(workdir)
    policy = policy or load_policy()
    ev = policy.evaluation
    run_dir = _run_dir(workdir, run_id)
    run = read_run(run_dir)
    rid = str(run.get("run_id") or run_dir.name)

    # 1. the frozen hold-out: verified, or nothing is scored
    data_dir = workdir / "data"
    manifest = verify_holdout(data_dir)  # IntegrityError if the hold-out changed: refuse to score
    holdout_path = data_dir / manifest.holdout_file
    records = _read_holdout(holdout_path)
    if not records:
        raise StageError(f"{holdout_path}: the hold-out is empty")
    manifest_path = data_dir / "holdout.manifest.json"
    holdout = HoldoutEvidence(
        verified=True,
        manifest_sha256=sha256_file(manifest_path) if manifest_path.is_file() else None,
        n_records=len(records),
    )
    task = records[0].task
    labels = run.get("labels") or (
        sorted({r.label for r in records if r.label}) if task == "classification" else None
    )
    kind = run.get("model_kind", "causal")
    base_rec = run.get("base_model") or {}
    base_digest = str(base_rec.get("digest") or base_rec.get("sha256") or "")
    if not base_digest:
        raise StageError(f"{run_dir / 'run.json'}: base_model has no digest; cannot key the baseline")

    # 2. baseline, cached per (base model, hold-out, eval config)
    eval_digest = digest_json(ev.score_digest_payload())
    baseline_key = _baseline_key(base_digest, manifest.holdout_sha256, ev, kind, labels)
    resources: dict[str, Any] = {}
    if task != "classification" and "bertscore_f1" in ev.generation_metrics:
        resources["bertscore"] = make_bertscorer(ev, device)
    bdir, baseline, base_loaded = _baseline(
        workdir,
        base_rec=base_rec,
        base_digest=base_digest,
        manifest=manifest,
        records=records,
        kind=kind,
        labels=labels,
        policy=policy,
        device=device,
        resources=resources,
    )

    # 3. tuned
    tuned_loaded = load_run_model(run_dir, device=device)
    tuned = score_model(tuned_loaded, records, ev, labels, resources)
    comp = compare(records, baseline, tuned, ev, labels)

    # 4. regression (lm-eval), base results cached beside the baseline predictions
    regression: list[RegressionTaskEvidence]
    if ev.regression_tasks and kind != "causal":
        regression = [
            RegressionTaskEvidence(
                task=t, skipped=True, reason=f"lm-eval tasks need a causal LM; this run is {kind}"
            )
            for t in ev.regression_tasks
        ]
    elif ev.regression_tasks:
        from tunegate.evaluation import regression as R

        specs = R.resolve_tasks(ev, workdir / "cache" / "lm_eval")
        base_runs: dict[str, Any] = {}
        todo = []
        for s in specs:
            c = _cached(bdir / "lm_eval" / f"{s.name}.json")
            if s.skip_reason is None and c is not None:
                base_runs[s.name] = R.TaskRun.from_dict(c)
            else:
                todo.append(s)
        if todo:
            if base_loaded is None:
                base_loaded = load_base_model(
                    base_rec.get("path") or base_rec["name"], kind=kind, labels=labels, device=device
                )
            fresh = R.run_tasks(base_loaded.model, base_loaded.tokenizer, todo, ev)
            for name, res in fresh.items():
                base_runs[name] = res
                if isinstance(res, R.TaskRun):
                    atomic_write_json(bdir / "lm_eval" / f"{name}.json", res.to_dict())
        tuned_runs = R.run_tasks(tuned_loaded.model, tuned_loaded.tokenizer, specs, ev)
        regression = R.compare_tasks(specs, base_runs, tuned_runs, ev)
    else:
        regression = []

    # 5. intruder dimensions (adapters; full fine-tunes are analysed too but the paper is about LoRA)
    method = run.get("method")
    if method in ("lora", "qlora", "dora"):
        from tunegate.evaluation.intruder import intruder_dimensions

        if base_loaded is None:
            base_loaded = load_base_model(
                base_rec.get("path") or base_rec["name"], kind=kind, labels=labels, device=device
            )
        analysed = load_run_model(run_dir, device=device, merged=True) if method == "qlora" else tuned_loaded
        intruder = intruder_dimensions(
            base_loaded.model,
            analysed.model,
            top_k=ev.intruder_top_k,
            base_top_k=ev.intruder_base_top_k,
            threshold=ev.intruder_threshold,
        )
    else:
        intruder = IntruderEvidence(applicable=False, reason=f"method {method!r} is not a low-rank adapter")

    # 6. artifacts
    primary = "macro_f1" if task == "classification" else "rouge_l"
    if comp.confusion_tuned is not None and labels:
        plot_confusion(comp.confusion_tuned, labels, run_dir / "confusion_matrix.png", f"tuned ({rid})")
        plot_confusion(comp.confusion_baseline, labels, run_dir / "confusion_matrix_baseline.png", "baseline")
    lines = []
    for i, r in enumerate(records):
        row: dict[str, Any] = {"id": r.id, "baseline": baseline.outputs[i], "tuned": tuned.outputs[i]}
        for name in sorted(tuned.scores):
            row[f"{name}_baseline"] = baseline.scores[name][i]
            row[f"{name}_tuned"] = tuned.scores[name][i]
        if tuned.pred is not None and baseline.pred is not None:
            row["pred_baseline"], row["pred_tuned"] = baseline.pred[i], tuned.pred[i]
        lines.append(canonical_json(row))
    pred_path = atomic_write_text(run_dir / PREDICTIONS_NAME, "\n".join(lines) + "\n")
    human = None
    human_path = run_dir / "human" / "human_evidence.json"
    if human_path.is_file():
        from tunegate.evaluation.evidence import HumanEvidence

        human = HumanEvidence.model_validate_json(human_path.read_text(encoding="utf-8"))

    artifact = run_dir / ("model" if method == "full" else "adapter")
    inputs = {
        "holdout_sha256": manifest.holdout_sha256,
        "holdout_manifest_sha256": holdout.manifest_sha256 or "",
        "base_model_digest": base_digest,
        "run_json_sha256": sha256_file(run_dir / "run.json"),
        "tuned_artifact_digest": digest_json(sha256_tree(artifact)) if artifact.is_dir() else "",
        "policy_digest": policy.digest(),
        "eval_config_digest": eval_digest,
        "baseline_key": baseline_key,
    }
    dg = _data_gate(workdir)
    if dg is not None and dg.report_sha256:
        inputs["data_report_sha256"] = dg.report_sha256
    evidence = Evidence(
        run_id=rid,
        task=task,
        method=method,
        model_kind=kind,
        primary_metric=primary,
        inputs=inputs,
        data_gate=dg,
        holdout=holdout,
        metrics=comp.metrics,
        mcnemar=comp.mcnemar,
        classification=comp.classification,
        regression=regression,
        intruder=intruder,
        human=human,
        provenance={
            "git": git_info(),
            "versions": {k: v for k, v in package_versions().items() if v is not None},
            "seed": ev.seed,
            "bertscore": resources["bertscore"].describe() if "bertscore" in resources else None,
            "higher_is_better": {n: get_metric(n).higher_is_better for n in comp.metrics},
        },
    )
    ev_path = atomic_write_json(run_dir / EVIDENCE_NAME, evidence.model_dump(mode="json"))
    append_event(
        workdir,
        "evaluate",
        inputs=inputs,
        outputs={"evidence_sha256": sha256_file(ev_path), "predictions_sha256": sha256_file(pred_path)},
        config_digest=eval_digest,
        details={
            "run_id": rid,
            "primary_metric": primary,
            "delta": comp.metrics[primary].delta if primary in comp.metrics else None,
            "ci_low": comp.metrics[primary].ci_low if primary in comp.metrics else None,
            "regression_tasks": [t.task for t in regression],
        },
    )
    return evidence


def decide_run(workdir: str | Path, *, run_id: str | None = None, policy: GatePolicy | None = None) -> Any:
    """Apply the policy to the run's evidence; write decision.json and a ledger event."""
    from tunegate.ledger import append_event
    from tunegate.policy.decide import decide

    workdir = Path(workdir)
    policy = policy or load_policy()
    run_dir = _run_dir(workdir, run_id)
    ev_path = run_dir / EVIDENCE_NAME
    evidence = load_evidence(ev_path)
    decision = decide(policy, evidence)
    body = decision.model_dump(mode="json")
    body["passed"] = decision.passed  # the boolean the approval stage signs over and re-checks
    body["inputs"] = {"evidence_sha256": sha256_file(ev_path), "policy_digest": policy.digest()}
    out = atomic_write_json(run_dir / DECISION_NAME, body)
    append_event(
        workdir,
        "decide",
        inputs=body["inputs"],
        outputs={"decision_sha256": sha256_file(out)},
        config_digest=policy.digest(),
        details={
            "run_id": evidence.run_id,
            "verdict": decision.verdict,
            "failed": [c.name for c in decision.checks if c.blocking],
        },
    )
    return decision
