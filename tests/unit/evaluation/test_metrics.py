"""Metrics against hand-computed values and against scikit-learn / rouge-score directly."""

from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from tunegate.errors import ConfigError
from tunegate.evaluation.metrics import (
    METRICS,
    accuracy_cm,
    classification_report,
    confusion_batch,
    confusion_matrix,
    get_metric,
    macro_f1_cm,
    micro_f1_cm,
    rouge_l_examples,
    weighted_f1_cm,
)
from tunegate.evaluation.predict import parse_label


def test_hand_computed_two_class() -> None:
    # true: a a a b b ; pred: a a b b -1  -> a: tp2 fp0 fn1 ; b: tp1 fp1 fn1 (one invalid)
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0, 0, 1, 1, -1])
    cm = confusion_matrix(y, p, 2)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1]]
    f1_a = 2 * 1.0 * (2 / 3) / (1.0 + 2 / 3)  # P=1, R=2/3
    f1_b = 2 * 0.5 * 0.5 / 1.0  # P=1/2, R=1/2
    assert macro_f1_cm(cm) == pytest.approx((f1_a + f1_b) / 2)
    assert weighted_f1_cm(cm) == pytest.approx((3 * f1_a + 2 * f1_b) / 5)
    assert accuracy_cm(cm) == pytest.approx(3 / 5)
    # micro: tp 3, predicted (valid) 4, support 5
    assert micro_f1_cm(cm) == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    assert get_metric("invalid_output_rate").from_confusion(cm) == pytest.approx(0.2)  # type: ignore[misc]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_labels = 5
    y = rng.integers(0, n_labels, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(-1, n_labels, 300))
    cm = confusion_matrix(y, p, n_labels)
    labels = list(range(n_labels))
    assert accuracy_cm(cm) == pytest.approx(accuracy_score(y, p))
    for avg, fn in (("macro", macro_f1_cm), ("micro", micro_f1_cm), ("weighted", weighted_f1_cm)):
        assert fn(cm) == pytest.approx(f1_score(y, p, labels=labels, average=avg, zero_division=0)), avg
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    rep = classification_report(cm, [f"l{i}" for i in labels])
    for i in labels:
        row = rep["per_class"][f"l{i}"]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (prec[i], rec[i], f1[i], sup[i])
        )


def test_macro_f1_ignores_labels_absent_from_both_sides_like_sklearn() -> None:
    y, p = np.array([0, 0, 1]), np.array([0, 1, 1])
    cm = confusion_matrix(y, p, 4)
    assert macro_f1_cm(cm) == pytest.approx(f1_score(y, p, average="macro"))


def test_confusion_batch_matches_single() -> None:
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 3, 50), rng.integers(-1, 3, 50)
    idx = rng.integers(0, 50, (7, 50))
    batch = confusion_batch(y, p, 3, idx)
    for k in range(7):
        assert (batch[k] == confusion_matrix(y[idx[k]], p[idx[k]], 3)).all()
    assert macro_f1_cm(batch)[2] == pytest.approx(macro_f1_cm(batch[2]))


def test_rouge_l_matches_rouge_score_with_stemming() -> None:
    preds = ["the cats were running home", "", "a completely different sentence"]
    refs = ["the cat runs home", "something", "a different sentence entirely"]
    ref_scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    want = [ref_scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)]
    got = rouge_l_examples(preds, refs, {})
    assert got.tolist() == pytest.approx(want)
    assert got[0] > 0.5  # stemming: cats/cat, running/runs match


def test_registry_declares_direction_and_suggests_names() -> None:
    assert get_metric("rouge_l").higher_is_better
    assert not get_metric("invalid_output_rate").higher_is_better
    with pytest.raises(ConfigError, match=r"Did you mean 'macro_f1'.*Available: "):
        get_metric("macro_fi")
    assert all(n == n.lower() for n in METRICS)


@pytest.mark.parametrize(
    ("out", "want"),
    [
        ("positive", 0),
        (" Negative.\nmore", 1),
        ("neutral-ish", 2),
        ("posit", -1),
        ("", -1),
        ("negatives", -1),
    ],
)
def test_parse_label(out: str, want: int) -> None:
    assert parse_label(out, ["positive", "negative", "neutral"]) == want
