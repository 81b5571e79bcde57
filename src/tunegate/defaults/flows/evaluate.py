"""Prefect flow ``evaluate``: baseline vs tuned on the frozen hold-out, regression, and the decision.

    python flows/evaluate.py WORKDIR [--run RUN_ID] [--policy gates/default.yaml]

Thin over ``tunegate.evaluation.run.evaluate_run`` and ``decide_run``: scoring is batched inside
one task; the decision (a pure function of policy and evidence) is a second task so a re-run with
a changed policy needs no re-scoring.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate.evaluation.run import decide_run, evaluate_run
from tunegate.policy.pinned import resolve_policy


@task(name="score-holdout")
def score(workdir: str, run_id: str | None, policy_path: str | None) -> str:
    evidence = evaluate_run(workdir, run_id=run_id, policy=resolve_policy(workdir, policy_path))
    return str(evidence.run_id)


@task(name="decide")
def gate(workdir: str, run_id: str, policy_path: str | None) -> dict[str, Any]:
    return decide_run(workdir, run_id=run_id, policy=resolve_policy(workdir, policy_path)).model_dump(
        mode="json"
    )


@flow(name="evaluate")
def evaluate_flow(workdir: str, run_id: str | None = None, policy_path: str | None = None) -> dict[str, Any]:
    """Score, decide, and publish the decision's reasons; returns decision.json's content."""
    rid = score(workdir, run_id, policy_path)
    decision = gate(workdir, rid, policy_path)
    lines = [f"# gate decision for `{rid}`: {decision['verdict'].upper()}", ""]
    lines += [f"- {r}" for r in decision.get("reasons", [])]
    create_markdown_artifact(key="gate-decision", markdown="\n".join(lines), description="tunegate decision")
    get_run_logger().info("decision for %s: %s", rid, decision["verdict"])
    return decision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("--run", default=None)
    ap.add_argument("--policy", default=None)
    args = ap.parse_args()
    decision = evaluate_flow(args.workdir, args.run, args.policy)
    raise SystemExit(0 if decision["verdict"] == "pass" else 1)


if __name__ == "__main__":
    main()
