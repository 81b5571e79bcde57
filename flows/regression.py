"""Prefect flow ``regression-recheck``: re-score the promoted adapter on the frozen hold-out, weekly.

    python flows/regression.py WORKDIR [--run RUN_ID] [--registry DIR] [--policy gates/default.yaml]

Wiring only: :func:`tunegate.evaluation.recheck.recheck_run` scores and decides in a scratch
workdir (``WORKDIR/rechecks/<run_id>-<time>/``; the signed evidence is never rewritten) and ledgers
a ``regression-recheck`` event; this flow finds the promoted run, calls it in one task and
publishes the decision as a markdown artifact.

A failing recheck is a result (``verdict: fail``), not a failed flow run; with nothing promoted yet
the flow completes with ``skipped: true``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate.drift.report import find_promotion
from tunegate.errors import InputError
from tunegate.evaluation.recheck import recheck_run
from tunegate.policy.pinned import resolve_policy


@task(name="recheck-score-and-decide")
def recheck(workdir: str, run_id: str, policy_path: str | None) -> dict[str, Any]:
    """Score and decide in a scratch workdir (batched inside this one task)."""
    return recheck_run(workdir, run_id, resolve_policy(workdir, policy_path))


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
