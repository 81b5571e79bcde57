"""Sign and verify: the happy path, every tamper case of issue 5, and the policy rules."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from helpers.approval_fixtures import Reviewers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunegate.approval.dsse import sign_envelope
from tunegate.approval.keys import key_id, load_private_key
from tunegate.approval.sign import ApprovalRefusedError, sign_run
from tunegate.approval.verify import verify_run
from tunegate.errors import IntegrityError
from tunegate.provenance import canonical_json


def _sign_two(wd: Path, reviewers: Reviewers, policy, run_id: str = "run-a") -> list[Path]:  # type: ignore[no-untyped-def]
    return [
        sign_run(wd, reviewers.keys[n], "approve", policy=policy, run_id=run_id) for n in ("alice", "bob")
    ]


def _flip(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_two_reviewers_approve_and_verify(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    paths = _sign_two(workdir, reviewers, policy)
    env = json.loads(paths[0].read_text())
    assert env["payloadType"] == "application/vnd.in-toto+json"
    stmt = json.loads(base64.b64decode(env["payload"]))
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    names = {s["name"] for s in stmt["subject"]}
    for want in (
        "runs/run-a/adapter/adapter_model.safetensors",
        "data/holdout.manifest.json",
        "runs/run-a/evidence.json",
        "runs/run-a/decision.json",
        "runs/run-a/report.html",
        "runs/run-a/report.pdf",
        "runs/run-a/policy.json",
        "runs/run-a/config.json",
    ):
        assert want in names
    pred = stmt["predicate"]
    assert pred["run_id"] == "run-a" and pred["sequence"] == 1 and pred["reviewer"] == "alice"
    assert pred["checkpoint"]["size"] >= 1 and pred["previous_promoted_approval"] is None
    res = verify_run(workdir, policy=policy, run_id="run-a")
    assert res.approved, res.reasons
    assert {a.reviewer for a in res.approvals} == {"alice", "bob"}


COVERED = [
    "runs/run-a/adapter/adapter_model.safetensors",
    "runs/run-a/adapter/adapter_config.json",
    "data/holdout.manifest.json",
    "data/data_report.json",
    "runs/run-a/evidence.json",
    "runs/run-a/decision.json",
    "runs/run-a/report.html",
    "runs/run-a/report.pdf",
    "runs/run-a/report_evidence.json",
    "runs/run-a/policy.json",
    "runs/run-a/run.json",
    "runs/run-a/config.json",
    "runs/run-a/confusion_matrix.png",
]


@pytest.mark.parametrize("rel", COVERED)
def test_flipped_byte_in_covered_file_is_named(workdir: Path, reviewers: Reviewers, policy, rel: str) -> None:  # type: ignore[no-untyped-def]
    _sign_two(workdir, reviewers, policy)
    _flip(workdir / rel)
    with pytest.raises(IntegrityError, match=f"covered file {rel} changed after signing"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_added_file_in_adapter_dir(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    _sign_two(workdir, reviewers, policy)
    (workdir / "runs/run-a/adapter/extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"added after signing: runs/run-a/adapter/extra.bin"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_removed_file(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    _sign_two(workdir, reviewers, policy)
    (workdir / "runs/run-a/adapter/README.md").unlink()
    with pytest.raises(IntegrityError, match=r"runs/run-a/adapter/README.md was removed after signing"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_cross_wired_runs(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    a = _sign_two(workdir, reviewers, policy)
    dst = workdir / "runs/run-b/approvals"
    dst.mkdir()
    shutil.copy(a[0], dst / a[0].name)
    with pytest.raises(IntegrityError, match="approval belongs to run 'run-a', not 'run-b'"):
        verify_run(workdir, policy=policy, run_id="run-b")


def test_unknown_key_is_rejected(workdir: Path, reviewers: Reviewers, policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # mallory's .pub sits beside her key, so she can sign, but she is not in the approvers dir
    sign_run(workdir, reviewers.keys["mallory"], "approve", policy=policy, run_id="run-a")
    with pytest.raises(IntegrityError, match=r"unknown key id .*not in the trusted approvers directory"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_unknown_key_with_copied_key_id_fails_signature(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    good = sign_run(workdir, reviewers.keys["alice"], "approve", policy=policy, run_id="run-a")
    env = json.loads(good.read_text())
    stmt = json.loads(base64.b64decode(env["payload"]))
    alice_id = env["signatures"][0]["keyid"]
    mallory = load_private_key(reviewers.keys["mallory"])
    forged = sign_envelope(stmt, mallory, alice_id)  # mallory's signature under alice's key id
    assert forged["signatures"][0]["keyid"] == alice_id != key_id(mallory.public_key())
    os.chmod(good, 0o644)
    good.write_text(canonical_json(forged) + "\n")
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_key_without_reviewer_role(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    sign_run(workdir, reviewers.keys["carol"], "approve", policy=policy, run_id="run-a")
    with pytest.raises(IntegrityError, match=r"\(carol\) is not a reviewer"):
        verify_run(workdir, policy=policy, run_id="run-a")


def _resign(path: Path, key_path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    env = json.loads(path.read_text())
    stmt = json.loads(base64.b64decode(env["payload"]))
    mutate(stmt, env)
    key = load_private_key(key_path)
    new = sign_envelope(stmt, key, key_id(key.public_key()))
    if "payloadType" in env:
        new["payloadType"] = env["payloadType"]
    for k in set(env) - set(new):
        new[k] = env[k]
    os.chmod(path, 0o644)
    path.write_text(canonical_json(new) + "\n")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s, e: e.__setitem__("payloadType", "application/json"), "wrong payload type"),
        (lambda s, e: e.__setitem__("extra", 1), "unexpected envelope fields"),
        (lambda s, e: s["predicate"].__setitem__("extra", 1), r"predicate has unexpected fields \['extra'\]"),
        (lambda s, e: s["predicate"].pop("sequence"), r"misses \['sequence'\]"),
        (lambda s, e: s.__setitem__("predicateType", "https://evil/v1"), "predicateType is"),
        (lambda s, e: s.__setitem__("_type", "https://in-toto.io/Statement/v0.1"), "_type is"),
        (lambda s, e: s["predicate"].__setitem__("decision", "maybe"), "is not approve or reject"),
    ],
)
def test_payload_type_and_fields_are_exact(
    workdir: Path, reviewers: Reviewers, policy, mutate, message
) -> None:  # type: ignore[no-untyped-def]
    p = sign_run(workdir, reviewers.keys["alice"], "approve", policy=policy, run_id="run-a")
    _resign(p, reviewers.keys["alice"], mutate)
    with pytest.raises(IntegrityError, match=message):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_replayed_copy_within_run(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    a = _sign_two(workdir, reviewers, policy)
    shutil.copy(a[0], a[0].with_name("0009-replay.dsse.json"))
    with pytest.raises(IntegrityError, match=r"same sequence number .*replayed"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_m_of_n_and_rejection(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    sign_run(workdir, reviewers.keys["alice"], "approve", policy=policy, run_id="run-a")
    res = verify_run(workdir, policy=policy, run_id="run-a")
    assert not res.approved and "1 distinct reviewer(s) approved, the policy needs 2" in res.reasons
    sign_run(workdir, reviewers.keys["alice"], "approve", policy=policy, run_id="run-a")
    assert not verify_run(workdir, policy=policy, run_id="run-a").approved  # same reviewer twice is one
    sign_run(workdir, reviewers.keys["bob"], "reject", policy=policy, run_id="run-a", comment="too risky")
    res = verify_run(workdir, policy=policy, run_id="run-a")
    assert "bob rejected the run: too risky" in res.reasons


def test_separation_of_duties(workdir: Path, reviewers: Reviewers, policy_factory, adopt_policy) -> None:  # type: ignore[no-untyped-def]
    pol = policy_factory(min_approvals=1)
    adopt_policy(workdir, pol, "run-a")
    sign_run(workdir, reviewers.keys["trainer"], "approve", policy=pol, run_id="run-a")
    res = verify_run(workdir, policy=pol, run_id="run-a")
    assert not res.approved
    assert any("separation of duties: trainer" in r for r in res.reasons)
    sign_run(workdir, reviewers.keys["alice"], "approve", policy=pol, run_id="run-a")
    assert verify_run(workdir, policy=pol, run_id="run-a").approved


def test_failed_gate_cannot_be_approved_by_default(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApprovalRefusedError, match="does not allow approving a failed gate"):
        sign_run(workdir, reviewers.keys["alice"], "approve", policy=policy, run_id="run-b")
    # a rejection of a failed run is always possible
    sign_run(workdir, reviewers.keys["alice"], "reject", policy=policy, run_id="run-b")


def test_override_needs_signed_justification_shown_in_report(
    workdir: Path, reviewers: Reviewers, policy_factory, adopt_policy
) -> None:  # type: ignore[no-untyped-def]
    from tunegate.approval.report import write_report

    pol = policy_factory(allow_override_of_failed_gate=True)
    adopt_policy(workdir, pol, "run-b")
    with pytest.raises(ApprovalRefusedError, match="needs a written justification"):
        sign_run(workdir, reviewers.keys["alice"], "approve", policy=pol, run_id="run-b")
    with pytest.raises(ApprovalRefusedError, match="must be shown in the report"):
        sign_run(
            workdir,
            reviewers.keys["alice"],
            "approve",
            policy=pol,
            run_id="run-b",
            override_justification="business need",
        )
    text = "Regulator deadline; the 0.01 gain is accepted for this release only"
    write_report(workdir, policy=pol, run_id="run-b", override_justification=text)
    assert text in (workdir / "runs/run-b/report.html").read_text()
    with pytest.raises(ApprovalRefusedError, match="differs from the justification shown"):
        sign_run(
            workdir,
            reviewers.keys["alice"],
            "approve",
            policy=pol,
            run_id="run-b",
            override_justification="something else",
        )
    for n in ("alice", "bob"):
        p = sign_run(workdir, reviewers.keys[n], "approve", policy=pol, run_id="run-b")
    stmt = json.loads(base64.b64decode(json.loads(p.read_text())["payload"]))
    assert stmt["predicate"]["override_justification"] == text
    res = verify_run(workdir, policy=pol, run_id="run-b")
    assert res.approved, res.reasons
    assert not res.gate_passed


def test_never_sign_with_missing_required_artifacts(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    (workdir / "runs/run-a/evidence.json").unlink()
    with pytest.raises(
        ApprovalRefusedError, match=r"required artifacts are missing: runs/run-a/evidence\.json"
    ):
        sign_run(workdir, reviewers.keys["alice"], "reject", policy=policy, run_id="run-a")


def test_verify_makes_no_network_call(
    workdir: Path, reviewers: Reviewers, policy, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _sign_two(workdir, reviewers, policy)

    def no_socket(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("verification tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    assert verify_run(workdir, policy=policy, run_id="run-a").approved


def test_ledger_truncated_after_approval_is_detected(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    _sign_two(workdir, reviewers, policy)
    lp = workdir / "audit/ledger.jsonl"
    lines = lp.read_text().splitlines(keepends=True)
    lp.write_text("".join(lines[:3]))
    (workdir / "audit/checkpoints.jsonl").write_text("")  # the attacker also drops the workdir checkpoints
    with pytest.raises(IntegrityError, match="truncated"):
        verify_run(workdir, policy=policy, run_id="run-a")


def test_canaries_never_in_ledger_report_or_signatures(workdir: Path, reviewers: Reviewers, policy) -> None:  # type: ignore[no-untyped-def]
    from helpers.approval_fixtures import CANARIES

    from tunegate.approval.annex_iv import write_annex_iv

    write_annex_iv(workdir, policy=policy, run_id="run-a")
    _sign_two(workdir, reviewers, policy)
    raw = (workdir / "data/train.jsonl").read_text()
    assert all(c in raw for c in CANARIES)  # the canaries are really there
    files = [
        workdir / "audit/ledger.jsonl",
        workdir / "audit/checkpoints.jsonl",
        *(workdir / "runs/run-a").glob("report*"),
        *(workdir / "runs/run-a/approvals").glob("*.dsse.json"),
        *(workdir / "runs/run-a").glob("annex_iv*"),
    ]
    for f in files:
        text = f.read_bytes()
        if f.suffix == ".json" and "dsse" in f.name:
            text += base64.b64decode(json.loads(text)["payload"])
        for c in CANARIES:
            assert c.encode() not in text, f"canary leaked into {f}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_envelope_byte_fails_verification(  # type: ignore[no-untyped-def]
    workdir: Path, reviewers: Reviewers, policy, data: st.DataObject
) -> None:
    found = sorted((workdir / "runs/run-a/approvals").glob("*.dsse.json"))
    if found:
        env_path = found[0]
    else:
        env_path = sign_run(workdir, reviewers.keys["alice"], "approve", policy=policy, run_id="run-a")
        os.chmod(env_path, 0o644)
        assert verify_run(workdir, policy=policy, run_id="run-a").approvals
    original = env_path.read_bytes()
    i = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    x = data.draw(st.integers(min_value=1, max_value=255))
    tampered = bytearray(original)
    tampered[i] ^= x
    env_path.write_bytes(bytes(tampered))
    try:
        with pytest.raises(IntegrityError):
            verify_run(workdir, policy=policy, run_id="run-a")
    finally:
        env_path.write_bytes(original)
