"""Data-gate policy section (``data:`` in the gate policy): split, sizes, format, duplicates, agreement.

Every field has a default taken from practice, so an empty ``data: {}`` is a usable policy:

* a frozen hold-out of 15 % (10-20 % is the usual range), a validation split of 10 % of train;
* fewer than 200 pairs blocks; 300-800 pairs is the recommended range for a narrow task and
  1,000+ for a broad behaviour change (outside the range is a warning, not a block);
* near-duplicates are pairs whose shingle Jaccard similarity is at least 0.85;
* a second annotator's labels must agree with Cohen's kappa >= 0.6 when they exist.

This module imports nothing heavy: :mod:`tunegate.policy.schema` composes it into every policy load.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class LengthBounds(BaseModel):
    """Inclusive character bounds for one text field (``None`` = unbounded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_chars: int = Field(1, ge=0, description="Fewest characters allowed (1 = must be non-empty).")
    max_chars: int | None = Field(None, ge=1, description="Most characters allowed; null = no upper bound.")

    @model_validator(mode="after")
    def _ordered(self) -> LengthBounds:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")
        return self


#: Field -> default bounds. ``message`` bounds apply to every chat turn's content.
DEFAULT_LENGTHS: dict[str, LengthBounds] = {
    "text": LengthBounds(min_chars=1, max_chars=8000),
    "instruction": LengthBounds(min_chars=1, max_chars=8000),
    "input": LengthBounds(min_chars=0, max_chars=16000),
    "output": LengthBounds(min_chars=1, max_chars=16000),
    "message": LengthBounds(min_chars=1, max_chars=16000),
}
LENGTH_FIELDS = tuple(DEFAULT_LENGTHS)


class DataPolicy(BaseModel):
    """Thresholds and switches of the data gate. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- split ---------------------------------------------------------------------------
    holdout_fraction: float = Field(
        0.15, ge=0.10, le=0.20, description="Share of records frozen as the hold-out (10-20 %)."
    )
    validation_fraction: float = Field(
        0.10, ge=0.0, le=0.5, description="Share of *train* carved out for early stopping (0 = none)."
    )
    seed: int = Field(1234, ge=0, description="Seed of the split permutation and of the MinHash functions.")
    stratify: bool = Field(
        True, description="Stratify the split by label (classification) or by stratify_key (others)."
    )
    stratify_key: str | None = Field(
        None, description="For instruction/chat: a key of Record.extra to stratify by (null = unstratified)."
    )
    group_near_duplicates: bool = Field(
        True,
        description="Keep near-duplicate clusters on one side of the split, so the hold-out is not "
        "leaked through paraphrases. Exact duplicates and Record.group are always kept together.",
    )

    # -- sizes ---------------------------------------------------------------------------
    min_pairs: int = Field(200, ge=1, description="Fewer pairs than this (train + hold-out) blocks.")
    scope: Literal["narrow", "broad"] = Field(
        "narrow", description="Which recommended range applies: a narrow task or a broad behaviour change."
    )
    recommended_narrow: tuple[int, int] = Field(
        (300, 800), description="Recommended pair count [low, high] for a narrow task (warning outside)."
    )
    recommended_broad_min: int = Field(
        1000, ge=1, description="Recommended minimum pair count for a broad behaviour change."
    )
    min_per_class_train: int = Field(10, ge=0, description="Classification: fewest train records per label.")
    min_per_class_holdout: int = Field(
        3, ge=0, description="Classification: fewest hold-out records per label."
    )

    # -- format (Great Expectations) ----------------------------------------------------
    label_set: list[str] | None = Field(
        None, description="Allowed labels (classification); null = labels are not restricted."
    )
    lengths: dict[str, LengthBounds] = Field(
        default_factory=lambda: dict(DEFAULT_LENGTHS),
        description="Per-field character bounds: text, instruction, input, output, message (chat turn). "
        "Fields left out keep their defaults.",
    )
    output_template: str | None = Field(
        None, description="Regex the whole output/answer must match (instruction and chat); null = any."
    )
    output_json_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the output must parse and conform to; null = not checked."
    )
    max_chat_turns: int = Field(64, ge=2, description="Chat: most messages in one conversation.")

    # -- duplicates ----------------------------------------------------------------------
    near_duplicate_threshold: float = Field(
        0.85,
        gt=0.0,
        le=1.0,
        description="Shingle Jaccard similarity at or above which two records are near-duplicates.",
    )
    shingle: Literal["char", "word"] = Field(
        "char", description="Shingle unit for near-duplicates: char n-grams suit short texts."
    )
    shingle_size: int = Field(5, ge=1, le=32, description="Shingle length (characters or words).")
    num_perm: int = Field(128, ge=32, le=1024, description="MinHash permutations (more = fewer LSH misses).")
    max_duplicate_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="Largest share of exact duplicates within a split before it fails."
    )
    drop_exact_duplicates: bool = Field(
        True, description="Drop exact duplicates within a split, keeping the smallest id (they are reported)."
    )

    # -- labels and closed fields (values of a closed set, not free text) -----------------
    max_labels: int = Field(
        1000,
        ge=2,
        description="Classification: more distinct labels than this looks like free text and fails the gate.",
    )
    max_label_chars: int = Field(
        64, ge=1, description="Longest label (and closed-field value) in characters; longer fails the gate."
    )
    max_label_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Classification with at least 50 records: more distinct labels per record than this "
        "looks like a text column mapped as the label and fails the gate.",
    )
    closed_fields: list[str] = Field(
        default_factory=list,
        description="Field paths whose values must be codes, not free text (e.g. group, extra.customer_id): "
        "a value longer than max_label_chars, with whitespace, or with PII fails the gate.",
    )

    # -- label agreement ----------------------------------------------------------------
    min_kappa: float = Field(0.6, ge=-1.0, le=1.0, description="Lowest Cohen's kappa between annotators.")
    require_second_annotator: bool = Field(
        False, description="Fail when no record has a second annotator's label (Record.label_2)."
    )
    min_agreement_pairs: int = Field(
        20, ge=1, description="Fewer double-annotated records than this makes kappa a warning only."
    )

    @field_validator("lengths")
    @classmethod
    def _known_length_fields(cls, value: dict[str, LengthBounds]) -> dict[str, LengthBounds]:
        unknown = sorted(set(value) - set(LENGTH_FIELDS))
        if unknown:
            raise ValueError(f"unknown length field(s) {unknown}; known: {list(LENGTH_FIELDS)}")
        return {**DEFAULT_LENGTHS, **value}

    @field_validator("output_template")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"output_template is not a valid regex: {exc}") from None
        return value

    @field_validator("output_json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            import jsonschema  # local: keep policy loading light

            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"output_json_schema is not a valid JSON Schema: {exc.message}") from None
        return value

    @field_validator("label_set")
    @classmethod
    def _labels_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("label_set must list at least one label (or be null)")
            if len(set(value)) != len(value):
                raise ValueError("label_set has repeated labels")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> DataPolicy:
        lo, hi = self.recommended_narrow
        if not 0 < lo <= hi:
            raise ValueError(f"recommended_narrow must be [low, high] with 0 < low <= high, got {[lo, hi]}")
        return self

    def bounds(self, field: str) -> LengthBounds:
        """The character bounds of ``field`` (defaults filled in)."""
        return self.lengths.get(field, DEFAULT_LENGTHS[field])
