"""Issue 12: precision filters, residual coverage, consistency, hard scripts, in-place refusal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tunegate.errors import InputError
from tunegate.pii.anonymize import PIIEngine
from tunegate.pii.config import PIIPolicy
from tunegate.pii.detect import detect_texts, not_a_phone
from tunegate.records import Record, content_id

TEST_KEY = b"tunegate-unit-test-key-0123456789abcdef"
ZW = "\u200b"


def _found(analyzer: Any, policy: PIIPolicy, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in detect_texts(analyzer, policy, [text])[0]:
        out.setdefault(s.entity_type, []).append(text[s.start : s.end])
    return out


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Rewrite this sentence to be clearer.", "Rewrite"),
        ("Convert 5 km to miles.", "Convert"),
        ("Dreams are important. Explain why.", "Dreams"),
        ("I want to visit malawi", "malawi"),
        ("can i use my visa card abroad", "visa"),
        ("text william that i am late", "text"),
        ("DeepMind released a new model.", "DeepMind"),
        ("Vomitoriums were used in Rome.", "Vomitoriums"),
        # a capitalized word of a spaCy ORGANIZATION, where the ORG rule's guards apply
        ("Fernandez Inc opened a new office downtown", "Fernandez"),  # a legal form (tagger 0.70)
        ("She moved to 12 Oak Street, Feliciano last spring", "Feliciano"),  # the town of an address
        ("We'll meet Tuesday at Locavore, 641 Dašická 688, Turkovice u Prelouce", "Turkovice"),
        ("Carroll , Iowa : Where The Childhood Paper Route Is Alive And Well", "Carroll"),  # , <place>
        # a cue before vocabulary words the tagger does not believe (0.003)
        ("Dear Hiring Manager,\n\nI'm excited to be applying for the role.", "Manager"),
        # a title with no name: a letter template's blank, a bare greeting
        ("Dear Mr. [Last Name],\n\nThank you for your time.", "Mr"),
        ("Dear Professor ____,\n\nI am writing to recommend a student.", "Professor"),
        ("Dear Professor, I am writing to ask about the course.", "Professor"),
        # an object's member in code
        ("for (int i = 0; i < numbers.Length - 1; i++)", "Length"),
        ("$.ajax({ method: 'GET', url: url })", "ajax"),
    ],
)
def test_no_person_on_common_words(pii_analyzer: Any, pii_policy: PIIPolicy, text: str, word: str) -> None:
    persons = _found(pii_analyzer, pii_policy, text).get("PERSON", [])
    assert not any(word in p for p in persons), persons


@pytest.mark.parametrize(
    "text",
    [
        "Ticket opened 2023-01-15 10:30:45 by the agent",
        "When: 2005-07-21 18:19:22 Where: Novo mesto",
        "Delivered on 15.01.2023 at 10:30",
        "Your order number 123456789 has shipped",
        "Invoice #2023 0045 6789 is attached",
        "The house costs $1 234 567 now",
        "It costs 250 000 EUR",
        # a quantity's range: after a word of estimate, or before a unit
        "Is there a breakfast that has roughly 700-1000 calories?",
        "Write an essay of 500-2000 words on the topic.",
    ],
)
def test_never_a_phone(pii_analyzer: Any, pii_policy: PIIPolicy, text: str) -> None:
    assert "PHONE_NUMBER" not in _found(pii_analyzer, pii_policy, text)


def test_phone_filter_keeps_phones() -> None:
    text = "Call me on 601 234 567 or +48 601 234 567"
    assert not not_a_phone(text, 11, 22)
    # a rising pair of groups is a phone where a phone cue is near, or without estimate or unit
    for text in ("roughly, call 555-1234 tonights", "Jane 555-1234 tomorrow"):
        start = text.index("555")
        assert not not_a_phone(text, start, start + 8), text


@pytest.mark.parametrize(
    ("text", "name"),
    [("Dear Professor Smith, I am writing.", "Professor Smith"), ("Thanks, Don.", "Don")],
)
def test_a_title_with_a_name_or_a_name_like_a_title_stays(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str
) -> None:
    assert name in _found(pii_analyzer, pii_policy, text).get("PERSON", [])


def test_a_glued_title_or_initial_is_no_object(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(pii_analyzer, pii_policy, "Letter to Mr.Smith and J.Smith today").get("PERSON", [])
    assert any("Smith" in v and v.startswith("Mr") for v in found), found
    assert any(v.startswith("J.Smith") for v in found), found


def test_an_address_s_domain_is_after_its_at(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    # a package's version in a script's URL: ``popper.js@1.16.1`` has no mail domain
    text = '<script src="https://cdn.jsdelivr.net/npm/popper.js@1.16.1/dist/umd/popper.min.js"></script>'
    assert "EMAIL_ADDRESS" not in _found(pii_analyzer, pii_policy, text)
    kept = _found(pii_analyzer, pii_policy, "mail jdoe@corp.internal or x.y@mail.co.uk")["EMAIL_ADDRESS"]
    assert kept == ["jdoe@corp.internal", "x.y@mail.co.uk"]


def test_a_cue_keeps_a_word_name_the_tagger_believes(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    # ``Hope`` scores 0.14, over the rule floor: a cue's name of vocabulary words is judged, not dropped
    assert "Hope" in _found(pii_analyzer, pii_policy, "Dear Hope, thanks for the card.").get("PERSON", [])


@pytest.mark.parametrize(
    ("text", "month", "kept"),
    [
        ("Republicans in August showed Romney at 9 percent", "August", False),
        ("The vote was held on June 5 in the city", "June", False),
        ("Results came mid-April, as expected", "April", False),
        ("I gave the keys to April yesterday", "April", True),
        ("A letter from June arrived", "June", True),
    ],
)
def test_a_month_of_a_date_is_no_name(pii_policy: PIIPolicy, text: str, month: str, kept: bool) -> None:
    from presidio_analyzer import RecognizerResult

    from tunegate.pii.detect import postprocess

    a = text.index(month)
    meta = {"recognizer_name": "PersonTaggerRecognizer"}
    spans = postprocess(
        text, [RecognizerResult("PERSON", a, a + len(month), 0.79, recognition_metadata=meta)], pii_policy
    )
    assert ([text[s.start : s.end] for s in spans] == [month]) is kept, spans
    assert not_a_phone("at 2023-01-15 10", 3, 16)


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("My name is 王小明 and I live in Shanghai.", "PERSON", "王小明"),
        ("My name is Иван Петров, I work in Moscow.", "PERSON", "Иван Петров"),
        ("My name is Γιώργος Παπαδόπουλος.", "PERSON", "Γιώργος Παπαδόπουλος"),
        ("My name is محمد العلي today", "PERSON", "محمد العلي"),
        ("write to 用户@例子.广告 for details", "EMAIL_ADDRESS", "用户@例子.广告"),
        ("Kontakt: jörg.müller@bücher.de", "EMAIL_ADDRESS", "jörg.müller@bücher.de"),
        (f"my email is jan{ZW}.kowalski@example.com", "EMAIL_ADDRESS", f"jan{ZW}.kowalski@example.com"),
        (
            f"IBAN DE89{ZW}3704{ZW}0044{ZW}0532{ZW}0130{ZW}00",
            "IBAN_CODE",
            f"DE89{ZW}3704{ZW}0044{ZW}0532{ZW}0130{ZW}00",
        ),
        ("lol me and sarah went to the mall", "PERSON", "sarah"),
        ("my name is john smith and i need help", "PERSON", "john smith"),
        # lower case: a word the tagger gives little next to one it believes is no part of the name
        # (spaCy tags both NNP), and one it believes stays, whatever spaCy's tag (lil/CD)
        ("spell aaron", "PERSON", "aaron"),
        ("lil wayne is the best", "PERSON", "lil wayne"),
        # a stop word or function word the tagger calls a name (will/MD 0.94, may 0.93, uzi/IN)
        ("i love will smith movies", "PERSON", "will smith"),
        ("may west was an actress", "PERSON", "may west"),
        ("lil uzi vert new album", "PERSON", "lil uzi vert"),
        # look-alike separators between digit groups: no-break, thin and narrow no-break spaces,
        # the non-breaking hyphen, the en dash, the minus sign
        ("Card: 4111\u00a01111\u00a01111\u00a01111", "CREDIT_CARD", "4111\u00a01111\u00a01111\u00a01111"),
        (
            "IBAN FR76\u20093000\u20096000\u20090112\u20093456\u20097890\u2009189",
            "IBAN_CODE",
            "FR76\u20093000\u20096000\u20090112\u20093456\u20097890\u2009189",
        ),
        ("Tél. 06\u202f12\u202f34\u202f56\u202f78", "PHONE_NUMBER", "06\u202f12\u202f34\u202f56\u202f78"),
        ("SSN: 123\u201145\u20116789", "US_SSN", "123\u201145\u20116789"),
        # fullwidth forms of ASCII, as CJK input methods write them
        (
            "請聯絡 ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ，謝謝",
            "EMAIL_ADDRESS",
            "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        ),
        ("Her name is ｊｏｈｎ ｓｍｉｔｈ", "PERSON", "ｊｏｈｎ ｓｍｉｔｈ"),
        ("call 555\u2013234\u20135678 or 555\u2212234\u22125679", "PHONE_NUMBER", "555\u2212234\u22125679"),
        # decomposed accents (NFD): the whole name, its combining marks included
        (
            "Dear Franc\u0327ois N\u0303u\u0301n\u0303ez, thanks.",
            "PERSON",
            "Franc\u0327ois N\u0303u\u0301n\u0303ez",
        ),
        (
            "My name is Bjo\u0308rn A\u030angstro\u0308m and I live here.",
            "PERSON",
            "Bjo\u0308rn A\u030angstro\u0308m",
        ),
        ("Employee J\u0307ohn Smith signed.", "PERSON", "J\u0307ohn Smith"),
        # capitalized words in a row in a cased non-Latin script, in its own language
        ("Меня зовут Анна Смирнова.", "PERSON", "Анна Смирнова"),
        ("Письмо от Ивана Петрова пришло вчера.", "PERSON", "Ивана Петрова"),
        ("Ο Γιώργος Παπαδόπουλος τηλεφώνησε.", "PERSON", "Γιώργος Παπαδόπουλος"),
        ("Война и мир — роман Льва Толстого.", "PERSON", "Льва Толстого"),
        ("Signed: Ελένη Νικολάου", "PERSON", "Ελένη Νικολάου"),
        # a script without case after a form label or a cue and its colon
        ("Contact: 김민준, phone +82 10 1234 5678", "PERSON", "김민준"),
        ("Signed: 王伟", "PERSON", "王伟"),
    ],
)
def test_hard_scripts_and_lower_case(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, entity: str, value: str
) -> None:
    assert value in _found(pii_analyzer, pii_policy, text).get(entity, [])


def test_decomposed_accents_leave_no_letter_of_a_name(engine: PIIEngine) -> None:
    text = "Dear Franc\u0327ois N\u0303u\u0301n\u0303ez, thanks."
    out, _ = engine.anonymize_texts([text])
    assert out[0].startswith("Dear <PERSON_") and out[0].endswith(">, thanks.")
    assert "\u0303" not in out[0] and "ez" not in out[0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Война и мир — роман о войне.", "Война"),  # one capital: a sentence's first word
        ("В Москве идёт снег.", "Москве"),  # a single capitalized word is left to the cues
        ("Η Αθήνα είναι η πρωτεύουσα.", "Αθήνα"),
        # a street of an address: next to a house number
        ("Tilly Nicholson lives at 10252 Μεγάλη Άμμος 184, ΠΑΦΟΣ", "Μεγάλη Άμμος"),
        ("It's in Λεωφόρος Συγγρού 119 Nino Point", "Λεωφόρος Συγγρού"),
    ],
)
def test_a_single_capitalized_word_or_a_street_of_a_cased_script_is_no_name(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, words: str
) -> None:
    names = _found(pii_analyzer, pii_policy, text).get("PERSON", [])
    assert not any(w in name for w in words.split() for name in names), names


@pytest.mark.parametrize("text", ["i will call you tomorrow", "may i have the bill", "the man and the dog"])
def test_stop_words_stay_words(pii_analyzer: Any, pii_policy: PIIPolicy, text: str) -> None:
    assert "PERSON" not in _found(pii_analyzer, pii_policy, text)


def test_a_listing_topic_is_a_topic_in_the_running_text(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    text = (
        "Identify 5 online resources for improving public speaking.\n"
        "1. Toastmasters International (toastmasters.org): Toastmasters is a non-profit.\n\n"
        "2. TED Talks (ted.com): TED Talks is a popular platform for sharing ideas.\n\n"
        "3. Coursera (coursera.org): Coursera offers courses.\n\n"
        "4. Jane Doe (janedoe.com): Jane Doe teaches speaking."
    )
    persons = _found(pii_analyzer, pii_policy, text).get("PERSON", [])
    assert "TED Talks" not in persons
    assert persons.count("Jane Doe") == 2  # a person in the listing stays one, label and text


def test_prefilter_off_by_default() -> None:
    assert PIIPolicy().ner_prefilter is False


def test_n_process_defaults_to_available_cores() -> None:
    policy = PIIPolicy()
    assert policy.n_process is None
    assert policy.processes() == min(len(os.sched_getaffinity(0)), 4)
    assert PIIPolicy(n_process=3).processes() == 3


def _alpaca(instruction: str, inp: str, output: str) -> Record:
    fields = {"instruction": instruction, "input": inp, "output": output}
    return Record(id=content_id("instruction", fields), task="instruction", **fields)


def test_residual_covers_structured_ids_whatever_entities(pii_analyzer: Any) -> None:
    policy = PIIPolicy(entities=("PERSON",))
    engine = PIIEngine(policy, key=TEST_KEY, analyzer=pii_analyzer)
    rec = _alpaca("Send it to ola.nowak@example.pl", "", "Or call +48 601 234 567")
    _, report = engine.anonymize_records([rec])
    assert report.residual_totals.get("EMAIL_ADDRESS") == 1
    assert report.residual_totals.get("PHONE_NUMBER") == 1
    violations = report.violations(policy)
    assert violations and any(rec.id in v and "instruction" in v for v in violations)
    dumped = json.dumps(report.to_json())
    assert {"record": rec.id, "field": "instruction", "entity": "EMAIL_ADDRESS"} in report.residual_locations
    assert "ola.nowak" not in dumped and "601 234" not in dumped and "ola.nowak" not in " ".join(violations)


def test_name_replaced_in_every_field(engine: PIIEngine) -> None:
    rec = _alpaca("My name is Zbigniew Wąsowicz.", "", "hello zbigniew wąsowicz, nice to meet you")
    (out,), _ = engine.anonymize_records([rec])
    assert "wąsowicz" not in (out.output or "").casefold()
    assert "Wąsowicz" not in (out.instruction or "")


def test_lower_case_single_word_names_stay_in_their_record(engine: PIIEngine) -> None:
    """A one-word name written in lower case is replaced in every field of its own record, but not
    in other records, where the same word is as often a word (``text bill`` / ``pay my bill``);
    a capitalized or several-word name is replaced everywhere."""
    recs = [
        _alpaca("can you text bill and tell him i love him", "", "ok, i will text bill now"),
        _alpaca("how do i pay my electric bill", "", "log in and pay the bill online"),
        _alpaca("My friend Avril sings.", "", "Sure."),
        _alpaca("Who is Avril?", "", "A friend."),
    ]
    assert engine.detect(["can you text bill and tell him i love him"])[0]  # found there, by the detector
    out, _ = engine.anonymize_records(recs)
    assert "bill" not in (out[0].instruction or "") + (out[0].output or "")
    assert out[1].instruction == recs[1].instruction and out[1].output == recs[1].output
    assert "Avril" not in (out[2].instruction or "") + (out[3].instruction or "")


def test_lower_case_names_of_common_words_stay_in_their_record(engine: PIIEngine) -> None:
    """Several words written in lower case, all of them common words (``red robin``, a restaurant
    the detector called a name in one request), are replaced in their own record only, like a
    lower-case single word; a name written capitalized, or with a word no vocabulary holds, is
    replaced everywhere, in any case."""
    recs = [
        _alpaca("does red robin have good reviews", "", "red robin is rated 4 of 5"),
        _alpaca("cancel my reservation for 4 at red robin", "", "Done."),
        _alpaca("My colleague Anna Kowalska called.", "", "Noted."),
        _alpaca("is anna kowalska in today", "", "I do not know."),
    ]
    assert [bool(r) for r in engine.detect([recs[0].instruction or "", recs[1].instruction or ""])] == [
        True,
        False,
    ], "the premise: found in the first request only"
    out, _ = engine.anonymize_records(recs)
    assert "red robin" not in (out[0].instruction or "") + (out[0].output or "")
    assert out[1].instruction == recs[1].instruction
    assert "kowalska" not in ((out[2].instruction or "") + (out[3].instruction or "")).casefold()


MOON = (
    "1. Craters: The surface of the moon is covered in impact craters.\n\n2. Lunar Maria: The dark "
    "areas on the moon, visible from Earth, are called lunar maria.\n\n3. Lack of Atmosphere: The "
    "moon has no significant atmosphere."
)


def _words_in_lower_case_records() -> list[Record]:
    return [
        _alpaca("Maria invited 4 of her friends over.", "", "Maria gave each friend 2 balloons."),
        _alpaca("List three features of the moon.", "", MOON),
        _alpaca("Who is Maria?", "", "A friend of mine."),
        _alpaca("Maria Lopez wrote a paper on the lunar maria.", "", "Maria says they are dark."),
    ]


def test_a_name_is_not_replaced_where_its_record_writes_it_as_a_word(engine: PIIEngine) -> None:
    """A capitalized one-word name found in one record is not replaced in another record that also
    writes the word in lower case (``2. Lunar Maria: ... lunar maria``: a heading), unless the
    detector found the name in that record too; elsewhere it is replaced as before."""
    recs = _words_in_lower_case_records()
    assert not engine.detect([recs[1].output or ""])[0], "the premise: not a name in its own record"
    out, _ = engine.anonymize_records(recs)
    assert "Maria" not in (out[0].instruction or "") + (out[0].output or "")
    assert out[1].output == recs[1].output
    assert "Maria" not in (out[2].instruction or "")  # no lower-case word there: replaced
    assert "Maria" not in (out[3].instruction or "") + (out[3].output or "")  # detected in it
    assert "the lunar maria." in (out[3].instruction or "")
    # the same records as separate texts of one call (each its own record)
    texts = [recs[0].instruction or "", recs[1].output or "", recs[2].instruction or ""]
    got, _ = engine.anonymize_texts(texts)
    assert got[1] == texts[1] and "Maria" not in got[0] + got[2]


def test_name_split_across_fields(engine: PIIEngine) -> None:
    assert engine.detect(["zorvath"]) == [[]]  # alone, the (lower-case) word is not a name
    rec = _alpaca("Please remember that my name is", "zorvath", "Noted.")
    (out,), report = engine.anonymize_records([rec])
    assert out.input != "zorvath" and "PERSON" in report.totals


def test_anonymize_refuses_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tunegate.cli import main

    monkeypatch.setenv("TUNEGATE_PII_KEY", TEST_KEY.decode())
    src = tmp_path / "data.jsonl"
    src.write_text('{"text": "mail ola.nowak@example.pl"}\n', encoding="utf-8")
    before = src.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(src)
    hard = tmp_path / "hard.jsonl"
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "sub" / ".." / "data.jsonl"):
        with pytest.raises(SystemExit) as exc:
            main(["anonymize", str(src), "--out", str(out)])
        assert exc.value.code == 2
        assert "output is the input" in capsys.readouterr().err
        assert src.read_bytes() == before


def test_a_key_holding_pii_refuses_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys are never anonymized: a phone book keyed by name or e-mail would reach the output (and
    the report's field paths) raw. The row is refused with exit 2, no output, and the message names
    the row and field but never the key; a clean nested object is anonymized as before."""
    from tunegate.cli import main

    monkeypatch.setenv("TUNEGATE_PII_KEY", TEST_KEY.decode())
    src, out = tmp_path / "data.jsonl", tmp_path / "out.jsonl"
    rows = [
        {"text": "Where is my refund?", "meta": {"contacts": {"primary": "ola.nowak@example.pl"}}},
        {"text": "Reset my card.", "meta": {"contacts": [{"jan.kowalski@example.com": "primary"}]}},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["anonymize", str(src), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "field 'meta'" in err and "EMAIL_ADDRESS" in err
    assert "kowalski" not in err and not out.exists()
    # the same data with the key left out of --fields: the user chose to keep 'meta' as it is
    with pytest.raises(SystemExit) as exc:
        main(["anonymize", str(src), "--out", str(out), "--fields", "text"])
    assert exc.value.code == 0 and out.exists()
    # a record's extra (prepare's path) is checked the same way; the clean row passes
    engine = PIIEngine(PIIPolicy(), key=TEST_KEY)
    clean, keyed = (
        Record(id=f"r{i}", task="classification", text=r["text"], label="x", extra={"meta": r["meta"]})
        for i, r in enumerate(rows)
    )
    (done,), _ = engine.anonymize_records([clean])
    assert "ola.nowak" not in json.dumps(done.extra)
    with pytest.raises(InputError, match="a key inside field 'meta' holds personal data"):
        engine.anonymize_records([keyed])


def test_iban_followed_by_a_word(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(pii_analyzer, pii_policy, "Please transfer it to BE16049996228303 today")
    assert found.get("IBAN_CODE") == ["BE16049996228303"]


def test_lower_case_name_after_title(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    assert "patel" in _found(pii_analyzer, pii_policy, "i talked to dr patel about it").get("PERSON", [])
    assert "PERSON" not in _found(pii_analyzer, pii_policy, "my name is not important")


def test_card_number_is_not_a_pesel(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    # Presidio's PlPeselRecognizer matches 11 digits inside card numbers; tunegate's does not
    found = _found(pii_analyzer, pii_policy, "My card 4131034282458809939 is expiring this month")
    assert "PL_PESEL" not in found
    assert found.get("CREDIT_CARD") == ["4131034282458809939"]


def test_analyzer_always_has_structured_recognizers() -> None:
    from tunegate.pii.detect import build_analyzer

    analyzer = build_analyzer(PIIPolicy(entities=("PERSON",)))
    covered = {e for r in analyzer.registry.recognizers for e in r.supported_entities}
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN"} <= covered
    # but detection for anonymization stays limited to the policy's entities
    policy = PIIPolicy(entities=("PERSON",))
    assert detect_texts(analyzer, policy, ["mail ola.nowak@example.pl"]) == [[]]


@pytest.mark.parametrize(
    "text",
    [
        "The timestamp 1696516330 is Unix time.",
        "Logged at epoch 1696516330123 ms.",
        "created_at=1700000000 updated_at=1700003600",
        "Batch 1234567890 failed QA.",
        "The population grew to 1439323776 people.",
        "It happened between 1990-2000 and again 2005 - 2010.",
    ],
)
def test_bare_numbers_and_year_ranges_are_not_phones(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    assert "PHONE_NUMBER" not in _found(pii_analyzer, pii_policy, text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call me on 1696516330 after six.", "1696516330"),  # a cue makes any run a phone
        ("1696516330 (mobile)", "1696516330"),
        ("She gave me 4155550132 yesterday.", "4155550132"),  # a North American number written bare
        ("She gave me 14155550132 yesterday.", "14155550132"),
        ("She gave me 07700900123 yesterday.", "07700900123"),  # trunk 0
        ("She gave me 9810012345 yesterday.", "9810012345"),  # an Indian mobile written bare
        # layouts of other locales
        ("Hello, I'm Aloisia and my phone is (01081) 666869.", "(01081) 666869"),
        ("Can Erika call me back on +(370) 14556440 before noon?", "+(370) 14556440"),
        ("Applicant: Vaysal\nPhone: 928 8 590\nEmail: none", "928 8 590"),
        ("Contact Mohammed Bains via oravel@example.org or 2651729177.", "2651729177"),  # cue 49 chars back
    ],
)
def test_phone_shapes_and_cues_keep_phones(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, value: str
) -> None:
    assert value in _found(pii_analyzer, pii_policy, text).get("PHONE_NUMBER", [])


def test_a_card_is_not_a_piece_of_a_longer_number(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    # an order id whose last 14 digits pass the Luhn check (Presidio's own recognizer took them)
    assert "CREDIT_CARD" not in _found(pii_analyzer, pii_policy, "Your order number is 112-4567890-1234567.")
    found = _found(pii_analyzer, pii_policy, "Card 4111-1111-1111-1111, exp 11/27.")
    assert found.get("CREDIT_CARD") == ["4111-1111-1111-1111"]
    found = _found(pii_analyzer, pii_policy, "cc 4111111111111111/0427 thanks")  # expiry joined on
    assert found.get("CREDIT_CARD") == ["4111111111111111"]


def test_a_version_is_not_an_ip_address(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    assert "IP_ADDRESS" not in _found(pii_analyzer, pii_policy, "Upgrade to version 1.2.3.4 of the library.")
    assert "IP_ADDRESS" not in _found(pii_analyzer, pii_policy, "Fixed in v10.0.0.1 last week.")
    assert _found(pii_analyzer, pii_policy, "The server at 10.0.0.1 is down.")["IP_ADDRESS"] == ["10.0.0.1"]


def test_ssn_layout_beats_a_phone_cue(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(pii_analyzer, pii_policy, "Please reach me at 536-22-8741 tomorrow.")
    assert found.get("US_SSN") == ["536-22-8741"] and "PHONE_NUMBER" not in found


def test_a_label_whose_value_is_a_name_is_not_a_speaker(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    assert _found(pii_analyzer, pii_policy, "Reviewer: Emily Clarke")["PERSON"] == ["Emily Clarke"]
    assert _found(pii_analyzer, pii_policy, "Ubul: What a wife.")["PERSON"] == ["Ubul"]  # a speaker


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Our new intern, emily clarke, starts Monday.", "emily clarke"),  # spaCy: emily/RB
        ("I think fatima al-sayed already left.", "fatima al-sayed"),  # spaCy: sayed/VBN
        # honorifics and suffixes join the name
        ("Dr Pamela Bell paid with card 3552039899782977 on Tuesday.", "Dr Pamela Bell"),
        ("Transfer from Ms Lucy Davis to Henry Jenkins was rejected.", "Ms Lucy Davis"),
        ("Mrs. Kathrine Filemonsen DDS is the CEO of the year.", "Mrs. Kathrine Filemonsen DDS"),
        # honorifics and degrees of other languages (Faker writes them inside the name)
        ("Dott.ssa Anna Neri paid with card 3552039899782977 on Tuesday.", "Dott.ssa Anna Neri"),
        ("Dear pani Marcelina Harasimiuk, we received your payment.", "pani Marcelina Harasimiuk"),
        ("Univ.Prof. Hans-Peter Kroker wrote: the card was declined", "Univ.Prof. Hans-Peter Kroker"),
        ("I spoke with Pius Klapp and Hinrich Scheel MBA. about the outage.", "Hinrich Scheel MBA"),
        # the NER took the title alone for the name
        ("Hello, I'm Sig. Ermenegildo Filogamo and my phone is 06 1234 5678.", "Sig. Ermenegildo Filogamo"),
        # a capitalized neighbour the tagger gives 0.18 joins the name
        ("Can Emmanuelle Maillot call me back on +33 3 86 62 11 20 before noon?", "Emmanuelle Maillot"),
        ("Transfer from Berat van den Nuwenhuijzen to Anna Smit was rejected.", "Berat van den Nuwenhuijzen"),
        # the other end of "from X to Y", a mailbox's display name, a form field's value
        ("Transfer from Megan Jacobi to Sil Haengreve, IBAN NL02NKUW9953448337.", "Sil Haengreve"),
        ("Jafet Pino Calvo <vilardebora@example.net> wrote: the card was declined", "Jafet Pino Calvo"),
        ("Applicant: Madhavi Pai\nPhone: 08114143568\nEmail: anay52@example.com", "Madhavi Pai"),
        # spaCy's name, which the tagger vetoes (0.02), stands where a cue names it too
        ("Emergency contact: Fülöp Lajos, 90/066-0820", "Fülöp Lajos"),
        # two capitalized words the tagger half-believes, one not in its vocabulary (0.61/0.52)
        ("Account closed at the request of Bhuti Mcebisi Myeni on 12 March.", "Bhuti Mcebisi Myeni"),
        # ... or only a little (0.38/0.28), when neither word is a vocabulary word
        ("The package for Somtochukwu Madu is held at the depot until Friday.", "Somtochukwu Madu"),
        ("Signed, Najam Maheen", "Najam Maheen"),
        ("Meeting notes - attendees: Dr(a). Geronimo Mendoza and Ana Ruiz.", "Dr(a). Geronimo Mendoza"),
        ("Signed, Dr. Salimah Namaga, S.Sos", "Dr. Salimah Namaga, S.Sos"),
    ],
)
def test_the_whole_name_is_one_span(pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str) -> None:
    assert name in _found(pii_analyzer, pii_policy, text).get("PERSON", [])


@pytest.mark.parametrize(
    "text",
    [
        "Customer: Certainly, my order ID is 12345678.",  # a dialog line, not a form field's value
        "5. Be patient: Finding the right match can take time.",
        "We flew from Paris to London on Monday.",  # neither end is a person
        "The Princess Royal arrived at the harbour this morning.",  # two vocabulary words
    ],
)
def test_no_name_from_the_field_pair_and_from_to_rules(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    assert "PERSON" not in _found(pii_analyzer, pii_policy, text)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # a line-initial list marker is the item's, not an initial; a lone letter names no one
        ("Who was first?\n   a. George Washington\n   b. John Adams", ["George Washington", "John Adams"]),
        ("The rest of the votes went to candidate C. How many did candidate C get?", []),
        # a sentence adverb capitalized by position is not part of the name
        ("Add any missing punctuation.\nFinally Sara went to the supermarket", ["Sara"]),
        # ... but a name spaCy tags an adverb stays (the tagger believes it)
        ("Carly made 12 cupcakes. How many cupcakes did Carly make?", ["Carly", "Carly"]),
    ],
)
def test_list_markers_letters_and_sentence_adverbs(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, names: list[str]
) -> None:
    assert _found(pii_analyzer, pii_policy, text).get("PERSON", []) == names


def test_right_extension_anchors_at_the_name_end() -> None:
    # the rule once used ``\A`` with match(text, pos), which never matches past 0: it never fired
    from tunegate.pii.detect import Span, _improve_persons

    text = "Can Emmanuelle Maillot call me back"
    out = _improve_persons(text, [Span("PERSON", 4, 14, 0.8)], [(4, 14, 0.95), (15, 22, 0.18)])
    assert any(text[s.start : s.end] == "Emmanuelle Maillot" for s in out)
    # a neighbour the tagger gives less than RULE_NAME_FLOOR stays out
    out = _improve_persons(text, [Span("PERSON", 4, 14, 0.8)], [(4, 14, 0.95), (15, 22, 0.001)])
    assert {text[s.start : s.end] for s in out} == {"Emmanuelle"}


def test_a_lower_case_verb_is_not_an_honorific(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    assert _found(pii_analyzer, pii_policy, "I miss john so much")["PERSON"] == ["john"]


def test_an_ipv4_address_is_not_a_phone(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(pii_analyzer, pii_policy, "The outage on 179.208.13.66 was reported by Andrés del Soler.")
    assert found.get("IP_ADDRESS") == ["179.208.13.66"] and "PHONE_NUMBER" not in found


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Shipping label: Olena Werner, tel. 01019 870957", "01019 870957"),
        ("Shipping label: Adam Hunerik, tel. (0710)-967147", "(0710)-967147"),
        ("Niklas moved to Leeds and gave us 0316 92472 387 as the new contact.", "0316 92472 387"),
    ],
)
def test_trunk_zero_area_code_and_one_group(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, phone: str
) -> None:
    assert _found(pii_analyzer, pii_policy, text).get("PHONE_NUMBER") == [phone]


def test_three_one_three_digits_need_a_cue(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    assert "PHONE_NUMBER" not in _found(pii_analyzer, pii_policy, "Scores of 900 0 431 were logged.")


def test_an_iban_of_a_non_iban_country_with_valid_check_digits(
    pii_analyzer: Any, pii_policy: PIIPolicy
) -> None:
    text = "Please send the refund to PH768144594191432383 today."
    assert _found(pii_analyzer, pii_policy, text).get("IBAN_CODE") == ["PH768144594191432383"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # the North American layout with its trunk 1 and an extension, whatever the digits
        ("You can reach me at 1-589-693-5049x2589.", "1-589-693-5049x2589"),
        ("Call 1 (955) 266-7869 after 5pm.", "1 (955) 266-7869"),
        ("My number is 1-764-686-9589 if you need anything.", "1-764-686-9589"),
        # a national trunk 8 before the area code (Russian layouts)
        ("Phone: 8 (483) 378-87-62", "8 (483) 378-87-62"),
        ("Call 8 119 553 72 15 after 5pm.", "8 119 553 72 15"),
        ("Phone: 8 (369) 007-1284", "8 (369) 007-1284"),
        # a code in parentheses before a long group
        ("You can reach me at (351) 919825979.", "(351) 919825979"),
        ("Phone: (99)/525-2559", "(99)/525-2559"),
        # two-digit trunk-0 area code + 7 digits; 3 + 7 digits
        ("My number is 07 9267215 if you need anything.", "07 9267215"),
        ("Call 210 0007364 after 5pm.", "210 0007364"),
        # six digits in pairs, next to a phone cue only
        ("Phone: 88 91 90", "88 91 90"),
        # a "+" makes a number a phone, whatever its PESEL or Luhn checksum says
        ("My number is +37030784853 if you need anything.", "+37030784853"),
        ("You can reach me at +3892955372153.", "+3892955372153"),
        # digits of another script after the "+" (Bengali)
        ("Phone: +৮৮০১০২১১০৭২৮৫", "+৮৮০১০২১১০৭২৮৫"),
        # a bare national number after an inflected cue word
        ("Customer called from 98300596 twice today", "98300596"),
        ("If the delivery is late, ring 98300596 and ask.", "98300596"),
    ],
)
def test_phone_layouts_of_more_countries(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, value: str
) -> None:
    found = _found(pii_analyzer, pii_policy, text)
    assert found.get("PHONE_NUMBER") == [value], found


@pytest.mark.parametrize(
    "text",
    [
        "Scores were 12 34 56 today.",  # pairs without a phone cue
        "The meeting is at 10 30 00.",
        "Chapter 8 covers pages 119 to 553.",
        "Parse the string 98300596 as hex.",  # "ring" inside a word is no cue
    ],
)
def test_the_new_layouts_do_not_take_other_numbers(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    assert "PHONE_NUMBER" not in _found(pii_analyzer, pii_policy, text)


def test_a_card_cue_beats_a_phone_reading_of_the_same_number(
    pii_analyzer: Any, pii_policy: PIIPolicy
) -> None:
    # a 12-digit Maestro number: the phone and card recognizers both score it 0.85 here
    found = _found(pii_analyzer, pii_policy, "Card number 675987789327 expires soon.")
    assert found == {"CREDIT_CARD": ["675987789327"]}, found
    # and a phone cue beats a PESEL reading (the digits pass the PESEL check by chance)
    found = _found(pii_analyzer, pii_policy, "Please call 04323194875 tonight.")
    assert found == {"PHONE_NUMBER": ["04323194875"]}, found
    found = _found(pii_analyzer, pii_policy, "PESEL: 04323194875")
    assert found == {"PL_PESEL": ["04323194875"]}, found


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("SSN 123-45-6789 on file.", "123-45-6789"),
        ("Her social security number is 078-05-1120.", "078-05-1120"),
        ("ssn: 123456789", "123456789"),
    ],
)
def test_published_sample_ssns_are_still_ssns(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, value: str
) -> None:
    found = _found(pii_analyzer, pii_policy, text)
    assert found == {"US_SSN": [value]}, found


def test_mail_on_reserved_and_intranet_domains(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    text = "Write jdoe@corp.internal, a.b@mail.local or first.last@xn--bcher-kva.example today."
    assert _found(pii_analyzer, pii_policy, text)["EMAIL_ADDRESS"] == [
        "jdoe@corp.internal",
        "a.b@mail.local",
        "first.last@xn--bcher-kva.example",
    ]
    assert "EMAIL_ADDRESS" not in _found(pii_analyzer, pii_policy, "see file@2x.png and user@host")


@pytest.mark.parametrize(
    "text",
    [
        # worked maths answers (GSM8K's answer field, with its <<...>> calculator markup)
        "I have 2000-1800 = <<2000-1800=200>>200 calories left to eat",
        "the sleeves take 1800 - 1170 = <<1800-1170=630>>630 stitches.",
        "3600km as a percentage of 6000km is (3600/6000)*100% = 60%",
        "So it can go 18000/900=<<18000/900=20>>20 days between services.",
        "So, it is $409 500 - $400 000 = $<<409500-400000=9500>>9500 more than Mrs. Cruz",
        # decimal fractions (an Alpaca trigonometry answer)
        "cos(C) = (14² + 3² - 15²) / (2 * 14 * 3) = -0.3571428571\n\nC = arccos(-0.3571428571) = 111.8°",
    ],
)
def test_operands_of_a_calculation_are_not_identifiers(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    found = _found(pii_analyzer, pii_policy, text)
    assert "PHONE_NUMBER" not in found and "CREDIT_CARD" not in found, found


def test_a_key_value_phone_is_still_a_phone(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    assert _found(pii_analyzer, pii_policy, "phone=+49 30 1234567 name=x")["PHONE_NUMBER"] == [
        "+49 30 1234567"
    ]
    assert _found(pii_analyzer, pii_policy, "tel=555-234-5678")["PHONE_NUMBER"] == ["555-234-5678"]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        # a lower-case part of a name the tagger calls a name (0.99), which spaCy tags a common noun
        ("Listening to Paulo nutini 's new record ! It 's sick !", "Paulo nutini"),
        ("I wanna be robbie Williams when I 'm older", "robbie Williams"),
        # a lone lower-case name spaCy tags a plural, a verb or a common noun
        ("Snapchat 👉  britneyspears 💋 ", "britneyspears"),
        ("Hair by dickycollins Makeup by Karan Mitchell", "dickycollins"),
        ("football tonight with mariaelena , sarah , and brittany ! Mood : excited", "brittany"),
        ("was so scared omg good job nick #AGT", "nick"),
        # a lone initial before the surname
        ("Best regards, J Smith", "J Smith"),
        # name words the tagger does not believe in context (0.002, 0.005) beside one it does
        ("Per Manya Dubey's request, the SSN 873-67-2850 was removed from the form.", "Manya Dubey"),
        ("Carmela Real paid with card 30306541291964 on Tuesday.", "Carmela Real"),
    ],
)
def test_tagger_belief_keeps_lower_case_name_parts(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str
) -> None:
    assert name in _found(pii_analyzer, pii_policy, text).get("PERSON", [])


@pytest.mark.parametrize(
    ("text", "name", "word"),
    [
        # the tagger's belief spills onto the word after a name (``arm`` 0.96): a vocabulary noun
        # or a verb after the name stays out of it
        ("John arm wrestles 20 people.  He beats 80%.", "John", "arm"),
        ("Katie laid it on the grass while Emily rummaged through the basket.", "Emily", "rummaged"),
        # an undotted A is an article, not an initial
        ("A Smith called about the invoice.", "Smith", "A"),
    ],
)
def test_words_next_to_a_name_stay_out_of_it(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str, word: str
) -> None:
    persons = _found(pii_analyzer, pii_policy, text).get("PERSON", [])
    assert name in persons
    assert not any(word in p.split() for p in persons), persons


def test_a_web_address_is_not_a_name(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    # spaCy calls the whole address a PERSON; the word trims used to leave http, t.co and the code
    text = "Aw crap . . . . http://t.co/sIumP1Dxqw ( thanks @robstears )"
    url = (text.index("http"), text.index(" (", text.index("http")))
    spans = detect_texts(pii_analyzer, pii_policy, [text])[0]
    assert not [s for s in spans if s.entity_type == "PERSON" and s.start < url[1] and url[0] < s.end]
    assert "robstears" in [text[s.start : s.end] for s in spans]  # a handle names a person


@pytest.mark.parametrize(
    ("text", "word"),
    [
        # a lone line label that is a common word (tagger 0.0) heads a field, not a speech
        ("Categorize the words.\nHappiness, Energy\nCategory: Abstract Concepts/Nouns.", "Category"),
        ("It will change our lives.\n\nLink: https://www.forbes.com/sites/x/2019/12/16/ai", "Link"),
        # one-letter labels carry no belief: the veto judges "Movie" (0.001)
        ("Movie A was one-fourth the length of Movie B. Movie B was 5 minutes longer than Movie C.", "Movie"),
        # a line's label inside a name spaCy ran over three lines, and an imperative before a name
        ("Write a short profile.\nName: Louis\nJob: Engineer\nMeet Louis, a talented engineer.", "Engineer"),
        ("Write a short profile.\nName: Louis\nJob: Engineer\nMeet Louis, a talented engineer.", "Meet"),
        # a unit designator before its number (the tagger: 0.001-0.004); one such placeholder used
        # to spread to every "Apt" of the set when a file was anonymized as one call
        ("Mrs. Barbara Yudina Apt. 675 62314 Mellemvej 32\nAalborg NO 9100", "Apt"),
        ("The address is 5112 39 Rue Ibn El-Jazzar\n Apt. 243\n Cite Belle Vue", "Apt"),
        ("Bot: Where should it be sent? User: Unit 0822 Box 8858\nDPO AA 13319", "Unit"),
    ],
)
def test_labels_and_labelled_things_are_not_names(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, word: str
) -> None:
    persons = _found(pii_analyzer, pii_policy, text).get("PERSON", [])
    assert not any(word in p for p in persons), persons


@pytest.mark.parametrize(
    ("text", "word", "name"),
    [
        # an institution named after a person, a square, a day, a street after its house number
        ("Tom drove his kids to Abraham Lincoln High School every morning.", "Lincoln", "Tom"),
        ("We met at Piazza Navona, then Maria Rossi showed us the river.", "Navona", "Maria Rossi"),
        ("It is called New Year's Day, said Hannah Webb.", "Year", "Hannah Webb"),
        ("Send it to Carla Mendes, 40 William St., Ste. 200, Boston.", "William", "Carla Mendes"),
        # surnames that are place words elsewhere stay names
        ("Ricki Lake hosted the show, and Jin Park went to the school.", "Lake Tahoe", "Jin Park"),
        # a verb cue with a capital inside a sentence is a word of a proper name, not "met <name>"
        ("Data came from NOAA and the UK Met Office, as Priya Natarajan said.", "Office", "Priya Natarajan"),
        ("Call our Contact Center or ask Tomas Berg.", "Center", "Tomas Berg"),
    ],
)
def test_places_days_and_proper_names_are_not_persons(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, word: str, name: str
) -> None:
    persons = _found(pii_analyzer, pii_policy, text).get("PERSON", [])
    assert not any(word in p for p in persons), persons
    assert name in persons, persons


@pytest.mark.parametrize(
    ("text", "name"),
    [
        # after a travel verb a place is dropped ("visit malawi"), but not a person the tagger
        # believes or one named with a kinship word or a title
        ("We are visiting John Miller in Boston next week.", "John Miller"),
        ("I visited Uncle Ben yesterday.", "Uncle Ben"),
        ("We will visit Dr. Okafor tomorrow.", "Dr. Okafor"),
    ],
)
def test_a_person_after_a_travel_verb_stays_a_name(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str
) -> None:
    assert name in _found(pii_analyzer, pii_policy, text).get("PERSON", [])


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Ubul: What a wife.", "Ubul"),  # a speaker is no vocabulary word
        ("Katie up 6-0 after 1st", "Katie"),  # spaCy's imperative VB, the tagger's name (0.996)
        ("RT @NiallOfficial: He's back! I can walk again!", "NiallOfficial"),  # a CamelCase handle
        ("Mrs. Barbara Yudina Apt. 675 62314 Mellemvej 32\nAalborg NO 9100", "Mrs. Barbara Yudina"),
        ("Write a short profile.\nName: Louis\nJob: Engineer\nMeet Louis, a talented engineer.", "Louis"),
    ],
)
def test_names_next_to_labels_and_verbs_stay(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str
) -> None:
    assert name in _found(pii_analyzer, pii_policy, text).get("PERSON", [])


# btc.test (Broad Twitter Corpus, CC BY 4.0; the tagger never trained on it): surnames spaCy labels
# ORG (inside "Juncker is Commission Pres") and the tagger gives 0.62 / 0.71
@pytest.mark.parametrize(
    ("text", "name"),
    [
        (
            "Ed Miliband only happy that Juncker is Commission Pres coz EU leaders managed to pick "
            "the only politician around that makes him look good .",
            "Juncker",
        ),
        (
            ". @Arsenal almost signed Cristiano Ronaldo and it hurts that he joined #MUFC, admits "
            "Wenger http://t.co/bgxsjeCODm",
            "Wenger",
        ),
    ],
)
def test_a_surname_spacy_calls_an_organization_is_a_name_when_the_tagger_half_believes_it(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, name: str
) -> None:
    assert name in _found(pii_analyzer, pii_policy, text).get("PERSON", [])


@pytest.mark.parametrize(
    "text",
    [
        "Telefon: 46701234567",
        "Mi teléfono es 46701234567",
        "Handy: 01701234567",
        "telefono 46701234567",
        "tlf 46701234567",
        "Téléphone : 0612345678",
    ],
)
def test_a_phone_labelled_in_another_language_is_a_phone(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    """A bare digit run is a phone only after a phone word; the words of other languages count."""
    number = text.split()[-1]
    assert _found(pii_analyzer, pii_policy, text).get("PHONE_NUMBER") == [number]


@pytest.mark.parametrize("text", ["ref 46701234567", "Invoice 46701234567 portable charger"])
def test_a_bare_digit_run_without_a_phone_word_stays(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    assert "PHONE_NUMBER" not in _found(pii_analyzer, pii_policy, text)


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        # identifiers written without spaces: a dotted international number holds a date-like
        # and an IPv4-like piece; it is a phone
        ("contact +33.1.23.45.67.89 now", "PHONE_NUMBER", "+33.1.23.45.67.89"),
        ("Details: 4111.1111.1111.1111 (see above).", "CREDIT_CARD", "4111.1111.1111.1111"),
        ("contact ssn:536228741 now", "US_SSN", "536228741"),
        ("SSN#536-22-8741", "US_SSN", "536-22-8741"),
        ("ssn number: 536228741", "US_SSN", "536228741"),  # "number" alone made it a phone
        ("Soc. Sec. no. 536 22 8741", "US_SSN", "536 22 8741"),
        ("call 536228741", "PHONE_NUMBER", "536228741"),
        # after its label, no checksum is needed. Luhn fails: a language model's or a test
        # generator's card number, introduced as one
        ("The support log held the credit card 4716 9876 2234 1561 of a client.", "CREDIT_CARD",
         "4716 9876 2234 1561"),
        ("Card no. 4716-9876-2234-1561", "CREDIT_CARD", "4716-9876-2234-1561"),
        ("CC# 4716987622341561", "CREDIT_CARD", "4716987622341561"),
        ("AMEX 3714 496353 98432", "CREDIT_CARD", "3714 496353 98432"),
        # the mod-97 check fails (NL IBANs have 18 characters, SE ones only digits)
        ("IBAN NL55TRIO012345678", "IBAN_CODE", "NL55TRIO012345678"),
        ("bank account number SE32CRBC0100601211501234", "IBAN_CODE", "SE32CRBC0100601211501234"),
        ("iban: de89 3704 0044 0532 0130 00", "IBAN_CODE", "de89 3704 0044 0532 0130 00"),
        # numbers the SSA never issues (area 000 / 666, group 00), typed PHONE_NUMBER before
        ("SSN: 000-12-3456", "US_SSN", "000-12-3456"),
        ("SSN 666-12-3456", "US_SSN", "666-12-3456"),
        ("social security number 123-00-4567", "US_SSN", "123-00-4567"),
        # a phone cue still types an unissued SSN layout a phone
        ("SSN is on file; call 666-12-3456", "PHONE_NUMBER", "666-12-3456"),
    ],
)  # fmt: skip
def test_the_words_before_a_number_type_it(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, entity: str, value: str
) -> None:
    assert _found(pii_analyzer, pii_policy, text) == {entity: [value]}


@pytest.mark.parametrize(
    "text",
    [
        "order 4716 9876 2234 1561 shipped",  # no card word
        "my card was declined, order 4716987622341561",  # the cue's clause ended
        "gift card number 4716 9876 2234 1561",
        "the graphics card 1234 5678 9012 3456",
        "the IBAN format is explained in ISO 13616",
        "IBAN code is DE12 and more",
        "bank account number NLXX TRIO ABCD EFGH",  # not mostly digits
    ],
)
def test_a_label_without_an_identifier_of_its_shape_finds_none(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str
) -> None:
    found = _found(pii_analyzer, pii_policy, text)
    assert "CREDIT_CARD" not in found and "IBAN_CODE" not in found, found


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # a name ends at a comma and at a possessive: spaCy reads a list and a curly possessive into
        # one name; the comma, the possessive and the owned thing must survive the replacement
        ("Alex, Stan, and Adelwolfe are trying to catch them all.", ["Alex", "Stan", "Adelwolfe"]),
        ("If Suzy’s iPhone is 1 year old, how old is Brandon’s iPhone?", ["Suzy", "Brandon"]),
        ("Ben's iPhone is older.", ["Ben"]),
        ("Name: Dr. Aisha Bello-Okafor, MD", ["Dr. Aisha Bello-Okafor, MD"]),  # a degree, not a name
        # a surname written first in a field is a name
        ("Patient: Doe, Jane", ["Doe", "Jane"]),
        ("Employee: Young, Grace (ID 4471)", ["Young", "Grace"]),
        ("Attendees: Smith, John; Rose, Mary; Park, Jin", ["Smith", "John", "Rose", "Mary", "Park", "Jin"]),
        ("Signed: King, Robert", ["King", "Robert"]),
        # vocatives, unlabelled text and places are no surname-first pairs
        ("Note: Thanks, John!", ["John"]),
        ("Subject: Hello, Mary", ["Mary"]),
        ("Doe, Jane called about her order yesterday.", ["Jane"]),
        ("Location: Paris, France", None),
        # no emoji and no chat word at a name's edges
        ("happy anniversary to my husband mike ❤️", ["mike"]),  # spaCy: mike ❤️ (the emoji as NNP)
        ("Thanks to Anna ❤️ and Tom 👍", ["Anna", "Tom"]),
        ("lol sarah is so extra", ["sarah"]),  # lol/NNP in lower-case text; the tagger gives it 0
        ("My name is محمد العلي and I live here", ["محمد العلي"]),  # an uncased script is not lower case
        # "its" before a name the tagger believes is chat for "it's"; a determiner or a real
        # possessive still makes a lower-case noun no name
        ("hey its mike, call me back", ["mike"]),
        ("her huntsman came home", None),
        ("the dog wagged its tail", None),
        # a quoted title after a word naming a work is no name
        ("Summarize the novel 'Les Misérables' in two sentences.", None),
        ("Watch the movie “Emma” tonight.", None),
        ('Summarize the song "Despacito" by Luis Fonsi.', ["Luis Fonsi"]),
        ("My friend 'Matilda' called.", ["Matilda"]),  # quoted, but no work named before it
    ],
)
def test_what_a_person_span_covers(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, names: list[str] | None
) -> None:
    assert _found(pii_analyzer, pii_policy, text) == ({"PERSON": names} if names else {})


def test_without_the_tagger_a_capitalized_part_after_a_possessive_stays_a_name() -> None:
    from tunegate.pii.detect import build_analyzer

    policy = PIIPolicy(person_tagger="disabled")
    analyzer = build_analyzer(policy)
    # spaCy reads "Maria’s Jorge Alvarez" as one name: the second name must not leak
    text = "We saw Maria’s Jorge Alvarez yesterday, and Suzy’s iPhone"
    found = _found(analyzer, policy, text).get("PERSON", [])
    assert any("Jorge Alvarez" in n for n in found), found
    assert not any("iPhone" in n for n in found), found
