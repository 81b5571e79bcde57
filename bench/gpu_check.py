"""GPU correctness and speed of tunegate training: LoRA, QLoRA and full fine-tuning in bf16.

    bench/gpu_check.sh [--model llama100m|stories260k|PATH] [--methods lora,qlora,full]
                       [--steps 30] [--batch 8] [--seq-len 512] [--out bench/results/gpu.json]

Run by ``bench/gpu_check.sh`` (which adds a hard time limit). For every method it trains with
tunegate's own loop (``train_run``, ``device: cuda``, ``precision: bf16``) in a fresh subprocess,
so ``torch.cuda.max_memory_reserved`` is that method's peak, and records tokens/s, MFU, the peak
and the VRAM plan (``tunegate plan``) for the same settings. ``llama100m`` (the default) is a
randomly initialised ~100M-parameter Llama (14 layers, hidden 768), large enough for a
meaningful MFU; ``stories260k`` is the tiny real Llama from ``$TUNEGATE_SHARED`` (correctness
only). Data: short synthetic instruction records of near-equal length (so the plan's
``batch x seq_len`` matches the packed tokens), written into a throw-away workdir. Nothing is
downloaded.

MFU = tokens/s x FLOPs per token / the device's dense bf16 peak; FLOPs per token are 6N for full
fine-tuning and 4N for adapters on a frozen base (no weight gradients), N = the base's matmul
weights (linear layers and LM head), plus attention's 6 * layers * seq_len * hidden (x 2/3 for adapters);
gradient checkpointing's recompute is not counted (model FLOPs, not hardware FLOPs).

Without CUDA it stops at once with exit 2 and one line. ``--dry-run`` prints what would run
(works on CPU; the unit tests use it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))
METHODS = ("lora", "qlora", "full")
#: Dense bf16 peak TFLOP/s by device-name fragment (vendor datasheets, no sparsity).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
LLAMA100M = {
    "hidden_size": 768,
    "intermediate_size": 2048,
    "num_hidden_layers": 14,
    "num_attention_heads": 12,
    "num_key_value_heads": 12,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}
_WORDS_TEXT = (
    "the a model data gate train test loss token adapter rank batch step signal noise river cloud "
    "stone light paper green quiet fast slow bright number letter window garden story little big"
)
WORDS = _WORDS_TEXT.split()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama100m", help="llama100m | stories260k | a local model folder")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated: lora,qlora,full")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "gpu.json"))
    ap.add_argument("--per-method-timeout", type=float, default=140.0, help="seconds per method")
    ap.add_argument("--dry-run", action="store_true", help="print the plan of what would run, then stop")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        ap.error(f"--methods must be a comma-separated subset of {','.join(METHODS)}; got {args.methods!r}")
    for name in ("steps", "batch", "seq_len"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.seq_len < 64:
        ap.error("--seq-len must be >= 64 (the synthetic records are about 3/4 of it)")
    args.methods = methods
    return args


def run_config(args: argparse.Namespace, method: str) -> dict[str, Any]:
    return {
        "max_steps": args.steps,
        "batch_size": args.batch,
        "max_seq_len": args.seq_len,
        "learning_rate": 1e-5 if method == "full" else 2e-4,
        "eval_steps": 10_000,  # one evaluation, at the end
        "early_stopping_patience": None,
        "device": "cuda",
        "precision": "bf16",
        "gradient_checkpointing": True,
        "lora": {"rank": 16, "dropout": 0.0},
    }


def plan_summary(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model,
        "methods": args.methods,
        "steps": args.steps,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "configs": {m: run_config(args, m) for m in args.methods},
        "out": args.out,
    }


# -- inputs (CPU side) ----------------------------------------------------------------------------------
def _tokenizer_into(dest: Path) -> None:
    """stories260k's tokenizer when ``$TUNEGATE_SHARED`` has it, else a byte-level BPE trained
    here on the synthetic words (offline either way)."""
    shared = SHARED / "models" / "stories260k"
    if (shared / "tokenizer.json").is_file():
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (shared / name).is_file():
                shutil.copy(shared / name, dest / name)
        return
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([" ".join(WORDS)] * 50 + ["### Instruction:\n### Response:\n"] * 50, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.pad_token = fast.unk_token
    fast.save_pretrained(str(dest))


def build_model(name: str, root: Path) -> Path:
    """A model folder: a local path as given, stories260k from the shared folder, or llama100m
    (random init, seed 0) written under ``root``."""
    if name == "stories260k":
        path = SHARED / "models" / "stories260k"
        if not path.is_dir():
            raise SystemExit(f"gpu_check: {path} not found (set TUNEGATE_SHARED)")
        return path
    if name != "llama100m":
        return Path(name)
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    dest = root / "llama100m"
    dest.mkdir(parents=True, exist_ok=True)
    _tokenizer_into(dest)
    tok = AutoTokenizer.from_pretrained(str(dest))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **LLAMA100M,
    )
    LlamaForCausalLM(cfg).save_pretrained(str(dest))
    return dest


def build_workdir(args: argparse.Namespace, root: Path) -> Path:
    """Synthetic instruction records of near-equal length, split and frozen as ``prepare`` does."""
    from tunegate.data.config import DataPolicy
    from tunegate.data.split import SplitResult, freeze_holdout
    from tunegate.records import Record, content_id

    rng = random.Random(0)
    n_train = args.steps * args.batch
    n_val = max(args.batch, 8)
    words = max(8, args.seq_len // 3)  # ~3/4 of seq-len tokens with a sub-word tokenizer
    recs = []
    for i in range(n_train + 2 * n_val):
        fields = {
            "instruction": f"Continue story {i}: " + " ".join(rng.choices(WORDS, k=words // 3)),
            "input": None,
            "output": " ".join(rng.choices(WORDS, k=words - words // 3)),
        }
        recs.append(Record(id=content_id("instruction", fields), task="instruction", **fields))
    wd = root / "wd"
    (wd / "data").mkdir(parents=True, exist_ok=True)
    split = SplitResult(recs[:n_train], recs[n_train : n_train + n_val], recs[n_train + n_val :])
    freeze_holdout(wd / "data", split, policy=DataPolicy(), policy_digest="gpu-check")
    return wd


# -- one method (child process) -----------------------------------------------------------------------
def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    from tunegate.training.config import TrainConfig
    from tunegate.training.train import train_run

    method = args.variant
    cfg = TrainConfig.model_validate(run_config(args, method))
    t0 = time.perf_counter()
    res = train_run(Path(args.workdir), model=args.model_dir, method=method, config=cfg, progress=False)
    run = json.loads((res.run_dir / "run.json").read_text())
    return {
        "steps": run["steps"],
        "tokens": run["tokens"],
        "tokens_per_s": run["tokens_per_s"],
        "train_time_s": run["train_time_s"],
        "wall_s": round(time.perf_counter() - t0, 2),
        "final_loss": run["loss_curve"][-1]["loss"],
        "best_val_loss": (run["best"] or {}).get("val_loss"),
        "padding_fraction": run["padding_fraction"],
        "max_memory_reserved_bytes": run["peak_memory"]["bytes"],
        "max_memory_allocated_bytes": run["peak_memory"].get("allocated_bytes"),
        "device": run["device"],
        "precision": run["precision"],
        "trainable_params": run["trainable_params"],
    }


def flops_per_token(method: str, arch: Any, seq_len: int) -> float:
    """Model FLOPs per trained token (see the module docstring): N counts every matmul weight
    (the adaptable linear layers and the LM head), not the embedding lookup."""
    n = sum(i * o for i, o in arch.linear) + arch.vocab * arch.hidden
    factor = 6 if method == "full" else 4
    attention = 6 * arch.layers * seq_len * arch.hidden * factor / 6
    return float(factor * n + attention)


def mfu(tokens_per_s: float | None, fpt: float, device: str) -> float | None:
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in device), None)
    if peak is None or not tokens_per_s:
        return None
    return tokens_per_s * fpt / (peak * 1e12)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.variant:  # child: one method, JSON on the last stdout line
        print(json.dumps(run_variant(args)))
        return 0
    if args.dry_run:
        print(json.dumps(plan_summary(args), indent=2))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)  # fmt: skip
        return 2
    import tunegate  # noqa: F401  (offline environment)
    from tunegate.provenance import atomic_write_json, package_versions
    from tunegate.training.plan import describe, plan_memory

    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        model_dir = build_model(args.model, Path(tmp))
        wd = build_workdir(args, Path(tmp))
        arch = describe(str(model_dir))
        for method in args.methods:
            cmd = [sys.executable, __file__, "--variant", method, "--workdir", str(wd),
                   "--model-dir", str(model_dir), "--steps", str(args.steps), "--batch", str(args.batch),
                   "--seq-len", str(args.seq_len)]  # fmt: skip
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.per_method_timeout)
            except subprocess.TimeoutExpired:
                results[method] = {"error": f"timed out after {args.per_method_timeout:.0f} s"}
                continue
            if proc.returncode != 0:
                results[method] = {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
                sys.stderr.write(proc.stderr[-3000:])
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            fpt = flops_per_token(method, arch, args.seq_len)
            r["flops_per_token"] = fpt
            r["mfu"] = mfu(r["tokens_per_s"], fpt, r["device"])
            plan = plan_memory(str(model_dir), methods=(method,), seq_len=args.seq_len, batch=args.batch,
                               rank=16, gradient_checkpointing=True).methods[method]  # fmt: skip
            measured = r["max_memory_reserved_bytes"] / 1024**3
            r["plan_reserved_gib"] = round(plan.reserved_gib, 4)
            r["measured_reserved_gib"] = round(measured, 4)
            r["plan_error"] = round((plan.reserved_gib - measured) / measured, 4) if measured else None
            results[method] = r
            print(f"{method:6s} {r['tokens_per_s']:>10.0f} tok/s  MFU {r['mfu'] or 0:.1%}  "
                  f"reserved {measured:.2f} GiB (plan {plan.reserved_gib:.2f})  "
                  f"loss {r['final_loss']:.3f}")  # fmt: skip
    out = {
        "what": "tunegate training on CUDA, bf16: LoRA, QLoRA, full; tokens/s, MFU, peak reserved vs plan",
        "device": torch.cuda.get_device_name(),
        "platform": platform.platform(),
        "model": args.model,
        "base_params": arch.params,
        "settings": plan_summary(args),
        "results": results,
        "wall_s": round(time.perf_counter() - started, 1),
        "versions": {
            k: v
            for k, v in package_versions().items()
            if k in ("tunegate", "torch", "transformers", "peft", "bitsandbytes")
        },
    }
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
