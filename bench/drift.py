"""Benchmark: does ``tunegate drift`` stay quiet on unshifted data and alarm on shifted data?

Run from the repository root (about 3-5 minutes on 2 CPU cores)::

    python bench/drift.py [--shared ../shared] [--max-samples 2000] [--out bench/results/drift.json]

Scenarios (all real data from ``shared/data``; the reference is always a workdir whose
``data/train.jsonl`` holds Banking77 records, written with the Record model):

* ``unshifted_halves``   — Banking77 train split in two disjoint halves by content hash;
* ``unshifted_train_vs_test`` — Banking77 train vs Banking77 test (test is label-balanced, train is not);
* ``shifted_gsm8k``      — GSM8K math questions as production prompts;
* ``shifted_alpaca``     — Alpaca instructions (+ input) as production prompts;
* ``shifted_mixed_30pct`` — Banking77 test with 30% of its rows replaced by GSM8K questions;
* ``unshifted_small_60`` / ``shifted_small_60`` — only 60 production prompts (Banking77 test / GSM8K);
* ``label_shift_5_intents`` — Banking77 test restricted to five card-related intents, with labels.

Each scenario goes through :func:`tunegate.drift.commands.check_drift` (the code behind the CLI)
in a fresh temporary workdir, with the default policy except ``max_samples``. The results (every
statistic, the verdict, the expected verdict and wall time) are written as canonical JSON.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import tunegate
from tunegate.drift.commands import check_drift
from tunegate.drift.config import DriftPolicy
from tunegate.drift.detect import PromptEncoder
from tunegate.provenance import atomic_write_json, git_info, package_versions, sha256_file
from tunegate.records import Record, content_id

REPO = Path(__file__).resolve().parents[1]
LABEL_SHIFT_INTENTS = (
    "card_arrival",
    "card_linking",
    "card_not_working",
    "lost_or_stolen_card",
    "card_swallowed",
)


def _banking(shared: Path, split: str) -> list[tuple[str, str]]:
    with open(shared / "data" / "banking77" / f"{split}.csv", encoding="utf-8", newline="") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def _write_workdir(root: Path, rows: list[tuple[str, str]]) -> Path:
    wd = root / "workdir"
    (wd / "data").mkdir(parents=True)
    with open(wd / "data" / "train.jsonl", "w", encoding="utf-8") as fh:
        for text, label in rows:
            rec = Record(
                id=content_id("classification", {"text": text, "label": label}),
                task="classification",
                text=text,
                label=label,
            )
            fh.write(rec.to_json() + "\n")
    return wd


def _write_current(root: Path, rows: list[dict[str, str]]) -> Path:
    path = root / "current.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def _halves(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    def key(r: tuple[str, str]) -> int:
        return hashlib.sha256(r[0].encode()).digest()[0]

    return [r for r in rows if key(r) < 128], [r for r in rows if key(r) >= 128]


def build_scenarios(shared: Path) -> list[dict]:
    train, test = _banking(shared, "train"), _banking(shared, "test")
    gsm = [
        json.loads(line)["question"]
        for line in (shared / "data" / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    alpaca = json.loads((shared / "data" / "alpaca_demo" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    alpaca_prompts = [f"{a['instruction']}\n{a['input']}".strip() for a in alpaca]
    half_a, half_b = _halves(train)
    rng = random.Random(0)
    mixed = [{"text": t, "label": lab} for t, lab in test]
    rng.shuffle(mixed)
    n_gsm = int(0.3 * len(mixed))
    mixed = mixed[: len(mixed) - n_gsm] + [{"text": q} for q in gsm[:n_gsm]]
    return [
        {
            "name": "unshifted_halves",
            "expect_drift": False,
            "reference": half_a,
            "current": [{"text": t, "label": lab} for t, lab in half_b],
        },
        {
            "name": "unshifted_train_vs_test",
            "expect_drift": False,
            "reference": train,
            "current": [{"text": t, "label": lab} for t, lab in test],
        },
        {
            "name": "shifted_gsm8k",
            "expect_drift": True,
            "reference": train,
            "current": [{"text": q} for q in gsm],
        },
        {
            "name": "shifted_alpaca",
            "expect_drift": True,
            "reference": train,
            "current": [{"text": p} for p in alpaca_prompts],
        },
        {"name": "shifted_mixed_30pct", "expect_drift": True, "reference": train, "current": mixed},
        {
            "name": "unshifted_small_60",
            "expect_drift": False,
            "reference": train,
            "current": [{"text": t, "label": lab} for t, lab in test[::51][:60]],
        },
        {
            "name": "shifted_small_60",
            "expect_drift": True,
            "reference": train,
            "current": [{"text": q} for q in gsm[:60]],
        },
        {
            "name": "label_shift_5_intents",
            "expect_drift": True,
            "reference": train,
            "current": [{"text": t, "label": lab} for t, lab in test if lab in LABEL_SHIFT_INTENTS],
        },
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--max-samples", type=int, default=DriftPolicy().max_samples)
    ap.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "drift.json")
    args = ap.parse_args(argv)
    if not (args.shared / "data" / "banking77").is_dir():
        print(f"shared data not found under {args.shared}", file=sys.stderr)
        return 2
    policy = DriftPolicy(max_samples=args.max_samples)
    encoder = PromptEncoder(batch_size=policy.batch_size)
    t0 = time.perf_counter()
    encoder.encode(["warm-up"])  # model load is reported separately from the scenarios
    load_s = time.perf_counter() - t0
    results = []
    all_ok = True
    for sc in build_scenarios(args.shared):
        if args.only and sc["name"] not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="tunegate-drift-bench-") as tmp:
            root = Path(tmp)
            wd = _write_workdir(root, sc["reference"])
            cur = _write_current(root, sc["current"])
            t, c = time.perf_counter(), time.process_time()
            outcome = check_drift(wd, cur, policy=policy, encoder=encoder)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            rep = outcome.report
            ok = rep.drifted == sc["expect_drift"]
            all_ok &= ok
            results.append(
                {
                    "scenario": sc["name"],
                    "expect_drift": sc["expect_drift"],
                    "drifted": rep.drifted,
                    "as_expected": ok,
                    "alarms": rep.alarms,
                    "reference_rows": rep.reference["rows"],
                    "current_rows": rep.current["rows"],
                    "sampled": {"reference": rep.reference["sampled"], "current": rep.current["sampled"]},
                    "checks": {
                        c.name: {
                            "status": c.status,
                            "value": c.value,
                            "p_value": c.p_value,
                            "threshold": c.threshold,
                        }
                        | ({"ks_chars": c.details["ks_chars"]} if c.name == "length_ks" else {})
                        | (
                            {"unseen_label_share": c.details["unseen_label_share"]}
                            if c.name == "label_mix" and c.status != "skipped"
                            else {}
                        )
                        for c in rep.checks
                    },
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                }
            )
            checks = results[-1]["checks"]
            print(
                f"{sc['name']:28s} drift={rep.drifted!s:5s} expected={sc['expect_drift']!s:5s} "
                f"mmd2={checks['embedding_mmd']['value']:.4f} p={checks['embedding_mmd']['p_value']:.3f} "
                f"auc={checks['domain_auc']['value']:.3f} ks={checks['length_ks']['value']:.3f} "
                f"lang_tv={checks['language_mix']['value']:.3f} "
                f"label_tv={checks['label_mix'].get('value')} wall={wall:.1f}s",
                flush=True,
            )
    out = {
        "benchmark": "tunegate drift: shifted vs unshifted",
        "command": " ".join(["python", "bench/drift.py", *(sys.argv[1:] if argv is None else argv)]),
        "note": "wall_s and cpu_s include encoding each scenario's uncached prompts (the reference "
        "sample is encoded once and reused); the machine was shared with other jobs, see load_average",
        "policy": policy.model_dump(mode="json"),
        "encoder": encoder.describe(),
        "encoder_load_s": round(load_s, 2),
        "all_as_expected": all_ok,
        "results": results,
        "data": {
            name: sha256_file(args.shared / "data" / rel)
            for name, rel in {
                "banking77_train": "banking77/train.csv",
                "banking77_test": "banking77/test.csv",
                "gsm8k_test": "gsm8k/test.jsonl",
                "alpaca_en_demo": "alpaca_demo/alpaca_en_demo.json",
            }.items()
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "git": git_info(REPO),
        "versions": {k: v for k, v in package_versions().items() if v is not None},
        "tunegate": tunegate.__version__,
    }
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}; all as expected: {all_ok}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
