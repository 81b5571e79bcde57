"""Prefect flow ``approve``: report, wait for reviewers' signatures, verify, promote.

    python flows/approve.py WORKDIR --registry DIR     (or deploy the flow and run it)

Wiring only: the report is ``tunegate.approval.report.write_report`` (rendered only when absent:
re-rendering would change the bytes reviewers sign); the wait is ``tunegate.pipeline.
wait_for_approval``, the same one the ``gate-run`` flow uses (reviewers run ``tunegate sign``; the
flow re-verifies every ``poll_interval_s`` until the policy's m-of-n is met, a reviewer rejects, or
``timeout_s`` passes); the promotion is ``tunegate.pipeline.promote_run``, the gate-run's too.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger, task

from tunegate.approval.report import write_report
from tunegate.pipeline import promote_run
from tunegate.pipeline import wait_for_approval as await_signatures
from tunegate.policy.pinned import resolve_policy
from tunegate.workdir import resolve_run, run_dir


@task(name="render-report")
def render_report(workdir: str, run_id: str, policy_path: str | None, registry: str | None = None) -> bool:
    """Render only when absent: re-rendering would change the bytes reviewers sign. With a
    registry, the report compares the run with the version in production."""
    if (run_dir(workdir, run_id) / "report.html").is_file():
        return False
    write_report(workdir, policy=resolve_policy(workdir, policy_path), run_id=run_id, registry=registry)
    return True


@task(name="wait-for-approval")
def wait_for_approval(
    workdir: str,
    run_id: str,
    policy_path: str | None,
    approvers: str | None,
    timeout_s: float,
    poll_interval_s: float,
) -> dict[str, Any]:
    log = get_run_logger()
    return await_signatures(
        workdir,
        run_id,
        policy=resolve_policy(workdir, policy_path),
        approvers_dir=approvers,
        timeout_s=timeout_s,
        poll_s=poll_interval_s,
        on_wait=lambda status: log.info("awaiting signatures for %s: %s", run_id, status["reasons"]),
    )


@task(name="promote")
def promote(
    workdir: str, run_id: str, registry: str, policy_path: str | None, approvers: str | None
) -> dict[str, Any]:
    return promote_run(
        workdir, registry, run_id, policy=resolve_policy(workdir, policy_path), approvers_dir=approvers
    )


@flow(name="approve")
def approve(
    workdir: str,
    registry: str,
    run_id: str | None = None,
    policy_path: str | None = None,
    approvers: str | None = None,
    timeout_s: float = 3600,
    poll_interval_s: float = 10,
) -> dict[str, Any]:
    """Await the reviewers' signatures, then verify and promote."""
    rid = resolve_run(workdir, run_id)
    render_report(workdir, rid, policy_path, registry)
    status = wait_for_approval(workdir, rid, policy_path, approvers, timeout_s, poll_interval_s)
    if not status["approved"]:
        get_run_logger().info("run %s not promoted: %s", rid, status["reasons"])
        return {"run_id": rid, "promoted": False, "reasons": status["reasons"]}
    return {"run_id": rid, **promote(workdir, rid, registry, policy_path, approvers)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("--registry", required=True)
    ap.add_argument("--run", default=None)
    ap.add_argument("--policy", default=None)
    ap.add_argument("--approvers", default=None)
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    result = approve(args.workdir, args.registry, args.run, args.policy, args.approvers, args.timeout)
    raise SystemExit(0 if result["promoted"] else 1)


if __name__ == "__main__":
    main()
