"""Every field, every shape reaches the PII engine; labels and closed fields are checked, not copied.

Real Presidio (the offline spaCy model) on hand-made records with synthetic PII.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.datagate_helpers import labelled

from tunegate.data.config import DataPolicy
from tunegate.data.labels import check_labels
from tunegate.records import Record, content_id, field_family, path_parts, replace_texts, text_fields

KEY = b"fields-test-key-0123456789abcdef"
EMAIL = "jan.kowalski@example.org"
PHONE_INT = 2025550143  # a (US) phone stored as a number
NAME = "Zbigniew Canarowski"


@pytest.fixture(scope="module")
def engine() -> Any:
    from tunegate.pii.anonymize import PIIEngine
    from tunegate.pii.config import PIIPolicy

    eng = PIIEngine(PIIPolicy(), key=KEY)
    eng.prepare()
    return eng


def _nested() -> Record:
    fields = {"text": "please call me back", "label": "callback"}
    return Record(
        id=content_id("classification", fields, KEY),
        task="classification",
        **fields,
        label_2="callback",
        group=EMAIL,
        extra={
            "customer": {"contact": {"emails": [EMAIL, "n/a"], "phone": PHONE_INT}, "tier": 3},
            "notes": [f"spoke to {NAME}", {"deep": [f"write to {EMAIL}"]}],
            "odd.key": f"ask for {NAME}",
            "ticket": 1234,  # a short number is a count or a ticket number, not an identifier
            "flag": True,
        },
    )


def test_text_fields_cover_every_leaf() -> None:
    paths = text_fields(_nested())
    assert sorted(paths) == [
        "extra.customer.contact.emails.0",
        "extra.customer.contact.emails.1",
        "extra.customer.contact.phone",
        "extra.notes.0",
        "extra.notes.1.deep.0",
        "extra.odd\\.key",
        "group",
        "label_2",
        "text",
    ]
    assert paths["extra.customer.contact.phone"] == str(PHONE_INT)
    assert path_parts("extra.odd\\.key") == ["extra", "odd.key"]
    assert field_family("extra.notes.1.deep.0") == "extra.notes.deep"


def test_replace_texts_at_any_depth_keeps_structure() -> None:
    rec = _nested()
    new = replace_texts(
        rec,
        {
            "extra.customer.contact.emails.0": "<EMAIL_1>",
            "extra.customer.contact.phone": "<PHONE_1>",
            "extra.notes.1.deep.0": "write to <EMAIL_1>",
            "extra.odd\\.key": "ask for <PERSON_1>",
            "group": "<EMAIL_1>",
        },
    )
    assert new.id == rec.id and new.group == "<EMAIL_1>"
    assert new.extra["customer"] == {
        "contact": {"emails": ["<EMAIL_1>", "n/a"], "phone": "<PHONE_1>"},
        "tier": 3,
    }
    assert new.extra["notes"] == [f"spoke to {NAME}", {"deep": ["write to <EMAIL_1>"]}]
    assert new.extra["odd.key"] == "ask for <PERSON_1>" and new.extra["ticket"] == 1234
    assert rec.extra["customer"]["contact"]["phone"] == PHONE_INT  # the original is untouched
    # an unchanged identifier-like number stays a number
    assert replace_texts(rec, {"extra.customer.contact.phone": str(PHONE_INT)}).extra == rec.extra
    with pytest.raises(KeyError):
        replace_texts(rec, {"extra.nowhere.0": "x"})


def test_engine_anonymizes_every_shape_and_rescan_covers_the_same_leaves(engine: Any) -> None:
    out, report = engine.anonymize_records([_nested()])
    written = out[0].to_json()
    for raw in (EMAIL, NAME, str(PHONE_INT), "Canarowski"):
        assert raw not in written, raw
    assert report.residual_totals == {}
    assert report.texts_scanned == len(text_fields(_nested()))
    rescan = engine.scan_records(out)
    assert rescan.texts_scanned == report.texts_scanned and rescan.residual_totals == {}


def test_a_short_leaf_is_also_read_after_its_key(engine: Any) -> None:
    """``46701234567`` alone is no phone and ``536228741`` no SSN; under ``phone`` / ``ssn`` they are.
    A number under any other key, or a name cue in a key (``product_name``), adds nothing."""
    fields = {"text": "please call me back", "label": "callback"}
    extra = {
        "contact": {"phone": 46701234567, "ssn": 536228741},
        "order_id": 88812345670,
        "product_name": "Galaxy S21",
    }
    rec = Record(id=content_id("classification", fields, KEY), task="classification", **fields, extra=extra)
    [out], report = engine.anonymize_records([rec])
    assert out.extra["contact"]["phone"].startswith("<PHONE_NUMBER_")
    assert out.extra["contact"]["ssn"].startswith("<US_SSN_")
    assert out.extra["order_id"] == 88812345670 and out.extra["product_name"] == "Galaxy S21"
    assert report.residual_totals == {}
    # the detection-only re-scan reads keys the same way: the raw record shows both
    assert engine.scan_records([rec]).residual_totals == {"PHONE_NUMBER": 1, "US_SSN": 1}


def test_labels_with_pii_fail_naming_ids_not_values(engine: Any) -> None:
    recs = labelled({"billing": 30, "refund": 30})
    bad = recs[0].model_copy(update={"label": f"ask {EMAIL}"})
    result = check_labels([bad, *recs[1:]], DataPolicy(), engine.detect)
    assert not result.passed and result.blocking
    assert "EMAIL_ADDRESS" in result.message and bad.id[:12] in result.message
    assert EMAIL not in result.message and EMAIL not in str(result.figures)
    assert check_labels(recs, DataPolicy(), engine.detect).passed


def test_label_2_with_pii_fails(engine: Any) -> None:
    recs = labelled({"billing": 10, "refund": 10})
    recs[3] = recs[3].model_copy(update={"label_2": NAME})
    result = check_labels(recs, DataPolicy(), engine.detect)
    assert not result.passed and "PERSON" in result.message and NAME not in result.message


def test_text_column_mapped_as_label_looks_like_free_text(engine: Any) -> None:
    recs = labelled({"x": 80})
    as_text = [r.model_copy(update={"label": r.text}) for r in recs]  # what --field label=text does
    result = check_labels(as_text, DataPolicy(), engine.detect)
    assert not result.passed and "looks like free text" in result.message
    assert all((r.text or "") not in result.message for r in as_text)
    few = check_labels(as_text, DataPolicy(max_labels=10, max_label_ratio=1.0), engine.detect)
    assert "80 distinct labels (limit 10)" in few.message
    long = [r.model_copy(update={"label": "a" * 80}) for r in recs[:3]] + recs[3:]
    assert (
        "longer than 64 characters in 3 record(s)" in check_labels(long, DataPolicy(), engine.detect).message
    )


def test_closed_fields_refuse_free_text(engine: Any) -> None:
    recs = labelled({"a": 20, "b": 20})
    recs = [r.model_copy(update={"group": f"C{i:04d}"}) for i, r in enumerate(recs)]  # "C0030": PERSON to NER
    policy = DataPolicy(closed_fields=["group"])
    assert check_labels(recs, policy, engine.detect).passed
    recs[7] = recs[7].model_copy(update={"group": EMAIL})
    mail = check_labels(recs, policy, engine.detect)
    assert not mail.passed and "EMAIL_ADDRESS 1" in mail.message and mail.figures["pii_ids"] == [recs[7].id]
    recs[5] = recs[5].model_copy(update={"group": "customer wrote a long complaint here"})
    result = check_labels(recs, policy, engine.detect)
    assert not result.passed and "closed field 'group' holds free text" in result.message
    assert result.figures["free_text_ids"] == {"group": [recs[5].id]}
