"""DataPolicy validation, the shipped data section, and a light import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from tunegate.data.config import DEFAULT_LENGTHS, DataPolicy, LengthBounds


def test_every_field_has_a_description_and_default() -> None:
    for name, f in DataPolicy.model_fields.items():
        assert f.description, name
        assert not f.is_required(), name
    p = DataPolicy()
    assert (p.holdout_fraction, p.validation_fraction, p.min_pairs, p.min_kappa) == (0.15, 0.10, 200, 0.6)
    assert p.near_duplicate_threshold == 0.85 and p.require_second_annotator is False


@pytest.mark.parametrize(
    "bad",
    [
        {"holdout_fraction": 0.3},
        {"holdout_fraction": 0.05},
        {"unknown_key": 1},
        {"output_template": "(unclosed"},
        {"output_json_schema": {"type": "not-a-type"}},
        {"label_set": []},
        {"label_set": ["a", "a"]},
        {"lengths": {"body": {"min_chars": 1}}},
        {"lengths": {"text": {"min_chars": 10, "max_chars": 5}}},
        {"recommended_narrow": [800, 300]},
    ],
)
def test_invalid_values_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        DataPolicy.model_validate(bad)


def test_length_overrides_keep_other_defaults() -> None:
    p = DataPolicy.model_validate({"lengths": {"text": {"max_chars": 100}}})
    assert p.bounds("text") == LengthBounds(min_chars=1, max_chars=100)
    assert p.bounds("output") == DEFAULT_LENGTHS["output"]


def test_shipped_data_section_spells_out_the_defaults(repo_root: Path) -> None:
    doc = yaml.safe_load((repo_root / "gates" / "default.yaml").read_text(encoding="utf-8"))
    assert DataPolicy.model_validate(doc["data"]) == DataPolicy()
    assert set(doc["data"]) == set(DataPolicy.model_fields)


def test_policy_import_stays_light() -> None:
    code = (
        "import sys, tunegate.policy.schema, tunegate.data;"
        "heavy = [m for m in ('pandas', 'great_expectations', 'sklearn', 'datasketch') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
