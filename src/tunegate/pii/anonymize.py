"""Anonymization with consistent keyed pseudonyms, and the residual re-scan.

How pseudonyms are derived
--------------------------
A detected value is first normalized per entity type (Unicode NFKC; names: case-folded, inner
whitespace collapsed, surrounding punctuation dropped; e-mail: de-obfuscated and case-folded;
phone: digits with a leading ``+`` for ``+``/``00`` prefixes; cards, IBANs, national ids:
letters and digits only, upper-cased). Then::

    n = int(HMAC-SHA256(key, f"{ENTITY}\\x1f{normalized}\\x1f{attempt}")[:8]) mod 10**pseudonym_digits

and the value becomes ``<ENTITY_n>``, e.g. ``<PERSON_48213307>``. The number comes from the keyed
HMAC, not from the order of appearance, so the same value gets the same placeholder in every
field, in train and hold-out, and in every run with the same key. If two different values of one
type land on the same number, the values are ordered by their HMAC digest (order-independent) and
the later one retries with ``attempt = 1, 2, ...``; a value keeps its number for the life of the
engine. The key comes from ``TUNEGATE_PII_KEY`` (see :mod:`tunegate.pii.keys`) and is never written.

Other operators: ``replace`` -> ``<ENTITY>``, ``redact`` -> removed, ``mask`` -> ``*`` per
character, ``hash`` -> ``<ENTITY_h`` + 16 hex chars of the keyed HMAC ``>``.

The residual re-scan runs detection again on the anonymized text; placeholders are never counted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import regex

from tunegate.errors import InputError
from tunegate.pii.config import STRUCTURED_ENTITIES, PIIPolicy
from tunegate.pii.detect import Span, analyzer_info, build_analyzer, detect_texts
from tunegate.pii.keys import key_fingerprint, load_pii_key
from tunegate.pii.report import MAX_LOCATIONS, PIIReport
from tunegate.records import (
    Record,
    escape_key,
    field_family,
    record_key_texts,
    replace_texts,
    text_fields,
)

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

_ALNUM_ENTITIES = frozenset(
    {"CREDIT_CARD", "IBAN_CODE", "US_SSN", "PL_PESEL", "US_ITIN", "US_PASSPORT", "US_DRIVER_LICENSE",
     "US_BANK_NUMBER", "UK_NHS", "MEDICAL_LICENSE"}
)  # fmt: skip
_MAX_CACHE = 200_000
#: Characters of each field's end/start joined when scanning field boundaries.
_WINDOW = 80
#: Entities whose detected values are propagated to their other occurrences.
_PROPAGATED = frozenset({"PERSON"})
#: A structured leaf (a value of its own key, not a free-text field) this short is also read after
#: its key as a label: ``{"phone": 46701234567}`` is scanned as ``phone: 46701234567`` too, so the
#: recognizers' context words apply (alone, eleven digits are no phone; ``536228741`` no SSN).
_KEYED_MAX_CHARS = 64
#: Keys whose values are free text: their own words are their context.
_FREE_TEXT_KEYS = frozenset({"text", "instruction", "input", "output", "content", "prompt", "response"})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_MAX_NAME_WORDS = 4
_WORD = regex.compile(r"\p{L}[\p{L}\p{M}'’\-]*")
#: Where a structured value may sit in other text: a run without spaces (``46701234567``,
#: ``anna99@gmail.com``), digit groups (``+46 70 123 45 67``, ``(020) 7946-0958``), a grouped IBAN.
_VALUE_CANDIDATES = (
    regex.compile(r"(?<![\w.+@\-])[\w.+@\-]*\w"),
    regex.compile(r"(?<![\w+])\+?\(?\d[\d()\-. /]*\d(?!\w)"),
    regex.compile(r"(?<!\w)[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]{4})+(?:[ \-]?[A-Za-z0-9]{1,3})?(?!\w)"),
)
#: A structured value is propagated when it has at least this many letters and digits (a short
#: value, ``10.0.0.1``, could be anything elsewhere).
_MIN_VALUE_CHARS = 7


def _value_key(value: str) -> str | None:
    """The propagation key of a structured value: its letters and digits, case-folded, after ``#``
    (no name key starts so), so ``+46 70 123 45 67`` and ``46701234567`` are the same value."""
    norm = "".join(c for c in value.casefold() if c.isalnum())
    if len(norm) < _MIN_VALUE_CHARS or not (any(c.isdigit() for c in norm) or "@" in value):
        return None
    return "#" + norm


def normalize_value(entity: str, value: str) -> str:
    """The form of a value that is hashed: spelling variants of one value share one pseudonym."""
    v = unicodedata.normalize("NFKC", value).strip()
    if entity == "EMAIL_ADDRESS":
        from tunegate.pii.recognizers import deobfuscate_email

        return "".join(deobfuscate_email(v).split()).casefold()
    if entity == "PHONE_NUMBER":
        core = re.sub(r"\s?(?:x|ext\.?|extension)\s?\d{1,5}$", "", v, flags=re.I)
        digits = re.sub(r"\D", "", core)
        if core.startswith("+"):
            return "+" + digits
        if digits.startswith("00"):
            return "+" + digits[2:]
        return digits
    if entity in _ALNUM_ENTITIES:
        return re.sub(r"[\W_]", "", v).upper()
    if entity in ("IP_ADDRESS", "URL", "MAC_ADDRESS", "UUID", "CRYPTO"):
        return v.casefold()
    v = " ".join(v.split()).casefold()
    return v.strip(".,;:!?'\"’()[]{}")


class Pseudonymizer:
    """Keyed, deterministic ``<ENTITY_n>`` labels with order-independent collision handling."""

    def __init__(self, key: bytes, digits: int = 8) -> None:
        self._key = key
        self._mod = 10**digits
        self._by_value: dict[tuple[str, str], int] = {}
        self._taken: dict[tuple[str, int], str] = {}

    def _mac(self, msg: str) -> bytes:
        return hmac.new(self._key, msg.encode("utf-8"), hashlib.sha256).digest()

    def _number(self, entity: str, norm: str, attempt: int) -> int:
        return int.from_bytes(self._mac(f"{entity}\x1f{norm}\x1f{attempt}")[:8], "big") % self._mod

    def assign(self, items: Iterable[tuple[str, str]]) -> None:
        """Give numbers to new (entity, normalized value) pairs, in HMAC order (not input order)."""
        new = {i for i in items if i not in self._by_value}
        for entity, norm in sorted(new, key=lambda i: (i[0], self._mac(f"{i[0]}\x1f{i[1]}\x1forder"))):
            attempt = 0
            while True:
                n = self._number(entity, norm, attempt)
                if (entity, n) not in self._taken:
                    break
                attempt += 1
            self._taken[(entity, n)] = norm
            self._by_value[(entity, norm)] = n

    def label(self, entity: str, norm: str) -> str:
        if (entity, norm) not in self._by_value:
            self.assign([(entity, norm)])
        return f"<{entity}_{self._by_value[(entity, norm)]}>"

    def hash_label(self, entity: str, norm: str) -> str:
        digest = self._mac(entity + "\x1f" + norm + "\x1fhash").hex()[:16]
        return f"<{entity}_h{digest}>"


class PIIEngine:
    """Detect and anonymize PII per a :class:`PIIPolicy`. The constructor does no work.

    The analyzer (spaCy model) and the key are loaded on first use, before any data is read,
    so a missing model or key stops the run with a :class:`~tunegate.errors.DependencyError`.
    One engine keeps its pseudonym table and a text-digest cache of detections: anonymize train
    and hold-out with the same engine (or the same key) to get the same placeholders.
    """

    def __init__(
        self, policy: PIIPolicy, key: bytes | None = None, *, analyzer: AnalyzerEngine | None = None
    ) -> None:
        self.policy = policy
        self._key = key
        self._analyzer = analyzer
        self._pseudo: Pseudonymizer | None = None
        self._anonymizer: Any = None
        self._cache: dict[str, list[Span]] = {}
        #: The re-scan always covers the structured identifiers, whatever ``entities`` lists.
        self.residual_policy = policy.model_copy(
            update={"entities": tuple(dict.fromkeys((*policy.entities, *STRUCTURED_ENTITIES)))}
        )
        self._residual_cache: dict[str, list[Span]] = {}
        #: Name key -> entity of the last consistency pass (see :meth:`name_table`).
        self.last_name_table: dict[str, str] = {}

    # -- setup ------------------------------------------------------------------------------------
    @property
    def analyzer(self) -> AnalyzerEngine:
        if self._analyzer is None:
            self._analyzer = build_analyzer(self.policy)
        return self._analyzer

    def prepare(self, *, need_key: bool = True) -> None:
        if need_key and self._pseudo is None:
            key = self._key if self._key is not None else load_pii_key()
            self._key = key
            self._pseudo = Pseudonymizer(key, self.policy.pseudonym_digits)
        _ = self.analyzer
        if need_key and self._anonymizer is None:
            from presidio_anonymizer import AnonymizerEngine

            self._anonymizer = AnonymizerEngine()

    # -- detection ------------------------------------------------------------------------------
    def detect(self, texts: Sequence[str], *, residual: bool = False) -> list[list[Span]]:
        """Spans per text; repeated texts are detected once (cache by sha256 of the text).

        ``residual=True`` detects :attr:`residual_policy`'s entities: the policy's plus every
        structured identifier (the re-scan must catch e-mails even when only PERSON is anonymized).
        """
        self.prepare(need_key=False)
        # When the re-scan's entities are the policy's (the default), it is the same deterministic
        # detector: a text the anonymizer left unchanged keeps its first-pass spans (cached).
        wider = residual and self.residual_policy != self.policy
        policy, cache = (self.residual_policy, self._residual_cache) if wider else (self.policy, self._cache)
        digests = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        todo: dict[str, str] = {}
        for d, t in zip(digests, texts, strict=True):
            if d not in cache and d not in todo:
                todo[d] = t
        known = {d: cache[d] for d in set(digests) if d in cache}
        if todo:
            found = detect_texts(self._analyzer, policy, list(todo.values()))
            known.update(zip(todo.keys(), found, strict=True))
            if len(cache) + len(todo) > _MAX_CACHE:
                cache.clear()
            cache.update(zip(todo.keys(), found, strict=True))
        return [known[d] for d in digests]

    # -- consistency: split values and repeated values -------------------------------------------
    def _boundary_spans(self, items: Sequence[tuple[int, str, str]]) -> dict[int, list[Span]]:
        """Spans that cross the boundary between consecutive fields of one record.

        The end of one field and the start of the next are joined with a newline and scanned, so
        ``instruction: "... my name is"`` + ``input: "Rubija"`` is caught; a span crossing the
        join is split back onto both fields, a span in the next field's start (found thanks to the
        previous field's cue) is added to it. Returns extra spans per item index.
        """
        windows: list[str] = []
        pairs: list[tuple[int, int, int]] = []  # (item a, item b, len(tail))
        for k in range(len(items) - 1):
            (ra, _, ta), (rb, _, tb) = items[k], items[k + 1]
            if ra != rb or not ta or not tb:
                continue
            tail, head = ta[-_WINDOW:], tb[:_WINDOW]
            windows.append(tail + "\n" + head)
            pairs.append((k, k + 1, len(tail)))
        extra: dict[int, list[Span]] = defaultdict(list)
        if not windows:
            return extra
        for (a, b, cut), spans in zip(pairs, self.detect(windows), strict=True):
            len_a = len(items[a][2])
            for s in spans:
                if s.start < cut and s.end > cut + 1:  # crosses the join: split onto both fields
                    extra[a].append(Span(s.entity_type, len_a - cut + s.start, len_a, s.score))
                    extra[b].append(Span(s.entity_type, 0, s.end - cut - 1, s.score))
                elif s.start > cut:  # in the next field, found thanks to the previous one's end
                    extra[b].append(Span(s.entity_type, s.start - cut - 1, s.end - cut - 1, s.score))
        return extra

    def _propagated_spans(
        self, texts: Sequence[str], spans: Sequence[list[Span]], records: Sequence[int] | None = None
    ) -> list[list[Span]]:
        """Every other occurrence, anywhere in these texts, of a name detected somewhere.

        A name found in one field (``Avril Lavigne`` in an instruction) is replaced in every other
        field and record of the same call, where the detector may have missed it. Multi-word names
        match case-insensitively, single words exactly (so ``Will`` the name does not hit ``will``).
        A single word written in lower case that the PERSON tagger's vocabulary holds whole (``text
        bill``) is replaced in the other fields of its own record only (``records``: each text's
        record): elsewhere the same word is as often a word (``pay my bill``); across CLINC150's
        requests, such words replaced everywhere doubled the records with a false placeholder. So
        are several lower-case words that the vocabulary all holds (``red robin``, a restaurant the
        detector called a name in one CLINC150 request, and so replaced in 13 more). A lower-case
        word the vocabulary lacks (``zorvath``) is replaced everywhere. A capitalized single word is
        not replaced in a record that also writes it in lower case and where it was not detected
        (see :meth:`without_words_in_lower_case`).
        """
        table = self.name_table(texts, spans, known=self._known_word())
        self.last_name_table = table  # a sharded run spreads it to the other shards (keyed)
        records = list(records) if records is not None else list(range(len(texts)))
        out = self.scan_names(texts, table.get) if table else [[] for _ in texts]
        out = self.without_words_in_lower_case(texts, out, records, spans)
        by_record: dict[int, list[int]] = defaultdict(list)
        for k, ri in enumerate(records):
            by_record[ri].append(k)
        for members in by_record.values():
            group = [texts[k] for k in members]
            words = self.name_table(group, [spans[k] for k in members], lower=True)
            if words:
                for k, more in zip(members, self.scan_names(group, words.get), strict=True):
                    out[k].extend(more)
        return out

    def _known_word(self) -> Callable[[str], bool]:
        """Whether a word is whole in the PERSON tagger's vocabulary (every word, without a tagger)."""
        from tunegate.pii.detect import _person_tagger

        rec = _person_tagger(self.analyzer)
        return rec.tagger.known_word if rec is not None else (lambda _word: True)

    @staticmethod
    def name_table(
        texts: Sequence[str],
        spans: Sequence[list[Span]],
        *,
        lower: bool = False,
        known: Callable[[str], bool] | None = None,
    ) -> dict[str, str]:
        """Name key (one exact word, or several words case-folded) -> entity, from detected spans.

        Single words written in lower case are left out, except those ``known`` says are not common
        words (none without ``known``), and so are several words written in lower case that are all
        common words; ``lower=True`` gives only the lower-case single words and word groups.
        """
        from tunegate.pii.detect import _is_name_word

        table: dict[str, str] = {}
        for text, row in zip(texts, spans, strict=True):
            for s in row:
                if s.entity_type in STRUCTURED_ENTITIES:
                    if lower:
                        continue
                    key = _value_key(text[s.start : s.end])
                    if key is not None:
                        table[key] = s.entity_type
                    continue
                if s.entity_type not in _PROPAGATED:
                    continue
                words = _WORD.findall(text[s.start : s.end])
                if not words or len(words) > _MAX_NAME_WORDS or len("".join(words)) < 3:
                    continue
                if len(words) == 1:
                    word = words[0]
                    if not _is_name_word(word) or len(word) < 3:
                        continue
                    if lower:
                        keep = word.islower()
                    else:  # a lower-case word only when it is no common word (``zorvath``)
                        keep = not word.islower() or (known is not None and not known(word))
                    if keep:
                        table[word] = s.entity_type
                else:
                    # written in lower case and made of common words only (``red robin``): in its
                    # own record only, like a lower-case single word; otherwise everywhere
                    common = all(w.islower() for w in words) and (
                        known is None or all(known(w) for w in words)
                    )
                    if lower == common:
                        table[" ".join(words).casefold()] = s.entity_type
        return table

    @staticmethod
    def without_words_in_lower_case(
        texts: Sequence[str],
        found: Sequence[list[Span]],
        records: Sequence[int],
        detected: Sequence[list[Span]] | None = None,
    ) -> list[list[Span]]:
        """``found`` (occurrences of names detected elsewhere) without the capitalized single words
        that their own record also writes in lower case, unless detected in that record.

        The detector's own rule (``_lower_twin`` in :mod:`tunegate.pii.detect`: ``Product:`` next
        to ``the given product`` is no name), kept across records: ``Maria`` found in ``Maria
        invited 4 of her friends`` is no name in another record's ``2. Lunar Maria: ... are called
        lunar maria``, nor is ``Love`` (a name in one tweet) in ``Love your children ... i love``.
        A record where the detector found the word (in any case) keeps every occurrence replaced.
        ``records`` gives each text's record; ``detected`` the spans the detector found (``None``:
        already replaced, as in a sharded run's anonymized output, where a detected word is a
        placeholder and no longer a word).
        """
        from tunegate.pii.detect import _lower_twin, _rx

        def candidate(text: str, s: Span) -> bool:
            word = text[s.start : s.end]
            return s.entity_type in _PROPAGATED and " " not in word and word[:1].isupper()

        # only records with a capitalized one-word occurrence are read again (most have none)
        todo = {
            ri
            for text, ri, row in zip(texts, records, found, strict=True)
            if any(candidate(text, s) for s in row)
        }
        if not todo:
            return [list(row) for row in found]
        joined: dict[int, list[str]] = defaultdict(list)
        named: dict[int, set[str]] = defaultdict(set)
        for k, (text, ri) in enumerate(zip(texts, records, strict=True)):
            if ri not in todo:
                continue
            joined[ri].append(_rx()["placeholder"].sub(" ", text))  # a digest is no word
            for s in detected[k] if detected is not None else ():
                if s.entity_type in _PROPAGATED:
                    named[ri].update(w.casefold() for w in _WORD.findall(text[s.start : s.end]))
        record_text = {ri: "\n".join(parts) for ri, parts in joined.items()}
        out: list[list[Span]] = []
        for text, ri, row in zip(texts, records, found, strict=True):
            keep = []
            for s in row:
                word = text[s.start : s.end]
                if (
                    candidate(text, s)
                    and word.casefold() not in named[ri]
                    and _lower_twin(record_text[ri], word)
                ):
                    continue
                keep.append(s)
            out.append(keep)
        return out

    @staticmethod
    def scan_names(texts: Sequence[str], lookup: Callable[[str], str | None]) -> list[list[Span]]:
        """Spans of every word group whose name key ``lookup`` knows (longest match first)."""
        from tunegate.pii.detect import _rx

        out: list[list[Span]] = [[] for _ in texts]
        for i, text in enumerate(texts):
            # never inside a placeholder: a name "PESEL" must not rewrite <PL_PESEL_25433533>
            holes = [(m.start(), m.end()) for m in _rx()["placeholder"].finditer(text)]
            words = [
                (m.start(), m.end(), m.group(0))
                for m in _WORD.finditer(text)
                if not any(a < m.end() and m.start() < b for a, b in holes)
            ]
            j = 0
            while j < len(words):
                hit = 0
                for n in range(min(_MAX_NAME_WORDS, len(words) - j), 0, -1):
                    group = words[j : j + n]
                    if n > 1 and any(
                        not regex.fullmatch(r"[ \t]+", text[group[g][1] : group[g + 1][0]])
                        for g in range(n - 1)
                    ):
                        continue
                    key = group[0][2] if n == 1 else " ".join(w for _, _, w in group).casefold()
                    entity = lookup(key)
                    if entity is not None:
                        out[i].append(Span(entity, group[0][0], group[-1][1], 0.5))
                        hit = n
                        break
                j += hit or 1
            # structured values found elsewhere (``46701234567`` under ``phone``), in any layout
            seen: set[tuple[int, int]] = set()
            for rx in _VALUE_CANDIDATES:
                for m in rx.finditer(text):
                    span = m.span()
                    if span in seen or any(a < span[1] and span[0] < b for a, b in holes):
                        continue
                    seen.add(span)
                    key = _value_key(m.group(0))
                    entity = lookup(key) if key is not None else None
                    if entity is not None:
                        out[i].append(Span(entity, span[0], span[1], 0.5))
        return out

    def keyed_name(self, name_key: str) -> str:
        """A name key as a keyed digest: what crosses a process boundary instead of the name."""
        self.prepare(need_key=True)
        assert self._key is not None
        return hmac.new(self._key, b"propagate\x00" + name_key.encode("utf-8"), hashlib.sha256).hexdigest()

    def detect_items(
        self, items: Sequence[tuple[int, str, str]], *, residual: bool = False
    ) -> list[list[Span]]:
        """Spans of each ``(record, path, text)`` item: its text's own, plus the structured
        identifiers a short structured leaf shows when read after its key as a label
        (``contact.phone`` = ``46701234567`` is read as ``phone: 46701234567``), mapped back onto
        the value. Names are not taken from that reading: a key ending in ``name`` reads as a name
        cue (``product name: Galaxy S21``), and a name needs no label to be found."""
        from tunegate.pii.detect import _resolve
        from tunegate.records import path_parts

        spans = self.detect([t for _, _, t in items], residual=residual)
        probes: list[str] = []
        owners: list[tuple[int, int]] = []  # (item index, label length)
        for k, (_, path, text) in enumerate(items):
            keys = [p for p in path_parts(path) if not p.isdigit()]
            if not keys or keys[-1].casefold() in _FREE_TEXT_KEYS or len(text) > _KEYED_MAX_CHARS:
                continue
            label = " ".join(_CAMEL.sub(" ", keys[-1]).replace("_", " ").replace("-", " ").split()).lower()
            if not label or not any(c.isalpha() for c in label):
                continue
            probes.append(f"{label}: {text}")
            owners.append((k, len(label) + 2))
        out = [list(row) for row in spans]
        if not probes:
            return out
        for (k, shift), found in zip(owners, self.detect(probes, residual=residual), strict=True):
            extra = [
                Span(s.entity_type, s.start - shift, s.end - shift, s.score)
                for s in found
                if s.start >= shift and s.entity_type in STRUCTURED_ENTITIES
            ]
            if extra:
                out[k] = _resolve(items[k][2], out[k] + extra)
        return out

    def consistent_spans(
        self, items: Sequence[tuple[int, str, str]], spans: Sequence[list[Span]]
    ) -> list[list[Span]]:
        """``spans`` plus names split across fields and repeated occurrences of detected names."""
        from tunegate.pii.detect import _resolve

        texts = [t for _, _, t in items]
        boundary = self._boundary_spans(items)
        first = [list(row) + boundary.get(k, []) for k, row in enumerate(spans)]
        propagated = self._propagated_spans(texts, first, [ri for ri, _, _ in items])
        return [
            _resolve(t, row + more) if more or k in boundary else row
            for k, (t, row, more) in enumerate(zip(texts, first, propagated, strict=True))
        ]

    # -- anonymization ----------------------------------------------------------------------------
    def _operator_configs(self, entities: Iterable[str]) -> dict[str, Any]:
        from presidio_anonymizer.entities import OperatorConfig

        assert self._pseudo is not None
        pseudo = self._pseudo
        configs: dict[str, Any] = {}
        for e in entities:
            op = self.policy.operator_for(e)
            if op == "pseudonym":
                configs[e] = OperatorConfig(
                    "custom", {"lambda": lambda v, e=e: pseudo.label(e, normalize_value(e, v))}
                )
            elif op == "hash":
                configs[e] = OperatorConfig(
                    "custom", {"lambda": lambda v, e=e: pseudo.hash_label(e, normalize_value(e, v))}
                )
            elif op == "replace":
                configs[e] = OperatorConfig("replace", {"new_value": f"<{e}>"})
            elif op == "redact":
                configs[e] = OperatorConfig("redact", {})
            else:  # mask
                configs[e] = OperatorConfig(
                    "mask", {"masking_char": "*", "chars_to_mask": 1_000_000, "from_end": False}
                )
        return configs

    def anonymize_texts(self, texts: Sequence[str]) -> tuple[list[str], list[list[Span]]]:
        """Anonymized texts and the spans detected in the *input* texts (offsets into the input).

        Texts are independent here; :meth:`anonymize_items` adds the cross-field consistency.
        """
        self.prepare(need_key=True)
        all_spans = self.detect(texts)
        return self.apply_spans(texts, all_spans), all_spans

    def apply_spans(self, texts: Sequence[str], all_spans: Sequence[Sequence[Span]]) -> list[str]:
        """Replace the given spans in each text with the policy's operators (pseudonyms keyed)."""
        from presidio_anonymizer.entities import RecognizerResult as AnonResult

        self.prepare(need_key=True)
        assert self._pseudo is not None
        self._pseudo.assign(
            (s.entity_type, normalize_value(s.entity_type, t[s.start : s.end]))
            for t, spans in zip(texts, all_spans, strict=True)
            for s in spans
        )
        out: list[str] = []
        for text, spans in zip(texts, all_spans, strict=True):
            if not spans:
                out.append(text)
                continue
            results = [AnonResult(s.entity_type, s.start, s.end, s.score) for s in spans]
            ops = self._operator_configs({s.entity_type for s in spans})
            out.append(
                self._anonymizer.anonymize(
                    text=text, analyzer_results=results, operators=ops, merge_entities_with_spaces=False
                ).text
            )
        return out

    def selects(self, path: str, fields: Sequence[str] | None) -> bool:
        fam = field_family(path)
        if fam in self.policy.skip_fields or path in self.policy.skip_fields:
            return False
        return fields is None or fam in fields or path in fields

    def _report(self, n_records: int, n_texts: int, counts: dict[str, dict[str, int]],
                residual: dict[str, dict[str, int]], with_pii: int,
                locations: list[dict[str, str]] | None = None) -> PIIReport:  # fmt: skip
        info = analyzer_info(self.analyzer)
        return PIIReport(
            model=info.model,
            model_version=info.model_version,
            language=self.policy.language,
            regex_only=info.regex_only,
            entities=self.policy.entities,
            operators={e: self.policy.operator_for(e) for e in self.policy.entities},
            key_fingerprint=key_fingerprint(self._key) if self._key is not None else None,
            records_scanned=n_records,
            texts_scanned=n_texts,
            records_with_pii=with_pii,
            counts={e: dict(sorted(per.items())) for e, per in sorted(counts.items())},
            residual={e: dict(sorted(per.items())) for e, per in sorted(residual.items())},
            residual_locations=(locations or [])[:MAX_LOCATIONS],
        )

    def anonymize_items(
        self,
        items: Sequence[tuple[int, str, str]],
        n_records: int,
        *,
        record_ids: Sequence[str] | None = None,
    ) -> tuple[list[str], PIIReport]:
        """Anonymize ``(record_index, field_path, text)`` items; the generic core of the record APIs.

        Items of one record must be adjacent (their boundaries are scanned joined). A name found
        anywhere in ``items`` is replaced everywhere in them. The residual re-scan covers the
        policy's entities and all structured identifiers; each residual names the record (its id
        from ``record_ids``, else its index) and the field path, never the value.
        """
        self.prepare(need_key=True)
        texts = [t for _, _, t in items]
        spans = self.consistent_spans(items, self.detect_items(items))
        new_texts = self.apply_spans(texts, spans)
        new_items = [(ri, path, t) for (ri, path, _), t in zip(items, new_texts, strict=True)]
        residual_spans = self.detect_items(new_items, residual=True)
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        residual: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        locations: list[dict[str, str]] = []
        with_pii: set[int] = set()
        for (ri, path, _), found, left in zip(items, spans, residual_spans, strict=True):
            fam = field_family(path)
            for s in found:
                counts[s.entity_type][fam] += 1
                with_pii.add(ri)
            for s in left:
                residual[s.entity_type][fam] += 1
                if len(locations) < MAX_LOCATIONS:
                    rid = record_ids[ri] if record_ids is not None else str(ri)
                    locations.append({"record": rid, "field": path, "entity": s.entity_type})
        report = self._report(n_records, len(items), counts, residual, len(with_pii), locations)
        return new_texts, report

    def anonymize_records(
        self, records: Iterable[Record], *, fields: Sequence[str] | None = None
    ) -> tuple[list[Record], PIIReport]:
        """Anonymized copies of ``records`` (ids kept) and a counts-only report with the residual scan.

        ``fields`` selects field families or paths (``text``, ``messages.content``, ``extra.note``);
        default: every free-text field except the policy's ``skip_fields``.
        """
        self.prepare(need_key=True)  # model and key problems surface before any record is read
        recs = list(records)
        self.refuse_pii_keys(
            [
                (f"{r.source.dataset} line {r.source.line}" if r.source else f"record {r.id}", top, key)
                for r in recs
                for top, key in record_key_texts(r)
                if self.selects(f"extra.{escape_key(top if top is not None else key)}", fields)
            ]
        )
        items = [
            (ri, path, text)
            for ri, r in enumerate(recs)
            for path, text in text_fields(r).items()
            if self.selects(path, fields)
        ]
        new_texts, report = self.anonymize_items(items, len(recs), record_ids=[r.id for r in recs])
        per_record: dict[int, dict[str, str]] = defaultdict(dict)
        for (ri, path, old), new in zip(items, new_texts, strict=True):
            if new != old:
                per_record[ri][path] = new
        out = [replace_texts(r, per_record[i]) if i in per_record else r for i, r in enumerate(recs)]
        return out, report

    def refuse_pii_keys(
        self, keys: Sequence[tuple[str, str | None, str]], *, source: str | None = None
    ) -> None:
        """Raise :class:`InputError` if a key of a row's objects holds personal data.

        ``keys``: ``(record or row label, top-level field or None, key)`` as
        :func:`tunegate.records.key_texts` gives them. Keys are scanned like the residual re-scan
        (the policy's entities and every structured identifier). A key is never anonymized, so it
        would reach the output and every report's field path raw: the row is refused instead, and
        the message names the row and the top-level field, never the key (nor a top-level key that
        itself holds personal data)."""
        if not keys:
            return
        unique = list(dict.fromkeys(k for _, _, k in keys))
        found = dict(zip(unique, self.detect(unique, residual=True), strict=True))
        for rid, top, key in keys:
            if not found[key]:
                continue
            types = ", ".join(sorted({s.entity_type for s in found[key]}))
            if top is None:
                where = "a top-level key"
            elif found.get(top):
                where = "a key inside a top-level field whose name itself holds personal data"
            else:
                where = f"a key inside field '{top}'"
            raise InputError(
                f"{rid}: {where} holds personal data ({types}); keys are never anonymized, so the "
                "row is refused (the key is not shown)",
                path=source,
                hint='store such values as values (e.g. a list of {"name": ..., "phone": ...} objects) '
                "or drop the field (tunegate anonymize: leave it out of --fields)",
            )

    def scan_records(self, records: Iterable[Record], *, fields: Sequence[str] | None = None) -> PIIReport:
        """Detection only (no key needed), e.g. on already anonymized data: every hit is a residual."""
        self.prepare(need_key=False)
        recs = list(records)
        items = [
            (ri, path, text)
            for ri, r in enumerate(recs)
            for path, text in text_fields(r).items()
            if self.selects(path, fields)
        ]
        spans = self.detect_items(items, residual=True)
        residual: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        locations: list[dict[str, str]] = []
        with_pii: set[int] = set()
        for (ri, path, _), found in zip(items, spans, strict=True):
            for s in found:
                residual[s.entity_type][field_family(path)] += 1
                with_pii.add(ri)
                if len(locations) < MAX_LOCATIONS:
                    locations.append({"record": recs[ri].id, "field": path, "entity": s.entity_type})
        return self._report(len(recs), len(items), {}, residual, len(with_pii), locations)


def merge_reports(reports: Sequence[PIIReport]) -> PIIReport:
    """Sum the counts of reports made by one engine (e.g. chunks of one file)."""
    if not reports:
        raise ValueError("merge_reports needs at least one report")

    def add(dicts: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
        acc: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for d in dicts:
            for e, per in d.items():
                for f, n in per.items():
                    acc[e][f] += n
        return {e: dict(sorted(per.items())) for e, per in sorted(acc.items())}

    first = reports[0]
    return first.model_copy(
        update={
            "records_scanned": sum(r.records_scanned for r in reports),
            "texts_scanned": sum(r.texts_scanned for r in reports),
            "records_with_pii": sum(r.records_with_pii for r in reports),
            "counts": add(r.counts for r in reports),
            "residual": add(r.residual for r in reports),
            "residual_locations": [loc for r in reports for loc in r.residual_locations][:MAX_LOCATIONS],
        }
    )
