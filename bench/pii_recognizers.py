"""Presidio's own recognizers vs tunegate's, on generated identifiers (the measurement behind keeping ours).

Run:  python bench/pii_recognizers.py [--n 300] [--out bench/results/pii_recognizers.json]

For PESEL, IBAN and payment cards, valid values are generated (seeded) in the written forms people
use (compact, grouped with spaces or hyphens, lower case) and wrapped in a short sentence; each
recognizer runs alone (no NLP artifacts, so no context boost for either side). Recall = share of
values whose whole digits/letters lie inside one result; false positives are counted on values
with a broken check digit (and, for PESEL, on card numbers that contain 11-digit runs). The data
gate keeps both sides registered when neither covers the other.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from pathlib import Path
from typing import Any

import tunegate  # noqa: F401  (offline environment)
from tunegate.pii import recognizers as rec
from tunegate.provenance import atomic_write_json, package_versions

REPO = Path(__file__).resolve().parents[1]


def pesel(rng: random.Random, valid: bool = True) -> str:
    year, month, day = rng.randint(1900, 2099), rng.randint(1, 12), rng.randint(1, 28)
    m = month + (20 if year >= 2000 else 0)
    body = f"{year % 100:02d}{m:02d}{day:02d}{rng.randint(0, 9999):04d}"
    check = (
        10 - sum(int(c) * w for c, w in zip(body, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3), strict=True)) % 10
    ) % 10
    return body + str(check if valid else (check + 1) % 10)


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(["DE", "PL", "FR", "GB", "NL", "ES", "IT", "BE", "AT", "CH"])
    length = rec.IBAN_LENGTHS[country]
    if country == "GB" or country == "NL":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban += "".join(rng.choice(string.digits) for _ in range(length - 8))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - num % 97
    if not valid:
        check = (check % 97) + 1 if check != 97 else 2
    return f"{country}{check:02d}{bban}"


def card(rng: random.Random, valid: bool = True) -> str:
    brands = [("4", 16), ("51", 16), ("55", 16), ("34", 15), ("37", 15), ("6304", 16), ("6759", 19),
              ("35", 16), ("62", 19), ("4", 19), ("6011", 16)]  # fmt: skip
    prefix, length = rng.choice(brands)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        if rec.luhn_ok(body + d) == valid:
            return body + d
    raise AssertionError


def forms(value: str, rng: random.Random) -> list[str]:
    groups = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return [value, groups, groups.replace(" ", "-"), value.lower() if not value.isdigit() else groups]


def score(recognizer: Any, entity: str, texts: list[tuple[str, str]]) -> dict[str, Any]:
    hit = 0
    for text, value in texts:
        start = text.index(value)
        res = recognizer.analyze(text, [entity], None)
        if any(r.start <= start and r.end >= start + len(value) and r.score >= 0.35 for r in res):
            hit += 1
    return {"cases": len(texts), "found": hit, "rate": round(hit / len(texts), 4)}


def hits(recognizer: Any, entity: str, texts: list[tuple[str, str]]) -> dict[str, Any]:
    """Texts where the recognizer reports anything at or above the default threshold."""
    n = sum(any(r.score >= 0.35 for r in recognizer.analyze(t, [entity], None)) for t, _ in texts)
    return {"cases": len(texts), "found": n, "rate": round(n / len(texts), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pii_recognizers.json")
    args = ap.parse_args(argv)
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        PlPeselRecognizer,
    )

    rng = random.Random(12)
    kinds = {
        "PL_PESEL": (pesel, "My PESEL is {} thanks", PlPeselRecognizer(), rec.PeselRecognizer()),
        "IBAN_CODE": (iban, "Please transfer it to {} today", IbanRecognizer(), rec.EuIbanRecognizer()),
        "CREDIT_CARD": (
            card,
            "My card number is {} thanks",
            CreditCardRecognizer(),
            rec.LuhnCardRecognizer(),
        ),
    }
    result: dict[str, Any] = {"n_values": args.n, "seed": 12, "recognizers": {}}
    for entity, (gen, template, presidio, ours) in kinds.items():
        good, bad = [], []
        for _ in range(args.n):
            v = gen(rng)
            for f in forms(v, rng) if entity != "PL_PESEL" else [v]:
                good.append((template.format(f), f))
            w = gen(rng, valid=False)
            bad.append((template.format(w), w))
        if entity == "PL_PESEL":  # also: 11 digits inside a longer number (a card) are no PESEL
            bad += [(f"My card number is {c} thanks", c) for c in (card(rng) for _ in range(args.n))]
        result["recognizers"][entity] = {
            "presidio": {
                "recall": score(presidio, entity, good),
                "false_positive": hits(presidio, entity, bad),
            },
            "tunegate": {"recall": score(ours, entity, good), "false_positive": hits(ours, entity, bad)},
            "forms": ["compact", "groups of 4 (spaces)", "groups of 4 (hyphens)", "lower case / grouped"],
            "false_positive_cases": "broken check digit" + (", card numbers" if entity == "PL_PESEL" else ""),
        }
        r = result["recognizers"][entity]
        print(
            f"{entity:<12} recall presidio {r['presidio']['recall']['rate']:.3f} "
            f"tunegate {r['tunegate']['recall']['rate']:.3f} | false-positive hits presidio "
            f"{r['presidio']['false_positive']['rate']:.3f} "
            f"tunegate {r['tunegate']['false_positive']['rate']:.3f}"
        )
    result["environment"] = {
        "python": sys.version.split()[0],
        "packages": package_versions(("presidio-analyzer",)),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
