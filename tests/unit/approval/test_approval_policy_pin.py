"""Issue 14 §2 and issue 10 items 4 and 9: the pinned policy, the trust root, policy binding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.approval_fixtures import Reviewers, redecide

from tunegate import ledger
from tunegate.approval.report import write_report
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.cli import main
from tunegate.errors import ConfigError, IntegrityError
from tunegate.policy.pinned import pin_policy, read_pin, resolve_policy, resolve_trust_root
from tunegate.policy.schema import load_policy


def _cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


def _policy_file(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "policy.yaml"
    p.write_text(body)
    return p


@pytest.fixture()
def pinned_wd(workdir: Path, reviewers: Reviewers, tmp_path: Path) -> tuple[Path, Path]:
    """The fixture workdir, with a policy file whose approvers dir is relative to its own folder."""
    gates = tmp_path / "gates"
    shutil.copytree(reviewers.approvers, gates / "approvers")
    pfile = _policy_file(
        gates, "checks:\n  allow_regression_limit: true\napproval:\n  approvers_dir: approvers\n"
    )
    pol = load_policy(pfile)
    pin_policy(workdir, pol)  # what prepare does
    for rid in ("run-a", "run-b"):
        redecide(workdir, rid, pol)
        write_report(workdir, policy=pol, run_id=rid)
    return workdir, pfile


def test_pin_is_used_when_policy_is_omitted(pinned_wd: tuple[Path, Path]) -> None:
    wd, pfile = pinned_wd
    pinned = read_pin(wd)
    assert pinned is not None and pinned.digest == load_policy(pfile).digest()
    assert resolve_policy(wd).digest() == pinned.digest  # no --policy: the pinned one, not the default
    assert resolve_policy(wd, pfile).digest() == pinned.digest
    assert pinned.record["approvers_dir"] == str((pfile.parent / "approvers").resolve())
    assert [e["stage"] for e in ledger.read_entries(wd)].count("policy_pin") == 1


def test_different_policy_needs_a_ledgered_reason(pinned_wd: tuple[Path, Path], tmp_path: Path) -> None:
    wd, pfile = pinned_wd
    other = _policy_file(
        tmp_path / "other",
        "checks:\n  allow_regression_limit: true\napproval:\n  approvers_dir: /x\n  min_approvals: 1\n",
    )
    old, new = load_policy(pfile).digest(), load_policy(other).digest()
    with pytest.raises(ConfigError) as exc:
        resolve_policy(wd, other)
    assert old in str(exc.value) and new in str(exc.value)
    assert resolve_policy(wd, other, change_reason="loosen m for the pilot").digest() == new
    change = [e for e in ledger.read_entries(wd) if e["stage"] == "policy_change"]
    assert change and change[-1]["details"]["previous_policy_digest"] == old
    assert change[-1]["details"]["reason"] == "loosen m for the pilot"
    assert resolve_policy(wd).digest() == new


def test_cli_decide_refuses_another_policy_naming_both_digests(
    pinned_wd: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wd, pfile = pinned_wd
    other = _policy_file(tmp_path / "other", "checks:\n  min_improvement_lcb: 0.5\n")
    code, out = _cli(capsys, "decide", wd, "--run", "run-a", "--policy", other)
    assert code == 2 and load_policy(pfile).digest() in out and load_policy(other).digest() in out
    assert "Traceback" not in out


@pytest.mark.parametrize("attack", ["edit_snapshot", "remove_pin", "swap_pin"])
def test_pinned_policy_cannot_be_swapped_silently(
    pinned_wd: tuple[Path, Path], tmp_path: Path, attack: str
) -> None:
    wd, _ = pinned_wd
    snap = wd / "policy/policy.json"
    if attack == "edit_snapshot":
        data = json.loads(snap.read_text())
        data["approval"]["min_approvals"] = 1
        snap.write_text(json.dumps(data))
    elif attack == "remove_pin":
        shutil.rmtree(wd / "policy")  # fall back to the shipped default? no: the ledger remembers
    else:  # a consistent snapshot + pin of another policy, written outside tunegate
        other = load_policy(
            _policy_file(
                tmp_path / "o",
                "checks:\n  allow_regression_limit: true\n"
                "approval:\n  approvers_dir: /x\n  min_approvals: 1\n",
            )
        )
        from tunegate.provenance import canonical_json

        snap.write_text(canonical_json(other.model_dump(mode="json")) + "\n")
        rec = json.loads((wd / "policy/pin.json").read_text())
        rec["digest"] = other.digest()
        (wd / "policy/pin.json").write_text(json.dumps(rec))
    with pytest.raises(IntegrityError):
        resolve_policy(wd)


def test_trust_root_never_comes_from_the_cwd(
    pinned_wd: tuple[Path, Path],
    reviewers: Reviewers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 10 item 4: from a folder holding an attacker's gates/approvers and approvers/ keys,
    `verify` must still use the pinned trust root."""
    wd, pfile = pinned_wd
    from tunegate.approval.keys import generate_keypair

    evil = tmp_path / "evil"
    for sub in ("gates/approvers", "approvers"):
        (evil / sub).mkdir(parents=True)
    keys = {}
    for n in ("mallory", "trudy"):
        priv, pub = generate_keypair(n, evil / "keys")
        keys[n] = priv
        for sub in ("gates/approvers", "approvers"):
            shutil.copy(pub, evil / sub / pub.name)
    monkeypatch.chdir(evil)
    pol = resolve_policy(wd)
    for n in ("mallory", "trudy"):
        sign_run(wd, keys[n], "approve", policy=pol, run_id="run-a", approvers_dir=evil / "approvers")
    tr = resolve_trust_root(pol, workdir=wd)
    assert tr.path == (pfile.parent / "approvers").resolve() and tr.source == "pinned at prepare"
    with pytest.raises(IntegrityError, match="unknown key id"):
        verify_run(wd, policy=pol, run_id="run-a")
    code, out = _cli(capsys, "verify", wd, "--run", "run-a")
    assert code == 2 and "unknown key id" in out


def test_verify_prints_and_ledgers_the_trust_root(
    pinned_wd: tuple[Path, Path], reviewers: Reviewers, capsys: pytest.CaptureFixture[str]
) -> None:
    wd, pfile = pinned_wd
    pol = resolve_policy(wd)
    for n in ("alice", "bob"):
        sign_run(wd, reviewers.keys[n], "approve", policy=pol, run_id="run-a")
    res = verify_run(wd, policy=pol, run_id="run-a")
    assert res.approved and res.trust_root["source"] == "pinned at prepare" and res.trust_root["digest"]
    code, out = _cli(capsys, "verify", wd, "--run", "run-a")
    assert code == 0 and f"trust root: {(pfile.parent / 'approvers').resolve()}" in out
    ev = [e for e in ledger.read_entries(wd) if e["stage"] == "verify"][-1]
    assert ev["details"]["trust_root_digest"] == res.trust_root["digest"]


def test_approvals_only_count_under_the_policy_they_signed(
    workdir: Path, reviewers: Reviewers, policy, policy_factory
) -> None:  # type: ignore[no-untyped-def]
    """Issue 10 item 9: signed under m=2, then one approval deleted and verified under m=1."""
    for n in ("alice", "bob"):
        sign_run(workdir, reviewers.keys[n], "approve", policy=policy, run_id="run-a")
    loose = policy_factory(min_approvals=1)
    redecide(workdir, "run-a", loose)  # even a re-decided run: the approvals name the old policy
    with pytest.raises(IntegrityError) as exc:
        verify_run(workdir, policy=loose, run_id="run-a")
    assert policy.digest() in str(exc.value) and loose.digest() in str(exc.value)


def test_relative_approvers_without_a_policy_file_is_an_error(workdir: Path) -> None:
    from tunegate.policy.schema import policy_from_mapping

    pol = policy_from_mapping({"approval": {"approvers_dir": "gates/approvers"}})
    with pytest.raises(ConfigError, match="current directory is never used"):
        resolve_trust_root(pol)
