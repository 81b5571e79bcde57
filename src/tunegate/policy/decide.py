"""The gate decision: ``decide(policy, evidence) -> GateDecision``. Pure: no I/O, no clock, no GPU.

Runs every enabled check in the policy's order, collects each result with its figures, and
passes only when no blocking check failed. A check that raises is recorded as a failure with
the reason (fail closed). The same policy and evidence always give the same decision, byte for
byte (see the golden files in ``tests/golden/decisions``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from tunegate.evaluation.evidence import Evidence
from tunegate.policy.checks import CHECKS, GateCheckResult
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import digest_json

DECISION_SCHEMA_VERSION = 1


class GateDecision(BaseModel):
    """The verdict, every check's result, and the digests of the policy and evidence it read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = DECISION_SCHEMA_VERSION
    run_id: str
    verdict: Literal["pass", "fail"]
    checks: list[GateCheckResult]
    reasons: list[str]
    warnings: list[str]
    policy_name: str
    policy_digest: str
    checks_policy_digest: str
    evidence_digest: str

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def digest(self) -> str:
        return digest_json(self.model_dump(mode="json"))


def decide(policy: GatePolicy, evidence: Evidence) -> GateDecision:
    """Apply the policy's checks to the evidence. Unknown check names raise ConfigError."""
    fns = [(name, CHECKS.get(name)) for name in policy.checks.enabled]
    results: list[GateCheckResult] = []
    for name, fn in fns:
        try:
            res = fn(policy, evidence)
        except Exception as exc:  # fail closed: a check that cannot be evaluated blocks the gate
            res = GateCheckResult(
                name=name,
                passed=False,
                message=f"could not be evaluated ({type(exc).__name__}: {exc})",
            )
        results.append(res)
    reasons = [f"{r.name}: {r.message}" for r in results if r.blocking]
    warnings = [
        f"{r.name}: {r.message}"
        for r in results
        if r.severity == "warning" or (not r.passed and not r.blocking)
    ]
    if not results:
        reasons.append("no checks are enabled: the policy must enable at least one (fail closed)")
    return GateDecision(
        run_id=evidence.run_id,
        verdict="fail" if reasons else "pass",
        checks=results,
        reasons=reasons,
        warnings=warnings,
        policy_name=policy.name,
        policy_digest=policy.digest(),
        checks_policy_digest=digest_json(policy.checks.model_dump(mode="json")),
        evidence_digest=evidence.digest(),
    )
