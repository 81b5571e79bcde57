"""The evaluation stage end to end: ``evaluate_run`` (writes evidence.json) and ``decide_run``.

``evaluate_run`` reads top to bottom as its steps, each failing closed:

1. ``_open_stage``: the run, and the hold-out verified against its manifest;
2. ``_score_base``: the base model's per-example outputs, cached in ``WORKDIR/baselines/<key>/``
   per (base digest, hold-out digest, prediction config);
3. ``_score_tuned``: the tuned model with the same prompts and decoding, cached in
   ``WORKDIR/cache/predictions/`` by the artifact digest;
4. ``compare`` + ``_baselines``: paired bootstrap (+ McNemar) against the base model, and for
   classification against a TF-IDF + logistic regression baseline trained on the same train
   split and (with a registry) the promoted production model;
5. ``_regression``: lm-eval on base and tuned (per-item results cached);
6. ``_intruder``: intruder dimensions for adapters (cached);
7. ``_write_artifacts``, then the evidence with the digest of every input and a ledger event.

Models are loaded only when an output is not in the cache, so a policy change that moves only
thresholds or statistics re-evaluates and re-decides in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.errors import StageError
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.evidence import (
    BaselineEvidence,
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
    baseline_evidence,
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
    # The figure grows with the label count up to 16 inches; beyond ~30 labels the tick font
    # shrinks instead (a 151x151 matrix drawn at 0.5 in per label took 30 s and 8k x 7k pixels).
    size = min(16.0, max(4.0, 0.5 * len(cols) + 2))
    font = 7 if len(cols) <= 30 else max(3.0, 7 * 30 / len(cols))
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    ax.imshow(cm, cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=font)
    ax.set_yticks(range(len(labels)), labels, fontsize=font)
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
# the workdir stage, in steps
# ---------------------------------------------------------------------------------------------


def resolve_device(setting: str = "auto") -> str:
    """The evaluation stage's device (``auto``: CUDA when present). The one place evaluation
    resolves it, so the shared setting can be switched in here."""
    from tunegate.resources import resolve_device as _resolve

    return _resolve(setting)


def _run_dir(workdir: Path | str, run_id: str | None) -> Path:
    from tunegate import workdir as W

    return W.run_dir(workdir, W.resolve_run(workdir, run_id))


def _read_holdout(path: Path) -> list[Record]:
    """A workdir's split (``WORKDIR/data/<split>.jsonl``), verified against the data gate's record
    before it is parsed (:func:`tunegate.data.splits.read_split`)."""
    from tunegate.data.splits import read_split, split_of_path

    return read_split(*split_of_path(path))


def _data_gate(workdir: Path) -> DataGateEvidence | None:
    from tunegate.workdir import data_report_path

    path = data_report_path(workdir)
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


def _baseline_key(base_digest: str, holdout_sha256: str, ev: EvaluationPolicy, kind: str, labels: Any) -> str:
    """Key of the base model's cached hold-out outputs: only what changes those outputs."""
    return digest_json(
        {
            "base": base_digest,
            "holdout": holdout_sha256,
            "predict": digest_json(ev.prediction_digest_payload()),
            "kind": kind,
            "labels": labels,
        }
    )


def _cached_predictions(
    path: Path, records: list[Record], compute: Callable[[], Predictions]
) -> tuple[Predictions, bool]:
    """Per-example outputs from ``path`` when they cover exactly these records, else computed and
    stored. Returns (predictions, whether they came from the cache)."""
    cached = _cached(path)
    if cached is not None and cached.get("record_ids") == [r.id for r in records]:
        return Predictions.from_dict(cached), True
    preds = compute()
    atomic_write_json(path, preds.to_dict())
    return preds, False


@dataclass
class _Stage:
    """Everything the evaluation steps share: inputs, verified facts, and lazily loaded models."""

    workdir: Path
    run_dir: Path
    run: dict[str, Any]
    rid: str
    policy: GatePolicy
    device: str
    manifest: Any
    records: list[Record]
    holdout: HoldoutEvidence
    task: str
    labels: list[str] | None
    kind: str
    base_rec: dict[str, Any]
    base_digest: str
    artifact_digest: str
    resources: dict[str, Any] = field(default_factory=dict)
    cache_hits: dict[str, bool] = field(default_factory=dict)
    _base: Any = None
    _tuned: Any = None

    @property
    def ev(self) -> EvaluationPolicy:
        return self.policy.evaluation

    @property
    def method(self) -> str | None:
        return self.run.get("method")

    def base_model(self) -> Any:
        if self._base is None:
            from tunegate.training.model_io import load_base_model

            self._base = load_base_model(
                self.base_rec.get("path") or self.base_rec["name"],
                kind=self.kind,
                labels=self.labels,
                device=self.device,
            )
        return self._base

    def tuned_model(self) -> Any:
        if self._tuned is None:
            from tunegate.training.model_io import load_run_model

            self._tuned = load_run_model(self.run_dir, device=self.device)
        return self._tuned

    def predictions_path(self, role: str, model_digest: str) -> Path:
        from tunegate.workdir import cache_dir

        key = digest_json(
            {
                "role": role,
                "model": model_digest,
                "holdout": self.manifest.holdout_sha256,
                "predict": digest_json(self.ev.prediction_digest_payload()),
                "kind": self.kind,
                "labels": self.labels,
            }
        )
        return cache_dir(self.workdir, "predictions") / f"{key}.json"


def _open_stage(workdir: Path, run_id: str | None, policy: GatePolicy, device: str) -> _Stage:
    """Step 1: the run, and the frozen hold-out verified against its manifest (or nothing is scored)."""
    from tunegate.data.split import verify_holdout
    from tunegate.training.model_io import read_run
    from tunegate.workdir import data_dir, manifest_path

    run_dir = _run_dir(workdir, run_id)
    run = read_run(run_dir)
    ddir = data_dir(workdir)
    manifest = verify_holdout(ddir)  # IntegrityError if the hold-out changed: refuse to score
    holdout_path = ddir / manifest.holdout_file
    records = _read_holdout(holdout_path)
    if not records:
        raise StageError(f"{holdout_path}: the hold-out is empty")
    mpath = manifest_path(workdir)
    task = records[0].task
    base_rec = run.get("base_model") or {}
    base_digest = str(base_rec.get("digest") or base_rec.get("sha256") or "")
    if not base_digest:
        raise StageError(f"{run_dir / 'run.json'}: base_model has no digest; cannot key the baseline")
    method = run.get("method")
    artifact = run_dir / ("model" if method == "full" else "adapter")
    stage = _Stage(
        workdir=workdir,
        run_dir=run_dir,
        run=run,
        rid=str(run.get("run_id") or run_dir.name),
        policy=policy,
        device=resolve_device(device),
        manifest=manifest,
        records=records,
        holdout=HoldoutEvidence(
            verified=True,
            manifest_sha256=sha256_file(mpath) if mpath.is_file() else None,
            n_records=len(records),
        ),
        task=task,
        labels=run.get("labels")
        or (sorted({r.label for r in records if r.label}) if task == "classification" else None),
        kind=run.get("model_kind", "causal"),
        base_rec=base_rec,
        base_digest=base_digest,
        artifact_digest=digest_json(sha256_tree(artifact)) if artifact.is_dir() else "",
    )
    if task != "classification" and "bertscore_f1" in stage.ev.generation_metrics:
        stage.resources["bertscore"] = make_bertscorer(stage.ev, stage.device)
    return stage


def _baseline_dir(stage: _Stage) -> Path:
    from tunegate.workdir import baselines_dir

    key = _baseline_key(stage.base_digest, stage.manifest.holdout_sha256, stage.ev, stage.kind, stage.labels)
    return baselines_dir(stage.workdir) / key


def _score_base(stage: _Stage) -> Predictions:
    """Step 2: the base model on the hold-out, cached per (base model, hold-out, prediction config)."""
    bdir = _baseline_dir(stage)
    preds, hit = _cached_predictions(
        bdir / "predictions.json",
        stage.records,
        lambda: score_model(stage.base_model(), stage.records, stage.ev, stage.labels, stage.resources),
    )
    if not hit:
        atomic_write_json(
            bdir / "baseline.json",
            {
                "base_digest": stage.base_digest,
                "holdout_sha256": stage.manifest.holdout_sha256,
                "prediction_config_digest": digest_json(stage.ev.prediction_digest_payload()),
                "kind": stage.kind,
            },
        )
    stage.cache_hits["base_model"] = hit
    return preds


def _score_tuned(stage: _Stage) -> Predictions:
    """Step 3: the tuned model with the same prompts and decoding, cached by its artifact digest."""
    if not stage.artifact_digest:
        raise StageError(f"{stage.run_dir}: the run has no adapter/ or model/ folder to evaluate")
    preds, hit = _cached_predictions(
        stage.predictions_path("tuned", stage.artifact_digest),
        stage.records,
        lambda: score_model(stage.tuned_model(), stage.records, stage.ev, stage.labels, stage.resources),
    )
    stage.cache_hits["tuned"] = hit
    return preds


def _tfidf_baseline(stage: _Stage, tuned: Predictions) -> BaselineEvidence:
    """A TF-IDF + logistic regression baseline trained on the run's train split."""
    from tunegate.evaluation import text_baseline as TB
    from tunegate.workdir import split_path

    train_path = split_path(stage.workdir, "train")
    if not train_path.is_file():
        return BaselineEvidence(name=TB.NAME, skipped=True, reason=f"{train_path} not found")
    train_sha = sha256_file(train_path)
    assert stage.labels is not None
    labels = stage.labels
    preds, hit = _cached_predictions(
        stage.predictions_path(TB.NAME, digest_json({"train": train_sha, "config": TB.config_digest()})),
        stage.records,
        lambda: TB.predict_tfidf_logreg(_read_holdout(train_path), stage.records, labels),
    )
    stage.cache_hits[TB.NAME] = hit
    comp = compare(stage.records, preds, tuned, stage.ev, stage.labels)
    return baseline_evidence(
        TB.NAME, TB.DESCRIPTION, comp, {"train_sha256": train_sha, "config_digest": TB.config_digest()}
    )


def _production_baseline(stage: _Stage, registry: str | Path, tuned: Predictions) -> BaselineEvidence | None:
    """The model currently promoted under this run's registry name, scored on the same hold-out.
    None when nothing is promoted under that name yet; skipped (with the reason) when the entry
    does not verify or cannot be compared."""
    from tunegate.approval.promote import load_from_registry
    from tunegate.approval.sign import registry_name
    from tunegate.errors import DependencyError, IntegrityError
    from tunegate.training.model_io import load_run_model, read_run

    name = registry_name(stage.workdir, stage.rid)
    try:
        entry = load_from_registry(registry, name, policy=stage.policy)
    except DependencyError:
        return None  # nothing promoted under this name: no production model to compare with
    except IntegrityError as exc:
        return BaselineEvidence(
            name="production", skipped=True, reason=f"registry entry failed to verify: {exc}"
        )
    source = {"registry_name": name, "version": str(entry.version), "run_id": entry.run_id}
    if entry.run_id == stage.rid:
        return BaselineEvidence(
            name="production", skipped=True, reason="this run is the promoted model", source=source
        )
    from tunegate.workdir import run_dir

    prod_dir = run_dir(entry.path / "bundle", entry.run_id)
    prod_run = read_run(prod_dir)
    if prod_run.get("model_kind", "causal") != stage.kind or prod_run.get("task") not in (None, stage.task):
        return BaselineEvidence(
            name="production",
            skipped=True,
            reason=f"the promoted model is a {prod_run.get('model_kind')} {prod_run.get('task')} model",
            source=source,
        )
    digest = str(entry.manifest.get("weights_digest") or entry.approval_digest)
    source["weights_digest"] = digest
    preds, hit = _cached_predictions(
        stage.predictions_path("production", digest),
        stage.records,
        lambda: score_model(
            load_run_model(prod_dir, device=stage.device),
            stage.records,
            stage.ev,
            stage.labels,
            stage.resources,
        ),
    )
    stage.cache_hits["production"] = hit
    comp = compare(stage.records, preds, tuned, stage.ev, stage.labels)
    return baseline_evidence(
        "production", f"{name} v{entry.version} (run {entry.run_id}), the promoted model", comp, source
    )


def _baselines(
    stage: _Stage, base: Predictions, tuned: Predictions, comp: Comparison, registry: str | Path | None
) -> list[BaselineEvidence]:
    """Step 4: every baseline the tuned model is compared with, base model first."""
    what = "base model" + (" with an untrained classification head" if stage.kind == "seq_cls" else "")
    out = [baseline_evidence("base_model", what, comp, {"base_model_digest": stage.base_digest})]
    if stage.task == "classification" and "tfidf_logreg" in stage.ev.classification_baselines:
        out.append(_tfidf_baseline(stage, tuned))
    if registry is not None:
        prod = _production_baseline(stage, registry, tuned)
        if prod is not None:
            out.append(prod)
    return out


def _regression(stage: _Stage) -> list[RegressionTaskEvidence]:
    """Step 5: lm-eval on base and tuned; per-item results cached (base beside its predictions,
    tuned by artifact digest), keyed by the regression config."""
    ev = stage.ev
    if not ev.regression_tasks:
        return []
    if stage.kind != "causal":
        return [
            RegressionTaskEvidence(
                task=t, skipped=True, reason=f"lm-eval tasks need a causal LM; this run is {stage.kind}"
            )
            for t in ev.regression_tasks
        ]
    from tunegate.evaluation import regression as R
    from tunegate.workdir import cache_dir

    specs = R.resolve_tasks(ev, cache_dir(stage.workdir, "lm_eval"))
    reg_key = digest_json(ev.regression_digest_payload())[:16]

    def cached_runs(folder: Path, model: Callable[[], Any]) -> dict[str, Any]:
        runs: dict[str, Any] = {}
        todo = []
        for s in specs:
            c = _cached(folder / f"{s.name}-{reg_key}.json")
            if s.skip_reason is None and c is not None:
                runs[s.name] = R.TaskRun.from_dict(c)
            else:
                todo.append(s)
        if todo:
            loaded = model()
            for name, res in R.run_tasks(loaded.model, loaded.tokenizer, todo, ev).items():
                runs[name] = res
                if isinstance(res, R.TaskRun):
                    atomic_write_json(folder / f"{name}-{reg_key}.json", res.to_dict())
        return runs

    base_runs = cached_runs(_baseline_dir(stage) / "lm_eval", stage.base_model)
    tuned_dir = cache_dir(stage.workdir, "regression") / digest_json({"tuned": stage.artifact_digest})[:32]
    tuned_runs = cached_runs(tuned_dir, stage.tuned_model)
    return R.compare_tasks(specs, base_runs, tuned_runs, ev)


def _intruder(stage: _Stage) -> IntruderEvidence:
    """Step 6: intruder dimensions of a low-rank adapter (cached by artifact and parameters)."""
    method = stage.method
    if method not in ("lora", "qlora", "dora"):
        return IntruderEvidence(applicable=False, reason=f"method {method!r} is not a low-rank adapter")
    from tunegate.evaluation.intruder import intruder_dimensions
    from tunegate.workdir import cache_dir

    ev = stage.ev
    key = digest_json(
        {
            "base": stage.base_digest,
            "tuned": stage.artifact_digest,
            "top_k": ev.intruder_top_k,
            "base_top_k": ev.intruder_base_top_k,
            "threshold": ev.intruder_threshold,
        }
    )
    path = cache_dir(stage.workdir, "intruder") / f"{key}.json"
    cached = _cached(path)
    if cached is not None:
        return IntruderEvidence.model_validate(cached)
    from tunegate.training.model_io import load_run_model

    analysed = (
        load_run_model(stage.run_dir, device=stage.device, merged=True)
        if method == "qlora"
        else stage.tuned_model()
    )
    res = intruder_dimensions(
        stage.base_model().model,
        analysed.model,
        top_k=ev.intruder_top_k,
        base_top_k=ev.intruder_base_top_k,
        threshold=ev.intruder_threshold,
    )
    atomic_write_json(path, res.model_dump(mode="json"))
    return res


def _write_artifacts(stage: _Stage, base: Predictions, tuned: Predictions, comp: Comparison) -> Path:
    """Step 7: confusion matrices (classification) and per-example predictions.jsonl."""
    if comp.confusion_tuned is not None and stage.labels:
        plot_confusion(
            comp.confusion_tuned, stage.labels, stage.run_dir / "confusion_matrix.png", f"tuned ({stage.rid})"
        )
        plot_confusion(
            comp.confusion_baseline, stage.labels, stage.run_dir / "confusion_matrix_baseline.png", "baseline"
        )
    lines = []
    for i, r in enumerate(stage.records):
        row: dict[str, Any] = {"id": r.id, "baseline": base.outputs[i], "tuned": tuned.outputs[i]}
        for name in sorted(tuned.scores):
            row[f"{name}_baseline"] = base.scores[name][i]
            row[f"{name}_tuned"] = tuned.scores[name][i]
        if tuned.pred is not None and base.pred is not None:
            row["pred_baseline"], row["pred_tuned"] = base.pred[i], tuned.pred[i]
        lines.append(canonical_json(row))
    return atomic_write_text(stage.run_dir / PREDICTIONS_NAME, "\n".join(lines) + "\n")


def _human(stage: _Stage) -> Any:
    human_path = stage.run_dir / "human" / "human_evidence.json"
    if not human_path.is_file():
        return None
    from tunegate.evaluation.evidence import HumanEvidence

    return HumanEvidence.model_validate_json(human_path.read_text(encoding="utf-8"))


def evaluate_run(
    workdir: str | Path,
    *,
    run_id: str | None = None,
    policy: GatePolicy | None = None,
    device: str = "auto",
    registry: str | Path | None = None,
) -> Evidence:
    """Score baseline(s) and tuned on the frozen hold-out, run the regression and diagnostics, and
    write ``runs/<run_id>/evidence.json`` (+ predictions, confusion matrix). Returns the evidence.

    Every model's per-example outputs are cached by (model digest, hold-out digest, prediction
    config), so re-evaluating after a policy change that does not touch predictions (thresholds,
    resamples, confidence) loads no model. ``registry``: compare also with the model currently
    promoted there under this run's name.
    """
    from tunegate.ledger import append_event

    stage = _open_stage(Path(workdir), run_id, policy or load_policy(), device)
    ev = stage.ev
    base = _score_base(stage)
    tuned = _score_tuned(stage)
    comp = compare(stage.records, base, tuned, ev, stage.labels)
    baselines = _baselines(stage, base, tuned, comp, registry)
    regression = _regression(stage)
    intruder = _intruder(stage)
    pred_path = _write_artifacts(stage, base, tuned, comp)

    primary = "macro_f1" if stage.task == "classification" else "rouge_l"
    inputs = {
        "holdout_sha256": stage.manifest.holdout_sha256,
        "holdout_manifest_sha256": stage.holdout.manifest_sha256 or "",
        "base_model_digest": stage.base_digest,
        "run_json_sha256": sha256_file(stage.run_dir / "run.json"),
        "tuned_artifact_digest": stage.artifact_digest,
        "policy_digest": stage.policy.digest(),
        "eval_config_digest": digest_json(ev.score_digest_payload()),
        "prediction_config_digest": digest_json(ev.prediction_digest_payload()),
        "baseline_key": _baseline_dir(stage).name,
    }
    dg = _data_gate(stage.workdir)
    if dg is not None and dg.report_sha256:
        inputs["data_report_sha256"] = dg.report_sha256
    evidence = Evidence(
        run_id=stage.rid,
        task=stage.task,  # type: ignore[arg-type]
        method=stage.method,
        model_kind=stage.kind,  # type: ignore[arg-type]
        primary_metric=primary,
        inputs=inputs,
        data_gate=dg,
        holdout=stage.holdout,
        metrics=comp.metrics,
        mcnemar=comp.mcnemar,
        classification=comp.classification,
        baselines=baselines,
        regression=regression,
        intruder=intruder,
        human=_human(stage),
        provenance={
            "git": git_info(),
            "versions": {k: v for k, v in package_versions().items() if v is not None},
            "seed": ev.seed,
            "device": stage.device,
            "bertscore": stage.resources["bertscore"].describe() if "bertscore" in stage.resources else None,
            "higher_is_better": {n: get_metric(n).higher_is_better for n in comp.metrics},
            "cached_outputs": dict(sorted(stage.cache_hits.items())),
        },
    )
    ev_path = atomic_write_json(stage.run_dir / EVIDENCE_NAME, evidence.model_dump(mode="json"))
    append_event(
        stage.workdir,
        "evaluate",
        inputs=inputs,
        outputs={"evidence_sha256": sha256_file(ev_path), "predictions_sha256": sha256_file(pred_path)},
        config_digest=inputs["eval_config_digest"],
        details={
            "run_id": stage.rid,
            "primary_metric": primary,
            "delta": comp.metrics[primary].delta if primary in comp.metrics else None,
            "ci_low": comp.metrics[primary].ci_low if primary in comp.metrics else None,
            "baselines": [b.name for b in baselines if not b.skipped],
            "regression_tasks": [t.task for t in regression],
            "device": stage.device,
        },
    )
    return evidence


def score_baseline(
    workdir: str | Path,
    *,
    model: str,
    policy: GatePolicy | None = None,
    kind: str = "auto",
    device: str = "auto",
) -> dict[str, Any]:
    """Score the base model on the frozen hold-out *before* training (the pipeline's baseline stage).

    Uses the cache ``evaluate_run`` uses, so the evaluation after training reuses this result.
    """
    from transformers import AutoConfig

    from tunegate.data.split import verify_holdout
    from tunegate.training.model_io import detect_kind, resolve_model
    from tunegate.workdir import data_dir, split_path

    workdir = Path(workdir)
    policy = policy or load_policy()
    manifest = verify_holdout(data_dir(workdir))
    records = _read_holdout(data_dir(workdir) / manifest.holdout_file)
    if not records:
        raise StageError(f"{data_dir(workdir) / manifest.holdout_file}: the hold-out is empty")
    task = records[0].task
    src = resolve_model(model)
    kind = detect_kind(AutoConfig.from_pretrained(str(src.path)), task, kind)
    labels = None
    if task == "classification":  # the label set training uses: sorted labels of the training split
        labels = sorted({r.label for r in _read_holdout(split_path(workdir, "train")) if r.label})
    stage = _Stage(
        workdir=workdir,
        run_dir=workdir,
        run={},
        rid="",
        policy=policy,
        device=resolve_device(device),
        manifest=manifest,
        records=records,
        holdout=HoldoutEvidence(verified=True, n_records=len(records)),
        task=task,
        labels=labels,
        kind=kind,
        base_rec=src.to_json(),
        base_digest=src.digest,
        artifact_digest="",
    )
    if task != "classification" and "bertscore_f1" in policy.evaluation.generation_metrics:
        stage.resources["bertscore"] = make_bertscorer(policy.evaluation, stage.device)
    _score_base(stage)
    rel = _baseline_dir(stage).relative_to(workdir).as_posix()
    return {"baseline_dir": rel, "base_digest": src.digest, "n": len(records), "device": stage.device}


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
