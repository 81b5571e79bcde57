"""Promise: approvals count only when signed by keys from an explicit, recorded trust root
(issue 10 item 4). Never the process's current directory.

Attacks: run `verify` / `promote` from a folder holding an attacker's gates/approvers/ and
approvers/; a policy whose approvers_dir is relative; a symlinked .pub in the trust root; a
key whose .pub sits beside it but not in the trust root.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from adv_support import Env

from tunegate.approval.keys import generate_keypair
from tunegate.approval.promote import promote
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.cli import main
from tunegate.errors import ConfigError, IntegrityError
from tunegate.policy.pinned import approvers_digest, pin_policy, resolve_trust_root
from tunegate.policy.schema import load_policy


def _attacker_cwd(root: Path) -> dict[str, Path]:
    keys = {}
    for sub in ("gates/approvers", "approvers"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n in ("mallory", "trudy"):
        priv, pub = generate_keypair(n, root / "keys")
        keys[n] = priv
        for sub in ("gates/approvers", "approvers"):
            shutil.copy(pub, root / sub / pub.name)
    return keys


def test_cwd_keys_are_never_trusted_by_a_relative_policy(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped layout: a policy file with a relative approvers_dir, used from an evil cwd."""
    gates = tmp_path / "gates"
    shutil.copytree(env.reviewers.approvers, gates / "approvers")
    pfile = gates / "policy.yaml"
    pfile.write_text("checks:\n  allow_regression_limit: true\napproval:\n  approvers_dir: approvers\n")
    pol = load_policy(pfile)
    keys = _attacker_cwd(tmp_path / "evil")
    monkeypatch.chdir(tmp_path / "evil")
    assert resolve_trust_root(pol).path == (gates / "approvers").resolve()
    from helpers.approval_fixtures import redecide

    from tunegate.approval.report import write_report

    redecide(env.wd, "run-a", pol)
    write_report(env.wd, policy=pol, run_id="run-a")
    for n in ("mallory", "trudy"):
        sign_run(env.wd, keys[n], "approve", policy=pol, run_id="run-a", approvers_dir="approvers")
    with pytest.raises(IntegrityError, match="unknown key id"):
        verify_run(env.wd, policy=pol, run_id="run-a")
    with pytest.raises(IntegrityError, match="unknown key id"):
        promote(env.wd, tmp_path / "reg", policy=pol, run_id="run-a")


def test_cli_from_evil_cwd_uses_pinned_root(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pin_policy(env.wd, env.policy)  # what prepare does
    keys = _attacker_cwd(tmp_path / "evil")
    for n in ("mallory", "trudy"):
        sign_run(
            env.wd,
            keys[n],
            "approve",
            policy=env.policy,
            run_id="run-a",
            approvers_dir=tmp_path / "evil/approvers",
        )
    monkeypatch.chdir(tmp_path / "evil")
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(env.wd), "--run", "run-a"])
    out = capsys.readouterr()
    assert exc.value.code == 2 and "unknown key id" in out.out + out.err


def test_relative_root_without_policy_file_is_refused(env: Env) -> None:
    from tunegate.policy.schema import policy_from_mapping

    pol = policy_from_mapping({"approval": {"approvers_dir": "approvers"}})
    with pytest.raises(ConfigError, match="never used"):
        verify_run(env.wd, policy=pol, run_id="run-a")


def test_symlinked_pub_in_trust_root_is_refused(signed: Env, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(signed.reviewers.approvers, root)
    (root / "alice.pub").unlink()
    os.symlink(signed.reviewers.approvers / "alice.pub", root / "alice.pub")
    with pytest.raises(IntegrityError, match=r"alice.pub: a trusted key must be a regular file"):
        verify_run(signed.wd, policy=signed.policy, run_id="run-a", approvers_dir=root)


def test_trust_root_and_digest_are_recorded(signed: Env) -> None:
    res = verify_run(signed.wd, policy=signed.policy, run_id="run-a")
    assert res.trust_root["digest"] == approvers_digest(signed.reviewers.approvers)
    e = promote(signed.wd, signed.tmp / "reg", policy=signed.policy, run_id="run-a")
    assert e.manifest["trust_root"]["digest"] == res.trust_root["digest"]
    from tunegate import ledger

    ev = [x for x in ledger.read_entries(signed.wd) if x["stage"] == "promote"][-1]
    assert ev["details"]["trust_root"]["digest"] == res.trust_root["digest"]
    sign_ev = [x for x in ledger.read_entries(signed.wd) if x["stage"] == "sign"][-1]
    assert sign_ev["details"]["trust_root_digest"] == res.trust_root["digest"]


def test_key_beside_its_pub_is_not_trusted(partial: Env) -> None:
    """mallory can sign (her .pub is beside her key) but never counts."""
    sign_run(partial.wd, partial.key("mallory"), "approve", policy=partial.policy, run_id="run-a")
    with pytest.raises(IntegrityError, match="not in the trusted approvers directory"):
        verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert json.loads((partial.reviewers.approvers / "alice.pub").read_text())["name"] == "alice"
