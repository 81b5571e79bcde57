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


def test_per_class_deltas_have_paired_intervals() -> None:
    from tunegate.evaluation.metrics import confusion_batch, per_class
    from tunegate.evaluation.stats import paired_bootstrap

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    base = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    tuned = np.where(y == 2, -1, y)  # perfect on a and b, class c never named (invalid)
    ids = [str(i) for i in range(200)]
    pol = EvaluationPolicy(bootstrap_samples=300)
    comp = compare_classification(
        y.tolist(),
        Predictions(ids, [""] * 200, base.tolist()),
        Predictions(ids, [""] * 200, tuned.tolist()),
        ["a", "b", "c"],
        pol,
    )
    c = comp.per_class["c"]
    assert c.tuned_f1 == 0.0 and c.baseline_f1 == pytest.approx(
        f1_score(y, base, labels=[2], average="macro")
    )
    assert c.ci_high < 0 and c.support == int((y == 2).sum())
    assert comp.per_class["a"].delta > 0
    # the single pass gives exactly the interval a one-class bootstrap gives
    one = paired_bootstrap(
        lambda idx: (
            per_class(confusion_batch(y, tuned, 3, idx))["f1"][:, 2]
            - per_class(confusion_batch(y, base, 3, idx))["f1"][:, 2]
        ),
        200,
        resamples=300,
        seed=0,
    )
    assert (c.delta, c.ci_low, c.ci_high) == (one.delta, one.low, one.high)


def test_tfidf_baseline_learns_from_the_train_split() -> None:
    from tunegate.evaluation.text_baseline import predict_tfidf_logreg

    def rec(text: str, label: str) -> Record:
        f = {"text": text, "label": label}
        return Record(id=content_id("classification", f), task="classification", **f)

    words = {"billing": ["invoice", "charge", "payment"], "refund": ["refund", "money back", "return"]}
    train = [rec(f"{w} question {i}", lab) for lab, ws in words.items() for w in ws for i in range(8)]
    hold = [rec("where is my invoice", "billing"), rec("I want my money back", "refund")]
    a = predict_tfidf_logreg(train, hold, ["billing", "refund"])
    b = predict_tfidf_logreg(train, hold, ["billing", "refund"])
    assert a.pred == [0, 1] and a == b  # right, and deterministic
    assert a.record_ids == [r.id for r in hold]


def test_threshold_and_statistics_fields_do_not_key_the_output_cache() -> None:
    base = EvaluationPolicy()
    moved = EvaluationPolicy(bootstrap_samples=500, confidence=0.9, intruder_top_k=3, seed=4)
    assert base.prediction_digest_payload() == moved.prediction_digest_payload()
    assert base.prediction_digest_payload() != EvaluationPolicy(max_new_tokens=8).prediction_digest_payload()
    assert "bootstrap_samples" not in base.prediction_digest_payload()


def test_production_baseline_absent_when_nothing_is_promoted(tmp_path: Path) -> None:
    from tunegate.evaluation.run import _production_baseline
    from tunegate.provenance import atomic_write_json

    atomic_write_json(tmp_path / "wd" / "runs" / "r1" / "run.json", {"run_id": "r1", "name": "intent"})
    stage = SimpleNamespace(workdir=tmp_path / "wd", rid="r1", policy=policy_from_mapping({}))
    (tmp_path / "registry").mkdir()
    assert _production_baseline(stage, tmp_path / "registry", Predictions([], [])) is None  # type: ignore[arg-type]


def test_encoder_predict_tokenizes_once_and_matches_the_plain_path() -> None:
    import csv
    import os

    import torch

    from tunegate.evaluation.metrics import minilm_dir
    from tunegate.evaluation.predict import seq_cls_predict, seq_cls_predict_plain
    from tunegate.training.model_io import load_pretrained, load_tokenizer

    shared = Path(os.environ.get("TUNEGATE_SHARED", Path(__file__).resolve().parents[4] / "shared"))
    test_csv = shared / "data" / "banking77" / "test.csv"
    if not test_csv.is_file():
        pytest.skip("shared Banking77 data not present")
    with open(test_csv, newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)][:48]
    labels = [f"l{i}" for i in range(5)]
    torch.manual_seed(0)
    model = load_pretrained(minilm_dir(), kind="seq_cls", labels=labels).eval()
    tok = load_tokenizer(minilm_dir())
    fast = seq_cls_predict(model, tok, texts, batch_size=7)
    plain = seq_cls_predict_plain(model, tok, texts, batch_size=16)
    assert fast.tolist() == plain.tolist()
    with torch.no_grad():
        one = [int(model(**tok(t, return_tensors="pt")).logits.argmax()) for t in texts[:5]]
    assert fast[:5].tolist() == one
