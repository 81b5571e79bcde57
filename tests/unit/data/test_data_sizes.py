"""Size bands, the blocking minimum and per-class minimums."""

from __future__ import annotations

import pytest
from helpers.datagate_helpers import labelled

from tunegate.data.config import DataPolicy
from tunegate.data.sizes import check_sizes, size_band, size_message


@pytest.mark.parametrize(
    ("n", "scope", "band"),
    [
        (199, "narrow", "below_minimum"),
        (200, "narrow", "below_recommended"),
        (299, "narrow", "below_recommended"),
        (300, "narrow", "recommended"),
        (800, "narrow", "recommended"),
        (801, "narrow", "above_recommended"),
        (999, "broad", "below_recommended"),
        (1000, "broad", "recommended"),
        (150, "broad", "below_minimum"),
    ],
)
def test_size_band(n: int, scope: str, band: str) -> None:
    assert size_band(n, DataPolicy(scope=scope)) == band


def _by_name(results: list) -> dict:
    return {r.name: r for r in results}


def test_too_few_pairs_blocks(policy: DataPolicy) -> None:
    recs = labelled({"a": 100, "b": 90})
    res = _by_name(check_sizes(recs[:160], recs[160:], "classification", policy))
    assert not res["min_pairs"].passed and res["min_pairs"].blocking
    assert res["min_pairs"].figures["n_total"] == 190 and res["min_pairs"].figures["band"] == "below_minimum"
    assert not res["recommended_size"].passed and not res["recommended_size"].blocking


def test_recommended_band_passes(policy: DataPolicy) -> None:
    recs = labelled({"a": 200, "b": 200})
    train = [r for i, r in enumerate(recs) if i % 7]
    hold = [r for i, r in enumerate(recs) if not i % 7]
    res = _by_name(check_sizes(train, hold, "classification", policy))
    assert all(r.passed for r in res.values()), [r.message for r in res.values()]
    assert res["recommended_size"].figures["band"] == "recommended"
    assert res["min_per_class"].figures["per_class_holdout"] == {"a": 29, "b": 29}


def test_per_class_minimum_in_train_and_holdout() -> None:
    policy = DataPolicy(min_pairs=10, min_per_class_train=5, min_per_class_holdout=2)
    recs = labelled({"a": 30, "b": 6, "c": 3})
    train = [r for r in recs if r.label != "b"] + [r for r in recs if r.label == "b"][:5]
    hold = [r for r in recs if r.label == "b"][5:] + [r for r in recs if r.label == "a"][:3]
    res = _by_name(check_sizes(train, hold, "classification", policy))["min_per_class"]
    assert not res.passed
    assert res.figures["short_train"] == ["c"] and res.figures["short_holdout"] == ["b", "c"]


def test_label_set_classes_missing_from_the_data_are_short() -> None:
    policy = DataPolicy(min_pairs=1, label_set=["a", "b", "never"], min_per_class_holdout=1)
    recs = labelled({"a": 20, "b": 20})
    res = _by_name(check_sizes(recs[5:35], recs[:5] + recs[35:], "classification", policy))["min_per_class"]
    assert "never" in res.figures["short_train"] and "never" in res.figures["short_holdout"]


def test_instruction_has_no_per_class_check(policy: DataPolicy) -> None:
    assert {r.name for r in check_sizes([], [], "instruction", policy)} == {"min_pairs", "recommended_size"}


def test_messages_name_the_short_labels_and_read_the_right_way(policy: DataPolicy) -> None:
    from helpers.datagate_helpers import labelled

    train = labelled({"billing": 12, "refund": 3, "other": 0})
    hold = labelled({"billing": 4, "refund": 1}, salt="h")
    (per_class,) = [
        r for r in check_sizes(train, hold, "classification", policy) if r.name == "min_per_class"
    ]
    assert "short in train: label 'refund' (3 < 10)" in per_class.message
    assert "short in hold-out: label 'refund' (1 < 3)" in per_class.message
    big = DataPolicy(min_pairs=1)
    assert size_message(23605, "above_recommended", big) == (
        "23605 pairs: more than the 300-800 recommended for a narrow task; "
        "fine (more data rarely hurts, training takes longer)"
    )
    assert "fewer than the minimum of 200" in size_message(50, "below_minimum", policy)
    assert (
        size_message(500, "recommended", policy)
        == "500 pairs: within the 300-800 recommended for a narrow task"
    )
