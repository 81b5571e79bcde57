"""Prefect's share of a gate-run's wall time, measured in one run.

The same config runs twice into fresh workdirs: once as plain calls of the library's stage
functions (``tunegate.pipeline.stage_*``), once as the ``gate-run`` flow on Prefect's ephemeral
local server (server start included). Overhead share = (flow - direct) / flow. Record-level work
is batched inside the stage tasks, so the overhead should be the server start plus a few task
state transitions, independent of the data size.

    python bench/prefect_overhead.py [--rows 230] [--out bench/results/prefect_overhead.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from tunegate import pipeline as P
from tunegate.provenance import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))
POLICY = """\
version: 1
name: bench-prefect-overhead
evaluation:
  generation_metrics: [rouge_l]
  regression_tasks: [tunegate_tiny_stories]
  bootstrap_samples: 300
  max_new_tokens: 24
"""


def direct(cfg: P.GateRunConfig) -> float:
    t = time.perf_counter()
    if P.stage_prepare(cfg)["passed"]:
        P.stage_baseline(cfg)
        run_id = P.stage_train(cfg)["run_id"]
        P.stage_evaluate(cfg, run_id)
        P.stage_decide(cfg, run_id)
        P.stage_report(cfg, run_id)
        P.check_approval(cfg, run_id)
    return time.perf_counter() - t


def via_flow(cfg: P.GateRunConfig) -> float:
    spec = importlib.util.spec_from_file_location("gate_run", REPO / "flows" / "gate_run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = time.perf_counter()
    mod.gate_run_flow(cfg)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=230)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "prefect_overhead.json"))
    args = ap.parse_args()
    os.environ.setdefault("TUNEGATE_PII_KEY", "bench-key-0123456789abcdef0123456789")
    tmp = Path(tempfile.mkdtemp(prefix="tg-overhead-"))
    rows = json.loads((SHARED / "data" / "alpaca_demo" / "alpaca_en_demo.json").read_text())[: args.rows]
    data = tmp / "alpaca.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp / "policy.yaml").write_text(POLICY, encoding="utf-8")
    base = {
        "data": str(data),
        "task": "instruction",
        "model": str(SHARED / "models" / "stories260k"),
        "method": "lora",
        "policy": str(tmp / "policy.yaml"),
        "train_overrides": ["max_steps=24", "max_seq_len=128", "batch_size=8"],
    }
    # Warm-up first (imports, spaCy, GX context, model files in the page cache), then alternate
    # the two sides and keep each side's best, so neither pays the other's first-run costs.
    direct(P.GateRunConfig(**base, workdir=str(tmp / "warmup")))
    directs, flows = [], []
    for i in range(args.repeats):
        flows.append(via_flow(P.GateRunConfig(**base, workdir=str(tmp / f"flow{i}"))))
        directs.append(direct(P.GateRunConfig(**base, workdir=str(tmp / f"direct{i}"))))
    t_direct, t_flow = min(directs), min(flows)
    result = {
        "direct_runs_s": [round(t, 2) for t in directs],
        "flow_runs_s": [round(t, 2) for t in flows],
        "direct_s": round(t_direct, 2),
        "flow_s": round(t_flow, 2),
        "overhead_s": round(t_flow - t_direct, 2),
        "overhead_share": round((t_flow - t_direct) / t_flow, 4),
        "config": {**base, "rows": args.rows},
        "note": "best of the repeats after one warm-up; flow time includes starting Prefect's "
        "ephemeral local server",
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
