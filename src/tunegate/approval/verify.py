"""``tunegate verify``: re-hash everything offline and check every approval of a run.

Integrity problems raise :class:`~tunegate.errors.IntegrityError` naming the first cause (a
changed, added or removed file; an unknown key, a key that is not a reviewer, a signature that
does not verify; an approval of another run; a wrong payload type or unexpected/missing fields;
a replayed approval; a truncated or rewritten ledger). A well-formed set of approvals that does
not meet the policy (too few reviewers, a rejection, separation of duties) is a *result*:
``VerifyResult.approved`` is false and ``reasons`` say why.

Nothing here opens a socket: the trust anchors are the approvers directory and the workdir key.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.approval import artifacts
from tunegate.approval.checkpoint import check_ledger, read_ledger, verify_checkpoint
from tunegate.approval.dsse import STATEMENT_TYPE, parse_envelope, read_envelope, verify_signature
from tunegate.approval.keys import load_reviewers
from tunegate.approval.recovery import ledgered_envelopes, recover_approvals, tell
from tunegate.approval.sign import (
    PREDICATE_FIELDS,
    PREDICATE_TYPE,
    STATEMENT_FIELDS,
    ApprovalRefusedError,
    approvals_dir,
    check_approvable,
    gate_passed,
    normalize_name,
    read_override,
)
from tunegate.errors import IntegrityError
from tunegate.policy.pinned import resolve_trust_root
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import canonical_json, sha256_bytes, sha256_file
from tunegate.workdir import pending_target

#: How far in the future an approval's signed time may be (clock skew between machines).
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)

_UNSET: Any = object()


@dataclass(frozen=True)
class ApprovalRecord:
    """One verified envelope."""

    path: str
    reviewer: str
    key_id: str
    decision: str
    sequence: int
    time: str
    comment: str | None
    override_justification: str | None
    rollback: bool
    previous_promoted_approval: str | None
    envelope_sha256: str


@dataclass
class VerifyResult:
    run_id: str
    subjects: int
    approvals: list[ApprovalRecord]
    gate_passed: bool
    approved: bool
    reasons: list[str] = field(default_factory=list)
    approval_digest: str | None = None
    trust_root: dict[str, Any] = field(default_factory=dict)
    policy_digest: str | None = None


def approval_digest(envelope_sha256s: list[str]) -> str:
    """Digest of an approval bundle: sha256 over the sorted envelope digests."""
    return sha256_bytes(canonical_json(sorted(envelope_sha256s)).encode("utf-8"))


def _check_statement(stmt: Any, where: str) -> dict[str, Any]:
    if not isinstance(stmt, dict) or set(stmt) != STATEMENT_FIELDS:
        got = sorted(stmt) if isinstance(stmt, dict) else type(stmt).__name__
        raise IntegrityError(
            f"{where}: statement fields are {got}, expected exactly {sorted(STATEMENT_FIELDS)}"
        )
    if stmt["_type"] != STATEMENT_TYPE:
        raise IntegrityError(f"{where}: _type is {stmt['_type']!r}, expected {STATEMENT_TYPE!r}")
    if stmt["predicateType"] != PREDICATE_TYPE:
        raise IntegrityError(
            f"{where}: predicateType is {stmt['predicateType']!r}, expected {PREDICATE_TYPE!r}"
        )
    pred = stmt["predicate"]
    if not isinstance(pred, dict) or set(pred) != PREDICATE_FIELDS:
        keys = set(pred) if isinstance(pred, dict) else set()
        raise IntegrityError(
            f"{where}: predicate has unexpected fields {sorted(keys - PREDICATE_FIELDS)} and misses "
            f"{sorted(PREDICATE_FIELDS - keys)}"
        )
    types: dict[str, tuple[type, ...]] = {
        "run_id": (str,),
        "decision": (str,),
        "reviewer": (str,),
        "key_id": (str,),
        "time": (str,),
        "sequence": (int,),
        "previous_promoted_approval": (str, type(None)),
        "checkpoint": (dict,),
        "comment": (str, type(None)),
        "override_justification": (str, type(None)),
        "rollback": (bool,),
        "gate_passed": (bool,),
        "policy_digest": (str,),
        "tunegate_version": (str,),
    }
    for k, t in types.items():
        if not isinstance(pred[k], t) or (t == (int,) and isinstance(pred[k], bool)):
            raise IntegrityError(f"{where}: predicate field '{k}' has type {type(pred[k]).__name__}")
    if pred["decision"] not in ("approve", "reject"):
        raise IntegrityError(f"{where}: decision {pred['decision']!r} is not approve or reject")
    subj = stmt["subject"]
    if not isinstance(subj, list) or not subj:
        raise IntegrityError(f"{where}: subject must be a non-empty list")
    for s in subj:
        if (
            not isinstance(s, dict)
            or set(s) != {"name", "digest"}
            or not isinstance(s["name"], str)
            or not isinstance(s["digest"], dict)
            or set(s["digest"]) != {"sha256"}
        ):
            raise IntegrityError(f"{where}: a subject must be exactly {{name, digest: {{sha256}}}}")
    return stmt


def compare_subjects(signed: list[dict[str, Any]], workdir: Path, run_id: str, where: str) -> None:
    """Raise naming the first changed, removed or added covered file."""
    want = {s["name"]: s["digest"]["sha256"] for s in signed}
    if len(want) != len(signed):
        raise IntegrityError(f"{where}: duplicate subject names")
    have_names = artifacts.covered_files(workdir, run_id)
    for name in sorted(want):
        shared = artifacts.REQUIRED_DATA_FILES + artifacts.OPTIONAL_DATA_FILES
        if not (name.startswith(f"runs/{run_id}/") or name in shared):
            raise IntegrityError(f"{where}: subject {name} is outside run {run_id}: approval of another run")
    for name in sorted(want):
        p = workdir / name
        if not p.is_file():
            raise IntegrityError(f"{where}: covered file {name} was removed after signing")
        digest = sha256_file(p)
        if digest != want[name]:
            raise IntegrityError(
                f"{where}: covered file {name} changed after signing (signed sha256 {want[name][:12]}…, "
                f"now {digest[:12]}…)"
            )
    added = sorted(set(have_names) - set(want))
    if added:
        raise IntegrityError(f"{where}: file(s) added after signing: {', '.join(added)}")


def parse_time(value: str, where: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IntegrityError(f"{where}: time {value!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise IntegrityError(f"{where}: time {value!r} has no time zone")
    return t


def reconcile_approvals(workdir: Path, run_id: str, entries: list[dict[str, Any]]) -> None:
    """Every envelope in approvals/ is ledgered, and every ledgered envelope is still there."""
    adir = approvals_dir(workdir, run_id)
    present: dict[str, str] = {}
    if adir.is_dir():
        for p in sorted(adir.iterdir()):
            if p.name.startswith(".") and p.name.endswith(".lock") and p.is_file() and not p.is_symlink():
                continue
            if pending_target(p.name) and p.is_file() and not p.is_symlink():
                continue  # staged by a sign that crashed: recovery settles it (audit verify notes it)
            if p.is_symlink() or not p.is_file() or not p.name.endswith(".dsse.json"):
                raise IntegrityError(
                    f"{p}: unexpected entry in the approvals directory (only envelopes belong)"
                )
            present[p.relative_to(workdir).as_posix()] = sha256_file(p)
    ledgered = ledgered_envelopes(entries, run_id)
    ever: set[tuple[str, str]] = {
        (str(rel), str(digest))
        for e in entries
        if e.get("stage") == "sign" and (e.get("details") or {}).get("run_id") == run_id
        for rel, digest in (e.get("outputs") or {}).items()
    }
    for rel, (digest, seq) in sorted(ledgered.items()):
        if rel not in present:
            raise IntegrityError(
                f"{workdir / rel}: the approval signed in ledger entry {seq} is missing: a signed "
                "approval or rejection was deleted",
                hint="restore it; approvals are withdrawn only by re-rendering the report (a new round)",
            )
        if present[rel] != digest:
            raise IntegrityError(
                f"{workdir / rel}: differs from the envelope ledgered in entry {seq} (sha256 "
                f"{digest[:12]}…, now {present[rel][:12]}…): it was replaced"
            )
    # an envelope of an earlier round (before a promotion) stays verifiable; the registry-head check
    # refuses it as stale when it is used to promote again
    extra = sorted(rel for rel in set(present) - set(ledgered) if (rel, present[rel]) not in ever)
    if extra:
        raise IntegrityError(
            f"{workdir / extra[0]}: envelope not recorded by any `sign` event of this approval round in the "
            "ledger: an unledgered (copied or planted) approval",
            hint="approvals are only added by `tunegate sign`; remove the file",
        )


def verify_envelope(
    path: Path,
    *,
    workdir: Path,
    run_id: str,
    reviewers: dict[str, Any],
    reviewer_role: str,
    entries: list[dict[str, Any]],
    checkpoint_key: str,
    policy_digest: str | None = None,
) -> ApprovalRecord:
    where = str(path)
    payload, keyid, sig = parse_envelope(read_envelope(path), where)
    reviewer = reviewers.get(keyid)
    if reviewer is None:
        raise IntegrityError(
            f"{where}: signed by unknown key id {keyid[:16]}…: not in the trusted approvers directory"
        )
    if reviewer_role not in reviewer.roles:
        raise IntegrityError(
            f"{where}: key {keyid[:16]}… ({reviewer.name}) is not a reviewer (roles: {list(reviewer.roles)})"
        )
    verify_signature(reviewer.public_key, payload, sig, where)
    try:
        stmt = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntegrityError(f"{where}: payload is not JSON") from None
    if canonical_json(stmt).encode("utf-8") != payload:
        raise IntegrityError(f"{where}: payload is not canonical JSON")
    _check_statement(stmt, where)
    pred = stmt["predicate"]
    if pred["key_id"] != keyid or pred["reviewer"] != reviewer.name:
        raise IntegrityError(
            f"{where}: predicate names reviewer {pred['reviewer']!r} / key {pred['key_id'][:16]}…, but the "
            f"signature is by {reviewer.name!r} / {keyid[:16]}…"
        )
    if pred["run_id"] != run_id:
        raise IntegrityError(f"{where}: approval belongs to run {pred['run_id']!r}, not {run_id!r}")
    if policy_digest is not None and pred["policy_digest"] != policy_digest:
        raise IntegrityError(
            f"{where}: approved under policy {pred['policy_digest']}, but the policy in force is "
            f"{policy_digest}: approvals only count under the policy they signed",
            hint="use the policy the reviewers signed, or have them sign again under the new one",
        )
    signed_at = parse_time(pred["time"], where)
    if signed_at > dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW:
        raise IntegrityError(
            f"{where}: approval is dated {pred['time']}, in the future (more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes ahead of this clock)"
        )
    compare_subjects(stmt["subject"], workdir, run_id, where)
    verify_checkpoint(
        workdir, pred["checkpoint"], entries, where=f"{where} (embedded checkpoint)", key_rel=checkpoint_key
    )
    return ApprovalRecord(
        path=path.relative_to(workdir).as_posix() if path.is_relative_to(workdir) else str(path),
        reviewer=reviewer.name,
        key_id=keyid,
        decision=pred["decision"],
        sequence=pred["sequence"],
        time=pred["time"],
        comment=pred["comment"],
        override_justification=pred["override_justification"],
        rollback=pred["rollback"],
        previous_promoted_approval=pred["previous_promoted_approval"],
        envelope_sha256=sha256_file(path),
    )


def verify_run(
    workdir: str | Path,
    *,
    policy: GatePolicy,
    run_id: str | None = None,
    approvers_dir: str | Path | None = None,
    registry_head: Any = _UNSET,
    recover: bool = True,
) -> VerifyResult:
    """Verify all approvals of a run. ``registry_head``: the approval digest the approvals must
    have been signed against (``None`` = empty registry); leave unset to skip the replay check.
    ``recover``: first complete or discard a crashed ``sign``'s staged envelope (see
    :mod:`tunegate.approval.recovery`); false for a read-only copy (a registry bundle)."""
    wd = Path(workdir)
    rid = artifacts.resolve_run(wd, run_id)
    if recover:
        tell(recover_approvals(wd, rid))
    trust = resolve_trust_root(policy, approvers_dir, workdir=wd)
    rep = check_ledger(wd)
    if not rep.ok:
        raise IntegrityError(f"{ledger.ledger_path(wd)}: {rep.reason} (first bad entry: {rep.first_bad})")
    entries = read_ledger(wd)
    artifacts.covered_files(wd, rid)  # refuses links / special files anywhere in the run first
    adir = approvals_dir(wd, rid)
    files = sorted(p for p in adir.glob("*.dsse.json")) if adir.is_dir() else []
    for p in sorted(adir.iterdir()) if adir.is_dir() else []:
        if p.name.startswith(".") and p.name.endswith(".lock") and p.is_file() and not p.is_symlink():
            continue
        if p.is_symlink() or not p.is_file() or not p.name.endswith(".dsse.json"):
            raise IntegrityError(f"{p}: unexpected entry in the approvals directory (only envelopes belong)")
    # no envelope, nothing to check a key against: a missing trust root then only means "no approvals"
    reviewers = load_reviewers(trust.path) if files else {}
    records = [
        verify_envelope(
            p,
            workdir=wd,
            run_id=rid,
            reviewers=reviewers,
            reviewer_role=policy.approval.reviewer_role,
            entries=entries,
            checkpoint_key=policy.approval.checkpoint_key,
            policy_digest=policy.digest(),
        )
        for p in files
    ]
    seqs = [r.sequence for r in records]
    if len(set(seqs)) != len(seqs):
        raise IntegrityError(
            f"run {rid}: two approvals carry the same sequence number {seqs}: a replayed approval"
        )
    reconcile_approvals(wd, rid, entries)  # after each envelope's own checks, which name the cause
    if registry_head is not _UNSET:
        for r in records:
            if r.previous_promoted_approval != registry_head:
                raise IntegrityError(
                    f"{r.path}: replayed or stale approval: signed against registry head "
                    f"{(r.previous_promoted_approval or 'none (empty registry)')[:16]}, the registry head is "
                    f"{(registry_head or 'none (empty registry)')[:16]}",
                    hint="reviewers must sign again with --registry pointing at the registry",
                )
    passed = gate_passed(wd, rid, policy)
    reasons: list[str] = []
    rejects = [r for r in records if r.decision == "reject"]
    for r in rejects:
        reasons.append(f"{r.reviewer} rejected the run" + (f": {r.comment}" if r.comment else ""))
    approvers = {normalize_name(r.reviewer): r.reviewer for r in records if r.decision == "approve"}
    need = policy.approval.min_approvals
    counted = dict(approvers)
    operator: str | None = None
    if policy.approval.separation_of_duties:
        run = artifacts.read_json(artifacts.run_dir(wd, rid) / "run.json") or {}
        op = run.get("operator") if isinstance(run, dict) else None
        operator = op if isinstance(op, str) and op.strip() else None
        if operator is not None:
            counted.pop(normalize_name(operator), None)
    if len(counted) < need:
        if operator is not None and normalize_name(operator) in approvers:
            reasons.append(
                f"separation of duties: {operator}, who ran training, approved; the operator's own approval "
                f"does not count, {len(counted)} other distinct reviewer(s) approved, the policy needs {need}"
            )
        else:
            reasons.append(f"{len(counted)} distinct reviewer(s) approved, the policy needs {need}")
    if approvers:
        try:
            check_approvable(wd, rid, policy, read_override(wd, rid))
        except ApprovalRefusedError as exc:  # not approvable as it stands (failed gate, high-risk docs)
            reasons.append(exc.message)
        if not passed:
            shown = read_override(wd, rid)
            for r in records:
                if r.decision == "approve" and (
                    not r.override_justification or r.override_justification != shown
                ):
                    reasons.append(
                        f"{r.reviewer} approved a failed gate without signing the shown justification"
                    )
    digest = approval_digest([r.envelope_sha256 for r in records]) if records else None
    if not records:
        reasons.append("no approvals yet")
    return VerifyResult(
        rid,
        len(artifacts.covered_files(wd, rid)),
        records,
        passed,
        not reasons,
        reasons,
        digest,
        trust.to_json(),
        policy.digest(),
    )
