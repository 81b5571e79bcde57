"""``tunegate promote`` and :func:`load_from_registry`: an immutable, versioned model registry.

Layout::

    REGISTRY/<name>/HEAD.json             {version, approval_digest, run_id}: the only mutable file
    REGISTRY/<name>/history.jsonl         one line per promotion (append-only)
    REGISTRY/<name>/v<N>/manifest.json    name, version, run, approvals, sha256 of every file
    REGISTRY/<name>/v<N>/bundle/          a verifiable copy of the workdir slice that was signed:
        runs/<id>/{adapter|model}/, run.json, evidence.json, decision.json, report.*, approvals/
        data/holdout.manifest.json, audit/ledger.jsonl, audit/checkpoint_key.pub
    REGISTRY/<name>/v<N>/merged/          (``--merged``) the adapter merged into its base model

Files and directories of ``v<N>`` are made read-only. A promotion happens only when
:func:`~tunegate.approval.verify.verify_run` passes *against the registry head* (each approval
must name the approval digest currently at HEAD, so an old approval cannot be replayed), the
policy's m-of-n and separation of duties hold, and the gate passed or a permitted signed
override exists. Re-promoting a run or adapter that is already in the registry is a rollback
and needs every approval to be signed with ``--rollback``. Promotions of one name are
serialized by a file lock; the new version is staged and renamed into place, so a crash never
leaves a half-written ``v<N>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tunegate import ledger
from tunegate.approval import artifacts
from tunegate.approval.checkpoint import read_ledger, write_checkpoint
from tunegate.approval.sign import ApprovalRefusedError, registry_head_digest, registry_name
from tunegate.approval.verify import VerifyResult, verify_run
from tunegate.errors import DependencyError, IntegrityError, LockError
from tunegate.policy.pinned import pin_path, snapshot_path
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import atomic_write_json, canonical_json, sha256_file, sha256_tree
from tunegate.workdir import approvals_dir, audit_dir, check_name


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    version: int
    path: Path
    run_id: str
    approval_digest: str
    weights: Path
    merged: Path | None
    manifest: dict[str, Any]


def _versions(reg: Path) -> list[int]:
    out = []
    for p in reg.glob("v*"):
        if p.is_dir() and p.name[1:].isdigit():
            out.append(int(p.name[1:]))
    return sorted(out)


def _make_read_only(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_file():
            os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        elif p.is_dir():
            os.chmod(
                p, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
            )
    os.chmod(root, 0o555)


def _weights_digest(tree: dict[str, str], run_id: str) -> str:
    prefix = f"runs/{run_id}/"
    sub = {
        k[len(prefix) :]: v
        for k, v in tree.items()
        if k.startswith(prefix) and k[len(prefix) :].split("/")[0] in artifacts.WEIGHT_DIRS
    }
    return canonical_json(sub)


def merge_adapter(base_path: Path, adapter_dir: Path, out: Path) -> None:
    """Merge a peft adapter into its base model (only with ``--merged``; needs the base offline)."""
    try:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise DependencyError(f"merging needs peft and transformers ({exc})") from None
    if not base_path.is_dir():
        raise DependencyError(f"{base_path}: the base model named in run.json is not available offline")
    base = AutoModelForCausalLM.from_pretrained(str(base_path))
    model = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    model.save_pretrained(str(out))
    with contextlib.suppress(OSError, ValueError):  # a base without a tokenizer still merges
        AutoTokenizer.from_pretrained(str(base_path)).save_pretrained(str(out))


def promote(
    workdir: str | Path,
    registry: str | Path,
    *,
    policy: GatePolicy,
    run_id: str | None = None,
    approvers_dir: str | Path | None = None,
    name: str | None = None,
    merged: bool = False,
    lock_timeout: float = 120.0,
) -> RegistryEntry:
    """Verify the run's approvals against the registry head and add ``v<N>``; return the entry."""
    wd = Path(workdir)
    rid = artifacts.resolve_run(wd, run_id)
    reg_name = registry_name(wd, rid, name)
    root = Path(registry)
    if root.exists() and (root.is_symlink() or not root.is_dir()):
        raise IntegrityError(f"{root}: the registry must be a real folder (not a file or a link)")
    reg = root / reg_name
    if reg.is_symlink():
        raise IntegrityError(f"{reg}: is a symbolic link; refused")
    reg.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(reg / ".promote.lock"), timeout=lock_timeout):
            entry = _promote_locked(wd, rid, root, reg, reg_name, policy, approvers_dir, merged)
    except Timeout:
        raise LockError(f"{reg}: another promotion holds the registry lock") from None
    ledger.append_event(
        wd,
        "promote",
        outputs={
            f"registry:{reg_name}/v{entry.version}/manifest.json": sha256_file(entry.path / "manifest.json")
        },
        config_digest=policy.digest(),
        details={
            "run_id": rid,
            "name": reg_name,
            "version": entry.version,
            "approval_digest": entry.approval_digest,
            "trust_root": entry.manifest.get("trust_root"),
        },
    )
    write_checkpoint(wd, "promote", key_rel=policy.approval.checkpoint_key)
    return entry


def _promote_locked(
    wd: Path,
    rid: str,
    registry: Path,
    reg: Path,
    reg_name: str,
    policy: GatePolicy,
    approvers_dir: str | Path | None,
    merged: bool,
) -> RegistryEntry:
    head = registry_head_digest(registry, reg_name)
    artifacts.check_tree(reg)
    versions = _versions(reg)
    latest = (
        json.loads((reg / f"v{versions[-1]}" / "manifest.json").read_text(encoding="utf-8"))[
            "approval_digest"
        ]
        if versions
        else None
    )
    if head != latest:
        # a crash between the rename and HEAD? finish it when the same approvals still verify
        check = verify_run(wd, policy=policy, run_id=rid, approvers_dir=approvers_dir, registry_head=head)
        finished = (
            _finish_interrupted(wd, rid, reg, reg_name, versions, head)
            if check.approved and check.approval_digest == latest
            else None
        )
        if finished is not None:
            return finished
        raise IntegrityError(
            f"{reg}/HEAD.json names approval {str(head)[:16]}, but the newest entry "
            f"v{versions[-1] if versions else 0} holds {str(latest)[:16]}: the registry head was edited"
        )
    result = verify_run(wd, policy=policy, run_id=rid, approvers_dir=approvers_dir, registry_head=head)
    if not result.approved:
        raise ApprovalRefusedError(f"run {rid} cannot be promoted: " + "; ".join(result.reasons))
    assert result.approval_digest is not None
    tree = {s: sha256_file(wd / s) for s in artifacts.covered_files(wd, rid)}
    wdig = _weights_digest(tree, rid)
    for v in _versions(reg):
        old = json.loads((reg / f"v{v}" / "manifest.json").read_text(encoding="utf-8"))
        if old.get("run_id") == rid or old.get("weights_digest") == wdig:
            approvals = [a for a in result.approvals if a.decision == "approve"]
            if not all(a.rollback for a in approvals):
                raise ApprovalRefusedError(
                    f"run {rid} is already in the registry as {reg_name}/v{v}: promoting it again is a "
                    "rollback and needs an explicit signed rollback from every approver",
                    hint="reviewers sign with `tunegate sign ... --rollback --registry DIR`",
                )
    version = (_versions(reg) or [0])[-1] + 1
    staging = reg / f".staging-{uuid.uuid4().hex}"
    bundle = staging / "bundle"
    try:
        for rel in tree:
            dst = bundle / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wd / rel, dst)
        adst = approvals_dir(bundle, rid)
        adst.mkdir(parents=True, exist_ok=True)
        for a in result.approvals:
            shutil.copy2(wd / a.path, adst / Path(a.path).name)
        audit_dir(bundle).mkdir(parents=True, exist_ok=True)
        shutil.copy2(ledger.ledger_path(wd), ledger.ledger_path(bundle))
        for pinned in (snapshot_path(wd), pin_path(wd)):  # the pinned policy travels with the ledger
            if pinned.is_file():
                pdst = bundle / pinned.relative_to(wd)
                pdst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(pinned, pdst)
        key_pub = wd / (policy.approval.checkpoint_key + ".pub")
        kdst = bundle / (policy.approval.checkpoint_key + ".pub")
        kdst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(key_pub, kdst)
        merged_rel = None
        if merged:
            run = artifacts.read_json(artifacts.run_dir(wd, rid) / "run.json", required=True)
            base = Path(str((run.get("base_model") or {}).get("path", "")))
            merge_adapter(base, artifacts.weight_dir(wd, rid), staging / "merged")
            merged_rel = "merged"
        weights_rel = artifacts.weight_dir(bundle, rid).relative_to(staging).as_posix()
        manifest = {
            "format": "tunegate-registry-entry/v1",
            "name": reg_name,
            "version": version,
            "run_id": rid,
            "time": ledger.now_utc(),
            "approval_digest": result.approval_digest,
            "previous_approval_digest": head,
            "approvals": [
                {
                    "reviewer": a.reviewer,
                    "key_id": a.key_id,
                    "decision": a.decision,
                    "file": Path(a.path).name,
                    "sha256": a.envelope_sha256,
                    "rollback": a.rollback,
                }
                for a in result.approvals
            ],
            "gate_passed": result.gate_passed,
            "policy_digest": policy.digest(),
            "trust_root": result.trust_root,
            "weights": weights_rel,
            "weights_digest": wdig,
            "merged": merged_rel,
            "files": sha256_tree(staging),
        }
        atomic_write_json(staging / "manifest.json", manifest)
        artifacts.check_tree(staging)
        final = reg / f"v{version}"
        # intent first: a crash after this line leaves a ledgered intent (reported by `audit
        # verify`), never a registry version the ledger does not know about
        ledger.append_event(
            wd,
            "promote_intent",
            outputs={f"registry:{reg_name}/v{version}/manifest.json": sha256_file(staging / "manifest.json")},
            config_digest=policy.digest(),
            details={
                "run_id": rid,
                "name": reg_name,
                "version": version,
                "approval_digest": result.approval_digest,
            },
        )
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _make_read_only(final)
    _publish(reg, version, rid, result.approval_digest, head, str(manifest["time"]))
    return RegistryEntry(
        reg_name,
        version,
        final,
        rid,
        result.approval_digest,
        final / weights_rel,
        final / merged_rel if merged_rel else None,
        manifest,
    )


def _finish_interrupted(
    wd: Path, rid: str, reg: Path, reg_name: str, versions: list[int], head: str | None
) -> RegistryEntry | None:
    """Complete a promotion of ``rid`` that crashed after its version was renamed into place but
    before ``HEAD.json`` moved: only when this workdir's ledger holds its unfinished intent, HEAD
    still names the version before it, and the version's files match its manifest."""
    if not versions:
        return None
    version = versions[-1]
    entry = reg / f"v{version}"
    manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    entries = read_ledger(wd)
    done = any(
        e.get("stage") == "promote"
        and (e.get("details") or {}).get("name") == reg_name
        and (e.get("details") or {}).get("version") == version
        for e in entries
    )
    intent = any(
        e.get("stage") == "promote_intent"
        and (e.get("details") or {}).get("name") == reg_name
        and (e.get("details") or {}).get("version") == version
        and (e.get("details") or {}).get("run_id") == rid == manifest.get("run_id")
        and (e.get("details") or {}).get("approval_digest") == manifest.get("approval_digest")
        for e in entries
    )
    if done or not intent or manifest.get("previous_approval_digest") != head:
        return None
    artifacts.check_tree(entry)
    files = {k: v for k, v in sha256_tree(entry).items() if k != "manifest.json"}
    if files != manifest.get("files"):
        raise IntegrityError(f"{entry}: an interrupted promotion left files that differ from its manifest")
    _make_read_only(entry)
    _publish(reg, version, rid, str(manifest["approval_digest"]), head, str(manifest["time"]))
    merged = manifest.get("merged")
    return RegistryEntry(
        reg_name,
        version,
        entry,
        rid,
        str(manifest["approval_digest"]),
        entry / manifest["weights"],
        entry / merged if merged else None,
        manifest,
    )


def _publish(reg: Path, version: int, rid: str, approval: str, previous: str | None, time: str) -> None:
    """Move HEAD to ``version`` and append it to history.jsonl (after the version is in place)."""
    atomic_write_json(reg / "HEAD.json", {"version": version, "approval_digest": approval, "run_id": rid})
    with open(reg / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(
            canonical_json(
                {
                    "version": version,
                    "run_id": rid,
                    "approval_digest": approval,
                    "previous_approval_digest": previous,
                    "time": time,
                }
            )
            + "\n"
        )


def load_from_registry(
    registry: str | Path,
    name: str,
    version: int | None = None,
    *,
    policy: GatePolicy,
    approvers_dir: str | Path | None = None,
) -> RegistryEntry:
    """Re-verify a registry entry (file digests, signatures, checkpoints) and return its paths.

    ``version=None`` loads HEAD. Raises :class:`IntegrityError` naming the first problem.
    """
    reg = Path(registry) / check_name(name, "registry name")
    if version is None:
        headp = reg / "HEAD.json"
        if not headp.is_file():
            raise DependencyError(f"{reg}: nothing has been promoted under this name")
        version = int(json.loads(headp.read_text(encoding="utf-8"))["version"])
    entry = reg / f"v{version}"
    mpath = entry / "manifest.json"
    if not mpath.is_file():
        raise DependencyError(f"{entry}: no such registry entry", hint=f"versions: {_versions(reg)}")
    artifacts.check_tree(entry)
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    files = {k: v for k, v in sha256_tree(entry).items() if k != "manifest.json"}
    want = manifest["files"]
    for rel in sorted(set(want) | set(files)):
        if rel not in files:
            raise IntegrityError(f"{entry}: {rel} was removed from the registry entry")
        if rel not in want:
            raise IntegrityError(f"{entry}: {rel} was added to the registry entry")
        if files[rel] != want[rel]:
            raise IntegrityError(f"{entry}: {rel} changed (sha256 {want[rel][:12]}… -> {files[rel][:12]}…)")
    result: VerifyResult = verify_run(
        entry / "bundle",
        policy=policy,
        run_id=manifest["run_id"],
        approvers_dir=approvers_dir,
        registry_head=manifest["previous_approval_digest"],
    )
    if result.approval_digest != manifest["approval_digest"]:
        raise IntegrityError(
            f"{entry}: the approvals in the bundle are not the ones recorded in the manifest"
        )
    if not result.approved:
        raise IntegrityError(
            f"{entry}: the approvals no longer satisfy the policy: " + "; ".join(result.reasons)
        )
    merged = entry / manifest["merged"] if manifest.get("merged") else None
    return RegistryEntry(
        name,
        version,
        entry,
        manifest["run_id"],
        manifest["approval_digest"],
        entry / manifest["weights"],
        merged,
        manifest,
    )
