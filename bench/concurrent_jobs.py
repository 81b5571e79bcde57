"""Two training processes on one machine: each must finish within 2.5x its solo time.

    python bench/concurrent_jobs.py [--steps 40] [--model PATH] [--no-naive]
                                    [--out bench/results/concurrent.json]

Each job is a real ``tunegate train`` process (stories260k LoRA on the first 96 short
alpaca_demo records, its own workdir, progress off). Phases, in one run:

1. solo: job A alone, then job B alone (identical work; the pair shows the machine's noise);
2. sized: A and B started together, as tunegate sizes them (each process registers itself,
   sees the other and takes half the cores; idle OpenMP threads sleep: ``OMP_WAIT_POLICY=PASSIVE``);
3. naive (unless ``--no-naive``): A and B together the way every process ran before the fix:
   ``TUNEGATE_THREADS`` = all cores each, spinning OpenMP threads (``OMP_WAIT_POLICY=ACTIVE``),
   stopped at 6x the solo time.

(Not named ``concurrent.py``: a script in bench/ by that name would shadow the standard library's
``concurrent`` package for every other script in the folder.)

Reported per job: wall time of the whole process (start-up included, as a user waits for it), the
training time from run.json, and concurrent / solo ratios; the goal is ratio <= 2.5 for every
sized job. The registry of running stages lives in a private folder (``TUNEGATE_RUNTIME_DIR``),
so other tunegate processes on the machine do not change the thread counts measured here; the
load average before and after is recorded because the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))
GOAL = 2.5


def _make_workdir(n: int, root: Path) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from train import make_workdir  # bench/train.py: the same data as the speed benchmark
    finally:
        sys.path.pop(0)
    return make_workdir(n, root)


def _command(wd: Path, model: str, steps: int) -> list[str]:
    sets = {
        "max_steps": steps,
        "batch_size": 8,
        "max_seq_len": 512,
        "learning_rate": 3e-3,
        "eval_steps": 10_000,
        "lora.rank": 16,
        "lora.dropout": 0.0,
    }
    cmd = [
        sys.executable,
        "-m",
        "tunegate.cli",
        "train",
        str(wd),
        "--model",
        model,
        "--method",
        "lora",
        "--quiet",
    ]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def _env(runtime: Path, naive: bool) -> dict[str, str]:
    drop = ("TUNEGATE_THREADS", "TUNEGATE_CPU_THREADS", "TUNEGATE_CONCURRENT_STAGES", "OMP_WAIT_POLICY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["TUNEGATE_RUNTIME_DIR"] = str(runtime)
    env["PYTHONPATH"] = str(REPO / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if naive:
        env["TUNEGATE_THREADS"] = str(len(os.sched_getaffinity(0)))
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    return env


def _newest_run(wd: Path) -> dict[str, Any] | None:
    runs = sorted((wd / "runs").glob("*/run.json"))
    return json.loads(runs[-1].read_text()) if runs else None


def run_jobs(
    jobs: dict[str, Path], *, model: str, steps: int, runtime: Path, naive: bool, timeout: float | None = None
) -> dict[str, Any]:
    """Start every job at once; wait for all (or the timeout); wall time per job."""
    t0 = time.perf_counter()
    runtime.mkdir(parents=True, exist_ok=True)
    logs = {name: (runtime / f"{name}.stderr").open("w") for name in jobs}  # a file: a pipe could fill up
    procs = {
        name: subprocess.Popen(
            _command(wd, model, steps), env=_env(runtime, naive), stdout=subprocess.DEVNULL, stderr=logs[name]
        )
        for name, wd in jobs.items()
    }
    ended: dict[str, float] = {}
    while len(ended) < len(procs):  # poll: each job's own end time, not the order we wait in
        for name, proc in procs.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = time.perf_counter() - t0
        if timeout is not None and time.perf_counter() - t0 > timeout:
            break
        time.sleep(0.05)
    out: dict[str, Any] = {}
    for name, proc in procs.items():
        if name not in ended:
            proc.kill()
            proc.wait()
            out[name] = {"wall_s": None, "timed_out_after_s": round(timeout or 0, 1)}
            continue
        proc.wait()
        logs[name].close()
        err = (runtime / f"{name}.stderr").read_text()
        if proc.returncode != 0:
            raise SystemExit(f"job {name} failed (exit {proc.returncode}):\n{err[-3000:]}")
        run = _newest_run(jobs[name]) or {}
        out[name] = {
            "wall_s": round(ended[name], 2),
            "train_time_s": run.get("train_time_s"),
            "cpu_threads": run.get("cpu_threads"),
            "tokens_per_s": run.get("tokens_per_s"),
        }
    return out


def _random_llama(out: Path) -> str:
    """A 7.5M-parameter random-init Llama (speed mechanics only: stories260k is so small that a
    second thread barely helps it, so sharing the cores costs it nothing)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(SHARED / "models" / "stories260k"))
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=384, intermediate_size=1024, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=1024,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return str(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        default=str(SHARED / "models" / "stories260k"),
        help="a local causal LM, or 'random-llama-7m': a random-init 7.5M Llama (stories260k's "
        "tokenizer, hidden 384, 4 layers) built in a temporary folder, big enough that threads matter",
    )
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--no-naive", action="store_true", help="skip the pre-fix (oversubscribed) phase")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "concurrent.json"))
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be >= 1")

    import tunegate  # noqa: F401  (offline environment)
    from tunegate.provenance import atomic_write_json
    from tunegate.resources import available_cores

    model_label = args.model
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tunegate-concurrent-") as tmp:
        root = Path(tmp)
        if args.model == "random-llama-7m":
            args.model = _random_llama(root / "random-llama-7m")
        runtime = root / "runtime"
        jobs = {name: _make_workdir(args.n, root / name) for name in ("A", "B")}
        common = {"model": args.model, "steps": args.steps, "runtime": runtime}
        solo = {name: run_jobs({name: wd}, naive=False, **common)[name] for name, wd in jobs.items()}
        sized = run_jobs(jobs, naive=False, **common)
        naive = None
        if not args.no_naive:
            limit = 6 * max(s["wall_s"] for s in solo.values())
            naive = run_jobs(jobs, naive=True, timeout=limit, **common)
    ratios = {name: round(sized[name]["wall_s"] / solo[name]["wall_s"], 3) for name in jobs}
    naive_ratios = (
        {n: (round(naive[n]["wall_s"] / solo[n]["wall_s"], 3) if naive[n]["wall_s"] else None) for n in jobs}
        if naive
        else None
    )
    out = {
        "what": "two tunegate training processes (LoRA) at once vs alone; goal <= 2.5x solo",
        "platform": platform.platform(),
        "usable_cores": available_cores(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {"model": model_label, "steps": args.steps, "records": args.n, "method": "lora"},
        "solo": solo,
        "concurrent_sized": sized,
        "concurrent_naive": naive,
        "ratio_sized": ratios,
        "ratio_naive": naive_ratios,
        "goal": GOAL,
        "passed": all(r <= GOAL for r in ratios.values()),
    }
    atomic_write_json(args.out, out)
    print(json.dumps({k: out[k] for k in ("ratio_sized", "ratio_naive", "passed")}))
    print(f"wrote {args.out}")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
