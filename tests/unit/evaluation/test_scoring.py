"""Classification scoring and the paired comparison, on constructed predictions and a real model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunegate.evaluation import regression as R
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.run import plot_confusion
from tunegate.evaluation.scoring import Predictions, compare_classification, predict
from tunegate.policy.decide import decide
from tunegate.policy.schema import policy_from_mapping
from tunegate.records import Record, content_id


def test_compare_classification_figures() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    base = np.where(rng.random(120) < 0.4, y, rng.integers(-1, 3, 120))
    tuned = np.where(rng.random(120) < 0.85, y, rng.integers(0, 3, 120))
    ids = [str(i) for i in range(120)]
    comp = compare_classification(
        y.tolist(),
        Predictions(ids, [""] * 120, base.tolist()),
        Predictions(ids, [""] * 120, tuned.tolist()),
        ["a", "b", "c"],
        EvaluationPolicy(bootstrap_samples=500),
    )
    m = comp.metrics["macro_f1"]
    assert m.tuned == pytest.approx(f1_score(y, tuned, labels=[0, 1, 2], average="macro"))
    assert m.baseline == pytest.approx(f1_score(y, base, labels=[0, 1, 2], average="macro"))
    assert m.ci_low <= m.delta <= m.ci_high and m.ci_low > 0
    assert comp.metrics["invalid_output_rate"].baseline == pytest.approx(float(np.mean(base < 0)))
    assert not comp.metrics["invalid_output_rate"].higher_is_better
    assert comp.mcnemar is not None
    assert comp.mcnemar.b == int(np.sum((base == y) & (tuned != y)))
    assert comp.mcnemar.c == int(np.sum((base != y) & (tuned == y)))
    assert comp.classification is not None
    assert comp.classification["tuned"]["confusion_matrix"]["columns"][-1] == "<invalid>"


def test_confusion_png(tmp_path: Path) -> None:
    out = plot_confusion(np.array([[3, 1, 0], [0, 2, 1]]), ["x", "y"], tmp_path / "cm.png", "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loglik_classification_on_stories(stories: tuple[Any, Any]) -> None:
    model, tok = stories
    texts = ["Lily was sad and started to", "Tom was sad and started to", "The sun was", "The sky was"]
    recs = [
        Record(
            id=content_id("classification", {"text": t, "label": "cry"}),
            task="classification",
            text=t,
            label="cry",
        )
        for t in texts
    ]
    pol = EvaluationPolicy(prompt_style="template", classification_template="{text}")
    preds = predict(
        SimpleNamespace(model=model, tokenizer=tok, kind="causal", labels=None),
        recs,
        pol,
        ["cry", "bright", "table"],
    )
    assert preds.pred is not None and len(preds.pred) == 4
    assert preds.pred[:2] == [0, 0] and preds.pred[2] == 1  # the story model's likely continuations


def test_piqa_with_limit_is_recorded_and_flagged(
    stories: tuple[Any, Any], shared_data: Path, tmp_path: Path
) -> None:
    model, tok = stories
    pol = EvaluationPolicy(
        regression_tasks=["tunegate_piqa"],
        regression_limit=20,
        bootstrap_samples=200,
        shared_dir=str(shared_data.parent),
    )
    specs = R.resolve_tasks(pol, tmp_path)
    runs = R.run_tasks(model, tok, specs, pol)
    (ev,) = R.compare_tasks(specs, runs, runs, pol)
    assert (ev.n, ev.n_available, ev.limit, ev.delta) == (20, 1838, 20, 0.0)
    assert set(ev.data_sha256) == {"valid.jsonl", "valid-labels.lst"}
    from tunegate.evaluation.evidence import Evidence

    d = decide(policy_from_mapping({}), Evidence(run_id="r", task="instruction", regression=[ev]))
    check = next(c for c in d.checks if c.name == "regression_limit_disclosed")
    assert not check.passed and "20 of 1838 items" in check.message
