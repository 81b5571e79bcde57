"""Promise: the approvals counted are exactly the ones reviewers signed, each counted once, and
not the operator's own (issue 10 items 3 and 14).

Attacks: delete a signed rejection; delete one of two approvals; plant an unledgered envelope
(signed outside tunegate with a trusted key); replace an envelope by another valid one; backdate
or future-date an approval; sign twice under differently cased names; the operator approves
their own run; out-of-order ledger times.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest
from adv_support import Env

from tunegate import ledger
from tunegate.approval.audit import audit_workdir
from tunegate.approval.dsse import sign_envelope
from tunegate.approval.keys import generate_keypair, key_id, load_private_key
from tunegate.approval.promote import promote
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.errors import IntegrityError
from tunegate.provenance import canonical_json


def _envelopes(env: Env) -> list:  # type: ignore[type-arg]
    return sorted((env.wd / "runs/run-a/approvals").glob("*.dsse.json"))


def _all_refuse(env: Env, match: str) -> None:
    with pytest.raises(IntegrityError, match=match):
        verify_run(env.wd, policy=env.policy, run_id="run-a")
    with pytest.raises(IntegrityError, match=match):
        promote(env.wd, env.tmp / "registry", policy=env.policy, run_id="run-a")
    rep = audit_workdir(env.wd, policy=env.policy)
    assert not rep.ok and any(__import__("re").search(match, p) for p in rep.problems), rep.problems


def test_deleted_rejection_is_detected(signed: Env) -> None:
    sign_run(signed.wd, signed.key("trainer"), "reject", policy=signed.policy, run_id="run-a", comment="no")
    assert not verify_run(signed.wd, policy=signed.policy, run_id="run-a").approved
    _envelopes(signed)[-1].unlink()  # the rejection vanishes: alice + bob would pass again
    _all_refuse(signed, "is missing: a signed approval or rejection was deleted")


def test_deleted_approval_is_detected(signed: Env) -> None:
    _envelopes(signed)[0].unlink()
    _all_refuse(signed, "is missing")


def _resign_copy(env: Env, src, name: str, **pred):  # type: ignore[no-untyped-def]
    """An envelope made outside tunegate with alice's real key: valid signature, no ledger event."""
    stmt = json.loads(base64.b64decode(json.loads(src.read_text())["payload"]))
    stmt["predicate"].update(pred)
    key = load_private_key(env.key("alice"))
    out = src.with_name(name)
    out.write_text(canonical_json(sign_envelope(stmt, key, key_id(key.public_key()))) + "\n")
    return out


def test_planted_unledgered_envelope_is_detected(partial: Env) -> None:
    src = _envelopes(partial)[0]
    _resign_copy(partial, src, "0007-planted.dsse.json", sequence=7)
    _all_refuse(partial, "not recorded by any `sign` event")


def test_replaced_envelope_is_detected(signed: Env) -> None:
    src = _envelopes(signed)[0]
    os.chmod(src, 0o644)
    _resign_copy(signed, src, src.name, comment="edited after the fact")
    _all_refuse(signed, "differs from the envelope ledgered")


def test_future_dated_approval_is_refused(partial: Env) -> None:
    src = _envelopes(partial)[0]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
    os.chmod(src, 0o644)
    _resign_copy(partial, src, src.name, time=future)
    with pytest.raises(IntegrityError, match="in the future"):
        verify_run(partial.wd, policy=partial.policy, run_id="run-a")


def test_reviewer_names_are_compared_normalized(partial: Env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Keys under the names 'ALICE' and 'ＡＬＩＣＥ' are the same reviewer as 'alice': one of two."""
    added = []
    try:
        for label, name in (("upper", "ALICE"), ("fullwidth", "ＡＬＩＣＥ")):
            priv, pub = generate_keypair("x", tmp_path / label)
            doc = json.loads(pub.read_text())
            doc["name"] = name
            pub.write_text(json.dumps(doc))
            added.append(partial.reviewers.approvers / f"{label}.pub")
            added[-1].write_text(json.dumps(doc))
            sign_run(partial.wd, priv, "approve", policy=partial.policy, run_id="run-a")
        res = verify_run(partial.wd, policy=partial.policy, run_id="run-a")
        assert len(res.approvals) == 3 and not res.approved
        assert "1 distinct reviewer(s) approved, the policy needs 2" in res.reasons
    finally:
        for p in added:
            p.unlink()


def test_operator_signature_never_counts(partial: Env) -> None:
    """m = 2, the operator ('trainer', also a reviewer) + alice: one short, whatever the order."""
    sign_run(partial.wd, partial.key("trainer"), "approve", policy=partial.policy, run_id="run-a")
    res = verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert not res.approved
    assert any("operator's own approval does not count" in r for r in res.reasons), res.reasons
    sign_run(partial.wd, partial.key("bob"), "approve", policy=partial.policy, run_id="run-a")
    assert verify_run(partial.wd, policy=partial.policy, run_id="run-a").approved


def test_out_of_order_ledger_time_fails_audit(env: Env) -> None:
    entries = ledger.read_entries(env.wd)
    assert audit_workdir(env.wd, policy=env.policy).ok
    ledger.append_event(env.wd, "manual", time="2001-01-01T00:00:00Z")  # a backdated entry
    rep = audit_workdir(env.wd, policy=env.policy)
    assert not rep.ok and any("out of order" in p for p in rep.problems), rep.problems
    assert len(entries) + 1 == len(ledger.read_entries(env.wd))


def test_future_ledger_time_fails_audit(env: Env) -> None:
    ledger.append_event(env.wd, "manual", time="2999-01-01T00:00:00Z")
    rep = audit_workdir(env.wd, policy=env.policy)
    assert not rep.ok and any("in the future" in p for p in rep.problems), rep.problems
