"""``tunegate sign``: a reviewer's decision as an in-toto Statement v1 in a DSSE envelope.

The statement's subjects are the sha256 digests of every covered artifact (see
:mod:`tunegate.approval.artifacts`); the predicate binds the run id, the decision, who signed
(name and key id), when, a per-run sequence number, the digest of the approval bundle last
promoted to the registry (replay protection), the latest signed ledger checkpoint (truncation
detection), and the comment / override justification. Envelopes are written to
``runs/<id>/approvals/<seq>-<keyid16>.dsse.json``: staged as ``.<name>.pending``, committed by
the ledger ``sign`` event that names their sha256, then renamed into place; a crash in between
is settled by :mod:`tunegate.approval.recovery` on the next start.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from tunegate import __version__, ledger
from tunegate.approval import artifacts
from tunegate.approval.checkpoint import read_ledger, write_checkpoint
from tunegate.approval.decision import verified_decision
from tunegate.approval.dsse import STATEMENT_TYPE, sign_envelope
from tunegate.approval.keys import find_reviewer_for_key, load_private_key
from tunegate.approval.recovery import SIGN_LOCK, publish_pending, recover_approvals, tell, write_pending
from tunegate.errors import ConfigError, InputError, TunegateError
from tunegate.policy.pinned import resolve_trust_root
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import canonical_json, sha256_bytes
from tunegate.workdir import check_name, workdir_lock

PREDICATE_TYPE = "https://tunegate.dev/attestation/approval/v1"
PREDICATE_FIELDS = frozenset(
    {
        "run_id",
        "decision",
        "reviewer",
        "key_id",
        "time",
        "sequence",
        "previous_promoted_approval",
        "checkpoint",
        "comment",
        "override_justification",
        "rollback",
        "gate_passed",
        "policy_digest",
        "tunegate_version",
    }
)
STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})
Decision = Literal["approve", "reject"]
OVERRIDE_FILE = "override.json"


class ApprovalRefusedError(TunegateError):
    """The gate refuses an approval (failed gate without permitted override, high-risk docs missing…).

    Exits 1 like a failed gate: the input is fine, the answer is no.
    """

    exit_code = 1


def approvals_dir(workdir: str | Path, run_id: str) -> Path:
    return artifacts.run_dir(workdir, run_id) / "approvals"


def resolve_approvers_dir(
    policy: GatePolicy, override: str | Path | None = None, *, workdir: str | Path | None = None
) -> Path:
    """``--approvers`` if given; else the trust root pinned at prepare; else ``approval.approvers_dir``
    (absolute, or relative to the policy file's own folder). Never the current directory."""
    return resolve_trust_root(policy, override, workdir=workdir).path


def normalize_name(name: str) -> str:
    """Reviewer / operator names compare NFKC-normalized, case-folded and stripped."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def read_override(workdir: str | Path, run_id: str) -> str | None:
    """The failed-gate override justification rendered into the report, if any."""
    data = artifacts.read_json(artifacts.run_dir(workdir, run_id) / OVERRIDE_FILE)
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("justification"), str):
        raise InputError(
            "expected {'justification': str}", path=artifacts.run_dir(workdir, run_id) / OVERRIDE_FILE
        )
    return str(data["justification"])


def gate_passed(workdir: str | Path, run_id: str, policy: GatePolicy) -> bool:
    """Whether the gate passed, from the decision *recomputed* under ``policy`` (see
    :func:`tunegate.approval.decision.verified_decision`); a forged decision.json raises."""
    return bool(verified_decision(workdir, run_id, policy).passed)


def registry_head_digest(registry: str | Path | None, name: str) -> str | None:
    """Approval digest of the registry's current head for ``name`` (``None``: nothing promoted yet)."""
    if registry is None:
        return None
    head = Path(registry) / check_name(name, "registry name") / "HEAD.json"
    if not head.is_file():
        return None
    data = json.loads(head.read_text(encoding="utf-8"))
    return str(data["approval_digest"])


def registry_name(workdir: str | Path, run_id: str, name: str | None = None) -> str:
    """The registry name: ``--name`` or run.json's ``name``; always a plain name (no separators)."""
    if name is not None:
        return check_name(name, "registry name")
    run = artifacts.read_json(artifacts.run_dir(workdir, run_id) / "run.json") or {}
    n = run.get("name") if isinstance(run, dict) else None
    return (
        check_name(str(n), "registry name (run.json 'name')")
        if isinstance(n, str) and n
        else "tunegate-model"
    )


def check_approvable(workdir: Path, run_id: str, policy: GatePolicy, override: str | None) -> None:
    """Refusals that apply before any reviewer may approve (shared by sign, verify and promote)."""
    from tunegate.approval.human_fields import missing_human_fields

    missing = artifacts.missing_required(workdir, run_id)
    if missing:
        raise ApprovalRefusedError(
            f"run {run_id}: required artifacts are missing: {', '.join(missing)}",
            hint="run the earlier stages and `tunegate report` first",
        )
    if not gate_passed(workdir, run_id, policy):
        if not policy.approval.allow_override_of_failed_gate:
            raise ApprovalRefusedError(
                f"run {run_id}: the gate decision failed and the policy does not allow approving a failed "
                "gate (approval.allow_override_of_failed_gate: false)"
            )
        if not override or not override.strip():
            raise ApprovalRefusedError(
                f"run {run_id}: the gate failed; approving it needs a written justification shown in the "
                "report",
                hint="tunegate report WORKDIR --override-justification TEXT, then sign again",
            )
    if policy.high_risk:
        empty = missing_human_fields(workdir)
        if empty:
            raise ApprovalRefusedError(
                f"high-risk system: Annex IV human-only fields are empty or placeholders: {', '.join(empty)}",
                hint=f"fill in {workdir / 'annex_iv_human.yaml'}, re-run `tunegate annex-iv` and `report`",
            )


def next_sequence(workdir: Path, run_id: str) -> int:
    """One more than any sequence used by this run: present envelopes and ledgered sign events."""
    used = [0]
    adir = approvals_dir(workdir, run_id)
    for p in adir.glob("*.dsse.json") if adir.is_dir() else []:
        head = p.name.split("-", 1)[0]
        if head.isdigit():
            used.append(int(head))
    for e in read_ledger(workdir):
        d = e.get("details") or {}
        if e.get("stage") == "sign" and d.get("run_id") == run_id and isinstance(d.get("sequence"), int):
            used.append(int(d["sequence"]))
    return max(used) + 1


def sign_run(
    workdir: str | Path,
    key_path: str | Path,
    decision: Decision,
    *,
    policy: GatePolicy,
    run_id: str | None = None,
    approvers_dir: str | Path | None = None,
    comment: str | None = None,
    override_justification: str | None = None,
    rollback: bool = False,
    registry: str | Path | None = None,
    name: str | None = None,
    passphrase: bytes | None = None,
) -> Path:
    """Sign the run's covered artifacts with a reviewer key; return the envelope path."""
    wd = Path(workdir)
    rid = artifacts.resolve_run(wd, run_id)
    # reviewers may sign one after another; a running stage (training, report) is waited for
    with workdir_lock(wd, stage="sign", timeout=60):
        return _sign_locked(
            wd,
            rid,
            key_path,
            decision,
            policy,
            approvers_dir,
            comment,
            override_justification,
            rollback,
            registry,
            name,
            passphrase,
        )


def _sign_locked(
    wd: Path,
    rid: str,
    key_path: str | Path,
    decision: Decision,
    policy: GatePolicy,
    approvers_dir: str | Path | None,
    comment: str | None,
    override_justification: str | None,
    rollback: bool,
    registry: str | Path | None,
    name: str | None,
    passphrase: bytes | None,
) -> Path:
    if decision not in ("approve", "reject"):
        raise ConfigError(
            f"The 'decision' parameter of sign must be 'approve' or 'reject'. Got {decision!r} instead."
        )
    key = load_private_key(key_path, passphrase)
    trust = resolve_trust_root(policy, approvers_dir, workdir=wd)
    reviewer, kid = find_reviewer_for_key(key, Path(key_path), trust.path)
    shown = read_override(wd, rid)
    if override_justification is not None and shown is not None and override_justification != shown:
        raise ApprovalRefusedError(
            "--override-justification differs from the justification shown in the report (override.json)",
            hint="sign without --override-justification to sign the shown text, or re-render the report",
        )
    if override_justification is not None and shown is None:
        raise ApprovalRefusedError(
            "an override justification must be shown in the report before it is signed",
            hint="tunegate report WORKDIR --override-justification TEXT",
        )
    justification = shown
    missing = artifacts.missing_required(wd, rid)
    if missing:  # never sign a run whose required artifacts are missing, whatever the decision
        raise ApprovalRefusedError(f"run {rid}: required artifacts are missing: {', '.join(missing)}")
    if decision == "approve":
        check_approvable(wd, rid, policy, justification)
    passed = gate_passed(wd, rid, policy)
    ckpt_rel = policy.approval.checkpoint_key
    adir = approvals_dir(wd, rid)
    adir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(adir / SIGN_LOCK), timeout=30):
        tell(recover_approvals(wd, rid, locked=True))  # a sign that crashed before this one
        checkpoint = write_checkpoint(wd, "sign", key_rel=ckpt_rel)
        seq = next_sequence(wd, rid)
        predicate: dict[str, Any] = {
            "run_id": rid,
            "decision": decision,
            "reviewer": reviewer,
            "key_id": kid,
            "time": ledger.now_utc(),
            "sequence": seq,
            "previous_promoted_approval": registry_head_digest(registry, registry_name(wd, rid, name)),
            "checkpoint": checkpoint,
            "comment": comment,
            "override_justification": justification if not passed and decision == "approve" else None,
            "rollback": bool(rollback),
            "gate_passed": passed,
            "policy_digest": policy.digest(),
            "tunegate_version": __version__,
        }
        statement = {
            "_type": STATEMENT_TYPE,
            "subject": artifacts.subjects(wd, rid),
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
        envelope = sign_envelope(statement, key, kid)
        out = adir / f"{seq:04d}-{kid[:16]}.dsse.json"
        if out.exists():
            raise ConfigError(f"{out} already exists")
        # stage, ledger, publish (see tunegate.approval.recovery): the ledger event commits the
        # exact bytes; a crash before it leaves a staged file that recovery discards, a crash
        # after it one that recovery renames into place
        data = (canonical_json(envelope) + "\n").encode("utf-8")
        staged = write_pending(out, data)
        try:
            ledger.append_event(
                wd,
                "sign",
                outputs={out.relative_to(wd).as_posix(): sha256_bytes(data)},
                config_digest=policy.digest(),
                details={
                    "run_id": rid,
                    "decision": decision,
                    "reviewer": reviewer,
                    "key_id": kid,
                    "sequence": seq,
                    "trust_root": str(trust.path),
                    "trust_root_digest": trust.digest,
                },
            )
        except BaseException:
            staged.unlink(missing_ok=True)  # not committed: the signature never happened
            raise
        publish_pending(staged, out)
    write_checkpoint(wd, "sign", key_rel=ckpt_rel)
    return out
