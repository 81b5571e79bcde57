"""Evaluation speed: tunegate's batched path vs the naive per-example path, same data, one run.

The workload is the evaluation stage's: a baseline model and a tuned model (the base plus a LoRA
adapter with non-zero B) each generate for the same N hold-out prompts and are scored with
BERTScore against the same N references.

    python bench/evaluate.py [--n 48] [--max-new-tokens 64] [--out bench/results/evaluate_speed.json]
    python bench/evaluate.py --classification [--n 3080] [--out bench/results/evaluate_classification.json]

Data: the first N alpaca_demo records (shared/data/alpaca_demo), model: shared/models/stories260k,
on CPU. Naive = one ``model.generate`` per example + one ``bert_score.score`` call per example
(which loads the scorer each call, as scripts that call the functional API in a loop do), for
each model. tunegate = ``generate_batched`` (length-sorted, left-padded, KV cache) for each model
+ one ``BertScorer`` for the run (references embedded once, token-length batching).
Both produce greedy outputs; the script checks they are identical and the BERTScores agree.

Strong stock peer, same run: lm-evaluation-harness's ``HFLM`` over the same loaded models with its
batched ``generate_until`` (batch size ``--batch-size``, greedy, stop at EOS) and ``bert_score``'s
batched ``BERTScorer`` (loaded once, ``score`` over all pairs of a model at batch size 64). Its
outputs can differ where stories260k predicts BOS (tunegate stops there too; lm-eval does not):
the agreement is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import tunegate  # noqa: F401  (offline environment)
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.metrics import default_bertscore_model
from tunegate.evaluation.predict import generate_batched, generate_loop
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
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.classification:
        from classification_bench import run_classification  # bench/classification_bench.py

        return run_classification(args)
    args.n = args.n or 48
    args.out = args.out or str(REPO / "bench" / "results" / "evaluate_speed.json")

    import numpy as np
    import torch
    from bert_score import score as bert_score_fn
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
    bs_model = str(default_bertscore_model())

    import copy

    from peft import LoraConfig, get_peft_model

    tuned = get_peft_model(copy.deepcopy(model), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    tuned.eval()
    models = {"baseline": model, "tuned": tuned}
    kw = {"max_new_tokens": args.max_new_tokens}

    t0 = time.perf_counter()
    naive_out = {k: generate_loop(m, tok, prompts, **kw) for k, m in models.items()}
    t1 = time.perf_counter()
    naive_f1 = {
        k: [
            float(bert_score_fn([p], [r], model_type=bs_model, num_layers=6, lang="en")[2][0])
            if p.strip()
            else 0.0
            for p, r in zip(outs, refs, strict=True)
        ]
        for k, outs in naive_out.items()
    }
    t2 = time.perf_counter()
    fast_out = {
        k: generate_batched(m, tok, prompts, batch_size=args.batch_size, **kw) for k, m in models.items()
    }
    t3 = time.perf_counter()
    scorer = make_bertscorer(policy)
    fast_f1 = {k: scorer.score_f1(outs, refs) for k, outs in fast_out.items()}
    t4 = time.perf_counter()

    peer_out = {
        k: _lm_eval_generate(m, tok, prompts, args.max_new_tokens, args.batch_size) for k, m in models.items()
    }
    t5 = time.perf_counter()
    from bert_score import BERTScorer

    peer_scorer = BERTScorer(model_type=bs_model, num_layers=6, batch_size=64, lang="en")
    for outs in peer_out.values():  # empty outputs score 0 (bert_score cannot embed "")
        keep = [i for i, o in enumerate(outs) if o.strip()]
        if keep:
            peer_scorer.score([outs[i] for i in keep], [refs[i] for i in keep])
    t6 = time.perf_counter()

    naive_s, fast_s, peer_s = t2 - t0, t4 - t2, t6 - t4
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            k: v for k, v in package_versions().items() if k in ("torch", "transformers", "bert-score")
        },
        "model": "stories260k",
        "data": f"alpaca_demo first {args.n}",
        "workload": "baseline + tuned (LoRA) models, same prompts and references",
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "naive": {
            "generate_s": round(t1 - t0, 3),
            "bertscore_s": round(t2 - t1, 3),
            "total_s": round(naive_s, 3),
        },
        "tunegate": {
            "generate_s": round(t3 - t2, 3),
            "bertscore_s": round(t4 - t3, 3),
            "total_s": round(fast_s, 3),
        },
        "strong_peer": {
            "what": "lm-eval HFLM.generate_until (batched) + bert_score BERTScorer.score (batched)",
            "generate_s": round(t5 - t4, 3),
            "bertscore_s": round(t6 - t5, 3),
            "total_s": round(peer_s, 3),
            "outputs_agree_with_tunegate": round(
                sum(a == b for k in models for a, b in zip(peer_out[k], fast_out[k], strict=True))
                / (2 * len(prompts)),
                3,
            ),
        },
        "speedup": round(naive_s / fast_s, 2),
        "speedup_vs_plain": round(naive_s / fast_s, 2),
        "speedup_vs_strong_peer": round(peer_s / fast_s, 2),
        "generation_speedup_vs_strong_peer": round((t5 - t4) / (t3 - t2), 2),
        "bertscore_speedup_vs_strong_peer": round((t6 - t5) / (t4 - t3), 2),
        "generation_speedup": round((t1 - t0) / (t3 - t2), 2),
        "outputs_identical": naive_out == fast_out,
        "bertscore_max_abs_diff": max(
            float(np.max(np.abs(np.array(naive_f1[k]) - fast_f1[k]))) for k in models
        ),
        "load_average_1m": os.getloadavg()[0],
        "target_speedup": 5.0,
        "target_speedup_vs_strong_peer": 2.0,
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0 if result["speedup"] >= 5.0 else 1


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
