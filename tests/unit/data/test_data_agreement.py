"""Cohen's kappa between annotators, checked against hand-computed values."""

from __future__ import annotations

import pytest
from helpers.datagate_helpers import cls, inst, sentence

from tunegate.data.agreement import check_agreement, cohen_kappa
from tunegate.data.config import DataPolicy


def _pairs(table: dict[tuple[str, str], int]) -> list:
    out, i = [], 0
    for (a, b), n in sorted(table.items()):
        for _ in range(n):
            out.append(cls(sentence(i), a, label_2=b))
            i += 1
    return out


# The textbook 2x2 table: yes/yes 20, yes/no 5, no/yes 10, no/no 15 (n = 50).
# p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
TABLE = {("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15}


def test_kappa_matches_the_hand_computed_value() -> None:
    recs = _pairs(TABLE)
    assert cohen_kappa([r.label for r in recs], [r.label_2 for r in recs]) == pytest.approx(0.4)
    res = check_agreement(recs, DataPolicy())
    assert res.figures["kappa"] == pytest.approx(0.4)
    assert res.figures["n_double_annotated"] == 50 and res.figures["n_disagreements"] == 15
    assert res.figures["observed_agreement"] == pytest.approx(0.7)
    assert res.figures["disagreeing_ids"] == sorted(r.id for r in recs if r.label != r.label_2)
    assert not res.passed and res.blocking
    assert check_agreement(recs, DataPolicy(min_kappa=0.35)).passed


def test_good_agreement_passes() -> None:
    # p_o = 0.9, p_e = 0.5 -> kappa 0.8
    recs = _pairs({("a", "a"): 18, ("a", "b"): 2, ("b", "b"): 18, ("b", "a"): 2})
    res = check_agreement(recs, DataPolicy())
    assert res.passed and res.figures["kappa"] == pytest.approx(0.8)


def test_single_annotated_data_is_reported_and_the_policy_decides() -> None:
    recs = [cls(sentence(i), "a") for i in range(10)]
    res = check_agreement(recs, DataPolicy())
    assert res.passed and res.figures["single_annotated"] and "single-annotated" in res.message
    strict = check_agreement(recs, DataPolicy(require_second_annotator=True))
    assert not strict.passed and strict.blocking


def test_few_pairs_only_warn() -> None:
    recs = _pairs({("a", "b"): 3, ("b", "a"): 3})
    res = check_agreement(recs, DataPolicy())
    assert not res.passed and not res.blocking and res.severity == "warning"


def test_one_shared_label_is_perfect_agreement() -> None:
    res = check_agreement(_pairs({("a", "a"): 25}), DataPolicy())
    assert res.passed and res.figures["kappa"] == 1.0


def test_not_applicable_without_labels() -> None:
    res = check_agreement([inst("say hi", "hi")], DataPolicy())
    assert res.passed and res.figures["applicable"] is False
