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
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate.errors import DependencyError
from tunegate.pii.config import SUPPORTED_ENTITIES, PIIPolicy

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
                keep = {"ner"}
                for name, pipe in nlp.pipeline:
                    if "ner" in (getattr(pipe, "listening_components", None) or []):
                        keep.add(name)
                nlp.select_pipes(enable=[n for n in nlp.pipe_names if n in keep])
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
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

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

    wanted = set(policy.entities)
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
        if isinstance(r, EmailRecognizer):
            continue  # replaced by the offline-validated subclass below
        if wanted & set(r.supported_entities):
            kept.append(r)
    registry.recognizers = kept
    ours = [
        rec.OfflineEmailRecognizer(supported_language=lang),
        rec.ObfuscatedEmailRecognizer(supported_language=lang),
        rec.PeselRecognizer(supported_language=lang),
        rec.EuIbanRecognizer(supported_language=lang),
        rec.EuPhoneRecognizer(supported_language=lang),
        rec.LuhnCardRecognizer(supported_language=lang),
        rec.PersonCueRecognizer(supported_language=lang),
        rec.PersonInitialRecognizer(supported_language=lang),
        rec.PersonContextRecognizer(supported_language=lang),
    ]
    for r in ours:
        if wanted & set(r.supported_entities):
            registry.add_recognizer(r)

    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
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

        from tunegate.pii.recognizers import _INITIAL, _NAME_TOKEN, _PARTICLE

        _RX["right"] = regex.compile(
            r"\A[ \t]+(?:" + _INITIAL + r"[ \t]+)?(?:" + _PARTICLE + r"[ \t]+)?(" + _NAME_TOKEN + r")"
        )
        _RX["right_initial"] = regex.compile(r"\A[ \t]+(\p{Lu}\.?)(?=[ \t]+\p{Lu})")
        _RX["left"] = regex.compile(r"(" + _NAME_TOKEN + r")[ \t]+(?:" + _INITIAL + r"[ \t]+)?\Z")
        item = _NAME_TOKEN + r"(?:[ \t]+" + _NAME_TOKEN + r")?"
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
        _RX["placeholder"] = regex.compile(PLACEHOLDER_PATTERN)
        _RX["cap"] = regex.compile(r"(?<![\w])\p{Lu}[\p{L}'’\-]*")
        _RX["stop"] = _person_stop_words()
    return _RX


def _is_name_word(word: str) -> bool:
    return word.lower() not in _rx()["stop"] and len(word) > 1


def _improve_persons(text: str, spans: list[Span]) -> list[Span]:
    rx = _rx()
    persons = [s for s in spans if s.entity_type == "PERSON"]
    if not persons:
        return spans
    out = [s for s in spans if s.entity_type != "PERSON"]
    extended: list[Span] = []
    for s in persons:
        start, end = s.start, s.end
        for _ in range(3):  # extend right over initials and capitalized tokens
            m = rx["right"].match(text, end)
            if m and _is_name_word(m.group(1)):
                end = m.end()
                continue
            break
        for _ in range(2):  # extend left over a capitalized token (+ initial)
            m = rx["left"].search(text, 0, start)
            if m and m.end() == start and _is_name_word(m.group(1)):
                start = m.start()
                continue
            break
        extended.append(Span("PERSON", start, end, s.score))
    # coordinated lists: "Anna, Derek and Jodi" - if one item is a person, all are
    for m in rx["list"].finditer(text):
        items = [(i.start(), i.end()) for i in rx["item"].finditer(text, m.start(), m.end())]
        if any(a < p.end and p.start < b for a, b in items for p in extended):
            for a, b in items:
                if _is_name_word(text[a:b].split()[0]):
                    extended.append(Span("PERSON", a, b, 0.5))
    # repeated mentions of a detected name's tokens in the same text
    import regex

    tokens = {
        w
        for p in extended
        for w in regex.findall(r"\p{Lu}[\p{Ll}\p{Lm}'’\-]+", text[p.start : p.end])
        if _is_name_word(w) and len(w) > 2
    }
    for w in tokens:
        for m in regex.finditer(r"(?<![\w])" + regex.escape(w) + r"(?![\w])", text):
            extended.append(Span("PERSON", m.start(), m.end(), 0.5))
    return out + extended


def _resolve(text: str, spans: list[Span]) -> list[Span]:
    """Union overlapping spans (the best-scored, then longest, type names the union); sort by start."""
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
        out.append(Span(best.entity_type, min(s.start for s in c), max(s.end for s in c), best.score))
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


def postprocess(text: str, results: Sequence[RecognizerResult], policy: PIIPolicy) -> list[Span]:
    """Typed, thresholded, non-overlapping spans; placeholders excluded."""
    wanted = set(policy.entities)
    spans = [
        Span(r.entity_type, r.start, r.end, float(r.score))
        for r in results
        if r.entity_type in wanted and r.score >= policy.threshold_for(r.entity_type) and r.end > r.start
    ]
    if "PERSON" in wanted:
        spans = _improve_persons(text, spans)
    holes = [(m.start(), m.end()) for m in _rx()["placeholder"].finditer(text)]
    if holes:
        spans = [s for s in spans if not any(a < s.end and s.start < b for a, b in holes)]
    return [s for s in _resolve(text, spans) if not text[s.start : s.end].isspace()]


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
    if not policy.ner_prefilter or not nlp.pipe_names:
        yield from nlp.pipe(texts, batch_size=policy.batch_size)
        return
    flags = [needs_ner(t) for t in texts]
    selected = [t for t, f in zip(texts, flags, strict=True) if f]
    with_ner = iter(nlp.pipe(selected, batch_size=policy.batch_size))
    for text, flag in zip(texts, flags, strict=True):
        yield next(with_ner) if flag else nlp.make_doc(text)


def _detect_chunk(analyzer: AnalyzerEngine, policy: PIIPolicy, texts: Sequence[str]) -> list[list[Span]]:
    lang = policy.language
    entities = list(policy.entities)
    thr = min(policy.threshold_for(e) for e in entities)
    engine: Any = analyzer.nlp_engine  # our TunegateSpacyNlpEngine
    out: list[list[Span]] = []
    for text, doc in zip(texts, _docs(analyzer, policy, texts), strict=True):
        artifacts = engine._doc_to_nlp_artifact(doc, lang)
        results = analyzer.analyze(
            text=text, language=lang, entities=entities, nlp_artifacts=artifacts, score_threshold=thr
        )
        out.append(postprocess(text, results, policy))
    return out


# -- sharding across processes -----------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(policy_json: str) -> None:
    try:  # one BLAS/OpenMP thread per worker: n_process workers must not oversubscribe the cores
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
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
    n_proc = min(policy.n_process, os.cpu_count() or 1)
    if n_proc <= 1 or len(texts) < 4 * policy.batch_size:
        if analyzer is None:
            analyzer = build_analyzer(policy)
        return _detect_chunk(analyzer, policy, texts)
    import multiprocessing

    method = "fork" if sys.platform.startswith("linux") and not _torch_threads_started() else "spawn"
    ctx = multiprocessing.get_context(method)
    size = max(policy.batch_size, len(texts) // (n_proc * 8) + 1)
    if method == "fork" and analyzer is not None:
        _WORKER.update(policy=policy, analyzer=analyzer)
    out: list[list[Span]] = []
    with ProcessPoolExecutor(
        max_workers=n_proc, mp_context=ctx, initializer=_worker_init, initargs=(policy.model_dump_json(),)
    ) as pool:
        for rows in pool.map(_worker_run, _chunks(texts, size)):
            out.extend([Span(*t) for t in row] for row in rows)
    return out
