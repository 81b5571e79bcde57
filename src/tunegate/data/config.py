"""Data-gate policy section: sizes, split, validation, agreement (owned by tunegate.data)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DataPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
