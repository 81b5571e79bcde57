"""Leakage between what the model learns from (train + validation) and the frozen hold-out.

A hold-out example the model has seen — verbatim, re-cased, re-punctuated or lightly paraphrased
— inflates the measured improvement. Three kinds of match fail the gate:

* the same id (identical task content);
* the same normalized match text (:func:`tunegate.data.duplicates.match_text`; for
  classification the text alone, whatever the label);
* a near-duplicate: shingle Jaccard >= ``policy.near_duplicate_threshold`` (MinHash LSH
  candidates, confirmed exactly).

The result names counts and the offending ids on both sides, never text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tunegate.data.config import DataPolicy
from tunegate.data.duplicates import cross_near_duplicates, match_text
from tunegate.data.results import CheckResult, id_list, short_ids
from tunegate.records import Record


def check_leakage(train: Sequence[Record], holdout: Sequence[Record], policy: DataPolicy) -> CheckResult:
    """Exact and near-duplicate matches between ``train`` (+ validation) and ``holdout``."""
    hold_ids = {r.id for r in holdout}
    id_hits = sorted({r.id for r in train if r.id in hold_ids})

    def by_text(rs: Sequence[Record]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for r in rs:
            t = match_text(r)
            if t:
                out[t].append(r.id)
        return out

    tr_text, ho_text = by_text(train), by_text(holdout)
    shared = sorted(set(tr_text) & set(ho_text))
    text_train = {i for t in shared for i in tr_text[t]}
    text_hold = {i for t in shared for i in ho_text[t]}

    q = sorted(set(tr_text) - set(shared))
    tg = sorted(set(ho_text) - set(shared))
    near = cross_near_duplicates(q, tg, policy)
    near_train = {i for qi, _, _ in near for i in tr_text[q[qi]]}
    near_hold = {i for _, ti, _ in near for i in ho_text[tg[ti]]}

    train_bad = set(id_hits) | text_train | near_train
    hold_bad = set(id_hits) | text_hold | near_hold
    passed = not train_bad and not hold_bad
    figures = {
        "n_train": len(train),
        "n_holdout": len(holdout),
        "exact_id_matches": len(id_hits),
        "exact_text_matches": len(shared),
        "near_duplicate_matches": len(near),
        "near_duplicate_threshold": policy.near_duplicate_threshold,
        "max_near_jaccard": max((s for _, _, s in near), default=None),
        "n_train_ids": len(train_bad),
        "n_holdout_ids": len(hold_bad),
        "train_ids": id_list(train_bad),
        "holdout_ids": id_list(hold_bad),
    }
    if passed:
        msg = f"no overlap between {len(train)} training and {len(holdout)} hold-out records"
    else:
        msg = (
            f"hold-out leakage: {len(id_hits)} identical id(s), {len(shared)} identical normalized text(s), "
            f"{len(near)} near-duplicate pair(s); hold-out ids {short_ids(hold_bad)}"
        )
    return CheckResult(name="holdout_leakage", passed=passed, figures=figures, message=msg)
