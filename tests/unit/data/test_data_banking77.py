"""The data checks on a slice of real data (banking77, CC BY 4.0) from ../shared."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tunegate.data.config import DataPolicy
from tunegate.data.duplicates import find_duplicates
from tunegate.data.leakage import check_leakage
from tunegate.data.sizes import check_sizes
from tunegate.data.split import split_records
from tunegate.data.validate import run_expectations
from tunegate.records import read_records


@pytest.mark.usefixtures("gx_ready")
def test_checks_on_a_real_banking77_slice(shared_data: Path, pii_key: str) -> None:
    path = shared_data / "banking77" / "train.csv"
    rows = list(
        itertools.islice(
            read_records(path, "classification", fields={"label": "category"}, key=pii_key.encode()), 1500
        )
    )
    policy = DataPolicy(scope="broad", min_per_class_train=5, min_per_class_holdout=1)
    split = split_records(rows, policy)
    assert len(split.holdout) == round(0.15 * len(rows))
    leak = check_leakage(split.train + split.validation, split.holdout, policy)
    assert leak.passed, leak.message
    # Without near-duplicate grouping, real paraphrases straddle the split and the check sees them.
    loose = split_records(rows, policy.model_copy(update={"group_near_duplicates": False}))
    loose_leak = check_leakage(loose.train + loose.validation, loose.holdout, policy)
    assert not loose_leak.passed and loose_leak.figures["near_duplicate_matches"] >= 1
    assert loose_leak.figures["exact_text_matches"] + loose_leak.figures["exact_id_matches"] == 0
    for name in ("train", "validation", "holdout"):
        records = getattr(split, name)
        report = run_expectations(records, "classification", policy, split=name)
        assert report.success, report.to_check().message
        dups = find_duplicates(records, policy)
        assert dups.check(split=name).passed
        assert len(dups.drop(records)) == len(records) - dups.n_dropped
    sizes = {
        c.name: c
        for c in check_sizes(split.train + split.validation, split.holdout, "classification", policy)
    }
    assert sizes["min_pairs"].passed and sizes["recommended_size"].figures["band"] == "recommended"
