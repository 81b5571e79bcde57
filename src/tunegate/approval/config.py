"""Approval policy section: reviewers, m-of-n, overrides, retention (owned by tunegate.approval).

Defaults are the strict end of each choice: two distinct reviewers (the demo and CI sign with two
test reviewers), separation of duties on, no approval of a failed gate. Loosen them in the policy
YAML, where the change is itself digested into every signature.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ApprovalPolicy(BaseModel):
    """The ``approval:`` section of the gate policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers_dir: str = Field(
        "approvers",
        description="Directory of trusted reviewer public keys (*.pub). A relative path is resolved "
        "against the folder of the policy file itself (never the current directory); `prepare` pins "
        "the resolved absolute path and the digest of its *.pub set in the workdir.",
    )
    min_approvals: int = Field(
        2, ge=1, le=100, description="m of m-of-n: distinct trusted reviewers that must approve."
    )
    separation_of_duties: bool = Field(
        True,
        description="The operator who ran training (run.json 'operator', from TUNEGATE_OPERATOR) "
        "never counts toward min_approvals (names compared case- and Unicode-normalized).",
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
        description="Workdir key that signs ledger checkpoints, relative to WORKDIR (a relative path "
        "that stays inside the workdir). It authenticates the workdir, not a person.",
    )
    reviewer_role: str = Field("reviewer", description="Role a public key must carry to count as a reviewer.")

    @field_validator("checkpoint_key")
    @classmethod
    def _checkpoint_key_inside_workdir(cls, v: str) -> str:
        from pathlib import PurePosixPath, PureWindowsPath

        parts = PurePosixPath(v).parts
        if (
            not v
            or PurePosixPath(v).is_absolute()
            or PureWindowsPath(v).is_absolute()
            or "\\" in v
            or any(p in ("..", ".") for p in parts)
            or not parts
        ):
            raise ValueError(
                f"must be a relative path inside the workdir (no '..', no absolute path). Got {v!r} instead."
            )
        return v
