"""PII policy section (owned by the PII module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PIIPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
