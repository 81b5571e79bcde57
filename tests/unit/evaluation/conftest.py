"""Small real models for the evaluation tests (stories260k when present, tiny random ones otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def stories(stories260k: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(stories260k).eval()
    tok = AutoTokenizer.from_pretrained(stories260k)
    return model, tok
