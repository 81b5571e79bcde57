"""Prefect flow ``gate-run``: raw data to promoted adapter in one flow.

    prepare -> baseline -> train -> evaluate -> decide -> report -> wait for approval -> promote

One typed parameter (``tunegate.pipeline.GateRunConfig``, a pydantic model, so the Prefect UI
shows it as a form). Every stage is a task over a library function keyed by the digests of its
inputs: a re-run verifies and skips completed stages; a crashed stage re-runs (training resumes
from its last checkpoint). The workdir lock makes a second gate-run on the same workdir fail fast.

    tunegate run gates/demo-run.yaml          # or: python flows/gate_run.py CONFIG.yaml
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate.pipeline import (
    GateRunConfig,
    load_gate_run_config,
    stage_baseline,
    stage_decide,
    stage_evaluate,
    stage_prepare,
    stage_promote,
    stage_report,
    stage_train,
)
from tunegate.pipeline import wait_for_approval as await_signatures
from tunegate.policy.pinned import resolve_policy
from tunegate.workdir import workdir_lock


@task(name="prepare")
def prepare(cfg: GateRunConfig) -> dict[str, Any]:
    return stage_prepare(cfg)


@task(name="baseline")
def baseline(cfg: GateRunConfig) -> dict[str, Any]:
    return stage_baseline(cfg)


@task(name="train")
def train(cfg: GateRunConfig) -> dict[str, Any]:
    return stage_train(cfg)


@task(name="evaluate")
def evaluate(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    return stage_evaluate(cfg, run_id)


@task(name="decide")
def decide(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    return stage_decide(cfg, run_id)


@task(name="report")
def report(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    return stage_report(cfg, run_id)


@task(name="wait-for-approval")
def wait_for_approval(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    """Until the policy's m-of-n is met, a reviewer rejects, or ``approval_timeout_s`` passes."""
    log = get_run_logger()
    return await_signatures(
        cfg.workdir,
        run_id,
        policy=resolve_policy(cfg.workdir, cfg.policy),
        approvers_dir=cfg.approvers_dir,
        timeout_s=cfg.approval_timeout_s,
        poll_s=cfg.approval_poll_s,
        on_wait=lambda status: log.info("awaiting signatures: %s", status["reasons"]),
    )


@task(name="promote")
def promote(cfg: GateRunConfig, run_id: str) -> dict[str, Any]:
    return stage_promote(cfg, run_id)


@flow(name="gate-run")
def gate_run_flow(config: GateRunConfig) -> dict[str, Any]:
    """The whole gate for one config. Returns every stage's result and where it stopped."""
    log = get_run_logger()
    out: dict[str, Any] = {"workdir": config.workdir}
    # One gate-run per workdir: a concurrent second run fails fast with a clear lock message.
    with workdir_lock(config.workdir + "/pipeline", stage="gate-run"):
        out["prepare"] = prepare(config)
        if not out["prepare"]["passed"]:
            out["stopped_at"] = "prepare"
            log.warning("data gate failed: %s", out["prepare"]["reasons"])
            return out
        out["baseline"] = baseline(config)
        out["train"] = train(config)
        run_id = out["train"]["run_id"]
        out["run_id"] = run_id
        out["evaluate"] = evaluate(config, run_id)
        out["decide"] = decide(config, run_id)
        out["report"] = report(config, run_id)
        lines = [f"# gate-run `{run_id}`: {'PASS' if out['decide']['passed'] else 'FAIL'}", ""]
        lines += [f"- {r}" for r in out["decide"]["reasons"]]
        create_markdown_artifact(key="gate-decision", markdown="\n".join(lines), description="tunegate gate")
        out["approval"] = wait_for_approval(config, run_id)
        if not out["approval"]["approved"]:
            out["stopped_at"] = "approval"
            log.info("waiting for reviewers: %s", out["approval"]["reasons"])
            return out
        out["promote"] = promote(config, run_id)
        out["stopped_at"] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    args = ap.parse_args()
    result = gate_run_flow(load_gate_run_config(args.config))
    raise SystemExit(0 if result.get("stopped_at") is None else 1)


if __name__ == "__main__":
    main()
