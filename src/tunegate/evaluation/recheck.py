"""Re-score a promoted run on the frozen hold-out under today's policy, without touching what was signed.

Why re-run a finished evaluation: the hold-out file may have been tampered with (the manifest is
re-verified), the policy may have gained regression tasks or tighter thresholds, and library
upgrades may have changed scores. The recheck answers "would the promoted adapter still pass today".

It must not touch what the reviewers signed: ``runs/<id>/evidence.json`` and ``decision.json`` are
covered by the approval signatures, so rewriting them would break ``tunegate verify`` for the
promoted run. The re-evaluation therefore runs in a scratch workdir,
``WORKDIR/rechecks/<run_id>-<time>/``, that *links* the frozen data, the weights and the baseline
cache (read-only use; baselines are a cache keyed by digests) and *copies* ``run.json`` and
``config.json``. Scoring and the decision are :func:`evaluate_run` and :func:`decide_run`
unchanged; one ``regression-recheck`` event (digests and verdicts only) goes to the real
workdir's ledger. The Prefect flow ``regression-recheck`` (``flows/regression.py``) wires this.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tunegate import ledger
from tunegate.errors import InputError
from tunegate.evaluation.run import decide_run, evaluate_run
from tunegate.provenance import sha256_file
from tunegate.workdir import data_dir, manifest_path, run_dir

RECHECKS_DIR = "rechecks"
_COPIED = ("run.json", "config.json")
_LINKED_RUN = ("adapter", "model")
_LINKED_WORKDIR = ("data", "baselines", "cache")


def scratch_workdir(workdir: str | Path, run_id: str) -> Path:
    """A workdir whose run folder is a fresh copy: evaluation output lands here, not in the signed run."""
    wd = Path(workdir)
    src_run = run_dir(wd, run_id)
    if not (src_run / "run.json").is_file():
        raise InputError("the promoted run is not in this workdir", path=src_run)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    scratch = wd / RECHECKS_DIR / f"{run_id}-{stamp}"
    new_run = run_dir(scratch, run_id)
    new_run.mkdir(parents=True)
    for name in _LINKED_WORKDIR:
        target = data_dir(wd) if name == "data" else wd / name
        if name != "data":
            target.mkdir(exist_ok=True)  # caches: created here so the scratch run fills the real one
        if target.exists():
            os.symlink(target.resolve(), scratch / name, target_is_directory=True)
    for name in _COPIED:
        if (src_run / name).is_file():
            shutil.copy2(src_run / name, new_run / name)
    for name in _LINKED_RUN:
        if (src_run / name).is_dir():
            os.symlink((src_run / name).resolve(), new_run / name, target_is_directory=True)
    if (src_run / "human").is_dir():  # human evaluation evidence is an input to the evidence file
        shutil.copytree(src_run / "human", new_run / "human")
    # a copy of the ledger: the verified split reader checks data/ against its `prepare` event, and
    # the scratch evaluation's own events must not land in the real ledger
    from tunegate.ledger import ledger_path

    if ledger_path(wd).is_file():
        ledger_path(scratch).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ledger_path(wd), ledger_path(scratch))
    return scratch


def recheck_run(workdir: str | Path, run_id: str, policy: Any) -> dict[str, Any]:
    """Score and decide ``run_id`` again in a scratch workdir; ledger the outcome in ``workdir``.

    Returns the verdict, its reasons, the verdict at promotion and whether it changed, and where
    the new evidence and decision are. A failing recheck is a result, not an exception.
    """
    wd = Path(workdir)
    scratch = scratch_workdir(wd, run_id)
    evaluate_run(scratch, run_id=run_id, policy=policy)
    decision = decide_run(scratch, run_id=run_id, policy=policy).model_dump(mode="json")
    new_dir = run_dir(scratch, run_id)
    original = run_dir(wd, run_id) / "decision.json"
    original_verdict = (
        json.loads(original.read_text(encoding="utf-8")).get("verdict") if original.is_file() else None
    )
    changed = original_verdict is not None and original_verdict != decision["verdict"]
    rel = scratch.relative_to(wd).as_posix()
    ledger.append_event(
        wd,
        "regression-recheck",
        inputs={
            f"runs/{run_id}/run.json": sha256_file(run_dir(wd, run_id) / "run.json"),
            "data/holdout.manifest.json": sha256_file(manifest_path(wd)),
        },
        outputs={
            f"{rel}/runs/{run_id}/evidence.json": sha256_file(new_dir / "evidence.json"),
            f"{rel}/runs/{run_id}/decision.json": sha256_file(new_dir / "decision.json"),
        },
        config_digest=policy.digest(),
        details={
            "run_id": run_id,
            "verdict": decision["verdict"],
            "original_verdict": original_verdict,
            "changed": changed,
        },
    )
    return {
        "run_id": run_id,
        "verdict": decision["verdict"],
        "reasons": list(decision.get("reasons", [])),
        "original_verdict": original_verdict,
        "changed": changed,
        "scratch": str(scratch),
        "evidence": str(new_dir / "evidence.json"),
        "decision": str(new_dir / "decision.json"),
    }
