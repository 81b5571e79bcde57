"""The gate policy: one versioned YAML file (``gates/default.yaml``) validated by :class:`GatePolicy`.

Each section's model lives beside the code that reads it (``tunegate.pii.config`` and so on);
this module composes them, loads YAML with clear errors, and computes the policy digest that
every stage records. Unknown keys are errors (``extra="forbid"``), so a typo never silently
becomes a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunegate import defaults
from tunegate.approval.config import ApprovalPolicy
from tunegate.data.config import DataPolicy
from tunegate.drift.config import DriftPolicy
from tunegate.errors import ConfigError
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.pii.config import PIIPolicy
from tunegate.policy.checks_config import GateChecksPolicy
from tunegate.provenance import digest_json

POLICY_SCHEMA_VERSION = 1
#: The policy shipped with the package; ``gates/default.yaml`` in the repo is the same file.
DEFAULT_POLICY_PATH = defaults.gates_dir() / "default.yaml"  # package data (importlib.resources)


class GatePolicy(BaseModel):
    """A complete, validated gate policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(POLICY_SCHEMA_VERSION, description="Policy schema version.")
    name: str = Field("default", description="A name shown in reports.")
    high_risk: bool = Field(False, description="EU AI Act high-risk system: stricter approval rules.")
    data: DataPolicy = DataPolicy()
    pii: PIIPolicy = PIIPolicy()
    evaluation: EvaluationPolicy = EvaluationPolicy()
    checks: GateChecksPolicy = GateChecksPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    drift: DriftPolicy = DriftPolicy()

    def digest(self) -> str:
        return digest_json(self.model_dump(mode="json"))


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  {loc}: {err['msg']}")
    return f"{path}: the policy is invalid:\n" + "\n".join(lines)


def policy_from_mapping(data: Any, *, source: str = "<policy>") -> GatePolicy:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a policy must be a YAML mapping, got {type(data).__name__}")
    version = data.get("version", POLICY_SCHEMA_VERSION)
    if version != POLICY_SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: policy version {version!r} is not supported (this tunegate reads version "
            f"{POLICY_SCHEMA_VERSION})"
        )
    try:
        return GatePolicy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(Path(source), exc)) from None


def load_policy(path: str | Path | None = None) -> GatePolicy:
    """Load and validate a policy file (default: the shipped ``gates/default.yaml``)."""
    p = Path(path) if path is not None else DEFAULT_POLICY_PATH
    if not p.exists():
        raise ConfigError(f"{p}: policy file not found", hint="pass --policy gates/default.yaml")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}:{where} is not valid YAML") from None
    return policy_from_mapping(data, source=str(p))
