"""PII detection: a Presidio ``AnalyzerEngine`` built from the policy, and batched span detection.

What is detected (the policy's ``entities`` pick a subset):

* Names (``PERSON``) from the configured spaCy NER model, improved by general heuristics: cue
  phrases before capitalized tokens (``my name is``, ``Mr``, ``Dear``, kinship words), names with
  a middle initial, extension of a detected name over adjacent capitalized tokens and initials,
  propagation through coordinated lists (``Anna, Derek and Jodi``) and to repeated mentions of a
  detected name's tokens in the same text. No name lists.
* Structured identifiers: e-mail (plain and obfuscated), phone numbers (Presidio's
  ``phonenumbers``-based recognizer plus European formats), payment cards (Presidio + any Luhn-valid
  12-19 digit number), IBANs (compact and grouped, checksum-validated), IP addresses, US SSN,
  Polish PESEL (checksum + date); other Presidio predefined recognizers on request.

The spaCy model is checked with ``spacy.util.is_package`` (or a model directory) *before* the
NLP engine is built, so Presidio's download-on-missing-model fallback (spaCy's CLI download) can
never run; a missing model is a :class:`~tunegate.errors.DependencyError` unless
``allow_regex_only`` is set. Only the NER component (and a ``tok2vec`` it listens to) runs;
lemmas fall back to the lower-cased token for Presidio's context-word enhancement. Texts with no
capitalized non-stop word skip the model (``ner_prefilter``). ``tldextract`` is pointed at its
bundled suffix list.

Spans are the interface: :func:`detect_texts` returns non-overlapping, typed, scored spans and
anonymization consumes them, so the residual re-scan is detection run again on the output.
Placeholders such as ``<PERSON_12345678>`` are never reported as spans.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate.console import progress
from tunegate.errors import DependencyError
from tunegate.pii.config import STRUCTURED_ENTITIES, SUPPORTED_ENTITIES, PIIPolicy
from tunegate.pii.tagger import span_probability  # no torch: the tagger module loads it lazily

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

logger = logging.getLogger(__name__)

#: What an anonymized placeholder looks like: ``<PERSON_123>`` (pseudonym), ``<PERSON>`` (replace),
#: ``<PERSON_h0123456789abcdef>`` (hash). Only known entity names, so ``<Anna>`` is not one.
PLACEHOLDER_PATTERN = (
    r"<(?:" + "|".join(sorted(SUPPORTED_ENTITIES, key=len, reverse=True)) + r")(?:_\d+|_h[0-9a-f]{16})?>"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """One detected entity: a typed character range ``[start, end)`` of a text, with a score."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclasses.dataclass(frozen=True)
class AnalyzerInfo:
    model: str
    model_version: str | None
    regex_only: bool


def spacy_model_available(name: str) -> bool:
    """True if ``name`` is an installed spaCy pipeline package or a pipeline directory (no import)."""
    import spacy.util

    if spacy.util.is_package(name):
        return True
    path = Path(name)
    return path.is_dir() and (path / "config.cfg").is_file()


def _make_nlp_engine(model: str, language: str, regex_only: bool) -> Any:
    """A SpacyNlpEngine that never downloads and runs only what NER needs."""
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    class TunegateSpacyNlpEngine(SpacyNlpEngine):  # type: ignore[misc]
        def load(self) -> None:
            if regex_only:
                nlp = spacy.blank(language)
            else:
                if not spacy_model_available(model):  # double-check: load() must never download
                    raise DependencyError(f"spaCy model {model!r} is not installed")
                nlp = spacy.load(model)
                # only NER runs on every text; the part-of-speech tagger (and the tok2vec it listens
                # to) stays loaded but disabled, and runs only on texts with a PERSON candidate
                # (see _tag_persons): the person filters read its word classes
                nlp.select_pipes(enable=[n for n in nlp.pipe_names if n == "ner"])
            self.nlp = {language: nlp}  # type: ignore[assignment]

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            from presidio_analyzer.nlp_engine import NlpArtifacts

            entities, scores = self._get_updated_entities(
                self._get_entities(doc), self._get_scores_for_entities(doc)
            )
            tokens = list(doc)
            return NlpArtifacts(
                entities=entities,
                tokens=doc,
                tokens_indices=[t.idx for t in tokens],
                # no lemmatizer runs: the lower-cased token lets context words still match
                lemmas=[t.lemma_ or t.lower_ for t in tokens],
                nlp_engine=self,
                language=language,
                scores=scores,
            )

    ner_config = NerModelConfiguration(
        labels_to_ignore=[
            "CARDINAL",
            "ORDINAL",
            "QUANTITY",
            "MONEY",
            "PERCENT",
            "PRODUCT",
            "EVENT",
            "WORK_OF_ART",
            "LAW",
            "LANGUAGE",
            "FAC",
        ],
    )
    return TunegateSpacyNlpEngine(
        models=[{"lang_code": language, "model_name": model}], ner_model_configuration=ner_config
    )


def _model_version(model: str, regex_only: bool) -> str | None:
    if regex_only:
        return None
    import importlib.metadata

    try:
        return importlib.metadata.version(model)
    except importlib.metadata.PackageNotFoundError:
        return None


class _NoTextLogs(logging.Filter):
    """Drop Presidio's DEBUG/INFO records: some quote the analyzed text (context words, matches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _silence_presidio_text_logs() -> None:
    for name in ("presidio-analyzer", "presidio-anonymizer"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoTextLogs) for f in log.filters):
            log.addFilter(_NoTextLogs())


def build_analyzer(policy: PIIPolicy) -> AnalyzerEngine:
    """An ``AnalyzerEngine`` with the policy's model, language and only the recognizers it needs.

    Raises :class:`DependencyError` if the spaCy model is not installed (and ``allow_regex_only``
    is off). Nothing is downloaded, ever.
    """
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import EmailRecognizer, UsSsnRecognizer

    from tunegate.pii import recognizers as rec

    rec.configure_offline_tldextract()
    _silence_presidio_text_logs()
    regex_only = False
    if not spacy_model_available(policy.spacy_model):
        if not policy.allow_regex_only:
            raise DependencyError(
                f"spaCy model {policy.spacy_model!r} (pii.spacy_model) is not installed; tunegate never "
                "downloads models",
                hint=f"install it with `pip install {policy.spacy_model}` (or a wheel/path on an offline "
                "machine), choose an installed model, or set pii.allow_regex_only: true to run without NER",
            )
        regex_only = True
        logger.warning("PII: spaCy model missing; running regex-only recognizers (policy allows it)")

    lang = policy.language
    engine = _make_nlp_engine(policy.spacy_model, lang, regex_only)
    engine.load()

    # the structured identifiers are always loaded: the residual re-scan covers them whatever
    # ``pii.entities`` lists (detection for anonymization is still filtered to ``pii.entities``)
    wanted = set(policy.entities) | set(STRUCTURED_ENTITIES)
    registry = RecognizerRegistry(supported_languages=[lang])
    presidio_log = logging.getLogger("presidio-analyzer")
    level = presidio_log.level
    presidio_log.setLevel(logging.ERROR)  # "recognizer not added: language es" noise, once per build
    try:
        registry.load_predefined_recognizers(languages=[lang], nlp_engine=engine)
    finally:
        presidio_log.setLevel(level)
    kept = []
    for r in registry.recognizers:
        if isinstance(r, EmailRecognizer | UsSsnRecognizer):
            continue  # replaced by the subclasses below (offline-validated; published samples kept)
        if wanted & set(r.supported_entities):
            kept.append(r)
    registry.recognizers = kept
    ours = [
        rec.OfflineEmailRecognizer(supported_language=lang),
        rec.ObfuscatedEmailRecognizer(supported_language=lang),
        rec.SampleKeepingSsnRecognizer(supported_language=lang),
        rec.LabelledSsnRecognizer(supported_language=lang),
        rec.IdnEmailRecognizer(supported_language=lang),
        # tunegate's PESEL, not Presidio's PlPeselRecognizer: equal recall, but Presidio's matches 11-digit
        # runs inside card numbers (no word boundary; 12 hits on presidio_synth + Banking77, and on
        # cards in bench/results/pii_recognizers.json), which turns cards into PL_PESEL
        rec.PeselRecognizer(supported_language=lang),
        rec.LabelledPeselRecognizer(supported_language=lang),
        rec.EuIbanRecognizer(supported_language=lang),
        rec.CuedIbanRecognizer(supported_language=lang),
        rec.EuPhoneRecognizer(supported_language=lang),
        rec.LuhnCardRecognizer(supported_language=lang),
        rec.ZeroPaddedIpRecognizer(supported_language=lang),
        rec.CuedCardRecognizer(supported_language=lang),
        rec.PersonCueRecognizer(supported_language=lang),
        rec.PersonSignOffRecognizer(supported_language=lang),
        rec.PersonInitialRecognizer(supported_language=lang),
        rec.PersonContextRecognizer(supported_language=lang),
        rec.PersonCasedScriptRecognizer(supported_language=lang),
    ]
    if policy.person_tagger != "disabled" and "PERSON" in wanted and not regex_only:
        from tunegate.pii.tagger import PersonTagger

        # fail closed: missing weights or a digest mismatch raise DependencyError here
        ours.append(
            rec.PersonTaggerRecognizer(
                PersonTagger(
                    threshold=policy.person_tagger_threshold,
                    extend=policy.person_tagger_extend,
                    boundaries=(policy.person_tagger_veto, RULE_NAME_FLOOR),
                ),
                supported_language=lang,
                adds=policy.person_tagger == "detect",
            )
        )
    for r in ours:
        if wanted & set(r.supported_entities):
            registry.add_recognizer(r)

    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        # context words count after a value too ("781 1704 office", "+44 20 7946 0958 (mobile)");
        # Presidio's default looks only at the 5 words before it
        context_aware_enhancer=LemmaContextAwareEnhancer(context_prefix_count=5, context_suffix_count=2),
        supported_languages=[lang],
        default_score_threshold=min(policy.threshold_for(e) for e in policy.entities),
    )
    analyzer.tunegate_info = AnalyzerInfo(  # type: ignore[attr-defined]
        model=policy.spacy_model if not regex_only else "regex-only",
        model_version=_model_version(policy.spacy_model, regex_only),
        regex_only=regex_only,
    )
    return analyzer


def analyzer_info(analyzer: AnalyzerEngine) -> AnalyzerInfo:
    info = getattr(analyzer, "tunegate_info", None)
    if isinstance(info, AnalyzerInfo):
        return info
    return AnalyzerInfo(model="unknown", model_version=None, regex_only=False)


# -- post-processing of spans ------------------------------------------------------------------


def _person_stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    from tunegate.pii.recognizers import _NOT_NAMES, PERSON_CUES

    cues = {c.replace("\\", "").rstrip("?:,.") for c in PERSON_CUES if c.isascii()}
    return frozenset({w.lower() for w in STOP_WORDS} | _NOT_NAMES | {c for c in cues if " " not in c})


_RX: dict[str, Any] = {}


def _rx() -> dict[str, Any]:
    """Compiled helper regexes (``regex`` module: Unicode classes, variable lookbehind)."""
    if not _RX:
        import regex

        from tunegate.pii.recognizers import _INITIAL, _NAME_TOKEN, _PARTICLE, FIELD_LABELS, NAME_PHRASE

        # used with .match(text, pos), which anchors at pos (``\A`` would only match at 0)
        _RX["right"] = regex.compile(
            r"[ \t]+(?:" + _INITIAL + r"[ \t]+)?(?:" + _PARTICLE + r"[ \t]+){0,2}(" + _NAME_TOKEN + r")"
        )
        _RX["mark_after_cased"] = regex.compile(r"[\p{Lu}\p{Ll}\p{Lt}]\p{M}")  # NFD accents
        _RX["left_initial"] = regex.compile(r"(?<![\w.&'’-])(\p{Lu})(\.)?[ \t]+\Z")
        _RX["left"] = regex.compile(
            r"(" + _NAME_TOKEN + r")[ \t]+(?:" + _INITIAL + r"[ \t]+)?(?:" + _PARTICLE + r"[ \t]+){0,2}\Z"
        )
        _RX["cap_word"] = regex.compile(r"\p{Lu}[\p{Ll}\p{Lm}'’\-]+")
        item = _NAME_TOKEN + r"(?:[ \t]+" + _NAME_TOKEN + r"){0,3}"
        _RX["item"] = regex.compile(item)
        _RX["list"] = regex.compile(
            r"(?:"
            + item
            + r")(?:[ \t]*,[ \t]*(?:"
            + item
            + r"))*[ \t]*,?[ \t]+(?:and|&|or)[ \t]+(?:"
            + item
            + r")"
            r"|(?:" + item + r")(?:[ \t]*,[ \t]*(?:" + item + r")){2,}"
        )
        # the two ends of a transfer or a message: ``from Emil Sady to Kalina Baka``
        _RX["from_to"] = regex.compile(
            r"\b[Ff]rom[ \t]+(" + NAME_PHRASE + r")[ \t]+to[ \t]+(" + NAME_PHRASE + r")"
        )
        # the rest of a title the NER took for the name, then the name (``Sig`` + ``. Ermenegildo ...``)
        _RX["name_after_title"] = regex.compile(
            r"(?:\(\w\))?(?:\.-?[ \t]*(?:" + _TITLES + r"))*\.?[ \t]+" + NAME_PHRASE
        )
        _RX["placeholder"] = regex.compile(PLACEHOLDER_PATTERN)
        _RX["field_labels"] = FIELD_LABELS
        _RX["line_part"] = regex.compile(r"\w(?:[^\n]*\w)?")  # one line's first to last word character
        # markup and separators no name contains: a tag (``</h3>``, ``<b``), brackets, ``|``, ``=``,
        # slashes, a dash with a space on either side (``Finch- Scout``; not ``Jean-Luc``)
        _RX["markup"] = regex.compile(r"</?[\w!-]*>?|>|[{}\[\]|=\\/]|[ \t]*[-–—][ \t]+|[ \t]+[-–—][ \t]*")
        # a line-start label before ":" (``Occupation: ...``, ``- Game Name: ...``, a numbered item's
        # ``2. Lunar Maria: ...``; not ``https://``)
        _RX["line_label"] = regex.compile(
            r"(?m)^[ \t>*#\-•]*(?:\d{1,3}[.)][ \t]+)?(\p{L}[^\n:]{0,40}?)[ \t]*:(?!//)"
        )
        _RX["cap"] = regex.compile(r"(?<![\w])\p{Lu}[\p{L}'’\-]*")
        _RX["stop"] = _person_stop_words()
        # a web address, to the next space: what the NER calls a name inside it is its path
        _RX["url"] = regex.compile(r"(?i)(?<![\w@.])(?:(?:https?|ftp)://|www\.)[^\s<>\"]+")
    return _RX


def _is_name_word(word: str) -> bool:
    return word.lower() not in _rx()["stop"] and len(word) > 1


#: With the tagger loaded (and ``person_tagger_veto`` > 0), a name that only a rule supports needs at
#: least this tagger probability: a word the name rules add (a capitalized neighbour, a list item:
#: ``Marvel`` in ``Marvel, Star Wars, John Wick``; see _improve_persons) and a name from the
#: context or initial recognizers outside a line-start label (``Virtual Reality works``, ``Farm Y.
#: He``; see _judge_rule_names). Real names they found on dev data scored 0.017 or more.
RULE_NAME_FLOOR = 0.01


#: code no name holds: a call's bracket right after a word (a title's ``Dr(a)`` aside; ``James
#: (Jim) Doe`` has a space): ``addTwo(num1``, spaCy's in a JavaScript snippet. Not ``=`` or a
#: brace: a span run over markup (``Picard | Bob =B``) still holds names, cut out later
_CODE_IN_NAME = re.compile(r"\w\((?!\w\))")
#: a lower-case word glued before a span: the span is the tail of a camelCase identifier
_GLUED_LOWER = re.compile(r"(?<![A-Za-z\u00c0-\u024f])[a-z]+\Z")


#: an object's member: ``numbers.Length``, ``a.Length``, ``$.ajax`` (the identifier before the dot
#: starts with a lower-case letter, ``_`` or ``$``, or is a closing bracket: not ``J.Smith``)
_MEMBER_BEFORE = re.compile(r"(?<![\w$])([a-z_$][\w$]*|[)\]])\.\Z")
#: An English title or name suffix alone: a glued one is no object (``mr.Brown``), and one that is
#: the whole span names no one (``Dear Professor ____``, see _with_titles). English only: other
#: titles are first names too (``Don``, ``Dom``, ``Pan``).
_BARE_TITLE = re.compile(
    r"(?:Mr|Mrs|Ms|Mx|Dr|Prof|Professor|Doctor|Rev|Hon|Capt|Col|Gen|Lt|Sgt|Maj|Gov|Sen|Rep|St|Sr|Jr|Fr)\.?",
    re.I,
)


def _code(text: str, s: Span) -> bool:
    """A PERSON span with code in it (``addTwo(num1``: spaCy's, in a JavaScript snippet), the
    capitalized tail of a camelCase identifier (``Id`` of ``managerId``, after the cue ``manager``)
    or an object's member (``numbers.Length``, ``.ajax``; a glued title is no object: ``Mr.Smith``).
    A glued capitalized word is no identifier (``@MissMcCleary``, ``#DearPopeFrancis``)."""
    hits = [m.start() for m in _CODE_IN_NAME.finditer(text, s.start, s.end)]
    if hits:  # a web address's bracket (``Jo_(writer)``) is no code: without the tagger it stays in
        urls = [m.span() for m in _rx()["url"].finditer(text)]
        if any(not any(a <= h < b for a, b in urls) for h in hits):
            return True
    if text.startswith(".", s.start) and s.start > 0 and not text[s.start - 1].isspace():
        return True  # ``$.ajax``: the span took the member's dot
    member = _MEMBER_BEFORE.search(text, max(0, s.start - 40), s.start)
    if member and not _BARE_TITLE.fullmatch(member.group(1)):
        return True
    return bool(
        s.start > 0
        and text[s.start : s.start + 1].isupper()
        and _GLUED_LOWER.search(text, max(0, s.start - 40), s.start)
    )


#: an article right before a word: what follows is no first name ("the Great", "a Dachshund")
_ARTICLE_BEFORE = re.compile(r"(?<![\w-])(?:[Tt]he|[Aa]n?)[ \t]+\Z")


def _improve_persons(
    text: str, spans: list[Span], words: Sequence[tuple[int, int, float]] | None = None
) -> list[Span]:
    """Extend PERSON spans over neighbouring name words, add the other items of a coordinated list
    with a name and the other end of ``from X to Y``, and every repeated mention of a name's tokens.
    ``words`` (the tagger's word probabilities, when it is loaded) gate all but the last: an added
    word the tagger gives less than :data:`RULE_NAME_FLOOR` is not a name (repeated mentions are
    the detected name itself)."""
    rx = _rx()

    def believed(a: int, b: int) -> bool:
        return words is None or span_probability(words, a, b) >= RULE_NAME_FLOOR

    persons = [s for s in spans if s.entity_type == "PERSON"]
    if not persons:
        return spans
    out = [s for s in spans if s.entity_type != "PERSON"]
    extended: list[Span] = []
    for s in persons:
        start, end = s.start, s.end
        for _ in range(3):  # extend right over initials and capitalized tokens
            m = rx["right"].match(text, end)
            if m and _is_name_word(m.group(1)) and believed(*m.span(1)):
                end = m.end()
                continue
            break
        for _ in range(2):  # extend left over a capitalized token (+ initial)
            m = rx["left"].search(text, 0, start)
            if m and m.end() == start and _is_name_word(m.group(1)) and believed(*m.span(1)):
                start = m.start()
                continue
            break
        # or over a lone initial (``Sincerely, T Waititi``); an undotted ``A``/``I`` is a word
        m = rx["left_initial"].search(text, 0, start)
        if m and m.end() == start and (m.group(2) or m.group(1) not in "AI") and believed(*m.span(1)):
            start = m.start()
        extended.append(Span("PERSON", start, end, s.score))
    # coordinated lists: "Anna, Derek and Jodi" - if one item is a person, all are; but not an
    # item after an article: it ends a longer name or title ("Alexander the Great and Julius
    # Caesar" gave "Great", then replaced in "The Great Gatsby" and "the Great War" elsewhere)
    for m in rx["list"].finditer(text):
        items = [(i.start(), i.end()) for i in rx["item"].finditer(text, m.start(), m.end())]
        if any(a < p.end and p.start < b for a, b in items for p in extended):
            for a, b in items:
                if (
                    _is_name_word(text[a:b].split()[0])
                    and believed(a, b)
                    and not _ARTICLE_BEFORE.search(text, max(0, a - 8), a)
                ):
                    extended.append(Span("PERSON", a, b, 0.5))
    # parallel ends: "from Emil Sady to Kalina Baka" - if one end is a person, so is the other
    for m in rx["from_to"].finditer(text):
        ends = [m.span(1), m.span(2)]
        if any(a < p.end and p.start < b for a, b in ends for p in extended):
            for a, b in ends:
                if _is_name_word(text[a:b].split()[0]) and believed(a, b):
                    extended.append(Span("PERSON", a, b, 0.5))
    # repeated mentions of a detected name's tokens in the same text
    tokens = {
        m.group(0)
        for p in extended
        for m in rx["cap_word"].finditer(text, p.start, p.end)
        if _is_name_word(m.group(0))
        and len(m.group(0)) > 2
        # an epithet is no name of its own: "Great" of "Alexander the Great" elsewhere in the text
        and not _ARTICLE_BEFORE.search(text, max(p.start, m.start() - 8), m.start())
    }
    for w in tokens:
        for i in _word_starts(text, w):
            extended.append(Span("PERSON", i, i + len(w), 0.5))
    return out + extended


_MONTHS = frozenset(
    {
        *("january", "february", "march", "april", "may", "june", "july", "august"),
        *("september", "october", "november", "december"),
    }
)
#: Words after which a month is a time: ``Republicans in August showed Romney`` (the tagger's 0.87).
#: Not ``to``, ``from``, ``by``, ``and``, ``with``: ``a letter from June``, ``I gave it to April``.
_TIME_BEFORE = re.compile(
    r"\b(?:in|on|since|until|till|during|early|late|mid|last|next|this|every|each|through|throughout)"
    r"[ \t]+\Z|\bmid-\Z",
    re.I,
)
_NUMBER_AFTER = re.compile(r",?[ \t]+\d")


def _month_of_a_date(text: str, s: Span) -> bool:
    """A one-word PERSON span that is a month's name after a word of time (``in August``) or before
    a day or a year (``August 5``, ``June, 2021``): a date, not ``April`` the person."""
    word = text[s.start : s.end]
    if word.casefold() not in _MONTHS:
        return False
    return bool(_TIME_BEFORE.search(text, max(0, s.start - 12), s.start) or _NUMBER_AFTER.match(text, s.end))


def _is_word_char(c: str) -> bool:
    r"""``regex``'s ``\w``: a letter, digit, mark or underscore."""
    return c.isalnum() or c == "_" or unicodedata.category(c)[0] == "M"


def _word_starts(text: str, word: str) -> Iterator[int]:
    r"""Where ``word`` occurs in ``text`` as a whole word (no word character on either side), left
    to right without overlap: ``(?<![\w])word(?![\w])`` without compiling a pattern per word (a
    name's pattern is new to every text: compiling them took 3% of detection)."""
    i = text.find(word)
    while i >= 0:
        j = i + len(word)
        if (i == 0 or not _is_word_char(text[i - 1])) and (j == len(text) or not _is_word_char(text[j])):
            yield i
            i = text.find(word, j)
        else:
            i = text.find(word, i + 1)


def _resolve(text: str, spans: list[Span]) -> list[Span]:
    """Union overlapping spans (the best-scored, then longest, type names the union, except that an
    e-mail address covering the union names it: ``anna @ example.com`` holds the name ``anna``);
    sort by start."""
    if not spans:
        return []
    spans = sorted(spans, key=lambda s: (s.start, -s.end))
    clusters: list[list[Span]] = [[spans[0]]]
    cur_end = spans[0].end
    for s in spans[1:]:
        if s.start < cur_end:
            clusters[-1].append(s)
            cur_end = max(cur_end, s.end)
        else:
            clusters.append([s])
            cur_end = s.end
    out = []
    for c in clusters:
        best = max(c, key=lambda s: (s.score, s.end - s.start, s.entity_type))
        start, end = min(s.start for s in c), max(s.end for s in c)
        mail = [s for s in c if s.entity_type == "EMAIL_ADDRESS" and s.start == start and s.end == end]
        out.append(Span(mail[0].entity_type if mail else best.entity_type, start, end, best.score))
    # merge same-type neighbours separated only by spaces/tabs
    merged = [out[0]]
    for s in out[1:]:
        prev = merged[-1]
        gap = text[prev.end : s.start]
        if (
            s.entity_type == prev.entity_type
            and len(gap) <= 2
            and (gap == "" or gap.isspace())
            and "\n" not in gap
        ):
            merged[-1] = Span(prev.entity_type, prev.start, s.end, max(prev.score, s.score))
        else:
            merged.append(s)
    return merged


_LIST_MARKER = re.compile(r"[a-z][.)][ \t]+")


def _without_list_markers(text: str, spans: list[Span]) -> list[Span]:
    """A PERSON span never starts with a line-initial list marker (``b. John Adams`` -> ``John
    Adams``): the letter is the item's, not a name's initial (an initial is upper case)."""
    out = []
    for s in spans:
        m = _LIST_MARKER.match(text, s.start, s.end) if s.entity_type == "PERSON" else None
        if m and not text[text.rfind("\n", 0, s.start) + 1 : s.start].strip():
            s = Span(s.entity_type, m.end(), s.end, s.score)
        out.append(s)
    return out


def _outside_urls(
    text: str, spans: list[Span], words: Sequence[tuple[int, int, float]] | None, believe: float
) -> list[Span]:
    """A PERSON span loses the part that lies inside a web address (spaCy calls
    ``http://t.co/sIumP1Dxqw`` a name, and the word trims then leave ``http``, ``t.co`` and the
    short code as three names), unless the tagger gives a word of that part ``believe`` or more.
    Without the tagger nothing is cut: a name in a URL's path (``/in/jane-doe``) must not leak."""
    urls = [m.span() for m in _rx()["url"].finditer(text)] if words is not None else []
    if not urls:
        return spans
    out: list[Span] = []
    for s in spans:
        cuts = [
            (a, b)
            for a, b in urls
            if a < s.end
            and s.start < b
            and span_probability(words or (), max(a, s.start), min(b, s.end)) < believe
        ]
        if s.entity_type != "PERSON" or not cuts:
            out.append(s)
            continue
        start = s.start
        for a, b in [*cuts, (s.end, s.end)]:
            if any(c.isalnum() for c in text[start:a]):
                out.append(Span("PERSON", start, a, s.score))
            start = max(start, b)
    return out


def _split_lines(
    text: str, spans: list[Span], words: Sequence[tuple[int, int, float]] | None = None
) -> list[Span]:
    r"""A PERSON span never crosses a line break: the NER sometimes runs a name into the next line
    (``Name: Peter\nAge: 43`` -> ``Peter\nAge``; two list items ``Kylo Ren\n- John Boyega``).
    Each line's part becomes its own span (trimmed to its first and last word character), so the
    filters judge it alone and one person's pseudonym never covers a second line's words; a part
    that is a form label before ``:`` is dropped, and so is a line's own label (``Job:`` of
    ``Louis\nJob: Engineer``); a part (after its label) that the tagger (``words``) gives less
    than :data:`RULE_NAME_FLOOR` is dropped (``Engineer``; ``Apt`` of ``El-Jazzar\n Apt. 243``).
    The tagger's veto has already judged the whole span: judged per line, a quoted ``>Alberico
    Rizzo`` block lost its name (0.05 there, above the floor)."""
    rx = _rx()
    out: list[Span] = []
    for s in spans:
        if s.entity_type != "PERSON" or "\n" not in text[s.start : s.end]:
            out.append(s)
            continue
        for m in rx["line_part"].finditer(text, s.start, s.end):
            if m.group().lower() in rx["field_labels"] and text[m.end() :].lstrip(" \t").startswith(":"):
                continue  # the next line's form label (``Phone:``), not part of the name
            a = m.start()
            label = rx["line_label"].match(text, text.rfind("\n", 0, a) + 1)
            if label and a <= label.start(1) < m.end() and label.end() < m.end():
                a = label.end()  # ``Job: Engineer``: the label of the line is no part of a name
                a += len(text[a : m.end()]) - len(text[a : m.end()].lstrip())
            if words is not None and span_probability(words, a, m.end()) < RULE_NAME_FLOOR:
                continue  # a value after the label, or a line (``Apt``), the tagger does not call a name
            out.append(Span("PERSON", a, m.end(), s.score))
    return out


#: Where one PERSON span holds more than one name or a name and a thing: a comma or semicolon
#: before a space (``Alex, Stan, and Adelwolfe``) and a possessive (``Suzy’s iPhone``, ``Ben's``).
_NAME_BREAK = re.compile(r"[,;](?=\s)|['’]s\b")


def _split_names(
    text: str, spans: list[Span], words: Sequence[tuple[int, int, float]] | None, believe: float
) -> list[Span]:
    """A PERSON span ends at a possessive and at a comma: spaCy reads ``Alex, Stan`` and ``Suzy’s
    iPhone`` (curly apostrophe) as one name, the tagger's words keep the ``'s`` (``Ben's``), and
    replaced whole, the comma, the possessive or the owned thing is lost from the training text
    (``<PERSON_1>, and Adelwolfe`` now counts two people). The first part stays; a part after a
    comma stays when the tagger gives one of its words :data:`RULE_NAME_FLOOR` or more (``Stan``
    0.98; not ``MD`` of ``Aisha Bello-Okafor, MD``, which :func:`_with_titles` puts back as a
    suffix), and one after a possessive when it gives ``believe`` or more (not ``iPhone``); without
    the tagger, parts after a comma stay, and parts after a possessive that start with a capital
    (a leaked name costs more). Each part is trimmed to its word characters."""
    rx = _rx()
    out: list[Span] = []
    for s in spans:
        cuts = list(_NAME_BREAK.finditer(text, s.start, s.end)) if s.entity_type == "PERSON" else []
        if not cuts:
            out.append(s)
            continue
        starts = [s.start, *(m.end() for m in cuts)]
        ends = [*(m.start() for m in cuts), s.end]
        for start, end, cut in zip(starts, ends, [None, *cuts], strict=True):
            part = rx["line_part"].search(text, start, end)
            if not part or sum(c.isalpha() for c in part.group()) < 2:
                continue
            if cut is not None:
                possessive = cut.group()[0] in "'’"
                if words is None:
                    # no tagger: an owned thing is kept out when it does not start a capitalized
                    # word (``iPhone``); a capitalized part may be the next name (a leak costs more)
                    if possessive and not part.group()[:1].isupper():
                        continue
                elif span_probability(words, part.start(), part.end()) < (
                    believe if possessive else RULE_NAME_FLOOR
                ):
                    continue
            out.append(Span("PERSON", part.start(), part.end(), s.score))
    return out


#: A capitalized word right before ``, `` (a surname written first: ``Doe, Jane``).
_SURNAME_BEFORE = re.compile(r"(?<![\w'’-])([^\W\d_][\w'’-]*),[ \t]+\Z")
#: What may follow the given name of a ``Surname, Given`` pair: the end of its line, or a list or
#: field separator (``Young, Grace (ID 4471)``, ``Smith, John; Rose, Mary``).
_PAIR_END = re.compile(r"[ \t]*(?:\n|\Z|[;(|,])")


def _surnames_first(text: str, spans: list[Span], tags: Sequence[tuple[int, int, str]] | None) -> list[Span]:
    """The surname of a name written ``Surname, Given`` in a record's field (``Patient: Doe, Jane``,
    ``Attendees: Smith, John; Rose, Mary; Park, Jin``): a capitalized noun (spaCy's ``NNP``/``NN``)
    right before ``, `` and a PERSON that ends the item, where the pair opens a labelled value
    (after ``Label:``, or after ``;`` on a labelled line). Surnames that are common words (``Doe``,
    ``Young``, ``King``, ``Park``) are no name to spaCy or the tagger on their own, and leaked
    beside their replaced given name. Not a vocative: ``Thanks, John!`` and ``Congratulations,
    Peter!`` open no labelled value."""
    persons = [s for s in spans if s.entity_type == "PERSON"]
    if not persons or not tags or "," not in text:
        return spans
    tag_at = {a: tag for a, _, tag in tags}
    added: list[Span] = []
    for p in persons:
        line_start = text.rfind("\n", 0, p.start) + 1
        m = _SURNAME_BEFORE.search(text, line_start, p.start)
        if not m or not _PAIR_END.match(text, p.end):
            continue
        a, b = m.span(1)
        before = text[line_start:a].rstrip()
        if not (before.endswith(":") or (before.endswith(";") and ":" in before)):
            continue
        if tag_at.get(a) not in ("NNP", "NN") or not text[a].isupper():
            continue
        if any(s.start < b and a < s.end for s in [*spans, *added]):
            continue
        added.append(Span("PERSON", a, b, p.score))
    return spans + added


def _split_markup(text: str, spans: list[Span]) -> list[Span]:
    """A PERSON span never covers markup or a list separator: the NER runs a name into an HTML tag
    (``F. Scott Fitzgerald</h3``) or over a spaced dash to the next name (``Scout Finch- Scout
    is``). Replaced whole, the tag or the separator is lost from the training text. The span is cut
    at tags, ``<``, ``>``, brackets, ``|``, ``=``, slashes and spaced dashes; every part with two or
    more letters stays a name (so ``John/Mary`` keeps both), trimmed to its word characters."""
    rx = _rx()
    out: list[Span] = []
    for s in spans:
        cuts = (
            [m.span() for m in rx["markup"].finditer(text, s.start, s.end)]
            if s.entity_type == "PERSON"
            else []
        )
        if not cuts:
            out.append(s)
            continue
        starts = [s.start, *(b for _, b in cuts)]
        ends = [*(a for a, _ in cuts), s.end]
        for start, end in zip(starts, ends, strict=True):
            part = rx["line_part"].search(text, start, end)
            if part and sum(c.isalpha() for c in part.group()) >= 2:
                out.append(Span("PERSON", part.start(), part.end(), s.score))
    return out


def postprocess(
    text: str,
    results: Sequence[RecognizerResult],
    policy: PIIPolicy,
    *,
    tags: Sequence[tuple[int, int, str]] | None = None,
    words: Sequence[tuple[int, int, float]] | None = None,
    believe: float | None = None,
    known: Callable[[str], bool] | None = None,
) -> list[Span]:
    """Typed, thresholded, non-overlapping spans; placeholders excluded.

    ``tags`` (token start, end, Penn tag) let the person filters trim verbs, determiners and
    common nouns off name spans; without them (regex-only, prefiltered texts) they are skipped.
    ``words`` (the PERSON tagger's word probabilities) gate the words the name rules add;
    ``believe`` (the tagger's name threshold) keeps a word it calls a name from a word-class trim;
    ``known`` (whether the tagger's vocabulary holds a word whole) limits that where the tagger's
    belief spills over from a neighbouring name.
    """
    wanted = set(policy.entities)
    spans = [
        Span(r.entity_type, r.start, r.end, float(r.score))
        for r in results
        if r.entity_type in wanted and r.score >= policy.threshold_for(r.entity_type) and r.end > r.start
    ]
    if "PHONE_NUMBER" in wanted:
        spans = [s for s in spans if s.entity_type != "PHONE_NUMBER" or not not_a_phone(text, s.start, s.end)]
        spans = _identifier_or_phone(text, _ssn_over_phone(text, spans))
    spans = [s for s in spans if not _not_an_identifier(text, s)]
    if "PERSON" in wanted:
        trust = 1.1 if believe is None else believe  # 1.1: no probability reaches it
        spans = _split_lines(text, _outside_urls(text, spans, words, trust), words)
        # a name holds no code, and a month of a date is no name
        spans = [
            s for s in spans if s.entity_type != "PERSON" or not (_code(text, s) or _month_of_a_date(text, s))
        ]
        spans = _split_names(text, spans, words, trust)
        spans = filter_persons(text, _without_list_markers(text, spans), tags, words, trust, known)
        spans = _improve_persons(text, spans, words)
        spans = _surnames_first(text, filter_persons(text, spans, tags, words, trust, known), tags)
    holes = [(m.start(), m.end()) for m in _rx()["placeholder"].finditer(text)]
    if holes:
        spans = [s for s in spans if not any(a < s.end and s.start < b for a, b in holes)]
    # markup is cut out last, from the merged spans: the filters judged the whole name (cut first,
    # ``Soulja Boy | X`` lost ``Boy``) and merging can rejoin parts (``Scout Finch`` + ``Finch-``)
    out = [s for s in _split_markup(text, _resolve(text, spans)) if not text[s.start : s.end].isspace()]
    return _with_titles(text, _without_works(text, out)) if "PERSON" in wanted else out


#: Between a work's title and its author: ``Matilda by Roald Dahl``, ``"Emma" by Jane Austen``.
_BY_AUTHOR = re.compile(r"[\"'”’]?,?[ \t]+by[ \t]+")
_BY_BEFORE = re.compile(r"\bby[ \t]+\Z", re.I)


def _without_works(text: str, spans: list[Span]) -> list[Span]:
    """Drop a PERSON span that runs right up to ``by`` and another PERSON span (``Matilda by Roald
    Dahl``, ``Bridge to Terabithia by Katherine Paterson``): it names the author's work, a book,
    a song, a painting, not a person. A name before ``by`` and a word that is no name (``photo by
    John``, ``Anna by email``) stays, and so does one that is itself an author's (``Music by
    Sathya Produced by VJ``) or ends in a participle (``/s/ Frank Wouters SIGNED by``)."""
    out = []
    for i, s in enumerate(spans):
        nxt = spans[i + 1] if i + 1 < len(spans) else None
        if s.entity_type == "PERSON" and nxt is not None and nxt.entity_type == "PERSON":
            m = _BY_AUTHOR.match(text, s.end)
            last = text[s.start : s.end].split()[-1].lower()
            if (
                m
                and m.end() == nxt.start
                and not last.endswith(("ed", "en"))
                and not _BY_BEFORE.search(text, max(0, s.start - 8), s.start)
            ):
                continue
        out.append(s)
    return out


#: Honorifics right before a name and generational/degree suffixes right after it: part of how the
#: name is written (``Dr. Pamela Bell``, ``Dott.ssa Anna Neri``, ``pani Ada Nowak``, ``John Smith
#: Jr``, ``Anto Kreusel B.Sc.``), so they go into its span. The common forms of English, German,
#: French, Spanish, Portuguese, Italian, Polish, Dutch, Czech, Turkish, Indonesian, Vietnamese,
#: Yoruba, Hausa and Indian usage; capitalized forms only, except the lower-case Polish and Dutch
#: ones (``I miss john`` keeps ``miss``); a suffix's final dot stays out (it may end the sentence).
_TITLES = (
    r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev|Fr|Hon|Capt|Col|Gen|Lt|Sgt|Maj|Cdr|Adm|Gov|Sen|Rep"
    r"|Herr|Frau|Hr|Dipl|Ing|Mag|Univ|DI|Mme|Mlle|Me|Pr|M\.|Sr|Sra|Srta|Dra|Dña|Don|Doña|Dom|Sig"
    r"|Sig\.ra|Sig\.na|Sigg|Dott|Dott\.ssa|Prof\.ssa|Avv|Arch|Geom|Rag|Pan|Pani|pan|pani|Dhr|Mevr"
    r"|dhr|mevr|ir|drs|mr|Mgr|Bc|MUDr|JUDr|PhDr|RNDr|Bay|Bayan|Sn|Av|Doç|Yrd|Öğr|Gör|Arş|Okt|Uz|Çev|Op"
    r"|Shri|Smt|Sri|Kumari|Km|Hj|Hjh|Dt|Drs|Ir|Lic|Licda|Licdo|Quý ông|Quý bà|Quý cô|Ông|Bà"
    r"|Alhaji|Alhaja|Chief|Oba|Mallam|Iya|Madam|Madame|Tgk|Cô|Bác"
    r"|Dr\(a\)|Sr\(a\)|Dra\(o\)"
)
_TITLE_BEFORE = re.compile(r"(?:(?<!\w)(?:" + _TITLES + r")(?:\.-?[ \t]*|[ \t]+))+\Z")
_TITLE_ONLY = re.compile(r"(?:(?:" + _TITLES + r")(?:\.-?[ \t]*|[ \t]+))*(?:" + _TITLES + r")\.?")
_TITLE_GAP = re.compile(r"(?:\(\w\))?\.?-?[ \t]*")
_SUFFIX_AFTER = re.compile(
    r",?[ \t]+(?:Jr|Sr|II|III|IV|MD|DDS|PhD|DVM|Esq|MBA|CPA|RN|BSc|MSc|MA|BA|CSc|DrSc|DiS"
    # a dotted degree: B.Sc, Ph.D, LL.M, and the Indonesian S.Kom, M.TI, S.I.Kom
    r"|(?:[A-Z][a-z]{0,3}\.){1,3}[A-Z][A-Za-z]{0,4})(?![\w])"
)


#: What follows a title that names no one: a template's blank (``[Last Name]``, ``____``,
#: ``<name>``, ``{name}``) or the end of the greeting (``Dear Professor,``, ``Thanks, Dr.``).
_NO_NAME_AFTER = re.compile(r"\.?[ \t]*(?:[\[_<{]|[,:;!?]|\n|\Z)")


def _with_titles(text: str, spans: list[Span]) -> list[Span]:
    """PERSON spans widened over an adjacent honorific before and a suffix after, where no other
    span is in the way. Where a data set labels ``Dr. Pamela Bell`` whole, the name is caught
    whole; where it labels ``Pamela Bell``, the wider span still covers it. A title that is the
    whole span, with no name after it, names no one and is dropped: a letter template's blank
    (``Dear Mr. [Last Name]``, ``Dear Professor ____``) or a bare greeting (``Dear Doctor,``)."""
    out: list[Span] = []
    for i, s in enumerate(spans):
        if s.entity_type == "PERSON":
            floor = out[-1].end if out else 0
            ceiling = spans[i + 1].start if i + 1 < len(spans) else len(text)
            bare = _BARE_TITLE.fullmatch(text, s.start, s.end)
            if bare or _TITLE_ONLY.fullmatch(text, s.start, s.end):
                nxt = spans[i + 1] if i + 1 < len(spans) else None
                if (
                    nxt is not None
                    and nxt.entity_type == "PERSON"
                    and _TITLE_GAP.fullmatch(text, s.end, nxt.start)
                ):
                    continue  # ``Dr`` + ``Salimah Namaga``: the name's own title search takes it
                # the NER took the title for the name (``Sig. Ermenegildo Filogamo`` -> ``Sig``)
                m = _rx()["name_after_title"].match(text, s.end, ceiling)
                if m:
                    s = Span(s.entity_type, s.start, m.end(), s.score)
                elif bare and _NO_NAME_AFTER.match(text, s.end):
                    continue  # a letter's blank (``Dear Mr. [Last Name]``) or a bare greeting
            m = _TITLE_BEFORE.search(text, max(floor, s.start - 32), s.start)
            start = m.start() if m else s.start
            m2 = _SUFFIX_AFTER.match(text, s.end, ceiling)
            s = Span(s.entity_type, start, m2.end() if m2 else s.end, s.score)
        out.append(s)
    return out


# -- precision filters -------------------------------------------------------------------------

#: Penn tags of function words, numbers and punctuation: never the first or last word of a name.
_FUNCTION_TAGS = frozenset(
    ["DT", "PDT", "IN", "CC", "CD", "PRP", "PRP$", "WDT", "WP", "WP$", "WRB", "TO", "MD", "EX", "UH",
     "POS", "SYM", "LS", ".", ",", ":", "``", "''", "-LRB-", "-RRB-", "HYPH", "NFP", "ADD", "_SP", "$"]
)  # fmt: skip
#: Numbers written as words: a number, whatever the tagger says of it.
_NUMBER_WORD = re.compile(
    r"(?i)(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|\w+teenth"
    r"|(?:twen|thir|for|fif|six|seven|eigh|nine)t(?:y|ieth)|hundred|thousand|million|billion|dozen"
    r"|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|hundredth|thousandth)"
)
#: A sentence-initial word spaCy tags an adverb is trimmed off a name below this tagger probability.
_ADVERB_NAME = 0.1
_VERB_TAGS = frozenset(["VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "RB", "RBR", "RBS"])
_COMMON_NOUN_TAGS = frozenset({"NN", "NNS"})
_PROPER_TAGS = frozenset({"NNP", "NNPS"})
_PLURAL_TAGS = frozenset({"NNS", "NNPS"})
#: Name prefixes that are written with an inner capital (McDonald, DeAndre, O'Neil, MacArthur, LeBron).
_INNER_CAP_OK = ("Mc", "Mac", "O'", "O’", "De", "Di", "Da", "La", "Le", "Van", "Von", "Du", "St")


def _camel_case(word: str) -> bool:
    """``DeepMind``, ``YouTube``, ``PlayStation``: a product/company spelling, not a person's name."""
    import regex

    if not regex.fullmatch(r"\p{Lu}\p{Ll}+\p{Lu}[\p{L}]*", word):
        return False
    return not word.startswith(_INNER_CAP_OK)


#: Score Presidio gives spaCy NER results (the pattern recognizers here score 0.4-0.6).
_NER_SCORE = 0.8
#: Family forms of address that are capitalized like names but name no one.
_FAMILY_WORDS = frozenset(
    ["grandpa", "grandma", "granny", "grandad", "granddad", "gramps", "nana", "papa", "mama", "mom",
     "mum", "mommy", "mummy", "dad", "daddy", "auntie", "aunty", "uncle", "aunt", "sis", "bro"]
)  # fmt: skip


def _lower_twin(text: str, word: str) -> bool:
    """True if ``word`` (capitalized) also occurs in lower case as a word of ``text``: a common noun."""
    low = word.lower()
    if low == word:
        return False
    return next(_word_starts(text, low), None) is not None


def _sentence_start(text: str, start: int) -> bool:
    """Whether ``start`` opens a text, a line or a sentence (quotes, brackets, ``*`` and ``-`` in
    between are skipped). Scans back from ``start``: no copy of the text before it."""
    i = start - 1
    while i >= 0 and text[i] in " \t\"“'‘(*-":
        i -= 1
    return i < 0 or text[i] in ".!?:;\n"


#: what follows a unit designator, not a name: a number, after an optional dot (``Apt. 243``)
_UNIT_NUMBER = re.compile(r"\.?[ \t]*(?:#|No\.?[ \t]*)?\d")


def _determined_noun(
    text: str, word: tuple[int, int, str], tags: Sequence[tuple[int, int, str]], sure: bool = False
) -> bool:
    """A lower-case singular common noun right after a determiner or possessive (``the player``,
    ``her huntsman``), whichever recognizer called it a name; except after ``its`` when the tagger
    calls the word a name (``sure``): chat writes ``it's`` without its apostrophe (``hey its mike,
    call me back``: mike 0.997; ``its tail`` scores nothing)."""
    a, b, tag = word
    if tag != "NN" or not text[a:b].islower():
        return False
    before = [t for t in tags if t[1] <= a][-1:]
    if sure and before and text[before[0][0] : before[0][1]].lower() == "its":
        return False
    return bool(before) and before[0][2] in ("DT", "PRP$") and not text[before[0][1] : a].strip()


def filter_persons(
    text: str,
    spans: list[Span],
    tags: Sequence[tuple[int, int, str]] | None,
    words_p: Sequence[tuple[int, int, float]] | None = None,
    believe: float = 1.1,
    known: Callable[[str], bool] | None = None,
) -> list[Span]:
    """Trim and drop PERSON spans that are not names, by word class and position, not word lists.

    The tagger of a small model is unsure about single capitalized words, so capitalized words are
    only trimmed in the one position where their class is reliable:

    * function words, numbers and punctuation at either end are trimmed;
    * lower-case verbs/adverbs at either end are trimmed, and so is a lower-case common noun next
      to a proper noun (``text william`` -> ``william``);
      In a span of two or more words without a capital, neither is trimmed when the PERSON
      tagger (``words_p``) gives the word ``believe`` or more (``emily clarke``: spaCy tags
      ``emily`` an adverb; a lone ``shyly`` next to a name stays an adverb). A token
      joined to others without a space is trimmed only with all of them (``fatima al-sayed``
      keeps ``sayed``, tagged a verb, because ``al`` is a proper noun);
    * a sentence-initial capitalized base verb (an imperative: ``Rewrite``, ``Convert``) is trimmed;
    * a single remaining plural (``Dreams``, ``Vomitoriums``) or CamelCase word (``DeepMind``), a
      span of common words around a function word (``km to miles``), a lower-case common noun right
      after an article (``the player``) and a span right after a travel verb (``visit malawi``) are
      dropped.
    """
    if not any(s.entity_type == "PERSON" for s in spans):
        return spans
    known = known or (lambda _word: True)  # no tagger: every word counts as a vocabulary word
    all_tags = list(tags or ())
    out: list[Span] = []
    for s in spans:
        if s.entity_type != "PERSON":
            out.append(s)
            continue
        words = [(a, b, tag) for a, b, tag in (tags or ()) if s.start <= a and b <= s.end]
        if words:
            proper = any(tag in _PROPER_TAGS for _, _, tag in words)
            # without a capital in the span, spaCy's tags of a name are guesses (emily/RB): the
            # PERSON tagger's word probability decides whether a word-class trim applies
            lower_span = len(text[s.start : s.end].split()) > 1 and not any(
                c.isupper() for c in text[s.start : s.end]
            )

            def word_class_trim(
                w: tuple[int, int, str],
                proper: bool = proper,
                low: bool = lower_span,
                span_words: list[tuple[int, int, str]] = words,
            ) -> bool:
                a, b, tag = w
                if not text[a:b].islower():
                    return False
                if tag not in _VERB_TAGS and not (proper and tag in _COMMON_NOUN_TAGS):
                    return False
                if _word_probability(words_p or (), a, b) < believe:
                    return True
                if low:
                    return False
                if len(span_words) == 1:  # lone: ``dickycollins`` (VBZ), ``brittany`` (VB); not ``shyly``
                    return tag.startswith("RB")
                # beside a capitalized name the tagger's belief spills onto the next word (``John
                # arm`` 0.96, ``Emily rummaged``): it keeps a lower-case noun only before a
                # capitalized word (``robbie Williams``) or one the vocabulary lacks (``Paulo nutini``)
                before_cap = any(text[x : x + 1].isupper() for x, _, _ in span_words if x > a)
                return tag in _VERB_TAGS or not (before_cap or not known(text[a:b]))

            # the tagger's name words in the span: a vocabulary word opening the sentence that it
            # gives under RULE_NAME_FLOOR is no part of the name (``Meet Louis``); elsewhere it is
            # still read as one (``Per Manya Dubey`` 0.002, ``Carmela Real`` 0.005)
            sure_name = any(_word_probability(words_p or (), a, b) >= believe for a, b, _ in words)

            def trim(
                i: int,
                words: list[tuple[int, int, str]] = words,
                sure_name: bool = sure_name,
                low: bool = lower_span,
            ) -> bool:
                a, b, tag = words[i]
                if (
                    tag in _FUNCTION_TAGS
                    and text[a:b].isalpha()
                    and _word_probability(words_p or (), a, b) >= believe
                    and not _NUMBER_WORD.fullmatch(text[a:b])
                ):
                    # the tagger's name over spaCy's function word: ``lil wayne`` (lil/CD, 0.995),
                    # ``will smith`` (will/MD, 0.94), ``may west`` (0.93)
                    return False
                if tag in _FUNCTION_TAGS or not any(c.isalnum() for c in text[a:b]):
                    return True  # also an emoji spaCy tags NNP (``mike ❤️``): no name has no letter
                if (
                    low
                    and words_p
                    and text[a:b].islower()  # cased letters, all lower: not an uncased script (محمد)
                    and _word_probability(words_p, a, b) < (_ADVERB_NAME if sure_name else RULE_NAME_FLOOR)
                ):
                    # lower-case text: spaCy's proper-noun tag is a guess (``lol sarah``: lol/NNP),
                    # the tagger, trained on lower-cased copies, gives the word nothing; next to a
                    # word it believes, little (``spell aaron``: 0.05 and 0.94)
                    return True
                if (
                    words_p
                    and _UNIT_NUMBER.match(text, b)
                    and _word_probability(words_p, a, b) < RULE_NAME_FLOOR
                ):
                    return True  # "Apt. 243", "Unit 0822": a designator before its number
                if (
                    sure_name
                    and i == 0
                    and words_p
                    and _sentence_start(text, a)
                    and known(text[a:b])
                    and _word_probability(words_p, a, b) < RULE_NAME_FLOOR
                ):
                    return True
                if word_class_trim(words[i]):
                    # a token joined to the rest of its word without a space goes only with all of
                    # it (``fatima al-sayed``: ``sayed`` is tagged a verb, ``al`` a proper noun)
                    return all(
                        words[j][2] in _FUNCTION_TAGS or word_class_trim(words[j])
                        for j in _glued(text, words, i)
                    )
                if (
                    tag in {"RB", "RBR", "RBS", "VB"}
                    and words_p
                    and _sentence_start(text, a)
                    and _word_probability(words_p, a, b) < _ADVERB_NAME
                ):
                    # "Finally Sara went", "Meet Louis": a sentence adverb or an imperative,
                    # capitalized by position; spaCy also tags "Emily", "Carly" RB, which the
                    # tagger believes
                    return True
                if tag != "VB" or not _sentence_start(text, a):
                    return False
                if _word_probability(words_p or (), a, b) >= believe:
                    return False  # "Katie up 6-0 after 1st": spaCy's VB, the tagger's name (0.996)
                # an imperative opens a sentence and is followed by its object, not by a surname
                after = [t for t in all_tags if t[0] >= b][:1]
                return bool(after) and after[0][2] not in _PROPER_TAGS

            first, last = words[0], words[-1]
            while words and trim(0):
                words.pop(0)
            while words and trim(len(words) - 1):
                words.pop()
            if not words:
                continue
            start = s.start if words[0] is first else words[0][0]
            end = s.end if words[-1] is last else words[-1][1]
            # the tagger at its own name threshold overrules spaCy's word-class guesses for a
            # lone word (``britneyspears``/NNS, ``nick``/NN); spaCy's "only NER" score can't tell,
            # as Presidio keeps one result per span and the tagger's same span loses to spaCy's
            sure = len(words) == 1 and _word_probability(words_p or (), words[0][0], words[0][1]) >= believe
            if (
                len(words) == 1
                and words[0][2] in _PLURAL_TAGS
                and not (sure and not known(text[words[0][0] : words[0][1]]))
            ):  # "Dreams", "babbling brooks"; not "britneyspears"
                continue
            inner = [
                text[a:b]
                for a, b, tag in words[1:-1]
                if tag in _FUNCTION_TAGS and _word_probability(words_p or (), a, b) < believe
            ]
            if not proper and any(w.islower() for w in inner):
                continue  # "km to miles": common words around a function word, no proper noun
            if (
                len(words) == 1
                and words[0][2] in _COMMON_NOUN_TAGS
                and text[words[0][0] : words[0][1]].islower()
                and s.score >= _NER_SCORE
                and not sure
            ):
                continue  # "koala", "garlic": only the statistical NER calls a lower-case common noun a name
            if len(words) == 1 and _determined_noun(text, words[0], all_tags, sure):
                continue  # "the player", "a huntsman": a name in lower case takes no article
            s = Span("PERSON", start, end, s.score)
        value = text[s.start : s.end].strip()
        if sum(c.isalpha() for c in value) < 2:
            continue  # "d" of a multiple-choice list: one letter names no one
        if (
            " " not in value
            and _camel_case(value)
            and _word_probability(words_p or (), s.start, s.end) < believe
        ):
            continue  # "DeepMind" (0.69); not a handle the tagger calls a name ("NiallOfficial" 0.995)
        if value.casefold() in _FAMILY_WORDS:
            continue  # "Grandpa, when I grow up": a form of address, not a name
        if " " not in value and value[:1].isupper() and _lower_twin(text, value):
            continue  # "Product: ..." next to "the given product": the same word in lower case
        if _travel_cue().search(text, max(0, s.start - 30), s.start) and not _visited_person(
            text, s, words_p, believe
        ):
            continue  # "visit malawi", "fly to Lendava": a place
        if _quoted_title(text, s.start, s.end):
            continue  # "the book 'Les Misérables'": the title of a work, not a person
        if _names_a_place_or_day(text, s.start, s.end):
            continue  # "mount Farbo", "Herbert Hoover Elementary School", "New Year's Day"
        out.append(s)
    return out


#: What names a work: a quoted name right after one of these (``the novel "Emma"``) is its title.
_WORK_BEFORE = re.compile(
    r"\b(?:book|novel|novella|film|movie|song|album|single|poem|play|musical|opera|series|show|"
    r"episode|story|article|essay|painting|game|title[ds]?)\b[^\n\w]{0,3}\Z",
    re.I,
)
_QUOTES = {"'": "'", '"': '"', "‘": "’", "“": "”", "«": "»"}


def _quoted_title(text: str, start: int, end: int) -> bool:
    """A name that fills a quotation right after a word naming a work (``from the book 'Les
    Misérables'``, ``Title: "Siri-ously"``, ``the song "Despacito"``): the work's title. The same
    quoted name without such a word (``she said "John"``) stays a name."""
    # a bounded window on each side: this runs for every PERSON span of every text
    before = text[max(0, start - 40) : start].rstrip(" \t")
    if not before or before[-1] not in _QUOTES:
        return False
    # the closing mark may follow the sentence's punctuation (``'Matilda.'``)
    if not text[end : end + 4].lstrip(".!?,").startswith(_QUOTES[before[-1]]):
        return False
    return bool(_WORK_BEFORE.search(before[:-1].rstrip(" \t")))


#: A word that opens the name of a place (``Mount Everest``, ``lake Tahoe``, ``Piazza Navona``): a
#: name right after one, or starting with one, is the place's. Not ``Rio``/``Monte``/``via``
#: (first names, a preposition before a person).
_PLACE_HEAD = frozenset({"mount", "mt", "lake", "cape", "piazza", "plaza", "isle", "fort"})
#: A word that ends the name of a place or an institution (``Kuiper Belt``, ``Hudson River``,
#: ``Herbert Hoover Elementary School``). Not surnames (``Hall``, ``Park``, ``Church``, ``Field``,
#: ``Lane``, ``Hill``).
_PLACE_TAIL = frozenset(
    {"river", "mountain", "mountains", "island", "islands", "belt", "valley", "canyon", "ocean", "sea",
     "desert", "peninsula", "glacier", "volcano", "falls", "street", "avenue", "boulevard", "road",
     "school", "university", "college", "academy", "hospital", "airport", "stadium", "institute",
     "museum", "library", "cathedral", "bridge", "tower", "square"}
)  # fmt: skip
#: Street abbreviations, a place's last word only after a house number (``40 William St.``)
_STREET_ABBR = frozenset({"st", "ave", "rd", "blvd"})
_HOUSE_NUMBER_BEFORE = re.compile(r"\d[a-zA-Z]?[ \t]+\Z")
#: Capitalized words after a span up to a place's last word (``Herbert Hoover`` + `` High School``)
_PLACE_AFTER = re.compile(r"(?:[ \t]+[A-Z][\w.'’-]*){1,3}")
#: ``New Year's Day``, ``St. Patrick's Eve``: a day, not the person it is named after
_DAY_AFTER = re.compile(r"['’]s[ \t]+(?:Day|Eve)\b")


def _names_a_place_or_day(text: str, start: int, end: int) -> bool:
    """Whether a PERSON span is (part of) the name of a place, an institution or a day: it starts
    with or follows a word of :data:`_PLACE_HEAD`, it or the capitalized words right after it end
    with one of :data:`_PLACE_TAIL` (or a street abbreviation after a house number), or it is
    followed by ``'s Day``/``'s Eve``."""
    words = text[start:end].split()
    if not words:
        return False
    before = text[max(0, start - 12) : start].split()
    head = before[-1].lower().rstrip(".") if before and text[start - 1 : start] in " \t" else ""
    if head in _PLACE_HEAD or (len(words) > 1 and words[0].lower().rstrip(".") in _PLACE_HEAD):
        return True
    last = words[-1].lower().rstrip(".")
    if last in _PLACE_TAIL and len(words) > 1:
        return True
    house = _HOUSE_NUMBER_BEFORE.search(text, max(0, start - 8), start)
    if last in _STREET_ABBR and len(words) > 1 and house:
        return True
    after = _PLACE_AFTER.match(text, end)
    if after and after.group().split()[-1].lower().rstrip(".,") in _PLACE_TAIL:
        return True
    return bool(_DAY_AFTER.match(text, end))


def _word_probability(words: Sequence[tuple[int, int, float]], start: int, end: int) -> float:
    """The tagger's probability for a spaCy token: of the tagger word(s) it overlaps (spaCy splits
    ``al-sayed`` and ``Hans-Peter`` into three tokens, the tagger keeps each one word)."""
    return max((p for a, b, p in words if a < end and start < b), default=0.0)


def _glued(text: str, words: Sequence[tuple[int, int, str]], i: int) -> range:
    """Indices of the tokens of ``words`` in the same whitespace-delimited word as token ``i``."""
    lo = i
    while lo > 0 and words[lo - 1][1] == words[lo][0]:
        lo -= 1
    hi = i
    while hi + 1 < len(words) and words[hi][1] == words[hi + 1][0]:
        hi += 1
    return range(lo, hi + 1)


def _visited_person(
    text: str, s: Span, words_p: Sequence[tuple[int, int, float]] | None, believe: float
) -> bool:
    """Whether a span after a travel verb is still a person: the tagger gives it ``believe`` or
    more (``visiting John Miller``: 0.99; ``visit malawi``, ``fly to Lendava``: under 0.5), or it
    opens with a kinship word or a title (``visited Uncle Ben``, ``visit Dr. Okafor``)."""
    if _word_probability(words_p or (), s.start, s.end) >= believe:
        return True
    first = text[s.start : s.end].split()[0].rstrip(".")
    return first.lower() in _FAMILY_WORDS or bool(_TITLE_ONLY.fullmatch(first))


@functools.lru_cache(maxsize=1)
def _travel_cue() -> Any:
    import regex

    return regex.compile(
        r"\b(?:visit(?:ing|ed)?|travel(?:l?ing|l?ed)?\s+to|fl(?:y|ying|ew)\s+to|trip\s+to|tour\s+of|"
        r"mov(?:e|ing|ed)\s+to|holiday\s+in|vacation\s+in|arriv(?:e|ed|ing)\s+(?:in|at)|"
        r"liv(?:e|es|ing|ed)\s+in|born\s+in|located\s+in|based\s+in|capital\s+of)\s+(?:the\s+)?\Z",
        regex.I,
    )


_PHONE_RX: dict[str, Any] = {}


#: A card number is only a piece of a longer number when a digit and a hyphen or dot come right
#: before it (``112-4567890-1234567``, an order id). Not after it: ``4111111111111111/0427`` is a
#: card with its expiry.
_NUMBER_BEFORE = re.compile(r"\d[-.]\Z")
#: Words after which a dotted quad is a version, not an address (``version 1.2.3.4``, ``v2.0.1.7``).
_VERSION_BEFORE = re.compile(
    r"(?:\b(?:version|ver|release|build|firmware|fw|rev|revision|patch|update)\.?\s*|\bv)\Z", re.I
)
_SSN_SHAPE = re.compile(r"\d{3}([- .])\d{2}\1\d{4}")


#: An operator or ``=`` right after a number, or an operator, ``<number> =`` or ``<<`` (GSM8K's
#: calculator markup) right before it: ``2000-1800 = 200``, ``(3600/6000)*100%``,
#: ``<<1200-1000=200>>``. Not a key's ``=`` (``phone=+49 30 1234567`` stays a phone).
_ARITHMETIC_AFTER = re.compile(r"[ \t]*(?:=|[*×÷%]|\)[ \t]*[*×÷/=])")
_ARITHMETIC_BEFORE = re.compile(r"(?:\d[ \t]*=|<<|[*×÷])[ \t]*[$€£]?\Z")


def _in_arithmetic(text: str, start: int, end: int) -> bool:
    """Whether a number is an operand of a written calculation (worked maths answers: ``1200-1000=200``
    is not a phone number, ``409500-400000 = 9500`` not a card)."""
    return bool(
        _ARITHMETIC_AFTER.match(text, end) or _ARITHMETIC_BEFORE.search(text, max(0, start - 6), start)
    )


def _not_an_identifier(text: str, span: Span) -> bool:
    """A structured-identifier candidate that its surroundings show is something else: a card
    number that is only a piece of a longer hyphenated/dotted number or an operand of a calculation,
    or a version number that reads as an IP address."""
    if span.entity_type == "CREDIT_CARD":
        return bool(_NUMBER_BEFORE.search(text[max(0, span.start - 2) : span.start])) or _in_arithmetic(
            text, span.start, span.end
        )
    if span.entity_type == "IP_ADDRESS":
        return bool(_VERSION_BEFORE.search(text[max(0, span.start - 12) : span.start]))
    return False


def _ssn_over_phone(text: str, spans: list[Span]) -> list[Span]:
    """A value in the US SSN layout (``536-22-8741``: 3-2-4 digits, one separator) found as both a
    US_SSN and a PHONE_NUMBER is an SSN: no phone numbering plan is written 3-2-4, and a phone
    cue nearby (``reach me at``) would otherwise let the phone's boosted score name it."""
    ssn = {(s.start, s.end) for s in spans if s.entity_type == "US_SSN"}
    if not ssn:
        return spans
    return [
        s
        for s in spans
        if not (
            s.entity_type == "PHONE_NUMBER"
            and (s.start, s.end) in ssn
            and _SSN_SHAPE.fullmatch(text, s.start, s.end)
        )
    ]


#: "Phone" and "mobile" in other languages (German, Polish, Czech, Nordic, Spanish, Italian,
#: Portuguese, French, Finnish, Dutch): a field labelled ``Telefon:`` or ``Handy:`` names a phone.
#: ``portable`` is left out of the cues that make a bare run a phone: it is an English word too.
FOREIGN_PHONE_LIST = (
    "telefon", "telefonu", "telefono", "teléfono", "telefone", "téléphone", "telefoon", "tlf", "tfn",
    "puhelin", "handy", "móvil", "movil", "cellulare", "celular", "mobil", "komórka", "komorka",
)  # fmt: skip
FOREIGN_PHONE_WORDS = "|".join(FOREIGN_PHONE_LIST)


#: Words that say which identifier a number is, looked for on its line just before it (the phone
#: cue also overrules a reference cue in :func:`not_a_phone`).
_CUES = {
    "PHONE_NUMBER": re.compile(
        r"\b(?:(?:phone|call|text|dial|ring|reach)(?:s|e?d|ing|led|ling)?|rang|tel|telephone|mobile|cell|fax"
        r"|sms|whatsapp|landline|hotline|" + FOREIGN_PHONE_WORDS + r")\b",
        re.I,
    ),
    "CREDIT_CARD": re.compile(
        r"\b(?:card|credit|debit|visa|mastercard|maestro|amex|discover|jcb|diners|paid|pay|payment|charge"
        r"|billing|checkout|expir\w*)\b",
        re.I,
    ),
    "PL_PESEL": re.compile(r"\b(?:pesel|national\s+id|identity|identification|dowód|dowod)\b", re.I),
    "US_SSN": re.compile(r"\b(?:ssn|ssns|social\s+security|soc\.?\s*sec\.?)\b", re.I),
}


def _identifier_or_phone(text: str, spans: list[Span]) -> list[Span]:
    """A number claimed both by an identifier recognizer (a card, a PESEL, an SSN) and by the phone
    recognizers is what the words before it on its line say: ``Card number 675987789327`` is a
    card (both recognizers score it 0.85, and the tie went to the phone), ``call 04323194875`` a
    phone number whose digits happen to pass the PESEL check (1 number in 10 does), ``SSN number:
    536228741`` an SSN (``number`` made it a phone). With cues for both or for neither, the scores
    decide (:func:`_resolve`)."""
    phones = [s for s in spans if s.entity_type == "PHONE_NUMBER"]
    if not phones:
        return spans
    drop: set[Span] = set()
    for s in spans:
        if s.entity_type not in ("CREDIT_CARD", "PL_PESEL", "US_SSN"):
            continue
        rivals = [p for p in phones if p.start < s.end and s.start < p.end]
        if not rivals:
            continue
        start = min(s.start, *(p.start for p in rivals))
        before = text[max(text.rfind("\n", 0, start) + 1, start - 48) : start]
        own = bool(_CUES[s.entity_type].search(before))
        phone = bool(_CUES["PHONE_NUMBER"].search(before))
        if own and not phone:
            drop.update(rivals)
        elif phone and not own:
            drop.add(s)
    return [s for s in spans if s not in drop]


def _bare_run_not_phone(value: str) -> bool:
    """An unformatted digit run that no common writing of a phone number explains: no ``+``, no
    trunk ``0``, not a North American number written bare (10 digits, area code and exchange
    starting 2-9, optionally after a ``1``) and not an Indian mobile (10 digits starting 6-9).
    Unix times (``1696516330``, ``1696516330123``), counts and batch ids have this shape; such a
    run is a phone only next to a phone cue."""
    if not value.isdigit() or value.startswith("0"):
        return False
    if len(value) == 10 and value[0] in "6789":
        return False
    nanp = value[1:] if len(value) == 11 and value.startswith("1") else value
    return not (len(nanp) == 10 and nanp[0] in "23456789" and nanp[3] in "23456789")


def not_a_phone(text: str, start: int, end: int) -> bool:
    """True when a PHONE_NUMBER candidate is a timestamp, a date, an amount or an order/reference number.

    Judged from the value and its surroundings: a time (``:mm``) or date right next to it, a
    currency sign or word, or a reference cue (``order``, ``invoice``, ``ticket``, ``#``...) just
    before it with no phone cue (``phone``, ``call``, ``tel``...) nearby. An IPv4 dotted quad, a year range
    (``1990-2000``), an operand of a calculation (:func:`_in_arithmetic`) is never a phone, nor a
    bare digit run of a shape no phone is written in (:func:`_bare_run_not_phone`) or six digits in
    pairs without a phone cue on its line, up to 80 characters before or 25 after, nor two rising
    numbers after a word of estimate or before a unit without that cue (``roughly 700-1000
    calories``, a quantity's range).
    """
    if not _PHONE_RX:
        import regex

        day, month = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])"
        # a date is not one piece of a longer run of groups (+33.1.23.45.67.89 holds "1.23.45")
        _PHONE_RX["date"] = regex.compile(
            rf"(?<!\d[-./]?)(?:\d{{4}}[-./]{month}[-./]{day}|{day}[-./]{month}[-./](?:\d{{4}}|\d{{2}})"
            rf"|{month}[-./]{day}[-./](?:\d{{4}}|\d{{2}}))(?!\d|[-./]\d)"
        )
        _PHONE_RX["time_after"] = regex.compile(
            r"\A\s?(?::\d|[.,]\d|\s?(?:[ap]\.?m\.?|h|hrs?|uhr|utc|gmt)\b)", regex.I
        )
        _PHONE_RX["time_before"] = regex.compile(r"(?:\d:|\d{4}[-./]\d{1,2}[-./]\d{1,2}[ T]?)\Z")
        _PHONE_RX["money"] = regex.compile(r"[$€£¥₹]\s?\Z|(?:usd|eur|gbp|chf|pln)\s?\Z", regex.I)
        _PHONE_RX["money_after"] = regex.compile(
            r"\A\s?(?:[$€£¥₹]|(?:usd|eur|gbp|chf|pln|dollars?|euros?|pounds?|cents?)\b)", regex.I
        )
        _PHONE_RX["ref_cue"] = regex.compile(
            r"(?:order|invoice|ticket|tracking|reference|ref|booking|confirmation|transaction|receipt|"
            r"serial|sku|isbn|case|claim|policy|account|acct|customer|member|id|no\.?|#)[\s:#.\-]*"
            r"(?:(?:number|no\.?|num|id|code)[\s:#.\-]*)?(?:is\s+)?(?:\d[\d \-]*)?\Z",
            regex.I,
        )
        _PHONE_RX["year_range"] = regex.compile(r"((?:1[89]|20)\d\d)\s?[-–—/]\s?((?:1[89]|20)\d\d)")
        # a quantity's range: ``roughly 700-1000 calories``, ``between 150-2000 words``
        _PHONE_RX["range"] = regex.compile(r"(\d{1,4})[ \t]?[-–][ \t]?(\d{1,5})")
        _PHONE_RX["range_before"] = regex.compile(
            r"\b(?:about|around|roughly|approximately|approx\.?|between|some|nearly|almost|estimated|"
            r"ranges?(?:[ \t]+from)?|ranging(?:[ \t]+from)?|up[ \t]+to|at[ \t]+least|at[ \t]+most)\s*\Z",
            regex.I,
        )
        _PHONE_RX["unit_after"] = regex.compile(
            r"\A[ \t]?(?:[a-z]+s|kg|km|mg|g|m|cm|mm|ml|l|lb|oz|ft|mi|mph|kph|kcal|cal|h|min|sec|percent|%|°)"
            r"(?![a-z])"
        )
        # words that make a bare digit run a phone number ("call 1696516330", "1696516330 (mobile)")
        _PHONE_RX["run_cue"] = regex.compile(
            r"\b(?:(?:phone|call|text|dial|ring|contact|reach|number)(?:s|e?d|ing|led|ling)?|rang|tel|"
            r"telephone|mobile|mob|cell|cellphone|fax|sms|whatsapp|nr|no|ph|office|desk|home|work|landline|"
            r"hotline|helpline|" + FOREIGN_PHONE_WORDS + r")\b",
            regex.I,
        )
    value = text[start:end]
    if _PHONE_RX["date"].search(value) or _in_arithmetic(text, start, end):
        return True
    if re.fullmatch(r"\(?0[.,]\d+", value):
        return True  # a decimal fraction (0.3571428571), not a trunk-0 number
    quad = value.split(".")
    if len(quad) == 4 and all(q.isdigit() and len(q) <= 3 and int(q) <= 255 for q in quad):
        return True  # 179.208.13.66: an IPv4 address (the IP recognizer's), not a phone
    years = _PHONE_RX["year_range"].fullmatch(value)
    if years and int(years.group(1)) < int(years.group(2)):
        return True  # 1990-2000, 2005 - 2010
    line_start = text.rfind("\n", 0, start) + 1
    from tunegate.pii.recognizers import SIX_DIGIT_PAIRS

    short = SIX_DIGIT_PAIRS.fullmatch(value)  # six digits (Luxembourg): only with a cue
    around = text[max(line_start, start - 80) : start] + " " + text[end : end + 25]
    if (short or _bare_run_not_phone(value)) and not _PHONE_RX["run_cue"].search(around):
        return True
    # two rising numbers after a word of estimate or before a unit, with no phone cue: a range
    rng = _PHONE_RX["range"].fullmatch(value)
    if (
        rng
        and int(rng.group(1)) < int(rng.group(2))
        and (
            _PHONE_RX["range_before"].search(text[max(0, start - 30) : start])
            or _PHONE_RX["unit_after"].match(text[end : end + 12])
        )
        and not _PHONE_RX["run_cue"].search(around)
    ):
        return True
    after = text[end : end + 8]
    before = text[max(0, start - 40) : start]
    if _PHONE_RX["time_after"].match(after) or _PHONE_RX["time_before"].search(before):
        return True
    if _PHONE_RX["money"].search(before) or _PHONE_RX["money_after"].match(after):
        return True
    return bool(_PHONE_RX["ref_cue"].search(before)) and not _CUES["PHONE_NUMBER"].search(before)


def needs_ner(text: str) -> bool:
    """True if ``text`` has a capitalized word that is not a stop word (``What``, ``I``, ``My``...),
    or is entirely lower-case (then casing carries no signal).

    Names in text without one are rarely found by a spaCy NER model, so such texts skip the model
    (tokenizer only; pattern recognizers still run). Off with ``pii.ner_prefilter: false``.
    """
    if text.islower():  # a lower-cased document: casing says nothing, let the model decide
        return True
    stop = _rx()["stop"]
    return any(m.group(0).lower() not in stop for m in _rx()["cap"].finditer(text))


def _docs(analyzer: AnalyzerEngine, policy: PIIPolicy, texts: Sequence[str]) -> Iterator[Any]:
    nlp = analyzer.nlp_engine.get_nlp(policy.language)  # type: ignore[attr-defined]
    if not nlp.pipe_names:  # regex-only: tokenizer
        for t in texts:
            yield nlp.make_doc(t)
        return
    if not policy.ner_prefilter:
        yield from nlp.pipe(texts, batch_size=policy.batch_size)
        return
    flags = [needs_ner(t) for t in texts]
    selected = [t for t, f in zip(texts, flags, strict=True) if f]
    with_ner = iter(nlp.pipe(selected, batch_size=policy.batch_size))
    for text, flag in zip(texts, flags, strict=True):
        yield next(with_ner) if flag else nlp.make_doc(text)


#: Invisible characters that split an identifier without changing how it reads (zero-width space,
#: non-joiner, joiner, word joiner, BOM, soft hyphen).
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_INVISIBLE_TABLE = str.maketrans("", "", _INVISIBLE)


#: Look-alike separators read as their ASCII form, one character for one (offsets unchanged):
#: Unicode spaces (no-break, thin, narrow no-break, figure, ideographic...) and hyphens, the en
#: dash and minus signs. Stock recognizers accept only ``-`` and `` `` between digit groups, so
#: ``4111\u00a01111\u00a01111\u00a01111`` (a card as French typography or a PDF writes it) and
#: ``123\u201145\u20116789`` went unseen. Not the em dash: prose punctuation (``Sarah—my sister``).
#: The fullwidth forms of ASCII (U+FF01-U+FF5E, in CJK input: ``ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ``) read
#: as ASCII too, one for one (NFKC would also fold ligatures into two characters, moving offsets).
_SEPARATOR_TABLE = str.maketrans(
    dict.fromkeys("\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                  "\u202f\u205f\u3000", " ")
    | {chr(0xFF01 + i): chr(0x21 + i) for i in range(94)}
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d", "-")
)  # fmt: skip


def _detection_text(text: str) -> tuple[str, tuple[list[int], list[int]] | None]:
    """The text as the detector reads it, and where each of its characters lies in ``text``.

    Look-alike separators read as ASCII (:data:`_SEPARATOR_TABLE`), invisible characters are
    removed, and a cased letter followed by combining marks reads as one letter: its composed form
    (NFC), else the base letter. Text in decomposed form (NFD, as macOS file systems and some
    exports write it: ``Fran\u0327cois N\u0303u\u0301n\u0303ez``) otherwise splits every name
    at its accents, and spaCy and the tagger saw ``Franc`` and nothing of the surname. Marks after
    letters of scripts without case (Devanagari vowel signs, Arabic harakat) are part of how the word is
    spelled and stay. Returns ``(starts, ends)``, each kept character's first and past-the-end
    index in ``text`` (``None`` when the text was read one character for one).
    """
    if text.isascii():
        return text, None
    text = text.translate(_SEPARATOR_TABLE)
    if not any(c in text for c in _INVISIBLE) and not _rx()["mark_after_cased"].search(text):
        return text, None
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _INVISIBLE:
            i += 1
            continue
        j = i + 1
        if c.isupper() or c.islower():
            while j < n and unicodedata.category(text[j])[0] == "M":
                j += 1
            if j > i + 1:
                c = unicodedata.normalize("NFC", text[i:j])[0]
        chars.append(c)
        starts.append(i)
        ends.append(j)
        i = j
    return "".join(chars), (starts, ends)


def _detect_chunk(analyzer: AnalyzerEngine, policy: PIIPolicy, texts: Sequence[str]) -> list[list[Span]]:
    """Detect in each text as :func:`_detection_text` reads it and map the spans back, so
    ``jan\u200b.kowalski@example.com`` is one e-mail and ``Nu\u0303n\u0303ez`` one name, each
    placeholder covering the whole value (marks and invisible characters inside it included)."""
    cleaned = [_detection_text(t) for t in texts]
    found = _detect_clean(analyzer, policy, [c for c, _ in cleaned])
    out: list[list[Span]] = []
    for text, (_, index), spans in zip(texts, cleaned, found, strict=True):
        if index is None:
            out.append(spans)
            continue
        starts, ends = index
        mapped = [Span(s.entity_type, starts[s.start], ends[s.end - 1], s.score) for s in spans]
        out.append(_resolve(text, mapped) if mapped else [])
    return out


def _person_tagger(analyzer: AnalyzerEngine) -> Any:
    """The registered :class:`PersonTaggerRecognizer`, or ``None`` (``pii.person_tagger: disabled``)."""
    from tunegate.pii.recognizers import PersonTaggerRecognizer

    for r in analyzer.registry.recognizers:
        if isinstance(r, PersonTaggerRecognizer):
            return r
    return None


def _spacy_person(r: RecognizerResult) -> bool:
    return (
        r.entity_type == "PERSON"
        and (r.recognition_metadata or {}).get("recognizer_name") == "SpacyRecognizer"
    )


def _vetoed(
    tagger: Any, policy: PIIPolicy, text: str, r: RecognizerResult, cued: Sequence[tuple[int, int]] = ()
) -> bool:
    """A PERSON from the spaCy NER alone that the tagger gives less than ``person_tagger_veto``.

    ``cued``: the spans a cue phrase names (:class:`PersonCueRecognizer`). Presidio keeps one result
    per span, the best-scored: a name both spaCy and a cue found reaches here as spaCy's, and the
    cue's support must still count (``Emergency contact: Fülöp Lajos, ...``)."""
    if not _spacy_person(r):
        return False
    if any(a < r.end and r.start < b for a, b in cued):
        return False
    # a one-letter word is an initial or a label (``Movie B``: B 0.05, Movie 0.001): it carries
    # no belief of its own, so the other words judge the span
    words = [(a, b, p) for a, b, p in tagger.words(text) if r.start <= a and b <= r.end]
    longer = [w for w in words if sum(c.isalnum() for c in text[w[0] : w[1]]) > 1]
    return bool(max((p for _, _, p in longer or words), default=0.0) < policy.person_tagger_veto)


def _cued_names(analyzer: AnalyzerEngine, text: str) -> list[tuple[int, int]]:
    """The spans :class:`PersonCueRecognizer` finds in ``text`` (a regex pass; no model), and
    :class:`PersonCasedScriptRecognizer`'s: the tagger cannot read Cyrillic or Greek, so its low
    probability must not veto spaCy's ``Льва Толстого`` when the script's capitals say name."""
    from tunegate.pii.recognizers import PersonCasedScriptRecognizer, PersonCueRecognizer

    return [
        (r.start, r.end)
        for rec in analyzer.registry.recognizers
        if isinstance(rec, PersonCueRecognizer | PersonCasedScriptRecognizer)
        for r in rec.analyze(text, ["PERSON"], None)
    ]


def _line_labels(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each line-start label of at most four words before a ``:``."""
    return [m.span(1) for m in _rx()["line_label"].finditer(text) if len(m.group(1).split()) <= 4]


#: Recognizers whose PERSON spans come from a sentence role or shape alone (no name list, no model)
_RULE_RECOGNIZERS = frozenset(
    {"PersonContextRecognizer", "PersonInitialRecognizer", "PersonSignOffRecognizer"}
)
#: ... and the cue's names, which are judged when made of vocabulary words only (_judge_rule_names)
_JUDGED_RECOGNIZERS = _RULE_RECOGNIZERS | {"PersonCueRecognizer"}


def _rule_names(text: str, results: Sequence[RecognizerResult]) -> bool:
    """Whether a PERSON result needs :func:`_judge_rule_names`: found by a rule recognizer, or
    inside a line-start label."""
    persons = [r for r in results if r.entity_type == "PERSON"]
    if any((r.recognition_metadata or {}).get("recognizer_name") in _JUDGED_RECOGNIZERS for r in persons):
        return True
    labels = _line_labels(text) if persons and ":" in text else []
    return any(a <= r.start and r.end <= b for a, b in labels for r in persons)


def _names_a_person(text: str, label_end: int, results: Sequence[RecognizerResult]) -> bool:
    """Whether the value after a line-start label (from its ``:`` to the end of the line, without
    closing punctuation) is wholly one PERSON result: ``Reviewer: Emily Clarke``."""
    colon = text.find(":", label_end)
    line_end = text.find("\n", colon)
    line_end = len(text) if line_end < 0 else line_end
    value = text[colon + 1 : line_end]
    start = colon + 1 + (len(value) - len(value.lstrip()))
    end = colon + 1 + len(value.rstrip().rstrip(".,;!"))
    return end > start and any(
        r.entity_type == "PERSON" and r.start <= start and end <= r.end for r in results
    )


def _judge_rule_names(
    tagger: Any, policy: PIIPolicy, text: str, results: list[RecognizerResult]
) -> list[RecognizerResult]:
    r"""Judge, with the tagger, the PERSON results a rule made or that sit in a line-start label.

    * A form's labels are not names: in a text with two or more line-start labels before ``:``,
      none of which the tagger gives ``person_tagger_veto`` or more (``Name: Amelia\nAge: 24\n
      Personality: brave``), a PERSON inside a label is dropped, whichever recognizer found it.
      A dialog keeps its speakers while the tagger believes one of them (``Ubul`` scores 0.002
      beside ``Nicole`` at 0.99), and a lone speaker line is never a form.
    * A lone label that is one vocabulary word the tagger gives less than ``person_tagger_veto``
      (``Category: Abstract Concepts``) is a field, not a speaker.
    * A label whose value is a name is a field, not a speaker: in ``Reviewer: Emily Clarke`` (the
      rest of the line is one PERSON), a PERSON inside the label that the tagger gives less than
      ``person_tagger_veto`` is dropped.
    * A name from the context, initial or sign-off recognizers outside a label that the tagger gives less
      than :data:`RULE_NAME_FLOOR` is dropped (``Virtual Reality works``, ``Farm Y. He sold``), and
      so is a cue's name made of vocabulary words only (``Dear Hiring Manager``: 0.003; ``Dear
      Hope``: 0.14 stays). A speaker keeps its name whatever the tagger says: ``Ubul: What a
      wife.`` alone scores under the floor, and a leaked name costs more than a ``Category:``
      placeholder.
    """
    labels = _line_labels(text) if ":" in text else []
    label_p = {(a, b): tagger.person_probability(text, a, b) for a, b in labels}
    form = len(labels) >= 2 and all(p < policy.person_tagger_veto for p in label_p.values())
    # a listing: three or more distinct labels, at most half of them holding a word the tagger
    # calls a name at its own threshold (``Name: / Age: / Gender: / Occupation:``, where a lone
    # ``Age`` scores 0.78; ``1. Craters: / 2. Lunar Maria: / 3. Lack of Atmosphere:``). Its labels
    # are topics or fields; one the tagger believes stays a name (``1. Connor McDavid: ...``)
    distinct = {text[a:b] for a, b in labels}
    believed = {text[a:b] for (a, b), p in label_p.items() if p >= tagger.tagger.threshold}
    listing = len(distinct) >= 3 and 2 * len(believed) <= len(distinct)
    fields = [
        (a, b)
        for a, b in labels
        if _names_a_person(text, b, results)
        and tagger.person_probability(text, a, b) < policy.person_tagger_veto
    ]
    # a lone label that is one common word the tagger does not believe (``Category:``, ``Link:``
    # before a URL) heads a field, not a speech; a speaker's name (``Ubul:``) is no vocabulary word
    lone = [
        (a, b)
        for a, b in labels
        if len(labels) == 1
        and " " not in text[a:b]
        and tagger.tagger.known_word(text[a:b])
        and tagger.person_probability(text, a, b) < policy.person_tagger_veto
    ]
    # a listing's topic is a topic in the running text too (``2. TED Talks (ted.com): TED Talks is
    # a popular platform``): the same words, where the tagger does not believe them either
    topics = (
        {
            text[r.start : r.end]
            for r in results
            if r.entity_type == "PERSON"
            and any(
                a <= r.start and r.end <= b and label_p[(a, b)] < tagger.tagger.threshold for a, b in labels
            )
        }
        if listing
        else set()
    )
    out = []
    for r in results:
        if r.entity_type == "PERSON":
            label = next(((a, b) for a, b in labels if a <= r.start and r.end <= b), None)
            in_label = label is not None
            if in_label and (form or any(a <= r.start and r.end <= b for a, b in lone)):
                continue
            if label is not None and listing and label_p[label] < tagger.tagger.threshold:
                continue
            if (
                text[r.start : r.end] in topics
                and tagger.person_probability(text, r.start, r.end) < tagger.tagger.threshold
            ):
                continue
            if any(a <= r.start and r.end <= b for a, b in fields):
                continue
            name = (r.recognition_metadata or {}).get("recognizer_name")
            # a cue before vocabulary words only (``Dear Hiring Manager``, 0.003) is a rule's name too,
            # unless glued to it: a hashtag's ``#MissUniverse`` is where WNUT-17 labels a person
            rule = name in _RULE_RECOGNIZERS or (
                name == "PersonCueRecognizer"
                and not (r.start > 0 and text[r.start - 1].isalpha())
                and all(tagger.tagger.known_word(w) for w in text[r.start : r.end].split())
            )
            if rule and not in_label and tagger.person_probability(text, r.start, r.end) < RULE_NAME_FLOOR:
                continue
        out.append(r)
    return out


def _tagger_pipes(nlp: Any) -> list[Any]:
    """The (disabled) tagger and the components it listens to, in pipeline order; [] if none."""
    if "tagger" not in nlp.component_names:
        return []
    names = {"tagger"}
    for name in nlp.component_names:
        if "tagger" in (getattr(nlp.get_pipe(name), "listening_components", None) or []):
            names.add(name)
    return [nlp.get_pipe(n) for n in nlp.component_names if n in names]


#: Entities every value of which holds a digit (Unicode digits included: a phone, a card, an IBAN's
#: check digits, an SSN, a PESEL): their recognizers cannot match a text without one, so they are
#: not run there (most of a chat or instruction set; the phone matcher alone cost about 0.4 ms a text).
#: Not IP_ADDRESS: an IPv6 address may be written in hex letters only.
_DIGIT_ENTITIES = frozenset({"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "PL_PESEL"})
_DIGIT = re.compile(r"\d")


def _detect_clean(analyzer: AnalyzerEngine, policy: PIIPolicy, texts: Sequence[str]) -> list[list[Span]]:
    lang = policy.language
    entities = list(policy.entities)
    thr = min(policy.threshold_for(e) for e in entities)
    engine: Any = analyzer.nlp_engine  # our TunegateSpacyNlpEngine
    docs = list(_docs(analyzer, policy, texts))
    tagger = _person_tagger(analyzer) if "PERSON" in entities else None
    if tagger is not None and tagger.adds:
        tagger.prime(list(texts))  # one batched model pass for the chunk
    results = []
    word_probs: dict[int, list[tuple[int, int, float]]] = {}
    # a word the tagger calls a name at its own 'detect' threshold keeps its place in a name
    believe = float(tagger.tagger.threshold) if tagger is not None else None
    known = tagger.tagger.known_word if tagger is not None else None
    try:
        digit_free = [e for e in entities if e not in _DIGIT_ENTITIES]
        for text, doc in zip(texts, docs, strict=True):
            artifacts = engine._doc_to_nlp_artifact(doc, lang)
            wanted = entities if _DIGIT.search(text) else digit_free
            results.append(
                analyzer.analyze(
                    text=text, language=lang, entities=wanted, nlp_artifacts=artifacts, score_threshold=thr
                )
            )
        if tagger is not None and policy.person_tagger_veto > 0:
            # veto: the model runs (batched) only on texts with a spaCy-only PERSON to judge
            judge = [i for i, res in enumerate(results) if any(_spacy_person(r) for r in res)]
            tagger.prime([texts[i] for i in judge])
            for i in judge:
                cued = _cued_names(analyzer, texts[i])
                results[i] = [r for r in results[i] if not _vetoed(tagger, policy, texts[i], r, cued)]
            # names only a rule supports, and form labels read as dialog speakers
            ruled = [i for i, res in enumerate(results) if _rule_names(texts[i], res)]
            tagger.prime([texts[i] for i in ruled])
            for i in ruled:
                results[i] = _judge_rule_names(tagger, policy, texts[i], results[i])
            # the word probabilities of every text with a PERSON: they gate what the name rules add
            # in postprocess (a list item, a capitalized neighbour)
            persons = [i for i, res in enumerate(results) if any(r.entity_type == "PERSON" for r in res)]
            tagger.prime([texts[i] for i in persons])
            word_probs = {i: tagger.words(texts[i]) for i in persons}
    finally:
        if tagger is not None:
            tagger.clear()
    # the tagger runs only where a PERSON candidate needs its word classes (a fraction of most data)
    need = [i for i, res in enumerate(results) if any(r.entity_type == "PERSON" for r in res)]
    pipes = _tagger_pipes(analyzer.nlp_engine.get_nlp(lang)) if need else []  # type: ignore[attr-defined]
    if pipes:
        tagged = [docs[i] for i in need]
        for pipe in pipes:
            tagged = list(pipe.pipe(tagged, batch_size=policy.batch_size))
        for i, doc in zip(need, tagged, strict=True):
            docs[i] = doc
    out: list[list[Span]] = []
    for i, (text, doc, res) in enumerate(zip(texts, docs, results, strict=True)):
        tags = [(t.idx, t.idx + len(t.text), t.tag_) for t in doc] if doc.has_annotation("TAG") else None
        out.append(
            postprocess(text, res, policy, tags=tags, words=word_probs.get(i), believe=believe, known=known)
        )
    return out


# -- sharding across processes -----------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(policy_json: str) -> None:
    try:  # one BLAS/OpenMP thread per worker: n_process workers must not oversubscribe the cores
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    # the PERSON tagger: one intra-op thread per worker (no oversubscription of the cores)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    policy = PIIPolicy.model_validate_json(policy_json)
    if _WORKER.get("policy") == policy and _WORKER.get("analyzer") is not None:
        return  # forked: the parent's analyzer (model pages shared copy-on-write) is already here
    _WORKER["policy"] = policy
    _WORKER["analyzer"] = build_analyzer(policy)


def _worker_run(texts: list[str]) -> list[list[tuple[str, int, int, float]]]:
    spans = _detect_chunk(_WORKER["analyzer"], _WORKER["policy"], texts)
    return [[dataclasses.astuple(s) for s in row] for row in spans]  # type: ignore[misc]


def _torch_threads_started() -> bool:
    """Forking is unsafe once torch has started CUDA (thinc imports torch but runs no torch ops here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_initialized())
    except Exception:  # pragma: no cover - exotic torch builds
        return True


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def detect_texts(
    analyzer: AnalyzerEngine | None, policy: PIIPolicy, texts: Sequence[str]
) -> list[list[Span]]:
    """Spans for each text, in order. Shards across ``policy.n_process`` processes when it pays off.

    Workers use the same analyzer: on Linux they are forked (the loaded model is shared
    copy-on-write, as spaCy's own ``n_process`` does), unless torch has initialized CUDA; then
    they are spawned and build their own analyzer from the policy. Each worker uses one BLAS thread.
    """
    import multiprocessing

    from tunegate.pii.config import available_cores

    n_proc = min(policy.processes(), available_cores())
    if multiprocessing.current_process().daemon:  # e.g. a Dask or pool worker: it may not have children
        n_proc = 1
    out: list[list[Span]] = []
    # what a user sees during a long PII pass (lazy: a short one, or a fast failure, prints nothing)
    with progress("anonymize", len(texts), unit="texts", lazy=True) as bar:
        if n_proc <= 1 or len(texts) < 4 * policy.batch_size:
            if analyzer is None:
                analyzer = build_analyzer(policy)
            # per-text detection: chunking changes nothing but how often progress is reported
            for chunk in _chunks(texts, 16 * policy.batch_size):
                out.extend(_detect_chunk(analyzer, policy, chunk))
                bar.advance(len(chunk))
            return out
        method = "fork" if sys.platform.startswith("linux") and not _torch_threads_started() else "spawn"
        ctx = multiprocessing.get_context(method)
        size = max(policy.batch_size, len(texts) // (n_proc * 8) + 1)
        if method == "fork" and analyzer is not None:
            _WORKER.update(policy=policy, analyzer=analyzer)
        with ProcessPoolExecutor(
            max_workers=n_proc, mp_context=ctx, initializer=_worker_init, initargs=(policy.model_dump_json(),)
        ) as pool:
            for rows in pool.map(_worker_run, _chunks(texts, size)):
                out.extend([Span(*t) for t in row] for row in rows)
                bar.advance(len(rows))
    return out
