"""Approval policy section: reviewers, m-of-n, overrides, retention (owned by tunegate.approval).

Defaults are the strict end of each choice: two distinct reviewers (the demo and CI sign with two
test reviewers), separation of duties on, no approval of a failed gate. Loosen them in the policy
YAML, where the change is itself digested into every signature.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApprovalPolicy(BaseModel):
    """The ``approval:`` section of the gate policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers_dir: str = Field(
        "gates/approvers",
        description="Directory of trusted reviewer public keys (*.pub). A relative path is resolved "
        "against the current directory, then against the tunegate checkout.",
    )
    min_approvals: int = Field(
        2, ge=1, le=100, description="m of m-of-n: distinct trusted reviewers that must approve."
    )
    separation_of_duties: bool = Field(
        True,
        description="The operator who ran training (run.json 'operator', from TUNEGATE_OPERATOR) "
        "cannot be the only approver.",
    )
    allow_override_of_failed_gate: bool = Field(
        False,
        description="May reviewers approve a run whose gate decision failed? Each such approval then "
        "needs a signed written justification, also shown in the report.",
    )
    retention_days: int = Field(
        183, ge=183, description="Ledger entries younger than this are never removed (tunegate never prunes)."
    )
    checkpoint_key: str = Field(
        "audit/checkpoint_key",
        description="Workdir key that signs ledger checkpoints, relative to WORKDIR. It authenticates "
        "the workdir, not a person.",
    )
    reviewer_role: str = Field("reviewer", description="Role a public key must carry to count as a reviewer.")
