"""Minimum and recommended dataset sizes, and per-class minimums.

Defaults come from fine-tuning practice: under ~200 pairs a fine-tune mostly memorizes and the
hold-out is too small to measure anything, so it blocks; 300-800 pairs is the usual sweet spot for
a narrow task (a format, a label set, a tone), and broad behaviour changes want 1,000+. Outside the
recommended range is a warning: the data can still pass. For classification each label needs
enough examples in train *and* in the hold-out, or its per-class score is noise.

Bands (reported in every size result): ``below_minimum`` (< min_pairs), ``below_recommended``,
``recommended``, ``above_recommended`` (narrow scope only: more data is rarely harmful, but a
narrow task rarely needs it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tunegate.data.config import DataPolicy
from tunegate.data.results import CheckResult
from tunegate.records import Record


def size_band(n: int, policy: DataPolicy) -> str:
    """Which band ``n`` pairs fall in under ``policy`` (see the module docstring)."""
    if n < policy.min_pairs:
        return "below_minimum"
    if policy.scope == "broad":
        return "recommended" if n >= policy.recommended_broad_min else "below_recommended"
    lo, hi = policy.recommended_narrow
    if n < lo:
        return "below_recommended"
    return "recommended" if n <= hi else "above_recommended"


def _recommended(policy: DataPolicy) -> str:
    if policy.scope == "broad":
        return f"{policy.recommended_broad_min}+ recommended for a broad behaviour change"
    lo, hi = policy.recommended_narrow
    return f"{lo}-{hi} recommended for a narrow task"


def size_message(n: int, band: str, policy: DataPolicy) -> str:
    """What a pair count means, in words: ``23605 pairs: more than the 300-800 recommended ...; fine``."""
    rec = _recommended(policy)
    if band == "below_minimum":
        return f"{n} pairs: fewer than the minimum of {policy.min_pairs}; add data before fine-tuning"
    if band == "below_recommended":
        return (
            f"{n} pairs: fewer than the {rec}; it can pass, but expect noisier scores and add data if you can"
        )
    if band == "above_recommended":
        return f"{n} pairs: more than the {rec}; fine (more data rarely hurts, training takes longer)"
    return f"{n} pairs: within the {rec}"


def _short(labels: Sequence[str], counts: Counter[str], minimum: int, limit: int = 10) -> str:
    """``label 'x' (3 < 10), label 'y' (0 < 10) (+4 more)``: the labels short of their minimum."""
    items = [f"label {lab!r} ({counts[lab]} < {minimum})" for lab in labels[:limit]]
    more = f" (+{len(labels) - limit} more)" if len(labels) > limit else ""
    return ", ".join(items) + more


def check_sizes(
    train: Sequence[Record], holdout: Sequence[Record], task: str, policy: DataPolicy
) -> list[CheckResult]:
    """Size checks: the minimum (blocks), the recommended band (warns), per-class minimums (blocks).

    ``train`` is everything the model may learn from or tune on (train + validation); the total
    is ``len(train) + len(holdout)``.
    """
    n = len(train) + len(holdout)
    band = size_band(n, policy)
    recommended = (
        [policy.recommended_broad_min, None] if policy.scope == "broad" else list(policy.recommended_narrow)
    )
    base = {
        "n_total": n,
        "n_train": len(train),
        "n_holdout": len(holdout),
        "band": band,
        "scope": policy.scope,
        "min_pairs": policy.min_pairs,
        "recommended": recommended,
    }
    results = [
        CheckResult(
            name="min_pairs",
            passed=n >= policy.min_pairs,
            figures=dict(base),
            message=f"{n} pairs (minimum {policy.min_pairs})"
            + ("" if n >= policy.min_pairs else "; add data before fine-tuning"),
        ),
        CheckResult(
            name="recommended_size",
            passed=band == "recommended",
            figures=dict(base),
            message=size_message(n, band, policy),
            severity="warning",
        ),
    ]
    if task == "classification":
        tr = Counter(r.label or "" for r in train)
        ho = Counter(r.label or "" for r in holdout)
        labels = sorted(set(tr) | set(ho) | set(policy.label_set or ()))
        short_train = sorted(lab for lab in labels if tr[lab] < policy.min_per_class_train)
        short_hold = sorted(lab for lab in labels if ho[lab] < policy.min_per_class_holdout)
        ok = not short_train and not short_hold
        msg = f"{len(labels)} label(s); per-class minimum train {policy.min_per_class_train}, "
        msg += f"hold-out {policy.min_per_class_holdout}"
        if short_train:
            msg += f"; short in train: {_short(short_train, tr, policy.min_per_class_train)}"
        if short_hold:
            msg += f"; short in hold-out: {_short(short_hold, ho, policy.min_per_class_holdout)}"
        results.append(
            CheckResult(
                name="min_per_class",
                passed=ok,
                figures={
                    "per_class_train": {lab: tr[lab] for lab in labels},
                    "per_class_holdout": {lab: ho[lab] for lab in labels},
                    "min_per_class_train": policy.min_per_class_train,
                    "min_per_class_holdout": policy.min_per_class_holdout,
                    "short_train": short_train,
                    "short_holdout": short_hold,
                },
                message=msg,
            )
        )
    return results
