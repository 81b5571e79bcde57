"""Prefect flow ``approve``: report, pause for reviewers' signatures, verify, promote.

    python -m flows.approve WORKDIR --registry DIR     (or deploy the flow and run it)

Sequencing only: every decision is made by ``tunegate.approval`` (report, verify, promote).
The flow renders the report if it is missing, then pauses (``pause_flow_run``) until reviewers
have written their signatures with ``tunegate sign`` and someone resumes the run
(``prefect flow-run resume ID``). After each resume it re-verifies; a rejection ends the flow,
too few approvals pause it again, an integrity failure fails it. When the policy is met it promotes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.flow_runs import pause_flow_run

from tunegate.approval import artifacts
from tunegate.approval.promote import promote
from tunegate.approval.report import write_report
from tunegate.approval.verify import verify_run
from tunegate.policy.schema import load_policy


@task(name="render-report")
def render_report(workdir: str, run_id: str, policy_path: str | None) -> bool:
    """Render only when absent: re-rendering would change the bytes reviewers sign."""
    if (artifacts.run_dir(workdir, run_id) / "report.html").is_file():
        return False
    write_report(workdir, policy=load_policy(policy_path), run_id=run_id)
    return True


@task(name="approval-status")
def approval_status(
    workdir: str, run_id: str, policy_path: str | None, approvers: str | None
) -> dict[str, Any]:
    res = verify_run(workdir, policy=load_policy(policy_path), run_id=run_id, approvers_dir=approvers)
    return {
        "approved": res.approved,
        "reasons": res.reasons,
        "signatures": len(res.approvals),
        "rejected": any(a.decision == "reject" for a in res.approvals),
    }


@task(name="promote")
def promote_run(
    workdir: str, run_id: str, registry: str, policy_path: str | None, approvers: str | None
) -> dict[str, Any]:
    e = promote(workdir, registry, policy=load_policy(policy_path), run_id=run_id, approvers_dir=approvers)
    return {"name": e.name, "version": e.version, "path": str(e.path), "approval_digest": e.approval_digest}


@flow(name="approve")
def approve(
    workdir: str,
    registry: str,
    run_id: str | None = None,
    policy_path: str | None = None,
    approvers: str | None = None,
    pause_timeout_s: int = 3600,
    poll_interval_s: int = 10,
    max_rounds: int = 5,
) -> dict[str, Any]:
    """Await the reviewers' signatures (paused), then verify and promote."""
    log = get_run_logger()
    rid = artifacts.resolve_run(workdir, run_id)
    render_report(workdir, rid, policy_path)
    for round_no in range(1, max_rounds + 1):
        status = approval_status(workdir, rid, policy_path, approvers)
        if status["approved"]:
            break
        if status["rejected"]:
            log.info("run %s rejected: %s", rid, status["reasons"])
            return {"run_id": rid, "promoted": False, "reasons": status["reasons"]}
        log.info("awaiting signatures for %s (round %d): %s", rid, round_no, status["reasons"])
        pause_flow_run(
            timeout=pause_timeout_s, poll_interval=poll_interval_s, key=f"await-signatures-{round_no}"
        )
    else:
        return {"run_id": rid, "promoted": False, "reasons": status["reasons"]}
    entry = promote_run(workdir, rid, registry, policy_path, approvers)
    return {"run_id": rid, "promoted": True, **entry}


if __name__ == "__main__":
    wd = Path(sys.argv[1])
    reg = sys.argv[sys.argv.index("--registry") + 1] if "--registry" in sys.argv else str(wd / "registry")
    print(approve(str(wd), reg))
