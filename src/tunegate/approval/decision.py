"""The gate decision, recomputed wherever it is trusted (report, sign, verify, promote).

``decision.json`` is a file in a workdir anyone with write access can edit. So it is never
believed: :func:`verified_decision` recomputes ``decide(policy, evidence)`` (pure), and the
stored decision must equal it, must have been made under the policy in force, and must be the
file the ledger's last ``decide`` event for the run recorded. Anything else raises
:class:`~tunegate.errors.IntegrityError` naming the first difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunegate.errors import InputError, IntegrityError
from tunegate.policy.schema import GatePolicy
from tunegate.provenance import sha256_file

DECISION_NAME = "decision.json"
EVIDENCE_NAME = "evidence.json"
#: keys decide_run adds beside the GateDecision fields
_EXTRA_KEYS = frozenset({"passed", "inputs"})


def _first_difference(stored: Any, recomputed: Any, path: str = "") -> str:
    if isinstance(stored, dict) and isinstance(recomputed, dict):
        for k in sorted(set(stored) | set(recomputed), key=str):
            if k not in stored:
                return f"{path}{k} is missing"
            if k not in recomputed:
                return f"{path}{k} is not part of a decision"
            if stored[k] != recomputed[k]:
                return _first_difference(stored[k], recomputed[k], f"{path}{k}.")
    if isinstance(stored, list) and isinstance(recomputed, list) and len(stored) == len(recomputed):
        for i, (a, b) in enumerate(zip(stored, recomputed, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}{i}.")
    s, r = json.dumps(stored)[:60], json.dumps(recomputed)[:60]
    return f"{path.rstrip('.') or 'decision'}: stored {s}, recomputed {r}"


def check_evidence_inputs(wd: Path, run_id: str, inputs: dict[str, str], epath: Path) -> None:
    """The evidence names the weights and hold-out manifest it scored (``tunegate evaluate``
    records both); when it does, they must be the ones in the workdir now."""
    from tunegate.provenance import digest_json, sha256_tree
    from tunegate.workdir import manifest_path, run_dir

    rd = run_dir(wd, run_id)
    want = inputs.get("tuned_artifact_digest")
    if want:
        artifact = next((rd / d for d in ("adapter", "model") if (rd / d).is_dir()), None)
        have = digest_json(sha256_tree(artifact)) if artifact is not None else ""
        if have != want:
            raise IntegrityError(
                f"{epath}: the evidence scored weights with digest {want[:16]}…, the run's weights now have "
                f"{have[:16] or 'none'}…: the weights were replaced after evaluation",
                hint="re-run `tunegate evaluate` and `tunegate decide`",
            )
    manifest = inputs.get("holdout_manifest_sha256")
    if manifest:
        mp = manifest_path(wd)
        have = sha256_file(mp) if mp.is_file() else ""
        if have != manifest:
            raise IntegrityError(
                f"{epath}: the evidence was scored on hold-out manifest {manifest[:16]}…, the workdir's is "
                f"{have[:16] or 'missing'}…"
            )


def verified_decision(workdir: str | Path, run_id: str, policy: GatePolicy) -> Any:
    """Recompute the run's decision from (policy, evidence); return it when the stored
    ``decision.json`` and the ledger's ``decide`` event agree with it, else raise IntegrityError."""
    from tunegate.approval.checkpoint import read_ledger
    from tunegate.evaluation.evidence import load_evidence
    from tunegate.policy.decide import decide
    from tunegate.workdir import run_dir

    wd = Path(workdir)
    rd = run_dir(wd, run_id)
    dpath, epath = rd / DECISION_NAME, rd / EVIDENCE_NAME
    for p in (dpath, epath):
        if p.is_symlink() or not p.is_file():
            raise IntegrityError(f"{p}: missing or not a regular file; the decision cannot be verified")
    try:
        evidence = load_evidence(epath)
    except InputError as exc:
        raise IntegrityError(f"the decision cannot be recomputed: {exc.message}") from None
    if evidence.run_id != run_id:
        raise IntegrityError(
            f"{epath}: the evidence is about run {evidence.run_id!r}, not {run_id!r}: "
            "evidence was transplanted"
        )
    check_evidence_inputs(wd, run_id, evidence.inputs, epath)
    recomputed = decide(policy, evidence)
    try:
        stored = json.loads(dpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{dpath}: not valid JSON ({exc})") from None
    if not isinstance(stored, dict):
        raise IntegrityError(f"{dpath}: a decision must be a JSON object")
    if stored.get("policy_digest") != policy.digest():
        raise IntegrityError(
            f"{dpath}: the decision was made under policy {stored.get('policy_digest')}, the policy in "
            f"force is {policy.digest()}",
            hint="re-run `tunegate decide WORKDIR` (and `tunegate report`) under the policy in force",
        )
    want = recomputed.model_dump(mode="json")
    want["passed"] = recomputed.passed
    got = {k: v for k, v in stored.items() if k != "inputs"}
    if got != want:
        raise IntegrityError(
            f"{dpath}: does not match the decision recomputed from evidence.json under the policy in force "
            f"({_first_difference(got, want)}): decision.json was edited",
            hint="re-run `tunegate decide WORKDIR`",
        )
    inputs = stored.get("inputs")
    if inputs is not None and (
        not isinstance(inputs, dict)
        or inputs.get("policy_digest") != policy.digest()
        or inputs.get("evidence_sha256") != sha256_file(epath)
    ):
        raise IntegrityError(
            f"{dpath}: 'inputs' do not name the evidence and policy the decision was made from"
        )
    events = [
        e
        for e in read_ledger(wd)
        if e.get("stage") == "decide" and (e.get("details") or {}).get("run_id") == run_id
    ]
    if not events:
        raise IntegrityError(
            f"{dpath}: the ledger has no `decide` event for run {run_id}: the decision was not made by "
            "`tunegate decide`",
            hint="re-run `tunegate decide WORKDIR`",
        )
    last = events[-1]
    digest = sha256_file(dpath)
    if (last.get("outputs") or {}).get("decision_sha256") != digest:
        raise IntegrityError(
            f"{dpath}: sha256 {digest[:16]}… is not the decision the ledger's last `decide` event "
            f"(entry {last.get('seq')}) recorded: decision.json was replaced",
            hint="re-run `tunegate decide WORKDIR`",
        )
    if last.get("config_digest") != policy.digest() or (last.get("details") or {}).get("verdict") != (
        recomputed.verdict
    ):
        raise IntegrityError(
            f"ledger entry {last.get('seq')}: the `decide` event does not record this verdict under the "
            "policy in force"
        )
    return recomputed


__all__ = ["verified_decision"]
