"""Keyed pseudonyms, operators, records API, report and residual scan."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tunegate.errors import DependencyError
from tunegate.pii.anonymize import PIIEngine, Pseudonymizer, normalize_value
from tunegate.pii.config import PIIPolicy
from tunegate.records import Message, Record, content_id

TEST_KEY = b"tunegate-unit-test-key-0123456789abcdef"

PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")


def _rec(text: str, note: str | None = None) -> Record:
    extra = {"note": note} if note else {}
    return Record(id=content_id("classification", {"text": text, "label": "x"}), task="classification",
                  text=text, label="x", extra=extra)  # fmt: skip


def test_same_value_same_placeholder_across_fields_and_variants(engine: PIIEngine) -> None:
    out, spans = engine.anonymize_texts(
        [
            "write to ola.nowak@example.pl today",
            "ask OLA.NOWAK@EXAMPLE.PL",
            "ola.nowak [at] example [dot] pl",
            "GET /s?email=ola.nowak%40example.pl",
            "mailto:ola.nowak&#64;example&#46;pl",
        ]
    )
    labels = [PLACEHOLDER.findall(t) for t in out]
    assert all(x == labels[0] for x in labels) and labels[0][0][0] == "EMAIL_ADDRESS"
    assert all(len(s) == 1 for s in spans)


def test_pseudonyms_deterministic_order_independent_and_keyed(
    pii_policy: PIIPolicy, pii_analyzer: Any
) -> None:
    texts = ["Call +48 601 234 567", "IBAN DE89 3704 0044 0532 0130 00", "mail a.b@example.com"]
    a = PIIEngine(pii_policy, key=TEST_KEY, analyzer=pii_analyzer).anonymize_texts(texts)[0]
    b = PIIEngine(pii_policy, key=TEST_KEY, analyzer=pii_analyzer).anonymize_texts(texts[::-1])[0][::-1]
    c = PIIEngine(pii_policy, key=b"another-key-0123456789abcdef", analyzer=pii_analyzer).anonymize_texts(
        texts
    )[0]
    assert a == b
    assert a != c
    assert all(PLACEHOLDER.search(t) for t in a)


def test_collisions_resolved_deterministically() -> None:
    values = [("PERSON", f"person {i}") for i in range(400)]  # 400 values in 10**4 numbers: collisions
    p1, p2 = Pseudonymizer(TEST_KEY, digits=4), Pseudonymizer(TEST_KEY, digits=4)
    p1.assign(values)
    shuffled = values[:]
    random.Random(1).shuffle(shuffled)
    p2.assign(shuffled)
    labels1 = [p1.label(*v) for v in values]
    assert labels1 == [p2.label(*v) for v in values]
    assert len(set(labels1)) == len(values)
    raw = {Pseudonymizer(TEST_KEY, 4)._number(e, n, 0) for e, n in values}
    assert len(raw) < len(values), "the test must actually exercise a collision"


def test_normalization() -> None:
    assert normalize_value("PERSON", "  Anna   NOWAK ") == normalize_value("PERSON", "anna nowak")
    assert normalize_value("PHONE_NUMBER", "+48 601-234-567") == normalize_value(
        "PHONE_NUMBER", "0048601234567"
    )
    assert normalize_value("IBAN_CODE", "pl61 1090") == "PL611090"


@pytest.mark.parametrize(
    ("operator", "check"),
    [
        ("replace", lambda t: "<EMAIL_ADDRESS>" in t),
        ("redact", lambda t: t == "mail  now"),
        ("mask", lambda t: "*" * 10 in t and "@" not in t),
        ("hash", lambda t: re.search(r"<EMAIL_ADDRESS_h[0-9a-f]{16}>", t) is not None),
    ],
)
def test_operators(pii_policy: PIIPolicy, pii_analyzer: Any, operator: str, check: Any) -> None:
    policy = pii_policy.model_copy(update={"operators": {"EMAIL_ADDRESS": operator}})
    out, _ = PIIEngine(policy, key=TEST_KEY, analyzer=pii_analyzer).anonymize_texts(
        ["mail ola@example.pl now"]
    )
    assert check(out[0]), out[0]


def test_anonymize_records_keeps_ids_and_reports_counts_only(
    engine: PIIEngine, pii_policy: PIIPolicy
) -> None:
    recs = [
        _rec("My name is Zbigniew Wąsowicz, call +48 601 234 567", note="zbigniew@example.pl"),
        _rec("nothing personal here"),
        Record(id="c1", task="chat", messages=(Message(role="user", content="I am Zbigniew Wąsowicz"),)),
    ]
    out, report = engine.anonymize_records(recs)
    assert [r.id for r in out] == [r.id for r in recs]
    assert out[1] == recs[1]
    assert "Wąsowicz" not in out[0].text and "601" not in out[0].text
    assert PLACEHOLDER.findall(out[0].text)[0] == PLACEHOLDER.findall(out[2].messages[0].content)[0]
    assert report.counts["PHONE_NUMBER"] == {"text": 1}
    assert report.counts["EMAIL_ADDRESS"] == {"extra.note": 1}
    assert report.counts["PERSON"] == {"messages.content": 1, "text": 1}
    assert report.records_with_pii == 2 and report.records_scanned == 3
    assert report.residual_ok(pii_policy) and report.model == pii_policy.spacy_model
    assert "Wąsowicz" not in str(report.to_json()) and "601" not in str(report.to_json())
    # field selection
    _, only_note = engine.anonymize_records(recs, fields=["extra.note"])
    assert set(only_note.totals) == {"EMAIL_ADDRESS"}


def test_scan_records_counts_residuals_and_policy_flags_them(
    engine: PIIEngine, pii_policy: PIIPolicy
) -> None:
    raw = [_rec("card 4111 1111 1111 1111 and ola@example.pl")]
    report = engine.scan_records(raw)
    assert report.residual_totals == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    assert not report.residual_ok(pii_policy)
    assert any("CREDIT_CARD" in v for v in report.violations(pii_policy))
    anonymized, rep2 = engine.anonymize_records(raw)
    assert engine.scan_records(anonymized).residual_totals == {} and rep2.residual_ok(pii_policy)


def test_no_key_stops_before_reading_data(
    monkeypatch: pytest.MonkeyPatch, pii_policy: PIIPolicy, pii_analyzer: Any
) -> None:
    monkeypatch.delenv("TUNEGATE_PII_KEY", raising=False)

    def records() -> Iterator[Record]:
        raise AssertionError("data was read before the key was checked")
        yield  # pragma: no cover

    with pytest.raises(DependencyError, match="TUNEGATE_PII_KEY"):
        PIIEngine(pii_policy, analyzer=pii_analyzer).anonymize_records(records())


def test_constructor_does_no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEGATE_PII_KEY", raising=False)
    PIIEngine(PIIPolicy(spacy_model="missing_model_xyz"))  # neither model nor key touched


def test_import_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tunegate.pii, tunegate.cli; "
        "print(any(m.startswith(('presidio', 'spacy')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_regex_only_is_stamped_into_the_report() -> None:
    from tunegate.pii.detect import build_analyzer

    policy = PIIPolicy(spacy_model="not_installed_model_xyz", allow_regex_only=True)
    engine = PIIEngine(policy, key=TEST_KEY, analyzer=build_analyzer(policy))
    _, report = engine.anonymize_records([_rec("mail ola@example.pl")])
    assert report.regex_only and report.model == "regex-only"
    assert "REGEX-ONLY" in report.summary_lines()[0]
    assert report.totals == {"EMAIL_ADDRESS": 1}


def test_residual_rescan_scans_again_only_what_the_anonymizer_changed(
    engine: PIIEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default entities the re-scan is the same deterministic detector: a text left
    unchanged is not scanned twice; an anonymized one is scanned again (the real detector runs)."""
    import tunegate.pii.anonymize as anonymize_module

    seen: list[str] = []
    real = anonymize_module.detect_texts

    def counting(analyzer: Any, policy: PIIPolicy, texts: list[str]) -> Any:
        seen.extend(texts)
        return real(analyzer, policy, texts)

    monkeypatch.setattr(anonymize_module, "detect_texts", counting)
    clean = "The parcel arrived two days late and the box was damaged."
    dirty = "Write to jan.kowalski@example.com about the refund."
    new_texts, report = engine.anonymize_items([(0, "text", clean), (1, "text", dirty)], 2)
    assert new_texts[0] == clean and "jan.kowalski" not in new_texts[1]
    assert seen.count(clean) == 1 and seen.count(dirty) == 1
    assert seen.count(new_texts[1]) == 1  # the output was re-scanned
    assert report.residual_totals == {}
    only_person = PIIEngine(PIIPolicy(entities=("PERSON",)), key=TEST_KEY)
    assert only_person.residual_policy != only_person.policy  # its re-scan is a wider detector
