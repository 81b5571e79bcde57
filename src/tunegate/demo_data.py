"""Synthetic support tickets with fake PII, for the demo and the tests.

Every value comes from Faker with a fixed seed: no real person is in this data. Tickets are built
from independent parts (greeting, problem, detail, contact line, sign-off) so that two tickets are
rarely near-duplicates, and each carries PII of the kinds the gate must remove: names, e-mails (some
obfuscated as ``name [at] domain``), phone numbers in US and EU formats, IBANs, Polish PESEL numbers,
IP addresses and card numbers. A second annotator's label (``label_2``) disagrees on a few percent of
tickets, and ``customer_id`` groups tickets of the same customer so they never straddle the split.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunegate.provenance import atomic_path

LABELS: dict[str, dict[str, list[str]]] = {
    "billing": {
        "problem": [
            "I was charged twice for my subscription this month",
            "my invoice shows a fee I never agreed to",
            "the monthly plan price went up without notice",
            "there is an unknown charge on my statement",
            "I keep getting billed after cancelling my plan",
            "the VAT on my last invoice looks wrong",
            "my discount code was not applied to the bill",
            "I need a corrected invoice with my company details",
        ],
        "detail": [
            "The amount was {amount} on {date}.",
            "Invoice number {ref} is the one in question.",
            "It happened again on {date}, {amount} both times.",
            "My account number is {ref} if that helps.",
        ],
    },
    "card_issue": {
        "problem": [
            "my card was declined at the supermarket",
            "the card reader says my PIN is blocked",
            "my new card has not arrived yet",
            "I think my card was cloned, there are payments I did not make",
            "contactless payments stopped working on my card",
            "my card expired and the replacement never came",
            "an ATM swallowed my card this morning",
            "online shops reject my card at checkout",
        ],
        "detail": [
            "The card ends in {last4} and I last used it on {date}.",
            "Card number {card} was the one affected.",
            "It was at a terminal in {city} on {date}.",
            "Please block it, the last four digits are {last4}.",
        ],
    },
    "account_access": {
        "problem": [
            "I cannot log in to my online account",
            "the password reset e-mail never arrives",
            "my two-factor code is always rejected",
            "my account got locked after too many attempts",
            "someone changed the e-mail address on my account",
            "the app logs me out every few minutes",
            "I lost the phone I use for the login codes",
            "the security questions do not accept my answers",
        ],
        "detail": [
            "I tried from IP address {ip} and it failed.",
            "My username is {user} and it worked until {date}.",
            "The error code was {ref}.",
            "Last successful login was on {date} from {city}.",
        ],
    },
    "refund": {
        "problem": [
            "I returned the item but the refund has not arrived",
            "please refund my order, it arrived broken",
            "I was promised a refund two weeks ago",
            "the refund went to a closed bank account",
            "I want my money back for the cancelled booking",
            "only part of my refund was paid out",
            "how long does a refund to my card take",
            "the seller agreed to refund me but nothing happened",
        ],
        "detail": [
            "Please send it to IBAN {iban}.",
            "The order {ref} cost {amount}.",
            "I sent the parcel back on {date}.",
            "My PESEL is {pesel} if you need it for the transfer.",
        ],
    },
    "delivery": {
        "problem": [
            "my parcel is marked delivered but I never got it",
            "the courier left my package at the wrong address",
            "the delivery has been stuck in transit for a week",
            "I need to change the delivery address for my order",
            "the box arrived open and items are missing",
            "the tracking number does not work",
            "my order was split and one part never came",
            "the delivery slot I booked was missed twice",
        ],
        "detail": [
            "Please deliver to {address} instead.",
            "Tracking number {ref}, shipped on {date}.",
            "I live at {address}.",
            "The order was placed on {date} for {amount}.",
        ],
    },
    "technical": {
        "problem": [
            "the app crashes every time I open the statements page",
            "I get an error when uploading my documents",
            "the website shows a blank page after login",
            "notifications stopped working on my phone",
            "the export to CSV produces an empty file",
            "the app is stuck on the loading screen",
            "dark mode makes the buttons unreadable",
            "I cannot scan the QR code in the app",
        ],
        "detail": [
            "My device reports IP {ip} and app version {version}.",
            "It started after the update on {date}.",
            "The error reference is {ref}.",
            "I am on version {version}, tried reinstalling already.",
        ],
    },
}

GREETINGS = [
    "Hello,",
    "Hi there,",
    "Good morning,",
    "Dear support team,",
    "Hey,",
    "To whom it may concern,",
    "",
    "Hi support,",
]
INTROS = [
    "my name is {name} and {problem}.",
    "{problem}.",
    "this is {name} writing: {problem}.",
    "I am {name}, {problem}.",
    "quick question, {problem}.",
    "{problem}, can you help?",
]
CONTACTS = [
    "You can reach me at {email}.",
    "Call me on {phone}.",
    "My e-mail is {email_obf}.",
    "Please reply to {email} or phone {phone}.",
    "My number is {phone_eu}.",
    "",
    "Contact: {email}.",
]
SIGNOFFS = ["Thanks, {name}", "Regards, {name}", "Best wishes", "Thank you!", "{name}", "Cheers", ""]


def _fields(fake: Any, rng: random.Random) -> dict[str, str]:
    name = fake.name()
    email = fake.email()
    user, domain = email.split("@", 1)
    dom, _, tld = domain.rpartition(".")
    eu_phone = rng.choice(
        [
            f"+48 {rng.randint(500, 899)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
            f"+49 30 {rng.randint(1000000, 9999999)}",
            f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        ]
    )
    return {
        "name": name,
        "email": email,
        "email_obf": f"{user} [at] {dom} [dot] {tld}",
        "phone": fake.phone_number(),
        "phone_eu": eu_phone,
        "iban": fake.iban(),
        "pesel": _pesel(rng),
        "ip": fake.ipv4_public(),
        "card": fake.credit_card_number(),
        "last4": str(rng.randint(1000, 9999)),
        "address": fake.address().replace("\n", ", "),
        "city": fake.city(),
        "user": fake.user_name(),
        "date": fake.date_between_dates(dt.date(2025, 1, 1), dt.date(2025, 12, 31)).isoformat(),
        "amount": f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d} EUR",
        "ref": f"{rng.choice('ABCDEFGHJK')}{rng.randint(100000, 999999)}",
        "version": f"{rng.randint(3, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
    }


def _pesel(rng: random.Random) -> str:
    """A checksum-valid Polish PESEL for a random birth date (synthetic)."""
    year, month, day = rng.randint(1950, 1999), rng.randint(1, 12), rng.randint(1, 28)
    digits = [year // 10 % 10, year % 10, month // 10, month % 10, day // 10, day % 10]
    digits += [rng.randint(0, 9) for _ in range(4)]
    weights = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]
    check = (10 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 10) % 10
    return "".join(map(str, [*digits, check]))


def generate_tickets(n: int = 600, *, seed: int = 7, disagreement: float = 0.04) -> Iterator[dict[str, Any]]:
    """Yield ``n`` synthetic tickets: ``text``, ``label``, ``label_2``, ``customer_id``, ``channel``."""
    from faker import Faker

    fake = Faker(["en_US"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    labels = sorted(LABELS)
    customers: list[str] = []
    for i in range(n):
        label = labels[i % len(labels)]
        spec = LABELS[label]
        f = _fields(fake, rng)
        parts = [
            rng.choice(GREETINGS),
            rng.choice(INTROS).format(problem=rng.choice(spec["problem"]), name=f["name"]),
            rng.choice(spec["detail"]).format(**f),
            rng.choice(CONTACTS).format(**f),
            rng.choice(SIGNOFFS).format(**f),
        ]
        text = " ".join(p for p in parts if p)
        text = text[0].upper() + text[1:]
        # About a third of the tickets come from a returning customer.
        if customers and rng.random() < 0.3:
            customer = rng.choice(customers)
        else:
            customer = f"C{rng.randint(10000, 99999)}"
            customers.append(customer)
        label_2 = label if rng.random() >= disagreement else rng.choice([x for x in labels if x != label])
        yield {
            "text": text,
            "label": label,
            "label_2": label_2,
            "customer_id": customer,
            "channel": rng.choice(["email", "chat", "web"]),
        }


def write_demo_tickets(path: str | Path, n: int = 600, *, seed: int = 7) -> Path:
    """Write the demo dataset as JSONL, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in generate_tickets(n, seed=seed):
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return path
