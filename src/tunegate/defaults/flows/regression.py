"""Prefect flow ``regression-recheck``: re-score the promoted adapter on the frozen hold-out, weekly.

    python flows/regression.py WORKDIR [--run RUN_ID] [--registry DIR] [--policy gates/default.yaml]

Why re-run a finished evaluation: the hold-out file may have been tampered with (the manifest is
re-verified), the policy may have gained regression tasks or tighter thresholds, and library
upgrades may have changed scores. The recheck answers "would the promoted adapter still pass today".

It must not touch what the reviewers signed: ``runs/<id>/evidence.json`` and ``decision.json`` are
covered by the approval signatures, so rewriting them would break ``tunegate verify`` for the
promoted run. The re-evaluation therefore runs in a scratch workdir,
``WORKDIR/rechecks/<run_id>-<time>/``, that *links* the frozen data, the weights and the baseline
cache (read-only use; baselines are a cache keyed by digests) and *copies* ``run.json`` and
``config.json``. Scoring and the decision are ``tunegate.evaluation.run.evaluate_run`` and
``decide_run`` unchanged; the flow appends one ``regression-recheck`` event (digests and verdicts
only) to the real workdir's ledger and publishes the decision as a markdown artifact.

A failing recheck is a result (``verdict: fail``), not a failed flow run; with nothing promoted yet
the flow completes with ``skipped: true``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate import ledger
from tunegate.drift.report import find_promotion
from tunegate.errors import InputError
from tunegate.evaluation.run import decide_run, evaluate_run
from tunegate.policy.schema import load_policy
from tunegate.provenance import sha256_file

RECHECKS_DIR = "rechecks"
_COPIED = ("run.json", "config.json")
_LINKED_RUN = ("adapter", "model")
_LINKED_WORKDIR = ("data", "baselines", "cache")


def _scratch_workdir(workdir: Path, run_id: str) -> Path:
    """A workdir whose run folder is a fresh copy: evaluation output lands here, not in the signed run."""
    src_run = workdir / "runs" / run_id
    if not (src_run / "run.json").is_file():
        raise InputError("the promoted run is not in this workdir", path=src_run)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    scratch = workdir / RECHECKS_DIR / f"{run_id}-{stamp}"
    run_dir = scratch / "runs" / run_id
    run_dir.mkdir(parents=True)
    for name in _LINKED_WORKDIR:
        target = workdir / name
        if name != "data":
            target.mkdir(exist_ok=True)  # caches: created here so the scratch run fills the real one
        if target.exists():
            os.symlink(target.resolve(), scratch / name, target_is_directory=True)
    for name in _COPIED:
        if (src_run / name).is_file():
            shutil.copy2(src_run / name, run_dir / name)
    for name in _LINKED_RUN:
        if (src_run / name).is_dir():
            os.symlink((src_run / name).resolve(), run_dir / name, target_is_directory=True)
    if (src_run / "human").is_dir():  # human evaluation evidence is an input to the evidence file
        shutil.copytree(src_run / "human", run_dir / "human")
    return scratch


@task(name="recheck-score-and-decide")
def recheck(workdir: str, run_id: str, policy_path: str | None) -> dict[str, Any]:
    """Score and decide in a scratch workdir (batched inside this one task)."""
    wd = Path(workdir)
    policy = load_policy(policy_path)
    scratch = _scratch_workdir(wd, run_id)
    evaluate_run(scratch, run_id=run_id, policy=policy)
    decision = decide_run(scratch, run_id=run_id, policy=policy).model_dump(mode="json")
    new_dir = scratch / "runs" / run_id
    original = wd / "runs" / run_id / "decision.json"
    original_verdict = (
        json.loads(original.read_text(encoding="utf-8")).get("verdict") if original.is_file() else None
    )
    result = {
        "run_id": run_id,
        "verdict": decision["verdict"],
        "reasons": list(decision.get("reasons", [])),
        "original_verdict": original_verdict,
        "changed": original_verdict is not None and original_verdict != decision["verdict"],
        "scratch": str(scratch),
        "evidence": str(new_dir / "evidence.json"),
        "decision": str(new_dir / "decision.json"),
    }
    rel = scratch.relative_to(wd).as_posix()
    ledger.append_event(
        wd,
        "regression-recheck",
        inputs={
            f"runs/{run_id}/run.json": sha256_file(wd / "runs" / run_id / "run.json"),
            "data/holdout.manifest.json": sha256_file(wd / "data" / "holdout.manifest.json"),
        },
        outputs={
            f"{rel}/runs/{run_id}/evidence.json": sha256_file(new_dir / "evidence.json"),
            f"{rel}/runs/{run_id}/decision.json": sha256_file(new_dir / "decision.json"),
        },
        config_digest=policy.digest(),
        details={
            "run_id": run_id,
            "verdict": result["verdict"],
            "original_verdict": original_verdict,
            "changed": result["changed"],
        },
    )
    return result


@flow(name="regression-recheck")
def regression_recheck_flow(
    workdir: str,
    run_id: str | None = None,
    registry: str | None = None,
    policy_path: str | None = None,
) -> dict[str, Any]:
    """Re-evaluate the promoted run (or ``run_id``) against today's policy; returns the new decision."""
    log = get_run_logger()
    wd = Path(workdir)
    if not wd.is_dir():
        raise InputError("the workdir does not exist", path=wd)
    rid = run_id
    if rid is None:
        promotion = find_promotion(wd, registry)
        if promotion.status != "promoted" or not promotion.run_id:
            log.warning("no promoted adapter in %s: nothing to re-evaluate", wd)
            return {"skipped": True, "reason": f"no promoted adapter ({promotion.summary})"}
        rid = promotion.run_id
    result = recheck(workdir, rid, policy_path)
    lines = [
        f"# regression recheck of `{rid}`: {result['verdict'].upper()}",
        "",
        f"- verdict at promotion: {result['original_verdict'] or 'unknown'}"
        + ("  **(CHANGED)**" if result["changed"] else ""),
        f"- evidence: `{result['evidence']}`",
        "",
        *(f"- {r}" for r in result["reasons"]),
    ]
    create_markdown_artifact(
        key="regression-recheck",
        markdown="\n".join(lines),
        description=f"tunegate recheck: {result['verdict']}",
    )
    log.info("recheck of %s: %s (at promotion: %s)", rid, result["verdict"], result["original_verdict"])
    return {"skipped": False, **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("--run", default=None)
    ap.add_argument("--registry", default=None)
    ap.add_argument("--policy", default=None)
    args = ap.parse_args()
    result = regression_recheck_flow(args.workdir, args.run, args.registry, args.policy)
    raise SystemExit(0 if result.get("skipped") or result["verdict"] == "pass" else 1)


if __name__ == "__main__":
    main()
