"""Gate-check thresholds (owned by tunegate.policy checks/decide).

Which checks run and with which thresholds. Every name in ``enabled`` must be a registered
check (validated when the decision is made, with a "Did you mean" message). A check that is
enabled but cannot be evaluated from the evidence fails closed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_CHECKS: tuple[str, ...] = (
    "data_gate_passed",
    "residual_pii_within_bounds",
    "holdout_manifest_verified",
    "min_absolute_metric",
    "min_improvement_lcb",
    "min_per_class_f1",
    "max_per_class_drop",
    "max_regression_drop",
    "regression_limit_disclosed",
    "max_invalid_output_rate",
    "max_intruder_dimensions",
)


class GateChecksPolicy(BaseModel):
    """Thresholds of the gate decision. Fractions are in [0, 1] like the metrics they bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: list[str] = Field(list(DEFAULT_CHECKS), description="Checks that run, by registered name.")
    primary_metric: str | None = Field(
        None, description="Metric the gate reads; null = macro_f1 (classification) or rouge_l (generation)."
    )
    min_absolute: dict[str, float] = Field(
        {}, description="Metric -> minimum value of the tuned model (e.g. {macro_f1: 0.6}); empty = no floor."
    )
    min_improvement_lcb: float = Field(
        0.0, description="The lower bound of the primary metric's delta interval must be strictly above this."
    )
    improvement_baseline: Literal["strongest", "base_model"] = Field(
        "strongest",
        description="Which baseline min_improvement_lcb compares with: the strongest one in the evidence "
        "(base model, TF-IDF + logistic regression, the production model) or the base model only.",
    )
    min_per_class_f1: float | None = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Classification: every label's tuned F1 must be at least this; null = off.",
    )
    max_per_class_drop: float | None = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Classification: no label's F1 may drop by more than this versus the strongest "
        "baseline (read from `per_class_drop_bound` of its paired interval); null = off.",
    )
    per_class_drop_bound: Literal["lower", "point", "upper"] = Field(
        "upper",
        description="Which end of a label's F1-delta interval the drop is read from. 'upper' (default) "
        "fails a label only when even the interval's best end shows the drop: with many labels and "
        "small per-label supports, 'lower' would fail on noise; 'point' reads the estimate alone.",
    )
    regression_causal_only: bool = Field(
        True,
        description="The regression tasks are causal-LM tasks: for a sequence-classification (encoder) "
        "run max_regression_drop reports 'not applicable' (a warning) instead of failing. false = "
        "an encoder run fails the check because its regression was not evaluated.",
    )
    max_regression_drop: float = Field(0.05, ge=0.0, le=1.0, description="Default maximum drop per task.")
    max_regression_drop_per_task: dict[str, float] = Field({}, description="Task -> maximum allowed drop.")
    regression_bound: Literal["lower", "point"] = Field(
        "lower", description="Compare the drop via the interval's lower bound (conservative) or the point."
    )
    allow_regression_limit: bool = Field(
        False, description="Accept lm-eval runs that used `limit` (the report says so either way)."
    )
    max_invalid_output_rate: float = Field(0.05, ge=0.0, le=1.0)
    max_intruder_dimensions: int | None = Field(
        None, ge=0, description="Bound on the total intruder count; null = report only (check passes)."
    )
    max_intruder_per_layer: int | None = Field(None, ge=0, description="Bound on any one layer's count.")
    max_residual_pii: int | None = Field(
        None,
        ge=0,
        description="Total residual PII detections allowed in the data; null = the PII policy's "
        "per-entity limits (pii.max_residual: 0 for structured identifiers) decide alone.",
    )
    max_residual_pii_per_entity: dict[str, int] = Field({}, description="Entity type -> allowed residuals.")

    @field_validator("enabled")
    @classmethod
    def _known_checks(cls, names: list[str]) -> list[str]:
        """Unknown names fail when the policy loads, with "Did you mean ...?" from the registry."""
        from tunegate.policy.checks import CHECKS  # lazy: checks.py imports this module's siblings

        for name in names:
            if name not in CHECKS:
                raise ValueError(CHECKS.unknown_message(name))
        if len(set(names)) != len(names):
            raise ValueError("a check is listed twice")
        return names
