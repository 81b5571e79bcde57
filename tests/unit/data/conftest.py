"""Fixtures for the data-gate tests: one GX context per session, a default policy."""

from __future__ import annotations

from typing import Any

import pytest

from tunegate.data.config import DataPolicy


@pytest.fixture(scope="session")
def gx_ready() -> Any:
    """Build the process's ephemeral GX context once (seconds) for every GX test."""
    from tunegate.data.validate import gx_runner

    return gx_runner()


@pytest.fixture()
def policy() -> DataPolicy:
    return DataPolicy()
