"""Promise: the ledger knows every registry version (issue 10 item 8, promotion part).

Crash points inside ``promote`` (simulated by an exception at the write) must leave either no
version at all, or a version whose ``promote_intent`` event is in the ledger; the next
``promote`` or ``audit verify`` settles it (rolled forward when the version is exactly the one
the intent staged and verifies, rolled back when it never appeared) and refuses to publish a
replaced or tampered version or to move an edited HEAD.
"""

from __future__ import annotations

import json
import os

import pytest
from adv_support import Env

from tunegate import ledger
from tunegate.approval import promote as promote_mod
from tunegate.approval.audit import audit_workdir
from tunegate.approval.promote import load_from_registry, promote
from tunegate.errors import IntegrityError


class Crash(RuntimeError):
    pass


def _versions(reg) -> list[str]:  # type: ignore[no-untyped-def]
    d = reg / "banking77-intent"
    return sorted(p.name for p in d.iterdir() if p.name.startswith("v")) if d.is_dir() else []


def _intents(wd) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [e for e in ledger.read_entries(wd) if e["stage"] == "promote_intent"]


def test_intent_is_ledgered_before_the_version_appears(signed: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = signed.tmp / "registry"
    real_rename = os.rename
    seen = {}

    def rename(src, dst):  # type: ignore[no-untyped-def]
        seen["intents_at_rename"] = len(_intents(signed.wd))
        return real_rename(src, dst)

    monkeypatch.setattr(promote_mod.os, "rename", rename)
    promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    assert seen["intents_at_rename"] == 1


def _crash(signed: Env, monkeypatch: pytest.MonkeyPatch, point: str):  # type: ignore[no-untyped-def]
    """promote dies at ``point``: before the rename of v1, before it is made read-only, or at
    HEAD.json (v1 in place, HEAD not moved)."""
    reg = signed.tmp / "registry"
    target = {
        "rename": (promote_mod.os, "rename"),
        "read_only": (promote_mod, "_make_read_only"),
        "head": (promote_mod, "atomic_write_json"),
    }[point]
    real = getattr(*target)

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        if point == "head" and not str(a[0]).endswith("HEAD.json"):
            return real(*a, **k)
        raise Crash(point)

    monkeypatch.setattr(*target, boom)
    with pytest.raises(Crash):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    monkeypatch.undo()
    # every version on disk has its intent in the ledger
    assert {f"v{e['details']['version']}" for e in _intents(signed.wd)} >= set(_versions(reg))
    assert [e["stage"] for e in ledger.read_entries(signed.wd)][-1] == "promote_intent"
    return reg


@pytest.mark.parametrize("point", ["rename", "read_only", "head"])
def test_promote_again_settles_a_crashed_promotion(
    signed: Env, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """Run promote again: it completes the interrupted promotion (or, before the rename, rolls it
    back and starts afresh) and the audit trail has nothing left open."""
    reg = _crash(signed, monkeypatch, point)
    e = promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    assert e.version == 1 and _versions(reg) == ["v1"]
    assert not list((reg / "banking77-intent").glob(".staging-*"))
    assert load_from_registry(reg, e.name, policy=signed.policy).version == 1
    stages = [x["stage"] for x in ledger.read_entries(signed.wd)]
    assert stages.count("promote") == 1
    assert ("promote_abandoned" in stages) == (point == "rename")
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert rep.ok and not rep.notes, (rep.problems, rep.notes)


@pytest.mark.parametrize("point", ["rename", "read_only", "head"])
def test_audit_verify_settles_a_crashed_promotion(
    signed: Env, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """`audit verify` (the documented first step after a crash) settles it from the registry the
    intent recorded; then promote either starts afresh or says plainly it is already done."""
    reg = _crash(signed, monkeypatch, point)
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert rep.ok, rep.problems
    want = "rolled back" if point == "rename" else "completed"
    assert any(f"recovery {want} the interrupted promotion" in n for n in rep.notes), rep.notes
    assert not any("was started but not recorded" in n for n in rep.notes)
    if point == "rename":
        assert not (reg / "banking77-intent" / "HEAD.json").exists()
        assert promote(signed.wd, reg, policy=signed.policy, run_id="run-a").version == 1
    else:
        head = json.loads((reg / "banking77-intent" / "HEAD.json").read_text())
        assert head["version"] == 1 and load_from_registry(reg, "banking77-intent", policy=signed.policy)
        with pytest.raises(
            IntegrityError, match=r"already promoted as banking77-intent/v1 .*completed by recovery"
        ):
            promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert rep.ok and not rep.notes, (rep.problems, rep.notes)


def test_recovery_never_publishes_a_replaced_version(signed: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash at HEAD, v1's manifest is swapped for another one: it is not the version the
    intent staged, so the intent is rolled back and HEAD is never pointed at it."""
    reg = _crash(signed, monkeypatch, "head")
    v1 = reg / "banking77-intent" / "v1"
    os.chmod(v1, 0o755)
    m = v1 / "manifest.json"
    os.chmod(m, 0o644)
    m.write_text(m.read_text().replace('"version": 1', '"version": 1, "note": "planted"'))
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert any("rolled back" in n and "not the version this intent staged" in n for n in rep.notes), rep.notes
    assert not (reg / "banking77-intent" / "HEAD.json").exists()
    with pytest.raises(IntegrityError, match="registry head was edited"):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a")


def test_recovery_never_publishes_a_tampered_version(signed: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash at HEAD, a file inside v1 is edited (manifest intact): recovery refuses to
    roll forward, leaves HEAD alone and the intent open, and promote says why."""
    reg = _crash(signed, monkeypatch, "head")
    weights = next((reg / "banking77-intent" / "v1").rglob("adapter_model.safetensors"))
    os.chmod(weights.parent, 0o755)
    os.chmod(weights, 0o644)
    weights.write_bytes(weights.read_bytes() + b"x")
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert any("not settled" in n and "differ from its manifest" in n for n in rep.notes), rep.notes
    assert any("was started but not recorded as finished" in n for n in rep.notes)
    assert not (reg / "banking77-intent" / "HEAD.json").exists()
    with pytest.raises(IntegrityError, match="differ from its manifest"):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a")


def test_recovery_refuses_an_edited_head(signed: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash at HEAD, an insider writes a HEAD that names neither v1 nor the empty
    registry before it: not completed, not rolled back."""
    reg = _crash(signed, monkeypatch, "head")
    (reg / "banking77-intent" / "HEAD.json").write_text(
        json.dumps({"version": 0, "approval_digest": "f" * 64, "run_id": "run-x"})
    )
    with pytest.raises(IntegrityError, match="registry head was edited"):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    assert "promote" not in [e["stage"] for e in ledger.read_entries(signed.wd)]


def test_edited_head_is_still_refused(signed: Env) -> None:
    """Recovery never applies to a registry whose HEAD was rewound by hand."""
    reg = signed.tmp / "registry"
    e = promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    (reg / e.name / "HEAD.json").unlink()
    with pytest.raises(IntegrityError, match="registry head was edited"):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a")


def test_crash_before_rename_allows_a_clean_retry(signed: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = signed.tmp / "registry"
    monkeypatch.setattr(promote_mod.os, "rename", lambda *a: (_ for _ in ()).throw(Crash("rename")))
    with pytest.raises(Crash):
        promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    monkeypatch.undo()
    assert _versions(reg) == []
    e = promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    assert e.version == 1
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert rep.ok, rep.problems
