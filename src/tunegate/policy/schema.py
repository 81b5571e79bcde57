"""The gate policy: one versioned YAML file (``gates/default.yaml``) validated by :class:`GatePolicy`.

Each section's model lives beside the code that reads it (``tunegate.pii.config`` and so on);
this module composes them, loads YAML with clear errors, and computes the policy digest that
every stage records. Unknown keys are errors (``extra="forbid"``), so a typo never silently
becomes a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from tunegate import defaults
from tunegate.approval.config import ApprovalPolicy
from tunegate.data.config import DataPolicy
from tunegate.drift.config import DriftPolicy
from tunegate.errors import ConfigError
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.pii.config import PIIPolicy
from tunegate.policy.checks_config import GateChecksPolicy
from tunegate.provenance import digest_json
from tunegate.yamlio import read_yaml_mapping, validate_mapping

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
    #: The folder of the YAML file this policy was loaded from (not part of the digest): a relative
    #: ``approval.approvers_dir`` is resolved against it, never against the process's cwd.
    _source_dir: Path | None = PrivateAttr(default=None)

    def digest(self) -> str:
        return digest_json(self.model_dump(mode="json"))

    @property
    def source_dir(self) -> Path | None:
        return self._source_dir


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
    return validate_mapping(GatePolicy, data, source=source, what="policy")


def load_policy(path: str | Path | None = None) -> GatePolicy:
    """Load and validate a policy file (default: the shipped ``gates/default.yaml``)."""
    p = Path(path) if path is not None else DEFAULT_POLICY_PATH
    data = read_yaml_mapping(p, what="policy", hint="pass --policy FILE.yaml (see gates/default.yaml)")
    policy = policy_from_mapping(data, source=str(p))
    policy._source_dir = p.resolve().parent
    return policy
