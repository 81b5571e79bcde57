"""Approval policy section: reviewers, m-of-n, overrides, retention (owned by tunegate.approval)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApprovalPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
