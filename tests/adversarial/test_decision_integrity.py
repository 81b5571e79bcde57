"""Promise: the decision a reviewer sees, signs and promotes is decide(policy, evidence) (issue 10 item 2).

Attacks on a run that FAILED its gate (run-b): edit decision.json to pass; rewrite it as a
self-consistent decision made under a looser policy; edit evidence.json to make the recomputed
decision pass; replace decision.json by one recomputed from doctored evidence; drop the ledger
event. Each is refused at report, sign, verify and promote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adv_support import Env
from helpers.approval_fixtures import make_policy

from tunegate.approval.decision import verified_decision
from tunegate.approval.promote import promote
from tunegate.approval.report import write_report
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.errors import IntegrityError
from tunegate.evaluation.evidence import Evidence
from tunegate.policy.decide import decide
from tunegate.provenance import atomic_write_json


def _forge_pass(wd: Path) -> None:
    p = wd / "runs/run-b/decision.json"
    d = json.loads(p.read_text())
    d.update(verdict="pass", passed=True, reasons=[])
    for c in d["checks"]:
        c["passed"] = True
    atomic_write_json(p, d)


def _self_consistent_under_looser_policy(wd: Path, reviewers_dir: Path) -> None:
    loose = make_policy(reviewers_dir).model_copy(
        update={"checks": make_policy(reviewers_dir).checks.model_copy(update={"min_improvement_lcb": -1.0})}
    )
    ev = Evidence.model_validate(json.loads((wd / "runs/run-b/evidence.json").read_text()))
    body = decide(loose, ev).model_dump(mode="json")
    body["passed"] = True
    atomic_write_json(wd / "runs/run-b/decision.json", body)


def _doctor_evidence(wd: Path) -> None:
    p = wd / "runs/run-b/evidence.json"
    ev = json.loads(p.read_text())
    ev["metrics"]["macro_f1"].update(tuned=0.9, delta=0.49, ci_low=0.4, ci_high=0.55)
    atomic_write_json(p, ev)


def _doctor_both(wd: Path, policy) -> None:  # type: ignore[no-untyped-def]
    _doctor_evidence(wd)
    ev = Evidence.model_validate(json.loads((wd / "runs/run-b/evidence.json").read_text()))
    d = decide(policy, ev)
    body = d.model_dump(mode="json")
    body["passed"] = d.passed
    atomic_write_json(wd / "runs/run-b/decision.json", body)  # no `decide` ledger event for it


ATTACKS = {
    "edited_to_pass": lambda env: _forge_pass(env.wd),
    "consistent_under_looser_policy": lambda env: _self_consistent_under_looser_policy(
        env.wd, env.reviewers.approvers
    ),
    "evidence_doctored": lambda env: _doctor_evidence(env.wd),
    "both_doctored_no_ledger_event": lambda env: _doctor_both(env.wd, env.policy),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_decision_is_refused_everywhere(make_env, attack: str) -> None:  # type: ignore[no-untyped-def]
    env: Env = make_env("wd")
    ATTACKS[attack](env)
    with pytest.raises(IntegrityError, match=r"decision|cannot be recomputed"):
        verified_decision(env.wd, "run-b", env.policy)
    with pytest.raises(IntegrityError):
        write_report(env.wd, policy=env.policy, run_id="run-b")
    for n in ("alice", "bob"):
        with pytest.raises(IntegrityError):
            sign_run(env.wd, env.key(n), "approve", policy=env.policy, run_id="run-b")
    assert not list((env.wd / "runs/run-b/approvals").glob("*.dsse.json"))


def test_forgery_after_signing_is_refused_at_verify_and_promote(signed: Env) -> None:
    """Approvals of run-a exist; swapping run-a's decision for a different valid-looking one."""
    p = signed.wd / "runs/run-a/decision.json"
    d = json.loads(p.read_text())
    d["warnings"] = ["reviewed"]  # any change, even harmless-looking, is a different decision
    atomic_write_json(p, d)
    with pytest.raises(IntegrityError, match=r"decision.json"):
        verify_run(signed.wd, policy=signed.policy, run_id="run-a")
    with pytest.raises(IntegrityError, match=r"decision.json"):
        promote(signed.wd, signed.tmp / "reg", policy=signed.policy, run_id="run-a")


def test_genuine_decision_is_accepted(env: Env) -> None:
    assert verified_decision(env.wd, "run-a", env.policy).passed
    assert not verified_decision(env.wd, "run-b", env.policy).passed


def test_transplanted_passing_run_is_refused(env: Env) -> None:
    """run-a's passing evidence and decision copied over failed run-b: self-consistent, but the
    ledger's `decide` event for run-b recorded a different decision."""
    import shutil

    for n in ("evidence.json", "decision.json"):
        shutil.copy2(env.wd / "runs/run-a" / n, env.wd / "runs/run-b" / n)
    with pytest.raises(IntegrityError, match="transplanted"):
        verified_decision(env.wd, "run-b", env.policy)
    # even with the run id edited to match, the ledger's `decide` event for run-b disagrees
    for n in ("evidence.json", "decision.json"):
        p = env.wd / "runs/run-b" / n
        p.write_text(p.read_text().replace('"run-a"', '"run-b"'))
    with pytest.raises(IntegrityError, match=r"ledger|weights"):
        verified_decision(env.wd, "run-b", env.policy)
    with pytest.raises(IntegrityError):
        sign_run(env.wd, env.key("alice"), "approve", policy=env.policy, run_id="run-b")


def test_weights_swapped_after_evaluation_are_refused(env: Env) -> None:
    """The evidence names the weights it scored; other weights cannot ride on its decision."""
    w = env.wd / "runs/run-a/adapter/adapter_model.safetensors"
    w.write_bytes(b"\0" * 4096)
    with pytest.raises(IntegrityError, match="weights were replaced after evaluation"):
        verified_decision(env.wd, "run-a", env.policy)
    with pytest.raises(IntegrityError, match="weights were replaced"):
        write_report(env.wd, policy=env.policy, run_id="run-a")
    with pytest.raises(IntegrityError, match="weights were replaced"):
        sign_run(env.wd, env.key("alice"), "approve", policy=env.policy, run_id="run-a")
