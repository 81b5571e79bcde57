"""Prefect flow ``drift-check``: production prompts vs the training distribution, nightly.

    python flows/drift.py WORKDIR --current prompts.jsonl [--policy gates/default.yaml]

Thin over ``tunegate.drift.check.check_drift``: it writes the report (``WORKDIR/drift/<time>/``),
marks the hold-out as no longer representative on drift, and appends a ledger event. The flow
publishes the report as a markdown artifact and returns the drift flag. Drift is a *result*, so
the flow run completes either way; alert on the returned ``drifted`` (or the artifact) with a
Prefect automation, not on a failed run. Bad input (missing workdir or prompts file) fails the run.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate.drift.check import check_drift, load_drift_policy


@task(name="drift-checks")
def run_checks(
    reference: str, current: str, policy_path: str | None, registry: str | None, out: str | None
) -> dict[str, Any]:
    """All drift statistics in one task: embedding and classifier work is batched, not per prompt."""
    drift_policy, gate_digest = load_drift_policy(policy_path, reference)
    outcome = check_drift(
        reference,
        current,
        policy=drift_policy,
        out=out,
        registry=registry,
        gate_policy_digest=gate_digest,
    )
    report = outcome.report
    return {
        "drifted": report.drifted,
        "alarms": list(report.alarms),
        "report": str(outcome.files["json"]),
        "report_md": str(outcome.files["markdown"]),
        "marker": str(outcome.marker) if outcome.marker else None,
        "promotion": report.promotion.summary,
        "ledger_seq": outcome.ledger_seq,
    }


@flow(name="drift-check")
def drift_check_flow(
    reference: str,
    current: str,
    policy_path: str | None = None,
    registry: str | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Compare ``current`` prompts with ``reference``'s training split.

    Returns the drift flag, the alarms and the report's path.
    """
    result = run_checks(reference, current, policy_path, registry, out)
    with open(result["report_md"], encoding="utf-8") as fh:
        markdown = fh.read()
    create_markdown_artifact(
        key="drift-report",
        markdown=markdown,
        description="tunegate drift: "
        + ("DRIFT " + ", ".join(result["alarms"]) if result["drifted"] else "ok"),
    )
    get_run_logger().info(
        "drift check: %s (alarms: %s); report %s",
        "DRIFT" if result["drifted"] else "ok",
        result["alarms"] or "none",
        result["report"],
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", help="the prepared workdir (holds data/train.jsonl)")
    ap.add_argument("--current", required=True, help="production prompts (JSONL or CSV)")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--registry", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result = drift_check_flow(args.reference, args.current, args.policy, args.registry, args.out)
    raise SystemExit(1 if result["drifted"] else 0)


if __name__ == "__main__":
    main()
