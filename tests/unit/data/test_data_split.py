"""split_records: determinism, fractions, stratification, groups and duplicate clusters."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from helpers.datagate_helpers import cls, ids, inst, labelled, sentence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunegate.data.config import DataPolicy
from tunegate.data.leakage import check_leakage
from tunegate.data.split import SplitResult, split_records
from tunegate.errors import InputError
from tunegate.records import Record


def _where(split: SplitResult) -> dict[str, str]:
    return {r.id: name for name in ("train", "validation", "holdout") for r in getattr(split, name)}


def test_split_is_independent_of_input_order(policy: DataPolicy) -> None:
    recs = labelled({"billing": 90, "card": 70, "fraud": 40})
    base = split_records(recs, policy)
    for seed in range(3):
        shuffled = recs[:]
        random.Random(seed).shuffle(shuffled)
        again = split_records(shuffled, policy)
        assert ids(again.train) == ids(base.train)
        assert ids(again.validation) == ids(base.validation)
        assert ids(again.holdout) == ids(base.holdout)


def test_split_sizes_follow_the_fractions(policy: DataPolicy) -> None:
    recs = labelled({"a": 120, "b": 80})
    s = split_records(recs, policy)
    assert len(s.holdout) == round(0.15 * 200)
    assert len(s.validation) == round(0.10 * (200 - len(s.holdout)))
    assert sorted(ids(s.train) + ids(s.validation) + ids(s.holdout)) == sorted(ids(recs))


def test_seed_changes_the_hold_out() -> None:
    recs = labelled({"a": 60, "b": 60})
    a = split_records(recs, DataPolicy(seed=1))
    b = split_records(recs, DataPolicy(seed=2))
    assert set(ids(a.holdout)) != set(ids(b.holdout))


def test_stratified_within_one_per_class(policy: DataPolicy) -> None:
    counts = {"big": 101, "mid": 37, "small": 13, "tiny": 7}
    s = split_records(labelled(counts), policy)
    held = Counter(r.label for r in s.holdout)
    for label, n in counts.items():
        assert abs(held[label] - policy.holdout_fraction * n) <= 1, (label, held[label], n)
    rest = Counter(r.label for r in s.train + s.validation)
    val = Counter(r.label for r in s.validation)
    for label, n in rest.items():
        assert abs(val[label] - policy.validation_fraction * n) <= 1, (label, val[label], n)


def test_unstratified_instruction_split(policy: DataPolicy) -> None:
    recs = [inst(sentence(i), sentence(i, salt="out")) for i in range(100)]
    s = split_records(recs, policy)
    assert s.counts() == {"train": 76, "validation": 9, "holdout": 15}


def test_groups_never_straddle(policy: DataPolicy) -> None:
    recs = []
    for g in range(40):
        for k in range(1 + g % 6):
            recs.append(cls(sentence(g * 10 + k), "ab"[g % 2], group=f"user-{g}"))
    where = _where(split_records(recs, policy))
    sides: dict[str, set[str]] = {}
    for r in recs:
        sides.setdefault(r.group or "", set()).add(where[r.id])
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {"train", "holdout"} <= {side for s in sides.values() for side in s}


def test_exact_and_normalized_duplicates_stay_together(policy: DataPolicy) -> None:
    recs = labelled({"a": 60, "b": 60})
    dup = recs[5]
    recased = cls(dup.text.upper() + "!!", "b")  # same normalized text, other label: a conflict
    recs = [*recs, dup, dup, recased]
    where = _where(split_records(recs, policy))
    assert where[dup.id] == where[recased.id]


def test_near_duplicates_stay_together_and_no_leakage(policy: DataPolicy) -> None:
    recs = labelled({"a": 80, "b": 80})
    twins = []
    for i in range(10):
        long = sentence(1000 + i, n_words=30)
        words = long.split()
        words[3] = "typo"
        twins.append((cls(long, "a"), cls(" ".join(words), "a")))
    recs += [r for pair in twins for r in pair]
    s = split_records(recs, policy)
    where = _where(s)
    assert all(where[a.id] == where[b.id] for a, b in twins)
    assert check_leakage(s.train + s.validation, s.holdout, policy).passed


def test_mixed_task_kinds_are_refused(policy: DataPolicy) -> None:
    with pytest.raises(InputError, match="several task kinds"):
        split_records([cls("x y z", "a"), inst("do", "done")], policy)


def test_empty_input(policy: DataPolicy) -> None:
    assert split_records([], policy) == SplitResult([], [], [])


_words = st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "omega", "pi"]), min_size=1, max_size=6)
_records = st.lists(
    st.tuples(_words, st.sampled_from(["x", "y", "z"]), st.one_of(st.none(), st.sampled_from(["g1", "g2"]))),
    min_size=0,
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_records, order=st.randoms(use_true_random=False), near=st.booleans())
def test_property_split_is_a_function_of_the_record_set(
    rows: list[tuple[list[str], str, str | None]], order: random.Random, near: bool
) -> None:
    recs: list[Record] = [cls(" ".join(w), lab, group=g) for w, lab, g in rows]
    policy = DataPolicy(group_near_duplicates=near)
    shuffled = recs[:]
    order.shuffle(shuffled)
    a, b = split_records(recs, policy), split_records(shuffled, policy)
    assert [r.to_json() for r in a.holdout] == [r.to_json() for r in b.holdout]
    assert [r.to_json() for r in a.validation] == [r.to_json() for r in b.validation]
    assert [r.to_json() for r in a.train] == [r.to_json() for r in b.train]
    assert len(a.train) + len(a.validation) + len(a.holdout) == len(recs)
    where = _where(a)
    for g in ("g1", "g2"):
        assert len({where[r.id] for r in recs if r.group == g}) <= 1


def test_split_membership_does_not_depend_on_the_id_key(policy: DataPolicy) -> None:
    """Ids are keyed with the PII key; a new key must not move records across the split."""
    from tunegate.records import content_id

    base = labelled({"a": 40, "b": 40, "c": 20})

    def rekey(key: bytes) -> list[Record]:
        return [
            r.model_copy(update={"id": content_id(r.task, {"text": r.text, "label": r.label}, key)})
            for r in base
        ]

    def texts(split: SplitResult) -> tuple[frozenset[str | None], ...]:
        return tuple(frozenset(r.text for r in getattr(split, n)) for n in ("train", "validation", "holdout"))

    one = split_records(rekey(b"first-key-0123456789abcdef0123456789"), policy)
    two = split_records(rekey(b"second-key-0123456789abcdef012345678"), policy)
    assert texts(one) == texts(two)
    assert {r.id for r in one.holdout}.isdisjoint({r.id for r in two.holdout})
