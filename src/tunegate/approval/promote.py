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

Crash safety (issue 10): the ``promote_intent`` ledger event (name, version, the staged
manifest's sha256, the registry) comes before anything becomes visible in the registry; then
the rename of ``v<N>``, ``HEAD.json``, ``history.jsonl``, and the ``promote`` event. An intent
without its ``promote`` event is settled on the next start (``promote`` into that registry, or
``tunegate audit verify``): rolled *forward* when ``v<N>`` is exactly the staged version and
verifies as a registry entry, rolled *back* (a ``promote_abandoned`` event) when ``v<N>`` never
appeared. See :func:`_recover_locked`.
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
from tunegate.approval.checkpoint import check_ledger, read_ledger, write_checkpoint
from tunegate.approval.sign import ApprovalRefusedError, registry_head_digest, registry_name
from tunegate.approval.verify import VerifyResult, verify_run
from tunegate.errors import DependencyError, IntegrityError, LockError, TunegateError
from tunegate.policy.pinned import pin_path, snapshot_path
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import atomic_write_json, canonical_json, sha256_file, sha256_tree
from tunegate.workdir import approvals_dir, audit_dir, check_name

#: the ledger stage that closes a ``promote_intent`` whose version never appeared (rolled back)
ABANDONED_STAGE = "promote_abandoned"
STAGING_PREFIX = ".staging-"


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
    # the base is on the CPU; peft would read the adapter onto the first accelerator it finds
    model = PeftModel.from_pretrained(base, str(adapter_dir), torch_device="cpu").merge_and_unload()
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
    """Verify the run's approvals against the registry head and add ``v<N>``; return the entry.

    Under the registry lock: settle this workdir's unfinished promotions first
    (:func:`recover_promotions`), then ``promote_intent`` event, stage and rename ``v<N>``,
    ``HEAD.json``, ``history.jsonl``, ``promote`` event. When the settling completed an
    interrupted promotion of this very run, that entry is the result.
    """
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
    for entry, _ in _tell(_recover_locked(wd, registry, reg, reg_name, policy, approvers_dir)):
        if entry is not None and entry.run_id == rid:
            return entry  # the interrupted promotion of this run is now complete
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
        raise IntegrityError(
            f"{reg}/HEAD.json names approval {str(head)[:16]}, but the newest entry "
            f"v{versions[-1] if versions else 0} holds {str(latest)[:16]}: the registry head was edited, "
            "or a promotion from another workdir was interrupted",
            hint="if another workdir promoted here, run `tunegate audit verify` (or promote) in that "
            "workdir: it completes its interrupted promotion",
        )
    _refuse_already_promoted(wd, rid, reg, reg_name)
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
    staging = reg / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
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
        # intent first: it names the manifest's digest and the registry, so that after a crash
        # anywhere below the next start rolls this promotion forward or back (recover_promotions)
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
                "registry": str(registry.resolve()),
            },
        )
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _complete(wd, reg, reg_name, manifest, recovered=False)


def _refuse_already_promoted(wd: Path, rid: str, reg: Path, reg_name: str) -> None:
    """Say so plainly when HEAD is this run, promoted (per this workdir's ledger) with exactly the
    approvals present now: running promote again (after a crash that recovery completed, say)
    would only replay them."""
    from tunegate.approval.verify import approval_digest

    headp = reg / "HEAD.json"
    head = json.loads(headp.read_text(encoding="utf-8")) if headp.is_file() else None
    if not isinstance(head, dict) or head.get("run_id") != rid:
        return
    adir = approvals_dir(wd, rid)
    envs = (
        sorted(p for p in adir.glob("*.dsse.json") if p.is_file() and not p.is_symlink())
        if adir.is_dir()
        else []
    )
    if not envs or approval_digest([sha256_file(p) for p in envs]) != head.get("approval_digest"):
        return
    for e in read_ledger(wd):
        d = e.get("details") or {}
        if (
            e.get("stage") == "promote"
            and d.get("name") == reg_name
            and d.get("version") == head.get("version")
            and d.get("approval_digest") == head.get("approval_digest")
        ):
            how = " (completed by recovery after a crash)" if d.get("recovered") else ""
            raise IntegrityError(
                f"replayed or stale approval: run {rid} is already promoted as {reg_name}/v{head['version']} "
                f"with exactly these approvals (ledger entry {e.get('seq')}{how}); nothing to do",
                hint="a new promotion needs approvals signed against the registry head (sign --registry)",
            )


def _entry(reg: Path, reg_name: str, manifest: dict[str, Any]) -> RegistryEntry:
    path = reg / f"v{manifest['version']}"
    merged = manifest.get("merged")
    return RegistryEntry(
        reg_name,
        int(manifest["version"]),
        path,
        str(manifest["run_id"]),
        str(manifest["approval_digest"]),
        path / manifest["weights"],
        path / merged if merged else None,
        manifest,
    )


def _complete(
    wd: Path, reg: Path, reg_name: str, manifest: dict[str, Any], *, recovered: bool
) -> RegistryEntry:
    """The steps after ``v<N>`` is in place, each idempotent: read-only, HEAD, history, then the
    ``promote`` event that closes the intent."""
    version = int(manifest["version"])
    final = reg / f"v{version}"
    _make_read_only(final)
    _publish(
        reg,
        version,
        str(manifest["run_id"]),
        str(manifest["approval_digest"]),
        manifest.get("previous_approval_digest"),
        str(manifest["time"]),
    )
    details: dict[str, Any] = {
        "run_id": manifest["run_id"],
        "name": reg_name,
        "version": version,
        "approval_digest": manifest["approval_digest"],
        "trust_root": manifest.get("trust_root"),
    }
    if recovered:
        details["recovered"] = True
    ledger.append_event(
        wd,
        "promote",
        outputs={f"registry:{reg_name}/v{version}/manifest.json": sha256_file(final / "manifest.json")},
        config_digest=str(manifest.get("policy_digest")),
        details=details,
    )
    return _entry(reg, reg_name, manifest)


def unfinished_intents(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``promote_intent`` events with no later ``promote`` or ``promote_abandoned`` of the same
    name and version (a promotion that crashed and was not settled yet)."""
    open_: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for e in entries:
        d = e.get("details") or {}
        key = (d.get("name"), d.get("version"))
        if e.get("stage") == "promote_intent":
            open_.setdefault(key, []).append(e)
        elif e.get("stage") in ("promote", ABANDONED_STAGE):
            open_.pop(key, None)
    return sorted((e for es in open_.values() for e in es), key=lambda e: int(e.get("seq") or 0))


def _abandon(wd: Path, intent: dict[str, Any], reason: str) -> str:
    d = intent.get("details") or {}
    ledger.append_event(
        wd,
        ABANDONED_STAGE,
        details={
            "run_id": d.get("run_id"),
            "name": d.get("name"),
            "version": d.get("version"),
            "intent_seq": intent.get("seq"),
            "reason": reason,
        },
    )
    return (
        f"recovery rolled back the interrupted promotion of run {d.get('run_id')} to "
        f"{d.get('name')}/v{d.get('version')} (ledger entry {intent.get('seq')}): {reason}"
    )


def _recover_locked(
    wd: Path,
    registry: Path,
    reg: Path,
    reg_name: str,
    policy: GatePolicy,
    approvers_dir: str | Path | None,
) -> list[tuple[RegistryEntry | None, str]]:
    """Settle this workdir's unfinished promotions into ``reg`` (the caller holds its lock).

    An orphaned staging folder is removed (promotions are serialized by the lock). For each
    unfinished intent: when ``v<N>`` is absent, or is not the version the intent staged (its
    manifest's sha256 differs), the intent is rolled back (a ``promote_abandoned`` event); when
    it is that version, its files match its manifest, HEAD names it or the version before it,
    and it verifies as a registry entry (:func:`load_from_registry`), it is rolled forward
    (read-only, HEAD, history, ``promote`` event with ``recovered: true``). Anything else raises
    :class:`IntegrityError` naming the problem, and nothing is changed.
    """
    for p in reg.glob(f"{STAGING_PREFIX}*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    if not check_ledger(wd).ok:
        return []  # every command refuses a ledger that does not verify; settle after `audit repair`
    out: list[tuple[RegistryEntry | None, str]] = []
    here = registry.resolve()
    for intent in unfinished_intents(read_ledger(wd)):
        d = intent.get("details") or {}
        recorded = d.get("registry")
        if d.get("name") != reg_name or (recorded is not None and Path(str(recorded)) != here):
            continue  # another name, or another registry
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            continue
        want = (intent.get("outputs") or {}).get(f"registry:{reg_name}/v{version}/manifest.json")
        entry = reg / f"v{version}"
        mpath = entry / "manifest.json"
        if not os.path.lexists(entry):
            out.append((None, _abandon(wd, intent, f"v{version} was never renamed into place")))
            continue
        if entry.is_symlink() or mpath.is_symlink() or not mpath.is_file() or sha256_file(mpath) != want:
            why = f"{entry} is not the version this intent staged (another manifest)"
            out.append((None, _abandon(wd, intent, why)))
            continue
        artifacts.check_tree(entry)
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = {k: v for k, v in sha256_tree(entry).items() if k != "manifest.json"}
        if files != manifest.get("files"):
            raise IntegrityError(
                f"{entry}: an interrupted promotion left files that differ from its manifest"
            )
        if version != max(_versions(reg)):
            raise IntegrityError(
                f"{entry}: an interrupted promotion, but v{max(_versions(reg))} came after it"
            )
        headp = reg / "HEAD.json"
        head = json.loads(headp.read_text(encoding="utf-8")) if headp.is_file() else None
        head_version = head.get("version") if isinstance(head, dict) else None
        head_digest = head.get("approval_digest") if isinstance(head, dict) else None
        if head_version == version and head_digest != manifest.get("approval_digest"):
            raise IntegrityError(f"{headp}: names v{version} with another approval digest: it was edited")
        if head_version != version and head_digest != manifest.get("previous_approval_digest"):
            raise IntegrityError(
                f"{headp}: names approval {str(head_digest)[:16]}, neither v{version} nor the version before "
                "it (the registry head was edited): the interrupted promotion is not completed"
            )
        load_from_registry(registry, reg_name, version, policy=policy, approvers_dir=approvers_dir)
        done = _complete(wd, reg, reg_name, manifest, recovered=True)
        out.append(
            (
                done,
                f"recovery completed the interrupted promotion of run {done.run_id} to {reg_name}/v{version} "
                f"(ledger entry {intent.get('seq')})",
            )
        )
    return out


def _tell(done: list[tuple[RegistryEntry | None, str]]) -> list[tuple[RegistryEntry | None, str]]:
    if done:
        from tunegate.console import user_stream

        stream = user_stream()
        for _, msg in done:
            stream.write(f"note: {msg}\n")
        stream.flush()
    return done


def recover_promotions(
    workdir: str | Path,
    *,
    policy: GatePolicy,
    approvers_dir: str | Path | None = None,
    lock_timeout: float = 30.0,
) -> list[str]:
    """Settle every unfinished promotion of this workdir whose intent records its registry
    (``audit verify`` calls this; ``promote`` settles its own registry under its lock).

    Returns one line per intent: what was done, or why it was left (the registry is gone, locked,
    or the entry does not verify).
    """
    wd = Path(workdir)
    if not check_ledger(wd).ok:
        return []
    notes: list[str] = []
    targets = sorted(
        {
            (str((e.get("details") or {}).get("registry")), str((e.get("details") or {}).get("name")))
            for e in unfinished_intents(read_ledger(wd))
            if (e.get("details") or {}).get("registry")
        }
    )
    for root_s, reg_name in targets:
        root = Path(root_s)
        try:
            reg = root / check_name(reg_name, "registry name")
        except TunegateError:
            continue
        if root.is_symlink() or reg.is_symlink() or not reg.is_dir():
            continue  # left as an unfinished intent (audit verify notes it)
        try:
            with FileLock(str(reg / ".promote.lock"), timeout=lock_timeout):
                notes += [msg for _, msg in _recover_locked(wd, root, reg, reg_name, policy, approvers_dir)]
        except Timeout:
            notes.append(f"{reg}: a promotion holds the registry lock; the interrupted one is settled later")
        except TunegateError as exc:
            notes.append(f"{reg}: the interrupted promotion was not settled: {exc}")
    return notes


def _publish(reg: Path, version: int, rid: str, approval: str, previous: str | None, time: str) -> None:
    """Move HEAD to ``version`` and append it to history.jsonl (after the version is in place);
    idempotent, so that recovery can finish a promotion that crashed in between."""
    headp = reg / "HEAD.json"
    head = {"version": version, "approval_digest": approval, "run_id": rid}
    current = json.loads(headp.read_text(encoding="utf-8")) if headp.is_file() else None
    if current != head:
        atomic_write_json(headp, head)
    hist = reg / "history.jsonl"
    if hist.is_file():
        for line in hist.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                if json.loads(line).get("version") == version:
                    return
    with open(hist, "a", encoding="utf-8") as fh:
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
        recover=False,  # a registry entry is read-only: nothing in it is ever completed or removed
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
