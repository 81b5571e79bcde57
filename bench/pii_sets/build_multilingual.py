"""Rebuild ``multilingual.jsonl``: a small hand-written set of the hard cases (no target yet).

Run:  python bench/pii_sets/build_multilingual.py

Groups: non-Latin names (CJK, Cyrillic, Greek, Arabic script), internationalised e-mail addresses,
zero-width characters inside identifiers, lower-case names, decomposed accents (NFD), names in
their own language's cased script. All values are invented.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZW = "\u200b"  # zero-width space
ZWJ = "\u200d"  # zero-width joiner


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


CASES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("cjk", "My name is 王小明 and I live in Shanghai.", [("PERSON", "王小明")]),
    ("cjk", "Please forward the invoice to 佐藤花子 by Friday.", [("PERSON", "佐藤花子")]),
    (
        "cjk",
        "Contact: 김민준, phone +82 10 1234 5678",
        [("PERSON", "김민준"), ("PHONE_NUMBER", "+82 10 1234 5678")],
    ),
    (
        "cjk",
        "我叫李华，我的电话是 +86 138 0013 8000。",
        [("PERSON", "李华"), ("PHONE_NUMBER", "+86 138 0013 8000")],
    ),
    ("cyrillic", "My name is Иван Петров, I work in Moscow.", [("PERSON", "Иван Петров")]),
    ("cyrillic", "Меня зовут Анна Смирнова.", [("PERSON", "Анна Смирнова")]),
    ("cyrillic", "Dear Олег Коваленко, your order has shipped.", [("PERSON", "Олег Коваленко")]),
    ("greek", "My name is Γιώργος Παπαδόπουλος.", [("PERSON", "Γιώργος Παπαδόπουλος")]),
    ("greek", "Ask for Ελένη Νικολάου at the front desk.", [("PERSON", "Ελένη Νικολάου")]),
    (
        "arabic",
        "My name is محمد العلي and my e-mail is m.ali@example.com",
        [("PERSON", "محمد العلي"), ("EMAIL_ADDRESS", "m.ali@example.com")],
    ),
    ("arabic", "Please call فاطمة الزهراء tomorrow.", [("PERSON", "فاطمة الزهراء")]),
    ("idn_email", "write to 用户@例子.广告 for details", [("EMAIL_ADDRESS", "用户@例子.广告")]),
    ("idn_email", "Kontakt: jörg.müller@bücher.de", [("EMAIL_ADDRESS", "jörg.müller@bücher.de")]),
    ("idn_email", "Пишите на иван@пример.рф", [("EMAIL_ADDRESS", "иван@пример.рф")]),
    ("idn_email", "email: θέμης@παράδειγμα.ελ", [("EMAIL_ADDRESS", "θέμης@παράδειγμα.ελ")]),
    (
        "zero_width",
        f"my email is jan{ZW}.kowalski@example.com",
        [("EMAIL_ADDRESS", f"jan{ZW}.kowalski@example.com")],
    ),
    ("zero_width", f"call +48 601{ZW} 234 567 now", [("PHONE_NUMBER", f"+48 601{ZW} 234 567")]),
    (
        "zero_width",
        f"card 4111{ZWJ}1111{ZWJ}1111{ZWJ}1111 expires soon",
        [("CREDIT_CARD", f"4111{ZWJ}1111{ZWJ}1111{ZWJ}1111")],
    ),
    (
        "zero_width",
        f"IBAN DE89{ZW}3704{ZW}0044{ZW}0532{ZW}0130{ZW}00",
        [("IBAN_CODE", f"DE89{ZW}3704{ZW}0044{ZW}0532{ZW}0130{ZW}00")],
    ),
    ("zero_width", f"My name is Ma{ZW}ria Gonzalez.", [("PERSON", f"Ma{ZW}ria Gonzalez")]),
    ("lower_case", "my name is john smith and i need help", [("PERSON", "john smith")]),
    ("lower_case", "text william that i will be late", [("PERSON", "william")]),
    ("lower_case", "lol me and sarah went to the mall", [("PERSON", "sarah")]),
    ("lower_case", "hey its mike, call me back", [("PERSON", "mike")]),
    ("lower_case", "dear mrs johnson, thank you for your letter", [("PERSON", "johnson")]),
    ("lower_case", "i talked to dr patel about it yesterday", [("PERSON", "patel")]),
    # decomposed accents (NFD, as macOS file systems and some exports write text)
    *(
        ("decomposed", _nfd(text), [(e, _nfd(v)) for e, v in values])
        for text, values in [
            ("Signed by Zoë Müller on behalf of the firm.", [("PERSON", "Zoë Müller")]),
            ("Customer René Descartes called about the refund.", [("PERSON", "René Descartes")]),
            ("Please ask Señora Peña about the invoice.", [("PERSON", "Peña")]),
            ("Paciente: María José González", [("PERSON", "María José González")]),
        ]
    ),
    # names in their own language and script (cased scripts other than Latin)
    ("native_script", "Вчера звонил Сергей Иванов.", [("PERSON", "Сергей Иванов")]),
    ("native_script", "Письмо для Екатерины Смирновой лежит на столе.", [("PERSON", "Екатерины Смирновой")]),
    ("native_script", "Η Μαρία Κωνσταντίνου είναι γιατρός.", [("PERSON", "Μαρία Κωνσταντίνου")]),
    ("native_script", "Իմ անունը Հայկ Պետրոսյան է:", [("PERSON", "Հայկ Պետրոսյան")]),
]


def main() -> int:
    lines = []
    for source, text, values in CASES:
        pii = []
        for entity, value in values:
            start = text.find(value)
            if start < 0:
                raise SystemExit(f"{value!r} not in {text!r}")
            pii.append({"entity": entity, "start": start, "end": start + len(value)})
        rid = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        lines.append(json.dumps({"id": rid, "source": source, "text": text, "pii": pii}, ensure_ascii=False))
    (HERE / "multilingual.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
