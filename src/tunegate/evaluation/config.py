"""Evaluation policy section (owned by tunegate.evaluation)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EvaluationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
