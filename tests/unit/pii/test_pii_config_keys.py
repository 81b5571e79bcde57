"""PIIPolicy validation, the shipped policy section, and key loading."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from tunegate.errors import DependencyError
from tunegate.pii.config import STRUCTURED_ENTITIES, PIIPolicy
from tunegate.pii.keys import create_pii_key_file, key_fingerprint, load_pii_key
from tunegate.policy.schema import load_policy


def test_shipped_policy_section_matches_defaults() -> None:
    assert load_policy().pii == PIIPolicy()
    assert PIIPolicy().max_residual == dict.fromkeys(STRUCTURED_ENTITIES, 0)


def test_unknown_entity_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(ValidationError, match="Did you mean 'PERSON'"):
        PIIPolicy(entities=("PERSN",))
    with pytest.raises(ValidationError):
        PIIPolicy(operators={"EMAIL": "mask"})


def test_policy_is_frozen_and_forbids_extra_keys() -> None:
    with pytest.raises(ValidationError):
        PIIPolicy.model_validate({"spacy_modle": "x"})
    p = PIIPolicy(operators={"PERSON": "mask"}, score_thresholds={"PERSON": 0.6})
    assert p.operator_for("PERSON") == "mask" and p.operator_for("EMAIL_ADDRESS") == "pseudonym"
    assert p.threshold_for("PERSON") == 0.6 and p.threshold_for("IBAN_CODE") == p.score_threshold
    with pytest.raises(ValidationError):
        p.spacy_model = "other"  # type: ignore[misc]


def test_key_from_env(monkeypatch: pytest.MonkeyPatch, pii_key: str) -> None:
    assert load_pii_key() == pii_key.encode()


def test_missing_key_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TUNEGATE_PII_KEY", raising=False)
    with pytest.raises(DependencyError, match="TUNEGATE_PII_KEY"):
        load_pii_key()
    with pytest.raises(DependencyError):
        load_pii_key(allow_file=tmp_path / "absent.key")


def test_short_key_rejected_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_PII_KEY", "tiny-secret")
    with pytest.raises(DependencyError) as exc:
        load_pii_key()
    assert "tiny-secret" not in str(exc.value)


def test_key_file_created_private_and_never_overwritten(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TUNEGATE_PII_KEY", raising=False)
    path = create_pii_key_file(tmp_path / "pii.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = load_pii_key(allow_file=path)
    assert len(key) == 64
    with pytest.raises(FileExistsError):
        create_pii_key_file(path)
    assert key_fingerprint(key) == key_fingerprint(key) != key_fingerprint(b"x" * 32)
    assert key.decode() not in key_fingerprint(key)


@pytest.mark.parametrize(
    "weak",
    ["a" * 40, "aaaaaaaaaaaaaaaa", "abababababababababababababababab12", "0123456789" + "0" * 30],
)
def test_low_entropy_key_rejected(monkeypatch: pytest.MonkeyPatch, weak: str) -> None:
    """Issue 10 item 14: one repeated letter (or few distinct characters) is not a key."""
    monkeypatch.setenv("TUNEGATE_PII_KEY", weak)
    with pytest.raises(DependencyError, match=r"too short|too little entropy") as exc:
        load_pii_key()
    assert weak not in str(exc.value)
