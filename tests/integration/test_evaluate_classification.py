"""Classification end to end on stories260k: LoRA-train a few steps with the training stage, score both
models by label log-likelihood on the training-time prompt, and check the classification evidence
(per-class figures, confusion matrix JSON + PNG, McNemar) and the decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.eval_workdirs import classification_workdir as _workdir


@pytest.mark.slow
def test_classification_run(
    stories260k: Path, tmp_path: Path, quick_lora_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunegate.evaluation.run import decide_run, evaluate_run
    from tunegate.policy.schema import policy_from_mapping
    from tunegate.training.train import train_run

    wd = _workdir(tmp_path)
    cfg = quick_lora_config(steps=12, rank=8)
    res = train_run(wd, model=str(stories260k), method="lora", config=cfg, progress=False)
    policy = policy_from_mapping(
        {"evaluation": {"regression_tasks": [], "bootstrap_samples": 300, "intruder_top_k": 4}}
    )
    ev = evaluate_run(wd, policy=policy)
    assert ev.task == "classification" and ev.primary_metric == "macro_f1"
    assert {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "invalid_output_rate"} <= set(ev.metrics)
    assert ev.metrics["invalid_output_rate"].tuned == 0.0  # log-likelihood scoring always names a label
    assert ev.mcnemar is not None and ev.classification is not None
    tuned_cm = ev.classification["tuned"]["confusion_matrix"]
    assert sum(map(sum, tuned_cm["counts"])) == 16
    assert set(ev.classification["tuned"]["per_class"]) == {"happy", "sad"}
    run_dir = wd / "runs" / res.run_id
    assert (run_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    acc = ev.metrics["accuracy"]
    assert acc.tuned == pytest.approx(tuned_cm["counts"][0][0] / 16 + tuned_cm["counts"][1][1] / 16)
    assert ev.mcnemar.b + ev.mcnemar.c <= 16
    # every baseline, base model first; the TF-IDF + logistic regression one is trained on train.jsonl
    assert ev.baselines is not None
    names = [b.name for b in ev.baselines]
    assert names == ["base_model", "tfidf_logreg"]
    tfidf = ev.baselines[1]
    assert not tfidf.skipped and set(tfidf.per_class) == {"happy", "sad"}
    assert tfidf.metrics["macro_f1"].tuned == ev.metrics["macro_f1"].tuned  # same tuned outputs
    assert ev.provenance["device"] == "cpu"
    decision = decide_run(wd, policy=policy)
    by = {c.name: c for c in decision.checks}
    assert by["max_regression_drop"].passed and "no regression tasks" in by["max_regression_drop"].message
    assert by["max_invalid_output_rate"].passed
    imp = by["min_improvement_lcb"]
    strongest = max(ev.baselines, key=lambda b: (b.metrics["macro_f1"].baseline, -names.index(b.name)))
    assert imp.figures["compared_with"] == strongest.name
    lcb = strongest.metrics["macro_f1"].ci_low
    # The label is a function of the event words, so TF-IDF + logistic regression is perfect on the
    # hold-out (macro-F1 1.0): it is the strongest baseline, nothing can improve on it, and the gate
    # must say so (pinned verdict, not "either way").
    assert strongest.name == "tfidf_logreg" and tfidf.metrics["macro_f1"].baseline == 1.0
    assert lcb <= 0.0 and imp.passed is False and "tfidf_logreg" in imp.message
    assert decision.verdict == "fail"
    for c in decision.checks:
        if c.blocking:
            assert c.name in {"min_improvement_lcb", "min_per_class_f1", "max_per_class_drop"}, c

    # A policy change that moves thresholds and statistics only: re-evaluating loads no model
    # (every per-example output comes from the cache) and re-deciding follows the new thresholds.
    import tunegate.training.model_io as model_io

    def no_model(*a: Any, **k: Any) -> Any:
        raise AssertionError("a model was loaded although every output is cached")

    monkeypatch.setattr(model_io, "load_base_model", no_model)
    monkeypatch.setattr(model_io, "load_run_model", no_model)
    moved = policy_from_mapping(
        {
            "evaluation": {
                "regression_tasks": [],
                "bootstrap_samples": 200,
                "confidence": 0.9,
                "intruder_top_k": 4,
            },
            "checks": {"min_improvement_lcb": -1.0, "min_per_class_f1": None, "max_per_class_drop": None},
        }
    )
    ev2 = evaluate_run(wd, policy=moved)
    assert ev2.provenance["cached_outputs"] == {"base_model": True, "tfidf_logreg": True, "tuned": True}
    assert ev2.metrics["macro_f1"].tuned == ev.metrics["macro_f1"].tuned
    assert ev2.metrics["macro_f1"].confidence == 0.9
    d2 = decide_run(wd, policy=moved)
    assert {c.name: c.passed for c in d2.checks}["min_improvement_lcb"]
