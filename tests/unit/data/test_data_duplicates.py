"""Normalization, exact groups, label conflicts, near-duplicates, dropping and the rate check."""

from __future__ import annotations

import random

import pytest
from helpers.datagate_helpers import cls, ids, inst, labelled, sentence

from tunegate.data.config import DataPolicy
from tunegate.data.duplicates import (
    check_duplicates,
    drop_duplicates,
    find_duplicates,
    normalize_text,
    shingles,
)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Hello,   World!", "hello world"),
        ("  TABS\tand\nnewlines ", "tabs and newlines"),
        ("Straße — «quoted»", "strasse quoted"),
        ("ﬁne", "fine"),  # NFKC ligature
        ("don't", "dont"),
    ],
)
def test_normalize_text(raw: str, norm: str) -> None:
    assert normalize_text(raw) == norm


def test_shingles() -> None:
    assert shingles("abcdef", "char", 5) == {"abcde", "bcdef"}
    assert shingles("abc", "char", 5) == {"abc"}
    assert shingles("a b c d", "word", 3) == {"a b c", "b c d"}
    assert shingles("", "char", 5) == set()


def test_exact_groups_conflicts_and_dropping(policy: DataPolicy) -> None:
    base = labelled({"a": 6})
    copy = base[0]
    recased = cls(base[1].text.upper() + " !!", "a")  # same normalized text, same label
    conflict = cls(base[2].text + ".", "b")  # same normalized text, other label
    recs = [*base, copy, recased, conflict]
    rep = find_duplicates(recs, policy)
    assert sorted(rep.exact_groups) == sorted([[copy.id, copy.id], sorted([base[1].id, recased.id])])
    assert rep.dropped_ids == sorted([copy.id, max(base[1].id, recased.id)])
    assert rep.conflict_groups == [sorted([base[2].id, conflict.id])]
    a, b = sorted([base[2].id, conflict.id])
    assert f"1 text(s) carry conflicting labels, record ids: {a[:12]} | {b[:12]}" in rep.check().message
    assert rep.n_dropped == 2 and rep.duplicate_rate == pytest.approx(2 / 9)
    kept = drop_duplicates(recs)
    assert len(kept) == 7 and ids(kept).count(copy.id) == 1
    assert min(base[1].id, recased.id) in ids(kept) and conflict in kept
    # Input order does not change the report.
    shuffled = recs[:]
    random.Random(3).shuffle(shuffled)
    assert find_duplicates(shuffled, policy) == rep


def test_near_duplicates_are_found_and_confirmed(policy: DataPolicy) -> None:
    long = sentence(1, n_words=30)
    words = long.split()
    words[10] = "zzz"
    near = " ".join(words)
    recs = [cls(long, "a"), cls(near, "a"), *labelled({"b": 10}, salt="other")]
    rep = find_duplicates(recs, policy)
    assert len(rep.near_pairs) == 1
    a, b, sim = rep.near_pairs[0]
    assert {a, b} == {recs[0].id, recs[1].id} and policy.near_duplicate_threshold <= sim < 1.0
    strict = find_duplicates(recs, DataPolicy(near_duplicate_threshold=0.99))
    assert strict.near_pairs == []


def test_instruction_duplicates_compare_prompt_and_output(policy: DataPolicy) -> None:
    a = inst("Translate to French", "bonjour", "hello")
    same = inst("translate to french!", "Bonjour.", "Hello")
    other_output = inst("Translate to French", "salut", "hello")
    rep = find_duplicates([a, same, other_output], policy)
    assert rep.exact_groups == [sorted([a.id, same.id])]
    assert rep.conflict_groups == []


def test_check_duplicates_rate(policy: DataPolicy) -> None:
    recs = labelled({"a": 19})
    one_dup = [*recs, recs[0]]  # 1 of 20 = 0.05
    ok = check_duplicates(one_dup, policy, split="train")
    assert ok.passed and ok.figures["exact_duplicates"] == 1 and ok.name == "duplicates_train"
    bad = check_duplicates([*one_dup, recs[1]], policy, split="train")
    assert not bad.passed and bad.blocking
    assert bad.figures["duplicate_ids"] == sorted([recs[0].id, recs[1].id])
    assert recs[0].text not in bad.message
    # The report carries the policy it was made under, so it can check and drop by itself.
    rep = find_duplicates([*one_dup, recs[1]], policy)
    assert rep.check(split="train") == bad
    assert rep.drop([*one_dup, recs[1]]) == recs
