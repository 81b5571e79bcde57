"""Detection with the real analyzer (spaCy model + Presidio + tunegate recognizers)."""

from __future__ import annotations

import itertools
import logging
import socket
import warnings
from typing import Any

import pytest

from tunegate.errors import DependencyError
from tunegate.pii.config import PIIPolicy
from tunegate.pii.detect import analyzer_info, build_analyzer, detect_texts


def _person_values(engine: Any, texts: list[str]) -> list[set[str]]:
    """The PERSON values the engine finds in each text."""
    return [
        {t[s.start : s.end] for s in row if s.entity_type == "PERSON"}
        for t, row in zip(texts, engine.detect(texts), strict=True)
    ]


def _found(analyzer: Any, policy: PIIPolicy, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in detect_texts(analyzer, policy, [text])[0]:
        out.setdefault(s.entity_type, []).append(text[s.start : s.end])
    return out


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call me at +48 601 234 567 tomorrow.", "+48 601 234 567"),
        ("Meine Nummer: +49 (0)30 1234567", "+49 (0)30 1234567"),
        ("Mon portable est le +33 6 12 34 56 78.", "+33 6 12 34 56 78"),
        ("Phone: 030 123 45 67", "030 123 45 67"),
        ("Phone:\n60-56-85-91", "60-56-85-91"),
    ],
)
def test_eu_phone_formats(pii_analyzer: Any, pii_policy: PIIPolicy, text: str, value: str) -> None:
    assert value in _found(pii_analyzer, pii_policy, text).get("PHONE_NUMBER", [])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("write to jan.kowalski [at] example [dot] com please", "jan.kowalski [at] example [dot] com"),
        ("Contact: anna(at)example.com", "anna(at)example.com"),
        ("plain: ola.nowak@example.pl", "ola.nowak@example.pl"),
        # URL-encoded (a query string) and HTML character references (a scraped page)
        ("GET /subscribe?email=ola.nowak%40example.pl&x=1", "ola.nowak%40example.pl"),
        ("GET /s?to=ola%2Bnews%40example.pl", "ola%2Bnews%40example.pl"),
        ('<a href="mailto:anna&#64;example&#46;com">mail</a>', "anna&#64;example&#46;com"),
        ("reach anna&#x40;example.net", "anna&#x40;example.net"),
        # a space beside "@": a mailbox-like local part alone, a bare word with a mail word nearby
        ("a.nowak @ example.pl wrote", "a.nowak @ example.pl"),
        ("bob2 @example.org", "bob2 @example.org"),
        ("my e-mail: anna @ example.com", "anna @ example.com"),
        # "dot" inside the local part, and a leading "me at" that is not part of the address
        ("reach me at john dot doe at gmail dot com", "john dot doe at gmail dot com"),
    ],
)
def test_email_forms(pii_analyzer: Any, pii_policy: PIIPolicy, text: str, value: str) -> None:
    assert value in _found(pii_analyzer, pii_policy, text).get("EMAIL_ADDRESS", [])


@pytest.mark.parametrize(
    "text",
    [
        "Look at google dot com for the answer",  # a website after "look at", not a mailbox
        "It is available at example dot org.",
        "Thanks @ nytimes.com for the story",  # a mention; no mail word on the line
    ],
)
def test_email_look_alikes_are_not_emails(pii_analyzer: Any, pii_policy: PIIPolicy, text: str) -> None:
    assert "EMAIL_ADDRESS" not in _found(pii_analyzer, pii_policy, text)


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("Source IP: 192.168.001.010", "IP_ADDRESS", "192.168.001.010"),
        ("blocked host 010.000.000.001 today", "IP_ADDRESS", "010.000.000.001"),
        ("card 4111/1111/1111/1111", "CREDIT_CARD", "4111/1111/1111/1111"),
        ("card 4111_1111_1111_1111", "CREDIT_CARD", "4111_1111_1111_1111"),
    ],
)
def test_padded_ip_and_slashed_card(
    pii_analyzer: Any, pii_policy: PIIPolicy, text: str, entity: str, value: str
) -> None:
    assert value in _found(pii_analyzer, pii_policy, text).get(entity, [])


@pytest.mark.parametrize(
    "text", ["see section 1.02.03.4", "version 2.01.05.03 released", "pay 4111/1111/1111/1112"]
)
def test_dotted_numbers_without_cue_stay(pii_analyzer: Any, pii_policy: PIIPolicy, text: str) -> None:
    assert not {"IP_ADDRESS", "CREDIT_CARD"} & set(_found(pii_analyzer, pii_policy, text))


def test_pesel_iban_card(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(
        pii_analyzer,
        pii_policy,
        "My PESEL is 44051401359, IBAN PL61 1090 1014 0000 0712 1981 2874, card 6304 0000 0000 0000 0.",
    )
    assert found["PL_PESEL"] == ["44051401359"]
    assert found["IBAN_CODE"] == ["PL61 1090 1014 0000 0712 1981 2874"]
    assert "CREDIT_CARD" in found
    # an invalid checksum is not a PESEL, unless a PESEL label introduces it
    assert "PL_PESEL" not in _found(pii_analyzer, pii_policy, "ref 44051401358")
    assert _found(pii_analyzer, pii_policy, "PESEL: 44051401358") == {"PL_PESEL": ["44051401358"]}


def test_person_heuristics(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(pii_analyzer, pii_policy, "My name is Zbigniew Wąsowicz-Kępa and I know Ravil G Yefimov.")
    assert "Zbigniew Wąsowicz-Kępa" in found["PERSON"]
    assert "Ravil G Yefimov" in found["PERSON"]


def test_placeholders_are_not_detected(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    text = "<PERSON_12345678> called <PHONE_NUMBER_87654321> and wrote to <EMAIL_ADDRESS_1234>."
    assert detect_texts(pii_analyzer, pii_policy, [text]) == [[]]


def test_spans_do_not_overlap(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    text = "Dr. Anna Maria Nowak, tel. +48 601 234 567, anna.nowak@example.com, 4111 1111 1111 1111"
    spans = detect_texts(pii_analyzer, pii_policy, [text])[0]
    assert spans == sorted(spans, key=lambda s: s.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_missing_model_fails_before_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy.cli

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("spacy.cli.download must never be called")

    monkeypatch.setattr(spacy.cli, "download", forbidden)
    with pytest.raises(DependencyError, match="en_core_web_lg_not_here"):
        build_analyzer(PIIPolicy(spacy_model="en_core_web_lg_not_here"))


def test_regex_only_needs_explicit_policy_and_is_stamped() -> None:
    policy = PIIPolicy(spacy_model="en_core_web_lg_not_here", allow_regex_only=True)
    analyzer = build_analyzer(policy)
    assert analyzer_info(analyzer).regex_only
    spans = detect_texts(analyzer, policy, ["mail ola.nowak@example.pl now"])[0]
    assert [s.entity_type for s in spans] == ["EMAIL_ADDRESS"]


def test_tldextract_is_offline(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, pii_policy: PIIPolicy
) -> None:
    """E-mail validation uses the bundled suffix list: no socket, no fetch warning."""
    from tunegate.pii import recognizers

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    recognizers.offline_tldextract.cache_clear()
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyzer = build_analyzer(pii_policy.model_copy(update={"entities": ("EMAIL_ADDRESS",)}))
        spans = detect_texts(analyzer, pii_policy.model_copy(update={"entities": ("EMAIL_ADDRESS",)}),
                             ["a.b@example.co.uk", "x@site.com.pl"])  # fmt: skip
    assert [len(s) for s in spans] == [1, 1]
    texts = [r.getMessage().lower() for r in caplog.records] + [str(w.message).lower() for w in caught]
    assert not [t for t in texts if "suffix" in t or "fetch" in t or "publicsuffix" in t]


def test_sharded_detection_equals_single_process(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    texts = [
        f"Row {i}: My name is Anna Nowak{i % 3}, call +48 601 234 {100 + i} or mail a{i}@example.com"
        for i in range(40)
    ] + ["no personal data here"] * 30
    single = detect_texts(pii_analyzer, pii_policy.model_copy(update={"batch_size": 8}), texts)
    sharded = detect_texts(
        pii_analyzer, pii_policy.model_copy(update={"batch_size": 8, "n_process": 2}), texts
    )
    assert sharded == single
    assert sum(len(s) for s in single) >= 80


def test_ner_prefilter_only_skips_texts_without_name_candidates() -> None:
    from tunegate.pii.detect import needs_ner

    assert not needs_ner("How do I top up my card? I am still waiting.")
    assert needs_ner("Why is Rebecca so impulsive?")
    assert needs_ner("follow up with patricia desrosiers")  # lower-cased document: model decides


def test_only_real_placeholders_are_exempt(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    found = _found(pii_analyzer, pii_policy, "Reply to <ola.nowak@example.pl> or <EMAIL_ADDRESS_12>.")
    assert found == {"EMAIL_ADDRESS": ["ola.nowak@example.pl"]}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Call me on 5583807670.", True),  # sentence-initial cue that context enhancement misses
        ("Regards. Call me on 5583807670. Thanks", True),
        ("Order 5583807670 shipped yesterday", False),  # a bare digit run without a cue stays
    ],
)
def test_unformatted_phone_after_cue(engine: Any, text: str, found: bool) -> None:
    spans = engine.detect([text])[0]
    assert any(s.entity_type == "PHONE_NUMBER" for s in spans) is found


def test_a_person_span_never_crosses_a_line(pii_analyzer: Any, pii_policy: PIIPolicy) -> None:
    """spaCy runs a name into the next line (``Victoria Bruun\\nPhone``): the form label stays, each
    line's name is its own span (its own pseudonym)."""
    from presidio_analyzer import RecognizerResult

    from tunegate.pii.detect import postprocess

    meta = {"recognizer_name": "SpacyRecognizer"}
    text = "Cast:\n- Kylo Ren\n- John Boyega\nName: Peter\nAge: 43"
    a, b, c = text.index("Kylo"), text.index("Boyega") + len("Boyega"), text.index("Peter")
    spans = postprocess(
        text,
        [
            RecognizerResult("PERSON", a, b, 0.85, recognition_metadata=meta),
            RecognizerResult("PERSON", c, text.index(": 43"), 0.85, recognition_metadata=meta),
        ],
        pii_policy,
    )
    assert [text[s.start : s.end] for s in spans] == ["Kylo Ren", "John Boyega", "Peter"]
    form = (
        "Date: 2012-10-01 00:46:43\nName: Victoria Bruun\nPhone: (72) 754-186\n"
        "Name: Lena Wirth\nAddress: 3421 Fagradalsbraut 71"
    )
    found = _found(pii_analyzer, pii_policy, form)
    assert {"Victoria Bruun", "Lena Wirth"} <= set(found["PERSON"])
    assert all("\n" not in v for v in found["PERSON"]), found


def test_a_person_span_never_covers_markup_or_a_list_separator(
    engine: Any, pii_analyzer: Any, pii_policy: PIIPolicy
) -> None:
    """The NER ran ``Fitzgerald`` into ``</h3`` and ``Scout Finch- Scout`` over a dash (Alpaca
    records outside the check set): the tag and the separator must survive anonymization."""
    from presidio_analyzer import RecognizerResult

    from tunegate.pii.detect import postprocess

    meta = {"recognizer_name": "SpacyRecognizer"}
    text = "1. Scout Finch- Scout is 9.\n<b>Anna Kowalska</b>, John/Mary, Jean-Luc Picard | Bob =B"
    claimed = [
        ("Scout Finch- Scout", 0),
        ("b>Anna Kowalska</b", 0),
        ("John/Mary", 0),
        ("Jean-Luc Picard | Bob =B", 0),
    ]
    results = [
        RecognizerResult("PERSON", text.index(v), text.index(v) + len(v), 0.85, recognition_metadata=meta)
        for v, _ in claimed
    ]
    spans = postprocess(text, results, pii_policy)
    found = [text[s.start : s.end] for s in spans]
    assert found == ["Scout Finch", "Scout", "Anna Kowalska", "John", "Mary", "Jean-Luc Picard", "Bob"], found
    html = '<h3 class="bookAuthor">Author: F. Scott Fitzgerald</h3>\n'
    cast = "1. Scout Finch- Scout is the narrator of the story.\n2. Atticus Finch- Atticus is her father."
    out, _ = engine.anonymize_texts([html, cast])
    assert "Fitzgerald" not in out[0] and out[0].endswith("></h3>\n"), out[0]
    assert "Scout" not in out[1] and "Atticus" not in out[1], out[1]
    assert out[1].count(">- <PERSON_") == 2, out[1]


def test_form_labels_are_not_names_but_dialog_speakers_are(engine: Any) -> None:
    """Line-start labels the NER or the speaker pattern call names (``Personality:``,
    ``Hypothesis:``) are dropped when no label of the text is a name the tagger believes; a
    dialog keeps every speaker, even one the tagger gives 0.002 (``Ubul``), and so does a single
    speaker line."""
    texts = [
        "Name: Amelia Grace\nAge: 24\nPersonality: Amelia is brave.\nBackground: She grew up on a farm.",
        "Purpose: measure sleep\nHypothesis: More screen time means less sleep.\nParticipants: 40 students",
        "Occupation: Teacher\nHobbies: Reading",
        "Ubul: What a wife.\nNicole: Remember me, Mary?\nJohn: You saved my life!",
        "Ubul: What a wife.",
    ]
    found = [sorted(v) for v in _person_values(engine, texts)]
    assert found == [
        ["Amelia", "Amelia Grace"],
        [],
        [],
        ["John", "Mary", "Nicole", "Ubul"],
        ["Ubul"],
    ]


def test_a_listing_s_labels_are_topics_unless_the_tagger_believes_one(engine: Any) -> None:
    """Three or more line-start labels (numbered items too), at most half holding a word the tagger
    calls a name at its threshold, are topics or fields: a PERSON inside one the tagger does not
    believe is dropped (``Lunar Maria``; ``Occupation`` beside an ``Age`` the tagger half-believes).
    A numbered list of people keeps every name, and so does a form's value."""
    texts = [
        "Describe the moon.\n1. Craters: bowl-shaped pits.\n2. Lunar Maria: the dark plains.\n"
        "3. Lack of Atmosphere: no air to breathe.",
        "Name: Olga\nAge: 51\nGender: Female\nOccupation: Pilot",
        "1. Connor McDavid: a center for the Oilers.\n2. Auston Matthews: a center for the Leafs.\n"
        "3. Nathan MacKinnon: a center for Colorado.",
    ]
    found = [sorted(v) for v in _person_values(engine, texts)]
    assert found == [[], ["Olga"], ["Auston Matthews", "Connor McDavid", "Nathan MacKinnon"]]


def test_name_rules_add_only_words_the_tagger_does_not_rule_out(engine: Any) -> None:
    """A coordinated list with one name made every item a name (``Marvel``, ``Spanish Steps``) and a
    capitalized neighbour joined a name (``Producer James Sparks``); with the tagger loaded, an added
    word it gives less than RULE_NAME_FLOOR stays text. Unusual names in a list are still added."""
    texts = [
        "The update adds skins related to Marvel, Star Wars, John Wick and more.",
        "Visit the Trevi Fountain, the Spanish Steps, and Piazza Navona on day two.",
        "The photos were taken by Producer James Sparks last week.",
        "Ubul, Krzysztof and Jodi went to the lake.",
    ]
    found = _person_values(engine, texts)
    assert "Marvel" not in found[0] and "John Wick" in found[0]
    assert found[1] == set()  # spaCy's PERSON "Piazza Navona" is a square (its head word)
    assert found[2] == {"James Sparks"}
    assert found[3] == {"Ubul", "Krzysztof", "Jodi"}


def test_an_epithet_after_an_article_is_no_name_of_its_own(engine: Any) -> None:
    """``Alexander the Great and Julius Caesar``: the list rule made ``Great`` an item, and the
    repeated-mention rule took ``Great`` from ``Alexander the Great``; as a one-word name it was then
    replaced in ``The Great Gatsby`` and ``the Great War`` in other records. A word after an article
    is neither a list item nor a name token; the people stay."""
    texts = [
        "Comparison of Alexander the Great and Julius Caesar",
        "Comparison of Alexander the Great and Julius Caesar:\n\nAlexander the Great and Julius Caesar"
        " were two of the greatest military leaders.",
        "Catherine the Great, Anna and Jodi went to the lake.",
    ]
    found = _person_values(engine, texts)
    assert all("Great" not in f for f in found)
    assert {"Alexander", "Julius Caesar"} <= found[0]
    assert "Alexander the Great" in found[1] and "Julius Caesar" in found[1]
    assert {"Anna", "Jodi"} <= found[2]


def test_code_is_no_name(engine: Any) -> None:
    """Instruction data holds code: spaCy called ``addTwo(num1`` a PERSON, and the cue ``manager``
    took the ``Id`` of ``managerId``. A name holds no call bracket glued to a word and is no
    camelCase tail; a title's ``Dr(a)``, a nickname in brackets and a glued handle stay."""
    texts = [
        "Explain why the output is not accurate\nCode:\n\nfunction addTwo(num1, num2) {\n"
        "  return num1 + num2;\n}",
        "Convert to SQL: SELECT firstName, lastName FROM Employees WHERE managerId = 7;",
        "Consulte a Dr(a) Maria Silva amanhã.",
        "Ask James (Jim) Donovan. RT @MissMcCleary : hi",
    ]
    found = _person_values(engine, texts)
    assert found[0] == set() and found[1] == set()
    assert found[2] == {"Dr(a) Maria Silva"}
    assert {"James", "Donovan", "MissMcCleary"} <= found[3]
    # without the tagger a span keeps a web address it runs into: its brackets are no code
    from tunegate.pii.detect import Span, _code

    text = "written by Jo ] ( http://en.wikipedia.org/wiki/Jo_(writer) )"
    assert not _code(text, Span("PERSON", text.index("Jo"), text.index(" )"), 0.85))
    assert _code("I'm UI(as in DUI)", Span("PERSON", 4, 10, 0.85))


def test_a_rule_name_the_tagger_rules_out_is_dropped(engine: Any) -> None:
    """The subject-of-a-person-verb and initial rules fire on capitalized non-names (``Virtual Reality
    works``, ``Farm Y. He sold``); the tagger scores those under RULE_NAME_FLOOR. Names the same rules
    find in person contexts stay."""
    texts = [
        "Explain how Virtual Reality works in a few sentences.",
        "Farm X has 40 cows. Farm Y. He sold 10 goats to the market.",
        "Tomomi Nishiyama lives at 12 Oak Street.",
        "Zak shouted at Scott across the yard.",
    ]
    found = _person_values(engine, texts)
    assert found == [set(), set(), {"Tomomi Nishiyama"}, {"Zak", "Scott"}]


def test_a_lower_case_noun_after_an_article_is_not_a_name(engine: Any) -> None:
    """The tagger calls ``player`` a name in ``If the player answers``; a lower-case name takes no
    article, so a single common noun right after one is dropped. Lower-case names stay."""
    texts = [
        "- If the player answers the question correctly, they get 10 points.\n"
        "- If a player does not answer, they lose 2.",
        "i told dorota about it yesterday",
        "saw the frank freud version last night",
    ]
    found = _person_values(engine, texts)
    assert found == [set(), {"dorota"}, {"frank freud"}]


def test_greeting_objects_and_pronouns_after_a_cue_are_not_names(engine: Any) -> None:
    texts = ['print("Hello World!")', "Contact Us or read About Us.", "Hello Maria, welcome back."]
    found = _person_values(engine, texts)
    assert found == [set(), set(), {"Maria"}]


def test_a_cue_reaches_the_next_line_only_after_a_sign_off_or_a_label(engine: Any) -> None:
    texts = [
        "Please suggest a few books for my kid\nSure, here's a list of books that would be great.",
        "Best regards,\nZorvath Quill",
        "Written by:\nZorvath Quill",
        "Thanks for your help with the refund.\n\nBest,\nOla",
        # a team signs on the same line: the tagger gives it nothing, a rule-made name needs 0.01
        "Thanks for your help.\n\nBest,\nMarketing Team",
    ]
    found = _person_values(engine, texts)
    assert found == [set(), {"Zorvath Quill"}, {"Zorvath Quill"}, {"Ola"}, set()]


def test_a_work_before_by_and_its_author_is_no_person(engine: Any) -> None:
    texts = [
        "Books for kids:\n4. Bridge to Terabithia by Katherine Paterson\n8. Matilda by Roald Dahl",
        '"Emma" by Jane Austen is a novel.',
        "Photo by John Smith. I told Anna by email.",
        "Music by Sathya Produced by Vikram Joshi",
        "/s/ Frank Wouters SIGNED by Frank Wouters",
    ]
    found = _person_values(engine, texts)
    assert found[:3] == [{"Katherine Paterson", "Roald Dahl"}, {"Jane Austen"}, {"John Smith", "Anna"}]
    assert {"Sathya", "Vikram Joshi"} <= {w for v in found[3] for w in (v, v.removesuffix(" Produced"))}
    assert found[4] and all("Frank Wouters" in v for v in found[4]), found[4]
