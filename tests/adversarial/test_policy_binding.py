"""Promise: the policy that decides, that reviewers sign under and that verification applies is
one policy, pinned in the workdir (issue 10 item 9, issue 14 §2).

Attacks: verify or promote under a looser policy than the one signed; delete the pinned policy
so commands fall back to the shipped default; edit the pinned snapshot; pass another --policy
without a reason; swap in a self-consistent pin.
"""

from __future__ import annotations

import json
import shutil

import pytest
from adv_support import Env

from tunegate.approval.promote import promote
from tunegate.approval.verify import verify_run
from tunegate.cli import main
from tunegate.errors import ConfigError, IntegrityError
from tunegate.policy.pinned import pin_policy, resolve_policy


def test_looser_policy_at_verify_and_promote_is_refused(signed: Env) -> None:
    from helpers.approval_fixtures import make_policy

    loose = make_policy(signed.reviewers.approvers, min_approvals=1)
    (next((signed.wd / "runs/run-a/approvals").glob("*.dsse.json"))).unlink()
    for fn in (
        lambda: verify_run(signed.wd, policy=loose, run_id="run-a"),
        lambda: promote(signed.wd, signed.tmp / "reg", policy=loose, run_id="run-a"),
    ):
        with pytest.raises(IntegrityError) as exc:
            fn()
        msg = str(exc.value)
        assert "is missing" in msg or (signed.policy.digest() in msg and loose.digest() in msg), msg


def test_policy_mismatch_names_both_digests(signed: Env) -> None:
    from helpers.approval_fixtures import make_policy, redecide

    loose = make_policy(signed.reviewers.approvers, min_approvals=1)
    redecide(signed.wd, "run-a", loose)
    with pytest.raises(IntegrityError) as exc:
        verify_run(signed.wd, policy=loose, run_id="run-a")
    assert signed.policy.digest() in str(exc.value) and loose.digest() in str(exc.value)


def test_removed_pin_does_not_fall_back_to_default(env: Env) -> None:
    pin_policy(env.wd, env.policy)
    shutil.rmtree(env.wd / "policy")
    with pytest.raises(IntegrityError, match="pinned policy files were removed"):
        resolve_policy(env.wd)


def test_edited_pin_snapshot_is_refused(env: Env) -> None:
    pin_policy(env.wd, env.policy)
    snap = env.wd / "policy/policy.json"
    data = json.loads(snap.read_text())
    data["approval"]["min_approvals"] = 1
    snap.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="edited after pinning"):
        resolve_policy(env.wd)


def test_other_policy_without_reason_exits_2(env: Env, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    pin_policy(env.wd, env.policy)
    other = tmp_path / "other.yaml"
    other.write_text(
        "checks:\n  allow_regression_limit: true\n"
        f"approval:\n  approvers_dir: {env.reviewers.approvers}\n  min_approvals: 1\n"
    )
    for cmd in (["verify"], ["report"], ["decide"], ["audit", "verify"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, str(env.wd), "--policy", str(other)])
        out = capsys.readouterr()
        text = out.out + out.err
        assert exc.value.code == 2 and env.policy.digest() in text and "--policy-change-reason" in text, text
    with pytest.raises(ConfigError, match="differs from the policy pinned"):
        resolve_policy(env.wd, other)


def test_ledgered_change_is_the_only_way(env: Env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tunegate import ledger

    pin_policy(env.wd, env.policy)
    other = tmp_path / "other.yaml"
    other.write_text(
        "checks:\n  allow_regression_limit: true\n"
        f"approval:\n  approvers_dir: {env.reviewers.approvers}\n  min_approvals: 1\n"
    )
    new = resolve_policy(env.wd, other, change_reason="pilot with one reviewer")
    ev = [e for e in ledger.read_entries(env.wd) if e["stage"] == "policy_change"]
    assert ev[-1]["details"]["previous_policy_digest"] == env.policy.digest()
    assert ev[-1]["config_digest"] == new.digest() == resolve_policy(env.wd).digest()
    # the old decision is not valid under the new policy: nothing downstream silently carries over
    with pytest.raises(IntegrityError, match="re-run `tunegate decide"):
        verify_run(env.wd, policy=new, run_id="run-a")
