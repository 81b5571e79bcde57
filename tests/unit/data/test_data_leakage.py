"""check_leakage: identical ids, identical normalized text and near-duplicates across the split."""

from __future__ import annotations

from helpers.datagate_helpers import cls, labelled, sentence

from tunegate.data.config import DataPolicy
from tunegate.data.leakage import check_leakage
from tunegate.data.split import split_records


def test_clean_split_passes(policy: DataPolicy) -> None:
    s = split_records(labelled({"a": 60, "b": 60}), policy)
    res = check_leakage(s.train + s.validation, s.holdout, policy)
    assert res.passed and res.figures["n_holdout"] == len(s.holdout) and res.figures["train_ids"] == []


def test_exact_id_leak(policy: DataPolicy) -> None:
    s = split_records(labelled({"a": 60, "b": 60}), policy)
    leaked = s.holdout[0]
    res = check_leakage([*s.train, leaked], s.holdout, policy)
    assert not res.passed and res.blocking
    assert res.figures["exact_id_matches"] == 1
    assert res.figures["holdout_ids"] == [leaked.id] == res.figures["train_ids"]
    assert leaked.text not in res.message


def test_normalized_text_leak_with_another_label(policy: DataPolicy) -> None:
    s = split_records(labelled({"a": 60, "b": 60}), policy)
    h = s.holdout[2]
    disguised = cls("  " + (h.text or "").upper() + "?!", "b" if h.label == "a" else "a")
    res = check_leakage([*s.train, disguised], s.holdout, policy)
    assert not res.passed
    assert res.figures["exact_id_matches"] == 0 and res.figures["exact_text_matches"] == 1
    assert res.figures["train_ids"] == [disguised.id] and res.figures["holdout_ids"] == [h.id]


def test_near_duplicate_leak(policy: DataPolicy) -> None:
    long = sentence(7, n_words=30, salt="leak")
    words = long.split()
    words[5] = "paraphrased"
    hold = [cls(long, "a"), *labelled({"a": 5}, salt="h")]
    train = [cls(" ".join(words), "a"), *labelled({"a": 20}, salt="t")]
    res = check_leakage(train, hold, policy)
    assert not res.passed
    assert res.figures["near_duplicate_matches"] == 1 and res.figures["exact_text_matches"] == 0
    assert res.figures["holdout_ids"] == [hold[0].id]
    assert policy.near_duplicate_threshold <= res.figures["max_near_jaccard"] < 1
    # A stricter threshold lets the paraphrase through: the threshold is the policy's.
    assert check_leakage(train, hold, DataPolicy(near_duplicate_threshold=0.99)).passed
