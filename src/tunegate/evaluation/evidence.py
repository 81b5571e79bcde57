"""The evidence a gate decision is computed from: ``WORKDIR/runs/<run_id>/evidence.json``.

A plain, validated data model (no torch, no I/O beyond :func:`load_evidence`), so the pure
:func:`tunegate.policy.decide.decide` can take it and golden tests can build it by hand. Every
section is optional: a section that is missing makes the checks that need it *fail closed*
with a reason, rather than pass by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunegate.errors import InputError
from tunegate.provenance import digest_json

EVIDENCE_SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataGateEvidence(_Frozen):
    """What the data gate concluded (from ``data_report.json``)."""

    verdict: Literal["pass", "fail"]
    failed_checks: list[str] = []
    residual_pii: dict[str, int] = Field({}, description="Entity type -> residual count after anonymization.")
    residual_ok: bool | None = None
    regex_only: bool | None = None
    report_sha256: str | None = None


class HoldoutEvidence(_Frozen):
    verified: bool
    manifest_sha256: str | None = None
    n_records: int = 0
    reason: str | None = None


class MetricComparison(_Frozen):
    """One metric on baseline and tuned, with the paired-bootstrap interval of the delta."""

    name: str
    higher_is_better: bool
    baseline: float
    tuned: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int


class ClassDelta(_Frozen):
    """One class's F1 on a baseline and the tuned model, with the paired-bootstrap interval of the delta."""

    support: int
    baseline_f1: float
    tuned_f1: float
    delta: float
    ci_low: float
    ci_high: float


class BaselineEvidence(_Frozen):
    """The tuned model compared with one baseline on the same hold-out items.

    ``name`` is ``base_model`` (the untouched base; for an encoder its head is untrained),
    ``tfidf_logreg`` (scikit-learn TF-IDF + logistic regression trained on the same train split)
    or ``production`` (the model currently promoted under this name in the registry). A baseline
    that could not be scored has ``skipped`` and a reason, and no figures.
    """

    name: str
    description: str = ""
    skipped: bool = False
    reason: str | None = None
    source: dict[str, str] = Field({}, description="Digests / ids that identify this baseline.")
    metrics: dict[str, MetricComparison] = {}
    per_class: dict[str, ClassDelta] = Field({}, description="Label -> F1 delta (classification only).")


class McNemarEvidence(_Frozen):
    b: int
    c: int
    statistic: float
    p_value: float
    method: str


class RegressionTaskEvidence(_Frozen):
    """One lm-eval task on base and tuned, compared per item."""

    task: str
    skipped: bool = False
    reason: str | None = None
    metric: str | None = None
    higher_is_better: bool = True
    version: str | None = None
    baseline: float | None = None
    tuned: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    n: int = 0
    n_available: int | None = None
    limit: int | None = None
    n_overlong: int = Field(0, description="Items over the model's context, handled by `overlong_rule`.")
    overlong_rule: str | None = Field(
        None, description="skip or truncate_context (evaluation.regression_overlong)."
    )
    overlong_doc_ids: list[int] = Field([], description="doc_ids of the over-long items (first 50).")
    context_length: int | None = None
    task_hash: str | None = None
    data_sha256: dict[str, str] = {}


class IntruderEvidence(_Frozen):
    applicable: bool
    reason: str | None = None
    top_k: int | None = None
    base_top_k: int | None = None
    threshold: float | None = None
    per_layer: dict[str, int] = {}
    total: int = 0
    max_per_layer: int = 0
    layers: int = 0


class HumanEvidence(_Frozen):
    n_items: int
    n_raters: int
    n_ratings: int
    tuned_win_rate: float
    baseline_win_rate: float
    tie_rate: float
    fleiss_kappa: float | None = None
    cohen_kappa_mean: float | None = None
    ratings_sha256: str | None = None


class Evidence(_Frozen):
    """All measurements of one run, with the digests of everything they were computed from."""

    schema_version: int = EVIDENCE_SCHEMA_VERSION
    run_id: str
    task: Literal["classification", "instruction", "chat"]
    method: str | None = None
    model_kind: Literal["causal", "seq_cls"] | None = None
    primary_metric: str | None = None
    inputs: dict[str, str] = Field({}, description="Name -> sha256 of each input.")
    data_gate: DataGateEvidence | None = None
    holdout: HoldoutEvidence | None = None
    metrics: dict[str, MetricComparison] = {}
    mcnemar: McNemarEvidence | None = None
    classification: dict[str, Any] | None = Field(None, description="Per-class P/R/F1 and confusion.")
    baselines: list[BaselineEvidence] | None = Field(
        None, description="Every baseline the tuned model was compared with (base model first)."
    )
    regression: list[RegressionTaskEvidence] | None = None
    intruder: IntruderEvidence | None = None
    human: HumanEvidence | None = None
    provenance: dict[str, Any] = {}

    def digest(self) -> str:
        return digest_json(self.model_dump(mode="json"))


def load_evidence(path: str | Path) -> Evidence:
    p = Path(path)
    if not p.is_file():
        raise InputError("evidence file not found", path=p, hint="run `tunegate evaluate WORKDIR` first")
    try:
        return Evidence.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path=p, line=exc.lineno) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise InputError(err["msg"], path=p, field=loc) from None
