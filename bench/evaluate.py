"""Evaluation speed against the strongest stock peer: same data, same models, same threads, one process.

The workload is the evaluation stage's: a baseline model and a tuned model (the base plus a LoRA
adapter with non-zero B) each generate greedily for the same N hold-out prompts, and both models'
outputs are scored with BERTScore against the same N references.

    python bench/evaluate.py [--n 64] [--max-new-tokens 64] [--repeats 3] [--threads 1,2]
    python bench/evaluate.py --classification [--n 1000] [--repeats 5] [--threads 1,2]

Data: the first N alpaca_demo records (shared/data/alpaca_demo); model: shared/models/stories260k,
on CPU; prompts rendered by the policy's templates, ``max_new_tokens`` and ``batch_size`` at the
policy defaults (64, 16).

* tunegate: ``generate_batched`` per model (one tokenizer call, length-sorted, left-padded from the
  ids, KV cache) + one ``BertScorer`` for the run (each sentence tokenized once, references
  embedded once for both models, batches sorted by token length and capped in padded tokens).
* strong stock peer: lm-evaluation-harness's ``HFLM`` over the same loaded models with its batched
  ``generate_until`` (same batch size, greedy, ``max_gen_toks``) + ``bert_score.BERTScorer`` (same
  MiniLM backbone and layer, ``batch_size=64``, loaded once), ``score`` per model.

Per thread count, each repeat runs both sides, alternating which goes first (A,B then B,A), and the
report gives medians and the median of the per-repeat ratios. Model and scorer loading is outside
the timings for both sides (a fresh tunegate scorer cache per repeat: nothing carried over). The
script checks that both sides produce the same generations and that the BERTScores agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import tunegate  # noqa: F401  (offline environment)
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.metrics import default_bertscore_model
from tunegate.evaluation.predict import generate_batched
from tunegate.evaluation.run import make_bertscorer
from tunegate.evaluation.scoring import build_prompt
from tunegate.provenance import atomic_write_json, package_versions
from tunegate.records import Record, content_id

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classification", action="store_true", help="the encoder classification path")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.thread_counts = [int(t) for t in args.threads.split(",")]
    if args.classification:
        from classification_bench import run_classification  # bench/classification_bench.py

        return run_classification(args)
    args.n = args.n or 64
    args.out = args.out or str(REPO / "bench" / "results" / "evaluate_speed.json")

    import copy

    import numpy as np
    import torch
    from bert_score import BERTScorer
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model_dir = SHARED / "models" / "stories260k"
    rows = json.loads((SHARED / "data" / "alpaca_demo" / "alpaca_en_demo.json").read_text())[: args.n]
    recs = []
    for r in rows:
        f = {"instruction": r["instruction"], "input": r["input"] or None, "output": r["output"]}
        recs.append(Record(id=content_id("instruction", f), task="instruction", **f))
    policy = EvaluationPolicy(prompt_style="template", max_new_tokens=args.max_new_tokens)
    prompts = [build_prompt(r, policy) for r in recs]
    refs = [r.target_text() for r in recs]
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tuned = get_peft_model(copy.deepcopy(model), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    tuned.eval()
    models = {"baseline": model, "tuned": tuned}
    scorer = make_bertscorer(policy)
    scorer._load()  # loading is outside the timings, as for the peer's scorer
    peer_scorer = BERTScorer(
        model_type=str(default_bertscore_model()), num_layers=6, batch_size=64, lang="en"
    )
    load = [os.getloadavg()[0]]

    def tunegate_side() -> tuple[dict[str, float], dict[str, Any]]:
        t: dict[str, float] = {}
        outs: dict[str, Any] = {}
        for k, m in models.items():
            t0 = time.perf_counter()
            outs[k] = generate_batched(
                m, tok, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
            )
            t[f"generate_{k}_s"] = time.perf_counter() - t0
        scorer.__dict__.pop("_emb_cache", None)  # a fresh run: nothing embedded yet
        for k in models:
            t0 = time.perf_counter()
            outs[f"f1_{k}"] = scorer.score_f1(outs[k], refs)
            t[f"bertscore_{k}_s"] = time.perf_counter() - t0
        return t, outs

    def peer_side() -> tuple[dict[str, float], dict[str, Any]]:
        t: dict[str, float] = {}
        outs: dict[str, Any] = {}
        for k, m in models.items():
            t0 = time.perf_counter()
            outs[k] = _lm_eval_generate(m, tok, prompts, args.max_new_tokens, args.batch_size)
            t[f"generate_{k}_s"] = time.perf_counter() - t0
        for k in models:
            t0 = time.perf_counter()
            keep = [i for i, o in enumerate(outs[k]) if o.strip()]  # bert_score cannot embed ""
            f1 = np.zeros(len(refs))
            if keep:
                f1[keep] = peer_scorer.score([outs[k][i] for i in keep], [refs[i] for i in keep])[2].numpy()
            outs[f"f1_{k}"] = f1
            t[f"bertscore_{k}_s"] = time.perf_counter() - t0
        return t, outs

    runs = []
    checks: dict[str, Any] = {}
    for threads in args.thread_counts:
        torch.set_num_threads(threads)
        reps: dict[str, list[dict[str, float]]] = {"tunegate": [], "peer": []}
        for rep in range(args.repeats):
            order = ["tunegate", "peer"] if rep % 2 == 0 else ["peer", "tunegate"]
            for side in order:
                t, outs = (tunegate_side if side == "tunegate" else peer_side)()
                t["generate_s"] = t["generate_baseline_s"] + t["generate_tuned_s"]
                t["bertscore_s"] = t["bertscore_baseline_s"] + t["bertscore_tuned_s"]
                t["total_s"] = t["generate_s"] + t["bertscore_s"]
                reps[side].append(t)
                checks.setdefault(side, outs)
                load.append(os.getloadavg()[0])
        runs.append(_summary(threads, reps))
        print(json.dumps(runs[-1], indent=2), flush=True)
    tg, peer = checks["tunegate"], checks["peer"]
    result = {
        "device": "cpu",
        "python": platform.python_version(),
        "versions": {
            k: v
            for k, v in package_versions().items()
            if k in ("torch", "transformers", "bert-score", "lm-eval", "lm_eval")
        },
        "model": "stories260k (base) + LoRA r=8 on q,v with non-zero B (tuned)",
        "data": f"alpaca_demo first {args.n}",
        "n": args.n,
        "workload": "generate (baseline + tuned, same prompts) + BERTScore F1 of both against the references",
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "order": "alternating per repeat (tunegate,peer then peer,tunegate)",
        "peer": "lm-eval HFLM(batch_size).generate_until + bert_score.BERTScorer(batch_size=64).score",
        "runs": runs,
        "generations_identical_to_peer": all(tg[k] == peer[k] for k in models),
        "bertscore_max_abs_diff_vs_bert_score": max(
            float(np.max(np.abs(np.asarray(tg[f"f1_{k}"]) - peer[f"f1_{k}"]))) for k in models
        ),
        "load_average_1m": {"min": min(load), "median": statistics.median(load), "max": max(load)},
        "target_speedup_vs_strong_peer": 2.0,
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def _summary(threads: int, reps: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Medians per part and the median of the per-repeat ratios (peer / tunegate)."""
    med = {
        side: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]} for side, rs in reps.items()
    }
    ratios = {
        part: round(
            statistics.median(p[part] / t[part] for t, p in zip(reps["tunegate"], reps["peer"], strict=True)),
            2,
        )
        for part in ("total_s", "generate_s", "bertscore_s")
    }
    return {
        "threads": threads,
        "median_s": med,
        "speedup_vs_peer": ratios["total_s"],
        "generation_speedup_vs_peer": ratios["generate_s"],
        "bertscore_speedup_vs_peer": ratios["bertscore_s"],
        "all_s": {side: [round(r["total_s"], 3) for r in rs] for side, rs in reps.items()},
    }


def _lm_eval_generate(
    model: Any, tok: Any, prompts: list[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    """The strong peer: lm-evaluation-harness's HF model and its batched ``generate_until``."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device="cpu")
    reqs = [
        Instance(
            "generate_until", {}, (p, {"until": [], "max_gen_toks": max_new_tokens, "do_sample": False}), i
        )
        for i, p in enumerate(prompts)
    ]
    return [o.strip() for o in lm.generate_until(reqs, disable_tqdm=True)]


if __name__ == "__main__":
    sys.exit(main())
