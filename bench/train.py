"""Training speed and memory: tunegate's loop vs the plain and the strongest stock peers, same data.

    python bench/train.py [--model PATH] [--method lora|full|qlora] [--steps 20] [--batch 8]
                          [--seq-len 512] [--n 96] [--device auto] [--out bench/results/train_<device>.json]

Each variant runs in its own subprocess (so peak memory is per variant), one after the other in one
run, on the same model, the same first N short alpaca_demo records, the same response-only labels,
the same LoRA config, optimizer, schedule, seed, thread count and number of optimizer steps:

* ``trainer`` (plain peer): transformers ``Trainer`` + peft, each batch padded to its longest
  example (``DataCollatorForSeq2Seq``), as a plain Trainer script does;
* ``trainer_packed`` (strong peer): the same ``Trainer`` + peft with padding-free batches
  (``DataCollatorWithFlattening``: one row per batch, position ids restarting per example) and
  ``train_sampling_strategy="group_by_length"``, what a competent user of Trainer runs;
* ``trainer_grouped`` (strong peer on CPU): padded batches of similar length
  (``train_sampling_strategy="group_by_length"``) without flattening: on CPU, where attention
  over a flattened row is a dense masked kernel (cost grows with the row length squared), this
  is the fastest stock Trainer setting;
* ``sft_packed`` (strong peer, instruction path): TRL's ``SFTTrainer`` on prompt/completion pairs
  (tunegate's rendered prompt, the response), ``packing=True`` (best-fit decreasing, padding-free
  rows), completion-only loss; the row length is set so a step holds about ``--batch`` examples,
  so every variant trains on about the same number of tokens per step;
* ``tunegate``: ``train_run`` (on CPU one example per row, length-grouped micro-batches; on CUDA
  one packed row per micro-batch).

Reported per variant: tokens/s (real, non-pad tokens / training time), padding share, final loss
(mean of the last 5 steps), peak memory (CUDA: ``torch.cuda.max_memory_reserved``; CPU: process
peak RSS), and MFU on CUDA against the device's dense bf16 peak, counting 6N FLOPs per token for
full fine-tuning and 4N for adapters on a frozen base (N = base parameters). On CUDA the plan's
``reserved_gib`` for the same settings is recorded beside the measured peak. Ratios are tunegate's
tokens/s over each peer's, all measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tunegate  # noqa: F401  (offline environment)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))
#: Dense bf16 peak TFLOP/s by device-name fragment (vendor datasheets, no sparsity).
PEAK_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "4090": 165.0,
}


def make_workdir(n: int, root: Path) -> Path:
    from tunegate.data.config import DataPolicy
    from tunegate.data.split import SplitResult, freeze_holdout
    from tunegate.records import Record, content_id

    rows = json.loads((SHARED / "data" / "alpaca_demo" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    short = [r for r in rows if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 300][:n]
    recs = []
    for r in short:
        fields = {"instruction": r["instruction"], "input": r["input"] or None, "output": r["output"]}
        recs.append(Record(id=content_id("instruction", fields), task="instruction", **fields))
    n_val = max(1, n // 8)
    wd = root / "wd"
    (wd / "data").mkdir(parents=True, exist_ok=True)
    split = SplitResult(recs[: n - 2 * n_val], recs[n - 2 * n_val : n - n_val], recs[n - n_val :])
    freeze_holdout(wd / "data", split, policy=DataPolicy(), policy_digest="bench")
    return wd


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    lr = 3e-3 if args.method != "full" else 1e-3  # a 260K-parameter model needs high rates
    if args.lr:
        lr = args.lr
    return {
        "max_steps": args.steps,
        "batch_size": args.batch,
        "max_seq_len": args.seq_len,
        "learning_rate": lr,
        "eval_steps": 10_000,
        "gradient_checkpointing": not args.no_checkpointing,
        "device": args.device,
        "lora": {"rank": 16, "dropout": 0.0},
    }


def variant_tunegate(args: argparse.Namespace, wd: Path) -> dict[str, Any]:
    from tunegate.training.config import TrainConfig
    from tunegate.training.train import train_run

    cfg = TrainConfig.model_validate(run_config(args))
    res = train_run(wd, model=args.model, method=args.method, config=cfg, progress=False)
    run = json.loads((res.run_dir / "run.json").read_text())
    return {
        "tokens": run["tokens"],
        "train_time_s": run["train_time_s"],
        "tokens_per_s": run["tokens_per_s"],
        "padding_fraction": run["padding_fraction"],
        "final_loss": sum(p["loss"] for p in run["loss_curve"][-5:]) / min(5, len(run["loss_curve"])),
        "peak_memory": run["peak_memory"],
        "device": run["device"],
        "params": run["total_params"],
    }


def _peer_setup(args: argparse.Namespace, wd: Path) -> tuple[Any, Any, Any, str, list[Any], dict[str, Any]]:
    """What every peer shares: threads, tokenizer, tunegate's encoded examples, the peft model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunegate.resources import configure_threads, resolve_device
    from tunegate.training.dataset import encode_records, read_split
    from tunegate.training.model_io import load_tokenizer

    device = resolve_device(args.device)
    if device == "cpu":
        configure_threads()
    tok = load_tokenizer(Path(args.model))
    train = read_split(wd / "data" / "train.jsonl")
    enc = encode_records(train.records, tok, kind="causal", max_len=args.seq_len)
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if (bf16 and args.method != "full") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    if args.method != "full":
        lora = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
        model = get_peft_model(model, lora)
    return model, tok, train, device, enc.examples, {"bf16": bf16}


def _training_args(
    args: argparse.Namespace, out: str, device: str, bf16: bool, **extra: Any
) -> dict[str, Any]:
    cfg = run_config(args)
    return {
        "output_dir": out,
        "per_device_train_batch_size": args.batch,
        "max_steps": args.steps,
        "learning_rate": cfg["learning_rate"],
        "lr_scheduler_type": "cosine",
        "warmup_steps": math.ceil(0.03 * args.steps),  # tunegate's warmup_ratio 0.03, same rounding
        "max_grad_norm": 1.0,
        "gradient_checkpointing": cfg["gradient_checkpointing"],
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "bf16": bf16,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "seed": 0,
        "use_cpu": device == "cpu",
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        **extra,
    }


def _counting(inner: Any, counted: dict[str, int]) -> Any:
    """Wrap a data collator: count real and pad tokens of every batch it builds."""

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = inner(features)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else int(ids.numel())
        counted["tokens"] += real
        counted["padded"] += int(ids.numel()) - real
        return batch

    return collate


def _timed_train(trainer: Any, device: str, counted: dict[str, int], model: Any) -> dict[str, Any]:
    import torch

    from tunegate.training.train import _peak_memory

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seen = counted["tokens"] + counted["padded"]
    return {
        "tokens": counted["tokens"],
        "steps": trainer.state.global_step,
        "train_time_s": round(elapsed, 3),
        "tokens_per_s": round(counted["tokens"] / elapsed, 2),
        "padding_fraction": counted["padded"] / seen if seen else 0.0,
        "final_loss": sum(losses[-5:]) / min(5, len(losses)),
        "peak_memory": _peak_memory(device),
        "device": device,
        "params": sum(p.numel() for p in model.parameters()),
    }


def variant_trainer(
    args: argparse.Namespace, wd: Path, *, packed: bool = False, grouped: bool = False
) -> dict[str, Any]:
    """transformers Trainer + peft on tunegate's tokens and labels: padded batches (plain), padded
    length-grouped batches (grouped), or padding-free flattened batches with length-grouped
    sampling (packed)."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening, Trainer, TrainingArguments

    model, tok, _, device, examples, opts = _peer_setup(args, wd)
    rows = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]
    counted = {"tokens": 0, "padded": 0}
    if packed:
        inner = DataCollatorWithFlattening(return_position_ids=True)
        extra = {"train_sampling_strategy": "group_by_length", "remove_unused_columns": False}
    else:
        inner = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
        extra = {"remove_unused_columns": False}
        if grouped:
            extra["train_sampling_strategy"] = "group_by_length"
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(**_training_args(args, out, device, opts["bf16"], **extra))
        trainer = Trainer(
            model=model, args=targs, train_dataset=rows, data_collator=_counting(inner, counted)
        )
        return _timed_train(trainer, device, counted, model)


def variant_sft(args: argparse.Namespace, wd: Path) -> dict[str, Any]:
    """TRL SFTTrainer with packing on prompt/completion pairs (completion-only loss)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunegate.training.dataset import build_prompt

    model, tok, train, device, examples, opts = _peer_setup(args, wd)
    pairs = [{"prompt": build_prompt(r, tok), "completion": str(r.output)} for r in train.records]
    mean_len = sum(len(e.input_ids) for e in examples) / max(1, len(examples))
    row = max(args.seq_len, round(args.batch * mean_len))  # about --batch examples per packed row
    counted = {"tokens": 0, "padded": 0}
    with tempfile.TemporaryDirectory() as out:
        extra = {"packing": True, "max_length": row, "completion_only_loss": True}
        sargs = SFTConfig(
            **_training_args(args, out, device, opts["bf16"], **extra) | {"per_device_train_batch_size": 1}
        )
        trainer = SFTTrainer(
            model=model, args=sargs, train_dataset=Dataset.from_list(pairs), processing_class=tok
        )
        trainer.data_collator = _counting(trainer.data_collator, counted)
        res = _timed_train(trainer, device, counted, model)
    res["packed_row_tokens"] = row
    return res


VARIANTS = {
    "trainer": variant_trainer,
    "trainer_grouped": lambda args, wd: variant_trainer(args, wd, grouped=True),
    "trainer_packed": lambda args, wd: variant_trainer(args, wd, packed=True),
    "sft_packed": variant_sft,
    "tunegate": variant_tunegate,
}


def mfu(result: dict[str, Any], method: str, base_params: int) -> float | None:
    dev = str(result.get("device", ""))
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in dev), None)
    if peak is None or not result.get("tokens_per_s"):
        return None
    flops_per_token = (6 if method == "full" else 4) * base_params
    return result["tokens_per_s"] * flops_per_token / (peak * 1e12)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHARED / "models" / "stories260k"))
    ap.add_argument("--method", default="lora", choices=["lora", "full", "qlora", "dora"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for every variant (the same for all; 1 = least noise on a shared machine)",
    )
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}"
    )
    ap.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    # every variant (a child process) sizes its pool from this, whatever else runs on the machine
    os.environ["TUNEGATE_THREADS"] = str(args.threads)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not chosen or any(v not in VARIANTS for v in chosen) or "tunegate" not in chosen:
        ap.error(f"--variants must name tunegate and any of {','.join(VARIANTS)}; got {args.variants!r}")

    if args.variant:  # child process: one variant, JSON on the last stdout line
        print(json.dumps(VARIANTS[args.variant](args, Path(args.workdir))))
        return 0

    from tunegate.provenance import atomic_write_json, package_versions
    from tunegate.resources import resolve_device

    device = resolve_device(args.device)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        wd = make_workdir(args.n, Path(tmp))
        for variant in chosen:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--variant", variant, "--workdir", str(wd)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                return proc.returncode
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{variant:15s} done: {results[variant]['tokens_per_s']:.1f} tokens/s", flush=True)
    from tunegate.training.plan import describe

    base_params = int(results["tunegate"]["params"]) if args.method == "full" else describe(args.model).params
    for r in results.values():
        r["mfu"] = mfu(r, args.method, base_params)
    plan = None
    if device.startswith("cuda"):
        from tunegate.training.plan import plan_memory

        rep = plan_memory(
            args.model,
            methods=(args.method,),
            seq_len=args.seq_len,
            batch=args.batch,
            gradient_checkpointing=not args.no_checkpointing,
        )
        predicted = rep.methods[args.method].reserved_gib
        measured = results["tunegate"]["peak_memory"]["bytes"] / 1024**3
        plan = {"predicted_reserved_gib": predicted, "measured_reserved_gib": measured,
                "error": (predicted - measured) / measured}  # fmt: skip
    out = {
        "what": "tunegate's training loop vs plain and strong stock peers (same model, data, settings, run)",
        "device": results["tunegate"]["device"],
        "platform": platform.platform(),
        "cpu_threads": args.threads if device == "cpu" else None,
        "model": args.model,
        "base_params": base_params,
        "method": args.method,
        "settings": vars(args) | {"variant": None, "workdir": None},
        "results": results,
        # tunegate tokens/s over each peer's; "speedup_tokens_per_s" is the plain Trainer ratio
        "ratios_tokens_per_s": {
            name: round(results["tunegate"]["tokens_per_s"] / r["tokens_per_s"], 3)
            for name, r in results.items()
            if name != "tunegate"
        },
        "strongest_peer": max(
            (n for n in results if n not in ("tunegate", "trainer")),
            default=None,
            key=lambda n: results[n]["tokens_per_s"],
        ),
        "speedup_tokens_per_s": (
            results["tunegate"]["tokens_per_s"] / results["trainer"]["tokens_per_s"]
            if "trainer" in results
            else None
        ),
        "plan_vs_measured": plan,
        "mfu_note": "MFU only on CUDA (no meaningful peak for this CPU)" if device == "cpu" else None,
        "versions": package_versions(("tunegate", "torch", "transformers", "peft", "trl")),
    }
    path = Path(args.out or REPO / "bench" / "results" / f"train_{'cpu' if device == 'cpu' else 'cuda'}.json")
    atomic_write_json(path, out)
    print(json.dumps({k: out[k] for k in ("device", "method", "ratios_tokens_per_s")}))
    for name, r in results.items():
        print(f"{name:15s} tokens/s {r['tokens_per_s']:9.1f}  padding {r['padding_fraction']:.1%}  "
              f"loss {r['final_loss']:.3f}  peak {r['peak_memory']['bytes'] / 2**20:.0f} MiB")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
