"""Promise: the ledger knows every registry version (issue 10 item 8, promotion part).

Crash points inside ``promote`` (simulated by an exception at the write) must leave either no
version at all, or a version whose ``promote_intent`` event is in the ledger; `audit verify`
reports an unfinished intent and the next promotion still works.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("point", ["rename", "read_only", "head"])
def test_crash_leaves_no_unledgered_version(signed: Env, monkeypatch: pytest.MonkeyPatch, point: str) -> None:
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
    versions, intents = _versions(reg), _intents(signed.wd)
    # every version on disk has its intent in the ledger
    assert {f"v{e['details']['version']}" for e in intents} >= set(versions)
    assert not list((reg / "banking77-intent").glob(".staging-*"))
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert rep.ok, rep.problems
    assert any("was started but not recorded as finished" in n for n in rep.notes)
    # the next promotion completes the interrupted one (or, before the rename, starts afresh)
    e = promote(signed.wd, reg, policy=signed.policy, run_id="run-a")
    assert e.version == 1 and _versions(reg) == ["v1"]
    assert load_from_registry(reg, e.name, policy=signed.policy).version == 1
    rep = audit_workdir(signed.wd, policy=signed.policy)
    assert rep.ok and not rep.notes, (rep.problems, rep.notes)


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
