"""Prefect flow ``train``: one training run, thin over ``tunegate.training.train_run``.

    python flows/train.py WORKDIR --model PATH --method lora [--config gates/training/lora-default.yaml]

Training is one task: steps are batched inside it, never a task per step. The run id and its
metrics are published as a Prefect artifact; the run record itself is WORKDIR/runs/<id>/run.json.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tunegate.training.config import load_run_config
from tunegate.training.train import train_run


@task(name="train-run")
def run_training(
    workdir: str, model: str, method: str, config_path: str | None, overrides: list[str]
) -> dict[str, Any]:
    cfg = load_run_config(config_path, overrides) if (config_path or overrides) else None
    result = train_run(workdir, model=model, method=method, config=cfg, progress=False)
    return {"run_id": result.run_id, "run_dir": str(result.run_dir), "metrics": result.metrics}


@flow(name="train")
def train_flow(
    workdir: str,
    model: str,
    method: str = "lora",
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train on WORKDIR/data (refuses hold-out records) and return the run id and metrics."""
    out = run_training(workdir, model, method, config_path, list(overrides or []))
    metrics = {k: v for k, v in out["metrics"].items() if isinstance(v, (int, float, str))}
    create_markdown_artifact(
        key="train-run",
        markdown="\n".join(
            [f"# run `{out['run_id']}`", "", *(f"- {k}: {v}" for k, v in sorted(metrics.items()))]
        ),
        description=f"tunegate {method} run",
    )
    get_run_logger().info("run %s finished", out["run_id"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("--model", required=True)
    ap.add_argument("--method", default="lora")
    ap.add_argument("--config", default=None)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    print(train_flow(args.workdir, args.model, args.method, args.config, args.overrides)["run_id"])


if __name__ == "__main__":
    main()
