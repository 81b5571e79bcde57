"""Prefect flow ``prepare-data``: the data gate, thin over ``tunegate.data.prepare``.

Run it locally with no setup (Prefect starts its ephemeral local server)::

    python flows/prepare.py src/tunegate/assets/demo_tickets.jsonl --task classification --out demo-out

The data report is published as a Prefect markdown artifact. Record-level work (reading,
anonymizing, validating) is batched inside the one task; there is no task per record.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate.data.prepare import prepare_data, render_data_report_md
from tunegate.policy.pinned import resolve_policy


@task(name="data-gate")
def data_gate(
    data: str, task_kind: str, out: str, policy_path: str | None, fields: dict[str, str] | None
) -> dict[str, Any]:
    result = prepare_data(data, task_kind, out, policy=resolve_policy(out, policy_path), fields=fields)
    return result.report


@flow(name="prepare-data")
def prepare_data_flow(
    data: str,
    task_kind: str = "classification",
    out: str = "workdir",
    policy_path: str | None = None,
    fields: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the data gate and publish its report; returns the data report (verdict and checks)."""
    logger = get_run_logger()
    report = data_gate(data, task_kind, out, policy_path, fields)
    create_markdown_artifact(
        key="data-report",
        markdown=render_data_report_md(report),
        description=f"tunegate data gate: {report['verdict']}",
    )
    # Figures only: the report holds counts and digests, never record text.
    logger.info("data gate %s: %s", report["verdict"], {k: report["sizes"][k] for k in ("train", "holdout")})
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--task", default="classification")
    ap.add_argument("--out", required=True)
    ap.add_argument("--policy", default=None)
    ap.add_argument("--field", action="append", default=[], help="NAME=COLUMN")
    args = ap.parse_args()
    fields = dict(f.split("=", 1) for f in args.field) or None
    report = prepare_data_flow(args.data, args.task, str(Path(args.out)), args.policy, fields)
    raise SystemExit(0 if report["verdict"] == "pass" else 1)


if __name__ == "__main__":
    main()
