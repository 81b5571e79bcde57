"""Shared fixtures for the PII tests: one analyzer for the whole session (model load is the cost)."""

from __future__ import annotations

from typing import Any

import pytest

from tunegate.pii.config import PIIPolicy

TEST_KEY = b"tunegate-unit-test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def pii_policy() -> PIIPolicy:
    return PIIPolicy()


@pytest.fixture(scope="session")
def pii_analyzer(pii_policy: PIIPolicy) -> Any:
    from tunegate.pii.detect import build_analyzer

    return build_analyzer(pii_policy)


@pytest.fixture()
def engine(pii_policy: PIIPolicy, pii_analyzer: Any) -> Any:
    from tunegate.pii.anonymize import PIIEngine

    return PIIEngine(pii_policy, key=TEST_KEY, analyzer=pii_analyzer)
