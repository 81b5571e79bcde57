"""Rebuild ``instruction_check.jsonl``: 300 Alpaca demo records + 300 GSM8K questions, labelled.

Run:  python bench/pii_sets/build_instruction_check.py

Records are picked deterministically (the 300 with the smallest sha256 of their text, per source).
A record's ``text`` is its fields joined by a newline (Alpaca: instruction, input, output; GSM8K:
question). ``pii`` lists the spans judged to be personal data (every occurrence of each value in
``instruction_labels.json``). How the labels were made (time-boxed, say so when quoting): every
span tunegate flagged on these records (commit of 2026-11-29) was listed by distinct value and a
reviewer rejected the values that are not people or contact data (dish names, countries, chart
types, imperatives, ``Grandpa``...). Names of people, real or fictional (``Janet``, ``Harry
Potter``), and the placeholder e-mails/phone are PII. Names no detector flagged are not labelled,
so the set measures over-redaction (false positives), not name recall; a detection not in the
labels counts as a false positive, which is conservative for any other detector.
Second review (2026-12-06): every span flagged by any of stock Presidio, tunegate without the
tagger, ``veto`` and ``detect`` was listed again. 76 values flagged only by the trained tagger were
people's names the first review never saw (``Aiden``, ``Igor``, ``Victor Hugo``; named story
animals, as ``Tobias`` the wolf already was) and were added; ``Moth``/``Montparnasse`` (a character
of a novel) were moved to PII under the same rule. Still not PII: ``Matilda`` and ``Terabithia`` as
book titles, ``Well`` (``Well's mother`` reads as a name but is kept conservative), ``madeleine``.
Third review (2026-12-06, second tagger weights): every span the new default flagged without a
label (23 values) was judged under the same rule. Three were first names of GSM8K people no earlier
detector had flagged (``Sandy`` walking between two towns, ``Aleena``, ``Chatty`` with her four
children) and were added; the other 20 stay false positives (``Alice`` in the book title ``Alice's
Adventures in Wonderland``, ``Farbo`` a mountain, ``Affenpinscher`` a dog breed, ``Iceberg`` a rose,
``Sure``, ``Player``, table labels, titles).
Fourth review (2026-12-07, session 12): one GSM8K problem had four people in the same role
(``Naruto can lift a mountain ten times higher than Kagiyami can ... Saskay ... Pompei``) and only
``Kagiyami`` and ``Saskay`` labelled; ``Naruto`` and ``Pompei`` were added under the same rule
(their record no longer counts a false positive). Nothing else was relabelled.
Sources: ``../shared/data/alpaca_demo/alpaca_en_demo.json`` and ``../shared/data/gsm8k/test.jsonl``
(see ``../shared/data/README.md`` for licences; the Alpaca file is research-only data).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"
PER_SOURCE = 300


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def records() -> list[dict]:
    alpaca = json.loads((SHARED / "alpaca_demo" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    a_texts = ["\n".join(v for v in (r["instruction"], r["input"], r["output"]) if v) for r in alpaca]
    gsm = [json.loads(line)["question"] for line in (SHARED / "gsm8k" / "test.jsonl").open(encoding="utf-8")]
    out = []
    for source, texts in (("alpaca_demo", a_texts), ("gsm8k", gsm)):
        for t in sorted(set(texts), key=_digest)[:PER_SOURCE]:
            out.append({"id": _digest(t)[:16], "source": source, "text": t})
    return out


def main() -> int:
    labels_path = HERE / "instruction_labels.json"
    labels = json.loads(labels_path.read_text(encoding="utf-8")) if labels_path.is_file() else {}
    lines = []
    for r in records():
        pii = []
        for entity, value in labels.get(r["id"], []):
            start = r["text"].find(value)
            if start < 0:
                raise SystemExit(f"label {entity} not found in record {r['id']}")
            while start >= 0:
                pii.append({"entity": entity, "start": start, "end": start + len(value)})
                start = r["text"].find(value, start + 1)
        r["pii"] = sorted(pii, key=lambda p: p["start"])
        lines.append(json.dumps(r, ensure_ascii=False, sort_keys=True))
    (HERE / "instruction_check.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
