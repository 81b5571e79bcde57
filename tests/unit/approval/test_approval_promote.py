"""The immutable registry: verify first, no replay, signed rollback, locking, re-verify on load."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from helpers.approval_fixtures import Reviewers, make_policy

from tunegate.approval.promote import load_from_registry, promote
from tunegate.approval.report import write_report
from tunegate.approval.sign import ApprovalRefusedError, sign_run
from tunegate.errors import IntegrityError


def _approve(
    wd: Path, r: Reviewers, pol, run: str, registry: Path | None = None, rollback: bool = False
) -> None:  # type: ignore[no-untyped-def]
    for n in ("alice", "bob"):
        sign_run(wd, r.keys[n], "approve", policy=pol, run_id=run, registry=registry, rollback=rollback)


def test_promote_load_and_tamper(workdir: Path, reviewers: Reviewers, policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg = tmp_path / "registry"
    with pytest.raises(ApprovalRefusedError, match="no approvals yet"):
        promote(workdir, reg, policy=policy, run_id="run-a")
    _approve(workdir, reviewers, policy, "run-a", reg)
    e = promote(workdir, reg, policy=policy, run_id="run-a")
    assert e.version == 1 and e.path.name == "v1"
    assert (e.weights / "adapter_model.safetensors").is_file()
    assert len(list((e.path / "bundle/runs/run-a/approvals").glob("*.dsse.json"))) == 2
    f = e.weights / "adapter_model.safetensors"
    assert not stat.S_IMODE(f.stat().st_mode) & 0o222
    loaded = load_from_registry(reg, e.name, policy=policy)
    assert loaded.version == 1 and loaded.approval_digest == e.approval_digest
    os.chmod(e.weights, 0o755)
    os.chmod(f, 0o644)
    data = bytearray(f.read_bytes())
    data[0] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"adapter_model\.safetensors changed"):
        load_from_registry(reg, e.name, policy=policy)


def test_replay_and_rollback(workdir: Path, reviewers: Reviewers, policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg = tmp_path / "registry"
    _approve(workdir, reviewers, policy, "run-a", reg)
    assert promote(workdir, reg, policy=policy, run_id="run-a").version == 1
    # promoting the same approvals again is a replay: they name the old registry head
    with pytest.raises(IntegrityError, match="replayed or stale approval"):
        promote(workdir, reg, policy=policy, run_id="run-a")
    # fresh approvals against the new head, but no explicit rollback: refused
    for p in (workdir / "runs/run-a/approvals").glob("*.dsse.json"):
        p.unlink()
    _approve(workdir, reviewers, policy, "run-a", reg)
    with pytest.raises(ApprovalRefusedError, match="needs an explicit signed rollback"):
        promote(workdir, reg, policy=policy, run_id="run-a")
    # approvals of the current round cannot just be deleted (that is how a rejection would vanish)
    refused = sorted((workdir / "runs/run-a/approvals").glob("*.dsse.json"))
    refused[-1].unlink()
    with pytest.raises(IntegrityError, match="is missing: a signed approval or rejection was deleted"):
        promote(workdir, reg, policy=policy, run_id="run-a")
    # a new round starts with a re-rendered report (ledgered); then the old envelopes may go
    write_report(workdir, policy=policy, run_id="run-a")
    for p in (workdir / "runs/run-a/approvals").glob("*.dsse.json"):
        p.unlink()
    _approve(workdir, reviewers, policy, "run-a", reg, rollback=True)
    e2 = promote(workdir, reg, policy=policy, run_id="run-a")
    assert e2.version == 2 and e2.manifest["approvals"][0]["rollback"] is True
    assert load_from_registry(reg, e2.name, 1, policy=policy).version == 1


def test_failed_gate_is_never_promoted(workdir: Path, reviewers: Reviewers, policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sign_run(workdir, reviewers.keys["alice"], "reject", policy=policy, run_id="run-b")
    with pytest.raises(ApprovalRefusedError, match="cannot be promoted"):
        promote(workdir, tmp_path / "registry", policy=policy, run_id="run-b")
    assert not list((tmp_path / "registry").rglob("manifest.json"))


def _worker(args: tuple[str, str, str, str]) -> str:
    wd, reg, approvers, run = args
    try:
        e = promote(wd, reg, policy=make_policy(Path(approvers)), run_id=run)
        return f"ok v{e.version}"
    except Exception as exc:
        return f"err {type(exc).__name__}: {exc}"


def test_concurrent_promotions_are_serialized(
    workdir: Path, reviewers: Reviewers, policy, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    reg = tmp_path / "registry"
    _approve(workdir, reviewers, policy, "run-a", reg)
    other = tmp_path / "wd2"
    shutil.copytree(workdir, other)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(
            _worker, [(str(w), str(reg), str(reviewers.approvers), "run-a") for w in (workdir, other)]
        )
    assert sorted(r.split(":")[0] for r in results) == ["err IntegrityError", "ok v1"], results
    assert any("replayed or stale approval" in r for r in results)
    versions = sorted(p.name for p in (reg / "banking77-intent").iterdir() if p.name.startswith("v"))
    assert versions == ["v1"]
    assert not list((reg / "banking77-intent").glob(".staging-*"))


def test_edited_registry_head_is_detected(
    workdir: Path, reviewers: Reviewers, policy, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    reg = tmp_path / "registry"
    _approve(workdir, reviewers, policy, "run-a", reg)
    e = promote(workdir, reg, policy=policy, run_id="run-a")
    head = reg / e.name / "HEAD.json"
    # rewinding HEAD to "empty" would let the old approvals be replayed: refused
    head.unlink()
    with pytest.raises(IntegrityError, match="the registry head was edited"):
        promote(workdir, reg, policy=policy, run_id="run-a")
