"""Shared type of the adversarial suite (a module of its own: ``conftest`` is not importable by name
when several test folders are collected together)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers.approval_fixtures import Reviewers

from tunegate.policy.schema import GatePolicy


@dataclass(frozen=True)
class Env:
    """One attack's starting point."""

    wd: Path
    policy: GatePolicy
    reviewers: Reviewers
    tmp: Path

    def key(self, name: str) -> Path:
        return self.reviewers.keys[name]
