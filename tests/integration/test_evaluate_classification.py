"""Classification end to end on stories260k: LoRA-train a few steps with the training stage, score both
models by label log-likelihood on the training-time prompt, and check the classification evidence
(per-class figures, confusion matrix JSON + PNG, McNemar) and the decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunegate.provenance import atomic_write_json

NAMES = ["Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Tim", "Sam", "Zoe", "Leo", "Amy", "Jack", "Kim"]
FEELINGS = {
    "happy": ["got a new puppy", "ate a big cake", "played in the sun"],
    "sad": ["lost a red ball", "broke a toy", "missed the bus"],
}


def _workdir(tmp_path: Path) -> Path:
    from tunegate.data.split import write_holdout_manifest
    from tunegate.records import Record, content_id, write_records

    recs = []
    for name in NAMES:
        for label, events in FEELINGS.items():
            for ev in events:
                f = {"text": f"{name} {ev}.", "label": label}
                recs.append(Record(id=content_id("classification", f), task="classification", **f))
    holdout = recs[::5][:16]
    rest = [r for r in recs if r not in holdout]
    data = tmp_path / "data"
    write_records(data / "train.jsonl", rest[:-8])
    write_records(data / "validation.jsonl", rest[-8:])
    write_records(data / "holdout.jsonl", holdout)
    write_holdout_manifest(data, holdout, policy_digest="0" * 64, seed=0, holdout_file=data / "holdout.jsonl")
    atomic_write_json(
        data / "data_report.json",
        {"verdict": "pass", "checks": [], "pii": {"residual": {}, "residual_ok": True}},
    )
    from tunegate.data.splits import seal_splits

    seal_splits(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_classification_run(stories260k: Path, tmp_path: Path, quick_lora_config: Any) -> None:
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
    decision = decide_run(wd, policy=policy)
    by = {c.name: c for c in decision.checks}
    assert by["max_regression_drop"].passed and "no regression tasks" in by["max_regression_drop"].message
    assert by["max_invalid_output_rate"].passed
    lcb = ev.metrics["macro_f1"].ci_low
    # A few CPU steps may or may not beat the baseline on 16 items; the gate must follow the
    # interval either way (strictly above 0), and say why when it fails.
    assert by["min_improvement_lcb"].passed == (lcb > 0.0)
    assert decision.verdict == ("pass" if lcb > 0.0 else "fail")
    if decision.verdict == "fail":
        assert decision.reasons == [f"min_improvement_lcb: {by['min_improvement_lcb'].message}"]
