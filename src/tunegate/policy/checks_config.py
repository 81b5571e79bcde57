"""Gate-check thresholds (owned by tunegate.policy checks/decide)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GateChecksPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
