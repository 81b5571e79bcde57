"""Promise: no crash of ``sign`` leaves an approval the ledger does not know, and recovery never
puts bytes into ``approvals/`` that the ledger did not commit (issue 10, items 3 and 8).

``sign`` stages its envelope as ``.<name>.pending``, appends the ``sign`` event naming the
staged bytes' sha256, then renames it into place; the next command that reads approvals
completes or discards what a crash left (:mod:`tunegate.approval.recovery`). The crashes are
simulated in-process at the two sides of the commit point (``tests/adversarial/
test_fault_injection.py`` kills a real process at every write point). Then an insider with
shell access tries to abuse recovery: a planted staged file, a staged file whose bytes differ
from the ledgered ones, an old round's envelope replayed as staged, a staged symlink (to an
envelope, and to a file recovery must not delete), a staged folder, and a staged file left
beside a torn ledger tail.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from adv_support import Env

from tunegate import ledger
from tunegate.approval import sign as sign_mod
from tunegate.approval.audit import audit_workdir
from tunegate.approval.dsse import sign_envelope
from tunegate.approval.keys import key_id, load_private_key
from tunegate.approval.promote import promote
from tunegate.approval.recovery import recover_approvals
from tunegate.approval.sign import sign_run
from tunegate.approval.verify import verify_run
from tunegate.errors import IntegrityError
from tunegate.provenance import canonical_json, sha256_file


class Crash(RuntimeError):
    pass


def _adir(env: Env) -> Path:
    return env.wd / "runs/run-a/approvals"


def _staged(env: Env) -> list[Path]:
    return sorted(p for p in _adir(env).iterdir() if p.name.endswith(".pending"))


def _envelopes(env: Env) -> list[Path]:
    return sorted(_adir(env).glob("*.dsse.json"))


def _stages(env: Env) -> list[str]:
    return [str(e["stage"]) for e in ledger.read_entries(env.wd)]


def _recover_events(env: Env) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in ledger.read_entries(env.wd) if e["stage"] == "recover"]


def _crash_after_commit(env: Env, monkeypatch: pytest.MonkeyPatch, who: str = "bob") -> Path:
    """bob's sign dies after its ledger event, before the rename: returns the staged file."""
    monkeypatch.setattr(sign_mod, "publish_pending", lambda *a: (_ for _ in ()).throw(Crash("rename")))
    with pytest.raises(Crash):
        sign_run(env.wd, env.key(who), "approve", policy=env.policy, run_id="run-a")
    monkeypatch.undo()
    (staged,) = _staged(env)
    return staged


def _crash_before_commit(env: Env, monkeypatch: pytest.MonkeyPatch, who: str = "bob") -> Path:
    """bob's sign dies after staging its envelope, before its ledger event."""
    real = sign_mod.write_pending

    def stage_then_die(final, data):  # type: ignore[no-untyped-def]
        real(final, data)
        raise Crash("after staging")

    monkeypatch.setattr(sign_mod, "write_pending", stage_then_die)
    with pytest.raises(Crash):
        sign_run(env.wd, env.key(who), "approve", policy=env.policy, run_id="run-a")
    monkeypatch.undo()
    (staged,) = _staged(env)
    return staged


def test_staged_envelope_is_never_counted_before_recovery(
    partial: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order itself: at the moment the ledger event is appended, only the staged file exists."""
    seen: dict[str, object] = {}
    real = sign_mod.ledger.append_event

    def spy(wd, stage, **kw):  # type: ignore[no-untyped-def]
        if stage == "sign":
            seen["envelopes"] = [p.name for p in _envelopes(partial)]
            seen["staged"] = [p.name for p in _staged(partial)]
            seen["digest"] = next(iter(kw["outputs"].values()))
            seen["staged_digest"] = sha256_file(_staged(partial)[0])
        return real(wd, stage, **kw)

    monkeypatch.setattr(sign_mod.ledger, "append_event", spy)
    out = sign_run(partial.wd, partial.key("bob"), "approve", policy=partial.policy, run_id="run-a")
    assert len(seen["envelopes"]) == 1 and seen["staged"] == [f".{out.name}.pending"]  # type: ignore[arg-type]
    assert seen["digest"] == seen["staged_digest"] == sha256_file(out)
    assert not _staged(partial)


def test_crash_after_the_ledger_event_is_completed(partial: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    staged = _crash_after_commit(partial, monkeypatch)
    digest = sha256_file(staged)
    res = verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert res.approved and len(res.approvals) == 2, res.reasons
    final = _adir(partial) / staged.name[1 : -len(".pending")]
    assert final.is_file() and sha256_file(final) == digest and not _staged(partial)
    (ev,) = _recover_events(partial)
    assert [a["action"] for a in ev["details"]["approvals"]] == ["completed"]
    rep = audit_workdir(partial.wd, policy=partial.policy)
    assert rep.ok, rep.problems


def test_crash_before_the_ledger_event_is_discarded(partial: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_before_commit(partial, monkeypatch)
    rep = audit_workdir(partial.wd, policy=partial.policy)
    assert rep.ok, rep.problems
    assert any("discarded staged approval" in n and "never recorded" in n for n in rep.notes), rep.notes
    assert not _staged(partial) and len(_envelopes(partial)) == 1
    assert [a["action"] for a in _recover_events(partial)[0]["details"]["approvals"]] == ["discarded"]
    # the signature never happened: bob signs again and the run is approved
    sign_run(partial.wd, partial.key("bob"), "approve", policy=partial.policy, run_id="run-a")
    assert verify_run(partial.wd, policy=partial.policy, run_id="run-a").approved


def test_next_sign_settles_a_crashed_sign_first(partial: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crashed sign of bob, then trainer signs: bob's committed approval is completed first and
    trainer gets the next sequence number (no duplicate, nothing planted)."""
    staged = _crash_after_commit(partial, monkeypatch)
    out = sign_run(partial.wd, partial.key("trainer"), "reject", policy=partial.policy, run_id="run-a")
    assert (_adir(partial) / staged.name[1 : -len(".pending")]).is_file()
    assert out.name.startswith("0003-") and len(_envelopes(partial)) == 3
    res = verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert not res.approved and any("rejected" in r for r in res.reasons)


def _resign(env: Env, src: Path, out: Path, **pred: object) -> Path:
    """A valid envelope made outside tunegate with alice's real key (no ledger event)."""
    stmt = json.loads(base64.b64decode(json.loads(src.read_text())["payload"]))
    stmt["predicate"].update(pred)
    key = load_private_key(env.key("alice"))
    out.write_text(canonical_json(sign_envelope(stmt, key, key_id(key.public_key()))) + "\n")
    return out


def test_planted_staged_envelope_is_discarded_not_counted(partial: Env) -> None:
    """A validly signed envelope planted under a staged name, with no ledger event."""
    planted = _resign(
        partial,
        _envelopes(partial)[0],
        _adir(partial) / ".0007-planted0000000000.dsse.json.pending",
        sequence=7,
    )
    res = verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert not res.approved and len(res.approvals) == 1
    assert not planted.exists() and not (_adir(partial) / "0007-planted0000000000.dsse.json").exists()
    (ev,) = _recover_events(partial)
    assert ev["details"]["approvals"][0]["action"] == "discarded"
    assert "never recorded" in ev["details"]["approvals"][0]["reason"]


def test_staged_bytes_other_than_the_ledgered_ones_are_discarded(
    partial: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a crash past the commit point, the staged file is swapped for another valid envelope
    (same name): recovery must not publish it. The committed approval is then missing, which
    verify reports as a deleted approval."""
    staged = _crash_after_commit(partial, monkeypatch)
    os.chmod(staged, 0o644)
    _resign(partial, _envelopes(partial)[0], staged, comment="swapped while staged", sequence=2)
    with pytest.raises(IntegrityError, match="is missing: a signed approval or rejection was deleted"):
        verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert not staged.exists() and len(_envelopes(partial)) == 1
    (ev,) = _recover_events(partial)
    assert "is not the" in ev["details"]["approvals"][0]["reason"]


def test_old_round_envelope_replayed_as_staged_is_discarded(signed: Env) -> None:
    """After a promotion ends the round, an approval of that round is removed and put back under
    its staged name, as if its sign had just crashed: recovery names it a replay and discards it."""
    promote(signed.wd, signed.tmp / "registry", policy=signed.policy, run_id="run-a")
    env = _envelopes(signed)[0]
    replay = env.with_name(f".{env.name}.pending")
    shutil.copy(env, replay)
    os.chmod(env, 0o644)
    env.unlink()
    done = recover_approvals(signed.wd, "run-a")
    assert [(r.action, "replayed" in r.reason) for r in done] == [("discarded", True)]
    assert not env.exists() and not replay.exists()


@pytest.mark.parametrize("target", ["envelope", "victim"])
def test_staged_symlink_is_removed_never_followed(
    partial: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, target: str
) -> None:
    """The staged name is a link: to the committed envelope moved outside the workdir (recovery
    must not publish a link, nor read through it), or to a file an attacker wants deleted."""
    staged = _crash_after_commit(partial, monkeypatch)
    outside = tmp_path / "outside"
    if target == "envelope":
        shutil.move(staged, outside)
    else:
        staged.unlink()
        outside.write_text("precious\n")
    before = outside.read_bytes()
    staged.symlink_to(outside)
    done = recover_approvals(partial.wd, "run-a")
    assert [(r.action, r.sha256) for r in done] == [("discarded", None)]
    assert not os.path.lexists(staged) and outside.read_bytes() == before
    assert not any(p.is_symlink() for p in _adir(partial).iterdir())
    with pytest.raises(IntegrityError, match="is missing"):  # the committed approval is not there
        verify_run(partial.wd, policy=partial.policy, run_id="run-a")


def test_staged_folder_is_refused_not_removed(partial: Env) -> None:
    odd = _adir(partial) / ".0009-folder0000000000.dsse.json.pending"
    odd.mkdir()
    (odd / "x").write_text("x")
    with pytest.raises(IntegrityError, match="unexpected entry in the approvals directory"):
        verify_run(partial.wd, policy=partial.policy, run_id="run-a")
    assert (odd / "x").is_file() and not _recover_events(partial)


def test_staged_file_waits_for_a_torn_tail_to_be_repaired(
    partial: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash in the middle of the sign event's append: torn tail + staged file. Nothing is
    settled on a ledger that does not verify; audit verify names only the torn tail (the staged
    file is a note); after `audit repair` the uncommitted envelope is discarded."""
    from tunegate.approval.audit import repair_audit_trail

    _crash_before_commit(partial, monkeypatch)
    with open(ledger.ledger_path(partial.wd), "ab") as fh:
        fh.write(b'{"seq": 99, "stage": "sign", "torn')
    rep = audit_workdir(partial.wd, policy=partial.policy)
    assert not rep.ok and all("unexpected entry" not in p for p in rep.problems), rep.problems
    assert any("torn final line" in p for p in rep.problems)
    assert any("awaits recovery" in n for n in rep.notes) and _staged(partial)
    assert not recover_approvals(partial.wd, "run-a") and _staged(partial)
    repair_audit_trail(partial.wd, policy=partial.policy)
    rep = audit_workdir(partial.wd, policy=partial.policy)
    assert rep.ok, rep.problems
    assert not _staged(partial) and len(_envelopes(partial)) == 1
    assert _stages(partial)[-1] == "recover"


def test_staged_copy_never_replaces_an_envelope_in_place(partial: Env) -> None:
    """A copy of a committed envelope under its own staged name (digest and round both match):
    the envelope in place is never overwritten; the copy is discarded."""
    (env,) = _envelopes(partial)
    inode = env.stat().st_ino
    shutil.copy(env, env.with_name(f".{env.name}.pending"))
    done = recover_approvals(partial.wd, "run-a")
    assert [(r.action, r.reason) for r in done] == [("discarded", "the envelope is already in place")]
    assert env.stat().st_ino == inode and not _staged(partial)
    assert verify_run(partial.wd, policy=partial.policy, run_id="run-a").approvals
