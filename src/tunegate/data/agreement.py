"""Label consistency between two annotators (Cohen's kappa).

When records carry a second annotator's label (``Record.label_2``), chance-corrected agreement
tells whether the labels are learnable at all: a model cannot beat annotators who disagree.
Kappa comes from :func:`sklearn.metrics.cohen_kappa_score` over the double-annotated records; the
disagreeing record ids are listed (labels of a closed set are not record text, but only ids and
counts are reported). Below ``policy.min_agreement_pairs`` double-annotated records the estimate
is too noisy to block on, so a low kappa is then only a warning.

Single-annotated data is reported as such; ``policy.require_second_annotator`` decides whether
that fails. Instruction and chat data have no labels: the check passes as not applicable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunegate.data.config import DataPolicy
from tunegate.data.results import CheckResult, id_list, short_ids
from tunegate.records import Record


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two label sequences; 1.0 when both annotators use one identical label
    (sklearn returns NaN there: expected agreement is 1, and perfect agreement is still perfect)."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b) or not a:
        raise ValueError("cohen_kappa needs two non-empty label sequences of equal length")
    if list(a) == list(b):
        return 1.0
    k = float(cohen_kappa_score(list(a), list(b)))
    return k if math.isfinite(k) else 0.0


def check_agreement(records: Sequence[Record], policy: DataPolicy) -> CheckResult:
    """Cohen's kappa between ``label`` and ``label_2`` with the disagreeing ids."""
    labelled = [r for r in records if r.task == "classification"]
    if not labelled:
        return CheckResult(
            name="label_agreement",
            passed=True,
            figures={"applicable": False, "n_records": len(records)},
            message="not applicable: no classification records",
            severity="warning",
        )
    pairs = [r for r in labelled if r.label_2 is not None and r.label is not None]
    if not pairs:
        passed = not policy.require_second_annotator
        return CheckResult(
            name="label_agreement",
            passed=passed,
            figures={
                "applicable": True,
                "single_annotated": True,
                "n_records": len(labelled),
                "n_double_annotated": 0,
                "require_second_annotator": policy.require_second_annotator,
            },
            message="single-annotated data: no second annotator's labels (Record.label_2)"
            + ("; the policy requires them" if not passed else "; the policy allows this"),
            severity="error" if not passed else "warning",
        )
    a = [r.label or "" for r in pairs]
    b = [r.label_2 or "" for r in pairs]
    kappa = cohen_kappa(a, b)
    disagree = [r.id for r in pairs if r.label != r.label_2]
    enough = len(pairs) >= policy.min_agreement_pairs
    passed = kappa >= policy.min_kappa
    msg = (
        f"Cohen's kappa {kappa:.3f} over {len(pairs)} double-annotated record(s) (minimum {policy.min_kappa})"
    )
    if disagree:
        msg += f"; {len(disagree)} disagreement(s): {short_ids(disagree)}"
    if not enough:
        msg += f"; fewer than {policy.min_agreement_pairs} pairs, so only a warning"
    return CheckResult(
        name="label_agreement",
        passed=passed,
        figures={
            "applicable": True,
            "single_annotated": False,
            "kappa": round(kappa, 6),
            "min_kappa": policy.min_kappa,
            "n_records": len(labelled),
            "n_double_annotated": len(pairs),
            "observed_agreement": round(1 - len(disagree) / len(pairs), 6),
            "n_disagreements": len(disagree),
            "disagreeing_ids": id_list(disagree),
        },
        message=msg,
        severity="error" if enough else "warning",
    )
