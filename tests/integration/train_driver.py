"""Run ``train_run`` in one process of a ``torchrun`` launch (tests/integration/test_train_distributed.py).

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node N train_driver.py JSON``
where JSON holds workdir, model, method, config and optionally resume and crash_at (a step
after whose checkpoint every process exits with status 3, like a preempted job).
"""

from __future__ import annotations

import json
import sys

from tunegate.training.config import TrainConfig
from tunegate.training.train import train_run


def main() -> None:
    args = json.loads(sys.argv[1])

    def on_step(step: int, loss: float) -> None:
        if args.get("crash_at") == step:
            raise SystemExit(3)

    result = train_run(
        args["workdir"],
        model=args["model"],
        method=args["method"],
        config=TrainConfig.model_validate(args["config"]),
        progress=False,
        resume=args.get("resume"),
        on_step=on_step,
    )
    print(f"rank {result.rank} run {result.run_id}", flush=True)


if __name__ == "__main__":
    main()
