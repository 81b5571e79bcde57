"""The data gate's mechanics, for real: hold-out freezing and verification, CLI exit codes, the
spaCy model failing closed, and --out from any working directory.

These tests use the default policy with a cheaper PII pass (``helpers.policies``); the PII of a
prepare is tested in ``test_prepare.py``. Separate files let the two test processes share the work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.datagate_helpers import cli_subprocess
from helpers.policies import mechanics_policy, mechanics_policy_file

from tunegate.data.prepare import prepare_data
from tunegate.data.split import verify_holdout
from tunegate.data.splits import read_split
from tunegate.demo_data import generate_tickets
from tunegate.errors import InputError, IntegrityError
from tunegate.ledger import read_entries, verify_ledger
from tunegate.provenance import sha256_file

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "src" / "tunegate" / "assets" / "demo_tickets.jsonl"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Just above the default policy's min_pairs (200): for tests of paths, not of PII."""
    path = tmp_path_factory.mktemp("small") / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in generate_tickets(220, seed=11)), encoding="utf-8")
    return path


def test_rerun_verifies_frozen_holdout_and_refuses_a_changed_one(
    tmp_path: Path, small_data: Path, pii_key: str
) -> None:
    work = tmp_path / "wd"
    policy, fields = mechanics_policy(), {"group": "customer_id"}
    prepare_data(small_data, "classification", work, policy=policy, fields=fields)
    holdout = work / "data" / "holdout.jsonl"
    original = holdout.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    holdout.write_text("".join(lines[1:]), encoding="utf-8")  # a record silently removed
    with pytest.raises(IntegrityError):
        prepare_data(small_data, "classification", work, policy=policy, fields=fields)
    holdout.write_bytes(original)
    # unchanged: a re-run on the same inputs verifies and keeps the same manifest
    manifest = (work / "data" / "holdout.manifest.json").read_bytes()
    prepare_data(small_data, "classification", work, policy=policy, fields=fields)
    assert (work / "data" / "holdout.manifest.json").read_bytes() == manifest
    assert verify_ledger(work).ok


def test_cli_exit_codes(tmp_path: Path) -> None:
    key = {"TUNEGATE_PII_KEY": "integration-test-key-0123456789abcdef"}
    # 2: hostile input, named precisely, no traceback, no partial output
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y", "label": "z"}\n')
    r = cli_subprocess(
        "prepare", str(bad), "--task", "classification", "--out", str(tmp_path / "w1"), env=key
    )
    assert r.returncode == 2, r.stderr
    assert "bad.jsonl" in r.stderr and "line 2" in r.stderr and "duplicate key" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w1" / "data").exists()
    # 1: the gate fails (too few pairs), with the reason
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(t) + "\n" for t in generate_tickets(60, seed=3)), encoding="utf-8")
    fast = str(mechanics_policy_file(tmp_path))
    r = cli_subprocess(
        "prepare",
        str(small),
        "--task",
        "classification",
        "--out",
        str(tmp_path / "w2"),
        "--policy",
        fast,
        env=key,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "min_pairs" in r.stdout
    # 2: no PII key -> stops before reading data
    env = {k: v for k, v in os.environ.items() if k != "TUNEGATE_PII_KEY"}
    r = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", "prepare", str(DEMO), "--task", "classification",
         "--out", str(tmp_path / "w3")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2 and "TUNEGATE_PII_KEY" in r.stderr, r.stderr
    assert not (tmp_path / "w3" / "data").exists()


def test_missing_spacy_model_fails_closed(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\npii:\n  spacy_model: en_core_web_lg\n", encoding="utf-8")
    r = cli_subprocess(
        "prepare", str(DEMO), "--task", "classification", "--out", str(tmp_path / "w"),
        "--policy", str(policy),
        env={"TUNEGATE_PII_KEY": "integration-test-key-0123456789abcdef"},
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "en_core_web_lg" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "w" / "data").exists()


def test_frozen_holdout_cannot_be_replaced_silently(tmp_path: Path, small_data: Path, pii_key: str) -> None:
    """The ledger is the source of truth: removing data/ does not unfreeze the hold-out."""
    work = tmp_path / "wd"
    policy = mechanics_policy()
    fields = {"group": "customer_id"}
    more = tmp_path / "more.jsonl"  # other data, same policy: a different hold-out
    extra = "".join(json.dumps(t) + "\n" for t in generate_tickets(30, seed=99))
    more.write_text(small_data.read_text(encoding="utf-8") + extra, encoding="utf-8")
    prepare_data(small_data, "classification", work, policy=policy, fields=fields)
    frozen = sha256_file(work / "data" / "holdout.manifest.json")
    shutil.rmtree(work / "data")
    with pytest.raises(IntegrityError, match="ledger records a frozen hold-out") as err:
        prepare_data(more, "classification", work, policy=policy, fields=fields)
    assert frozen in str(err.value)
    assert not (work / "data").exists() and not list(work.glob(".data*"))  # nothing half-written
    with pytest.raises(InputError, match="--reason"):
        prepare_data(more, "classification", work, policy=policy, fields=fields, refreeze=True)
    prepare_data(
        more, "classification", work, policy=policy, fields=fields, refreeze=True, reason="more data"
    )
    event = read_entries(work)[-1]
    assert event["details"]["refreeze"] == {"reason": "more data", "replaced_manifest": frozen}
    assert event["outputs"]["data/holdout.manifest.json"] != frozen
    assert verify_ledger(work).ok


OUT_CASES = {
    # case: (cwd relative to base, --out as typed, workdir relative to base)
    "relative": (".", "wd", "wd"),
    "absolute": (".", None, "abs"),
    "dot_slash": (".", "./x", "x"),
    "dot_dot": ("sub", "../up", "up"),
    "spaces": (".", "my work dir", "my work dir"),
    "symlinked_cwd": ("link", "via-link", "via-link"),
}


def test_out_works_from_any_cwd(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tunegate prepare DATA --task classification --out wd` from any directory (issue 13)."""
    from tunegate.cli import main

    monkeypatch.setenv("TUNEGATE_PII_KEY", "integration-test-key-0123456789abcdef")
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "link").symlink_to(base, target_is_directory=True)
    fast = str(mechanics_policy_file(tmp_path))
    for case, (cwd, out, expected) in OUT_CASES.items():
        monkeypatch.chdir(base / cwd)
        arg = out if out is not None else str(base / expected)
        with pytest.raises(SystemExit) as exc:
            main(["prepare", str(small_data), "--task", "classification", "--out", arg,
                  "--field", "group=customer_id", "--policy", fast])  # fmt: skip
        captured = capsys.readouterr()
        assert exc.value.code == 0, (case, captured.out, captured.err)
        wd = base / expected
        assert verify_holdout(wd / "data").counts["total"] > 0, case
        assert read_split(wd, "train"), case
        assert not list(wd.glob(".data*")) and not (wd / "data" / wd.name).exists(), case
        assert verify_ledger(wd).ok, case
