"""Check `tunegate plan` against the published fine-tuning memory figures for Llama 2 7B/13B/70B.

    python bench/plan_published.py            # writes bench/results/plan_published.json

The scenarios and their sources live in ``tunegate.training.plan.PUBLISHED_CHECKS`` (the unit
test ``test_plan_reproduces_published_figures`` asserts the same rows). Each row records the
assumptions (optimizer, sequence length, batch, gradient checkpointing, rank) under which the
prediction lands in the published band, and why that end of the band corresponds to them:

* full 7B ~112 GB: mixed precision with fp32 master weights + fp32 gradients + 32-bit AdamW
  (16 B/param); ~67 GB: the same with 8-bit AdamW (10 B/param).
* LoRA 7B ~15 GB: bf16 base + r16 all-linear adapters, seq 512, checkpointing; ~23-26 GB: 1k
  tokens per step without checkpointing.
* QLoRA 7B ~5 GB: NF4 + double quant, paged 8-bit AdamW, seq 512, checkpointing; ~14 GB: 1k
  tokens per step without checkpointing.

No GPU was available when this was written, so no plan-vs-measured point is recorded here;
``bench/train.py`` on CUDA records ``torch.cuda.max_memory_reserved`` next to the plan's
``reserved_gib`` for the same settings (bench/results/train_<device>.json).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tunegate  # noqa: F401  (offline environment)
from tunegate.provenance import atomic_write_json, package_versions
from tunegate.training.plan import PUBLISHED_TOLERANCE, check_published

OUT = Path(__file__).resolve().parent / "results" / "plan_published.json"


def main() -> int:
    rows = check_published()
    atomic_write_json(
        OUT,
        {
            "what": "tunegate plan vs published fine-tuning memory figures (decimal GB)",
            "tolerance_on_band_edges": PUBLISHED_TOLERANCE,
            "all_in_band": all(r["in_band"] for r in rows),
            "rows": rows,
            "versions": {
                k: v for k, v in package_versions().items() if k in ("tunegate", "torch", "transformers")
            },
        },
    )
    for r in rows:
        flag = "ok " if r["in_band"] else "OUT"
        print(
            f"{flag} {r['model']:12s} {r['method']:6s} {r['optimizer']:17s} seq {r['seq_len']:5d} "
            f"batch {r['batch']} ckpt {r['gradient_checkpointing']!s:5s} -> {r['predicted_gb']:8.1f} GB "
            f"(published {r['band_gb'][0]}-{r['band_gb'][1]})"
        )
    print(f"wrote {OUT}")
    return 0 if all(r["in_band"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
