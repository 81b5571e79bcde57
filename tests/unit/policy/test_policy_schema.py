"""Every shipped policy validates; bad policies fail with the path to the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunegate.cli import app
from tunegate.errors import ConfigError
from tunegate.policy.schema import DEFAULT_POLICY_PATH, GatePolicy, load_policy, policy_from_mapping

REPO = Path(__file__).resolve().parents[3]


def test_default_policy_is_the_shipped_file_and_valid() -> None:
    # package data (tests/unit/test_defaults.py keeps gates/ equal to it)
    assert DEFAULT_POLICY_PATH.read_bytes() == (REPO / "gates" / "default.yaml").read_bytes()
    pol = load_policy()
    assert isinstance(pol, GatePolicy)
    assert pol.digest() == load_policy(REPO / "gates" / "default.yaml").digest()
    assert len(pol.digest()) == 64


# *-run.yaml are gate-run configs (tests/unit/test_defaults.py loads them), not policies
@pytest.mark.parametrize(
    "path",
    sorted(p for p in (REPO / "gates").glob("*.yaml") if not p.name.endswith("-run.yaml")),
    ids=lambda p: p.name,
)
def test_every_shipped_policy_validates(path: Path) -> None:
    load_policy(path)


def test_unknown_key_and_bad_version_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.no_such_key"):
        policy_from_mapping({"data": {"no_such_key": 1}})
    with pytest.raises(ConfigError, match="version 99"):
        policy_from_mapping({"version": 99})
    bad = tmp_path / "p.yaml"
    bad.write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy(bad)


def test_validate_policy_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate-policy", str(REPO / "gates" / "default.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "valid policy" in ok.output


def test_digest_changes_with_content() -> None:
    a = policy_from_mapping({})
    b = policy_from_mapping({"name": "other"})
    assert a.digest() != b.digest()
    assert a.digest() == policy_from_mapping({}).digest()
