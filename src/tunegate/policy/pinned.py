"""The policy a workdir runs under, pinned at ``prepare``, and the trust root its approvals use.

``prepare`` writes ``WORKDIR/policy/policy.json`` (the canonical JSON of the validated policy) and
``WORKDIR/policy/pin.json`` (its digest, where it came from, and the trust root: the absolute
approvers directory resolved against the policy file's own folder, with the digest of its ``*.pub``
set), and appends a ``policy_pin`` ledger event. Every later command resolves its policy with
:func:`resolve_policy`:

* no ``--policy``: the pinned policy (its snapshot must hash to the pinned digest, and the pinned
  digest must be the one the ledger's last ``policy_pin`` / ``policy_change`` event recorded);
* ``--policy`` with the pinned digest: the same policy;
* ``--policy`` with another digest: refused (exit 2, both digests named) unless
  ``--policy-change-reason TEXT`` is given; then the change is pinned and ledgered
  (``policy_change``: previous and new digest, reason).

A workdir that was never prepared by this version (no pin, no pin event) falls back to
``--policy`` or the shipped default, as before.

Trust root (:func:`resolve_trust_root`): ``--approvers`` if given, else the directory pinned at
prepare, else ``approval.approvers_dir`` (absolute, or relative to the policy file's folder). The
process's current directory is never consulted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.errors import ConfigError, IntegrityError
from tunegate.policy.schema import GatePolicy, load_policy, policy_from_mapping
from tunegate.provenance import atomic_write_json, atomic_write_text, canonical_json, digest_json, sha256_file
from tunegate.workdir import policy_dir

SNAPSHOT_NAME = "policy.json"
PIN_NAME = "pin.json"
PIN_STAGES = ("policy_pin", "policy_change")


@dataclass(frozen=True)
class TrustRoot:
    """The directory of trusted reviewer keys actually used, how it was chosen, and its digest."""

    path: Path
    source: str
    digest: str | None

    def describe(self) -> str:
        d = self.digest[:16] if self.digest else "missing"
        return f"trust root: {self.path} ({self.source}; *.pub set digest {d})"

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": self.source, "digest": self.digest}


@dataclass(frozen=True)
class PinnedPolicy:
    policy: GatePolicy
    digest: str
    record: dict[str, Any]


def snapshot_path(workdir: str | Path) -> Path:
    return policy_dir(workdir) / SNAPSHOT_NAME


def pin_path(workdir: str | Path) -> Path:
    return policy_dir(workdir) / PIN_NAME


def approvers_digest(directory: str | Path) -> str | None:
    """sha256 over ``{file name: sha256}`` of every ``*.pub`` in ``directory`` (None: no directory)."""
    d = Path(directory)
    if not d.is_dir():
        return None
    files = {}
    for p in sorted(d.glob("*.pub")):
        if p.is_symlink() or not p.is_file():
            raise IntegrityError(f"{p}: a trusted key must be a regular file, not a link or special file")
        files[p.name] = sha256_file(p)
    return digest_json(files)


def _policy_trust_dir(policy: GatePolicy) -> tuple[Path, str]:
    p = Path(policy.approval.approvers_dir)
    if p.is_absolute():
        return p, "policy approval.approvers_dir"
    if policy.source_dir is None:
        raise ConfigError(
            f"approval.approvers_dir {str(p)!r} is relative and the policy file's folder is unknown, "
            "so the trusted keys cannot be located (the current directory is never used)",
            hint="pass --approvers DIR, or make approval.approvers_dir absolute",
        )
    return (policy.source_dir / p).resolve(), f"approval.approvers_dir relative to {policy.source_dir}"


def _ledger_pin_events(workdir: Path) -> list[dict[str, Any]]:
    try:
        entries = ledger.read_entries(workdir)
    except (IntegrityError, UnicodeDecodeError):
        return []  # the ledger's own verification reports this
    return [e for e in entries if e.get("stage") in PIN_STAGES]


def read_pin(workdir: str | Path) -> PinnedPolicy | None:
    """The pinned policy, verified against its digest and the ledger; ``None`` when never pinned."""
    wd = Path(workdir)
    snap, rec_path = snapshot_path(wd), pin_path(wd)
    events = _ledger_pin_events(wd)
    if not rec_path.exists() and not snap.exists():
        if events:
            raise IntegrityError(
                f"{policy_dir(wd)}: the ledger records a pinned policy "
                f"({str(events[-1].get('config_digest'))[:16]}…) but the pinned policy files were removed",
                hint="restore WORKDIR/policy/ from a backup; the pinned policy cannot be dropped",
            )
        return None
    for p in (snap, rec_path):
        if p.is_symlink() or not p.is_file():
            raise IntegrityError(f"{p}: the pinned policy file is missing or not a regular file")
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
        data = json.loads(snap.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{policy_dir(wd)}: the pinned policy is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
        raise IntegrityError(f"{rec_path}: not a policy pin record (no 'digest')")
    policy = policy_from_mapping(data, source=str(snap))
    digest = policy.digest()
    if digest != record["digest"]:
        raise IntegrityError(
            f"{snap}: the pinned policy snapshot has digest {digest[:16]}…, the pin records "
            f"{record['digest'][:16]}…: it was edited after pinning"
        )
    if events and events[-1].get("config_digest") != digest:
        raise IntegrityError(
            f"{rec_path}: pins policy {digest[:16]}…, but the ledger's last policy event pinned "
            f"{str(events[-1].get('config_digest'))[:16]}…: the pin was replaced outside tunegate"
        )
    return PinnedPolicy(policy, digest, record)


def _write_pin(
    wd: Path,
    policy: GatePolicy,
    *,
    stage: str,
    approvers: str | Path | None,
    previous: str | None,
    reason: str | None,
) -> PinnedPolicy:
    if approvers is not None:
        tdir, tsource = Path(approvers).resolve(), "--approvers at pinning"
    else:
        try:
            tdir, tsource = _policy_trust_dir(policy)
        except ConfigError:
            tdir, tsource = None, None  # type: ignore[assignment]
    digest = policy.digest()
    record: dict[str, Any] = {
        "format": "tunegate-policy-pin/v1",
        "digest": digest,
        "name": policy.name,
        "source": str(policy.source_dir) if policy.source_dir else None,
        "approvers_dir": str(tdir) if tdir is not None else None,
        "approvers_source": tsource,
        "approvers_digest": approvers_digest(tdir) if tdir is not None else None,
        "previous": previous,
        "reason": reason,
        "time": ledger.now_utc(),
    }
    pdir = policy_dir(wd)
    pdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(snapshot_path(wd), canonical_json(policy.model_dump(mode="json")) + "\n")
    atomic_write_json(pin_path(wd), record)
    ledger.append_event(
        wd,
        stage,
        outputs={
            f"policy/{SNAPSHOT_NAME}": sha256_file(snapshot_path(wd)),
            f"policy/{PIN_NAME}": sha256_file(pin_path(wd)),
        },
        config_digest=digest,
        details={
            "policy_digest": digest,
            "previous_policy_digest": previous,
            "reason": reason,
            "approvers_dir": record["approvers_dir"],
            "approvers_digest": record["approvers_digest"],
        },
    )
    return PinnedPolicy(policy, digest, record)


def pin_policy(
    workdir: str | Path,
    policy: GatePolicy,
    *,
    change_reason: str | None = None,
    approvers: str | Path | None = None,
) -> PinnedPolicy:
    """Pin ``policy`` in the workdir (``prepare`` calls this). Same digest: nothing changes.

    A different digest is a policy change: it needs ``change_reason`` (ledgered), else ConfigError.
    """
    wd = Path(workdir)
    current = read_pin(wd)
    if current is None:
        return _write_pin(wd, policy, stage="policy_pin", approvers=approvers, previous=None, reason=None)
    if current.digest == policy.digest():
        return current
    if not change_reason or not change_reason.strip():
        raise _mismatch(wd, policy.digest(), current.digest)
    return _write_pin(
        wd,
        policy,
        stage="policy_change",
        approvers=approvers if approvers is not None else current.record.get("approvers_dir"),
        previous=current.digest,
        reason=change_reason.strip(),
    )


def _mismatch(wd: Path, given: str, pinned: str, path: str | Path | None = None) -> ConfigError:
    src = f"{path}: " if path is not None else ""
    return ConfigError(
        f"{src}policy {given} differs from the policy pinned in {wd} at prepare ({pinned})",
        hint="omit --policy to use the pinned policy, or pass --policy-change-reason TEXT to change it "
        "(the change is recorded in the ledger)",
    )


def resolve_policy(
    workdir: str | Path | None,
    path: str | Path | None = None,
    *,
    change_reason: str | None = None,
) -> GatePolicy:
    """The one policy resolver of every workdir command (see the module docstring)."""
    if workdir is None or not Path(workdir).is_dir():
        if change_reason:
            raise ConfigError("--policy-change-reason needs a workdir with a pinned policy")
        return load_policy(path)
    wd = Path(workdir)
    pinned = read_pin(wd)
    if pinned is None:
        if change_reason:
            raise ConfigError(
                f"{wd}: no policy is pinned here, so there is nothing to change",
                hint="drop --policy-change-reason",
            )
        return load_policy(path)
    if path is None:
        if change_reason:
            raise ConfigError("--policy-change-reason needs --policy (the new policy)")
        return pinned.policy
    given = load_policy(path)
    if given.digest() == pinned.digest:
        return given
    if not change_reason or not change_reason.strip():
        raise _mismatch(wd, given.digest(), pinned.digest, path)
    pin_policy(wd, given, change_reason=change_reason)
    return given


def resolve_trust_root(
    policy: GatePolicy, override: str | Path | None = None, *, workdir: str | Path | None = None
) -> TrustRoot:
    """Where the trusted reviewer keys come from. Never the process's current directory."""
    if override is not None:
        p = Path(override).resolve()
        return TrustRoot(p, "--approvers", approvers_digest(p))
    if workdir is not None:
        pinned = read_pin(workdir)
        if pinned is not None and pinned.digest == policy.digest() and pinned.record.get("approvers_dir"):
            p = Path(str(pinned.record["approvers_dir"]))
            return TrustRoot(p, "pinned at prepare", approvers_digest(p))
    p, source = _policy_trust_dir(policy)
    return TrustRoot(p, source, approvers_digest(p))


__all__ = [
    "PinnedPolicy",
    "TrustRoot",
    "approvers_digest",
    "pin_policy",
    "read_pin",
    "resolve_policy",
    "resolve_trust_root",
]
