"""Hold-out scoring of one model, and the paired comparison of baseline and tuned predictions.

Prompts come from the policy's templates, so baseline and tuned see the *same* prompts; decoding
is greedy for both. Classification uses the label log-likelihood (causal LM), the head's argmax
(encoder), or generation plus parsing (``classification_mode: generate``), and always reports
the invalid-output rate (zero by construction for the first two). Generation keeps per-example
ROUGE-L / BERTScore so the paired bootstrap and the human sample can use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from tunegate.errors import ConfigError, StageError
from tunegate.evaluation.config import EvaluationPolicy
from tunegate.evaluation.evidence import BaselineEvidence, ClassDelta, McNemarEvidence, MetricComparison
from tunegate.evaluation.metrics import (
    classification_report,
    confusion_batch,
    confusion_matrix,
    get_metric,
    per_class,
)
from tunegate.evaluation.stats import mcnemar, paired_bootstrap_columns, paired_mean_bootstrap
from tunegate.records import Record


class ModelHandle(Protocol):
    """What scoring needs from a loaded model (``tunegate.training.LoadedModel`` fits)."""

    model: Any
    tokenizer: Any
    kind: str
    labels: list[str] | None


@dataclass
class Predictions:
    """One model's outputs on the hold-out, in hold-out order."""

    record_ids: list[str]
    outputs: list[str]
    pred: list[int] | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Predictions:
        return cls(**data)


def build_prompt(record: Record, policy: EvaluationPolicy, tokenizer: Any = None) -> str:
    """The prompt both models continue. With ``prompt_style: training`` it is the training stage's
    own rendering (so evaluation sees the training-time format); otherwise the policy templates."""
    if policy.prompt_style == "training" and tokenizer is not None:
        from tunegate.training.dataset import build_prompt as training_prompt

        return training_prompt(record, tokenizer)
    if record.task == "classification":
        return policy.classification_template.format(text=record.text or "")
    if record.task == "instruction":
        if record.input:
            return policy.instruction_template.format(
                instruction=record.instruction or "", input=record.input
            )
        return policy.instruction_template_no_input.format(instruction=record.instruction or "")
    return record.prompt_text() + "\n"


def predict(
    handle: ModelHandle, records: Sequence[Record], policy: EvaluationPolicy, labels: Sequence[str] | None
) -> Predictions:
    """Run one model over the hold-out."""
    from tunegate.evaluation import predict as P

    ids = [r.id for r in records]
    if not records:
        raise StageError("the hold-out is empty: nothing to evaluate")
    task = records[0].task
    if task == "classification":
        if not labels:
            raise ConfigError("classification scoring needs the label set (run.json 'labels')")
        if handle.kind == "seq_cls":
            head = list(handle.labels or labels)
            idx = P.seq_cls_predict(
                handle.model, handle.tokenizer, [r.text or "" for r in records], batch_size=policy.batch_size
            )
            remap = [list(labels).index(h) if h in labels else -1 for h in head]
            pred = [remap[int(i)] for i in idx]
            return Predictions(ids, [labels[p] if p >= 0 else "" for p in pred], pred)
        prompts = [build_prompt(r, policy, handle.tokenizer) for r in records]
        if policy.classification_mode == "loglik":
            ll = P.label_logliks(
                handle.model,
                handle.tokenizer,
                prompts,
                labels,
                sep="" if policy.prompt_style == "training" else " ",
                separate=policy.prompt_style == "training",
                batch_size=policy.batch_size,
                max_input_tokens=policy.max_input_tokens,
            )
            pred = [int(i) for i in ll.argmax(axis=1)]
            return Predictions(ids, [labels[p] for p in pred], pred)
        outs = P.generate_batched(
            handle.model,
            handle.tokenizer,
            prompts,
            max_new_tokens=min(policy.max_new_tokens, 16),
            batch_size=policy.batch_size,
            max_input_tokens=policy.max_input_tokens,
            stop_on_bos=policy.stop_on_bos,
        )
        return Predictions(ids, outs, [P.parse_label(o, labels) for o in outs])
    prompts = [build_prompt(r, policy, handle.tokenizer) for r in records]
    outs = P.generate_batched(
        handle.model,
        handle.tokenizer,
        prompts,
        max_new_tokens=policy.max_new_tokens,
        batch_size=policy.batch_size,
        max_input_tokens=policy.max_input_tokens,
        stop_on_bos=policy.stop_on_bos,
    )
    return Predictions(ids, outs)


def score_generation(
    preds: Predictions, references: Sequence[str], metric_names: Sequence[str], resources: dict[str, Any]
) -> Predictions:
    """Fill ``preds.scores`` with per-example scores for each generation metric (+ empty_output_rate)."""
    names = list(dict.fromkeys([*metric_names, "empty_output_rate"]))
    for name in names:
        m = get_metric(name)
        if m.kind != "generation" or m.score_examples is None:
            raise ConfigError(f"metric {name!r} is a {m.kind} metric; it cannot score generated text")
        if name not in preds.scores:
            preds.scores[name] = [float(x) for x in m.score_examples(preds.outputs, references, resources)]
    return preds


@dataclass
class Comparison:
    metrics: dict[str, MetricComparison]
    mcnemar: McNemarEvidence | None = None
    classification: dict[str, Any] | None = None
    confusion_tuned: np.ndarray | None = None
    confusion_baseline: np.ndarray | None = None
    per_class: dict[str, ClassDelta] = field(default_factory=dict)


def compare_classification(
    y_true: Sequence[int],
    baseline: Predictions,
    tuned: Predictions,
    labels: Sequence[str],
    policy: EvaluationPolicy,
) -> Comparison:
    """Every classification metric and every label's F1 on both models, with paired-bootstrap
    intervals of the delta. One resampling pass: each resample's two confusion matrices are built
    once and every metric and per-class F1 is read from them (same indices, same seed as
    :func:`paired_bootstrap`, so each interval equals the one-metric-at-a-time interval)."""
    if baseline.pred is None or tuned.pred is None:
        raise StageError("classification comparison needs label predictions for both models")
    yt = np.asarray(y_true, dtype=np.int64)
    bp = np.asarray(baseline.pred, dtype=np.int64)
    tp = np.asarray(tuned.pred, dtype=np.int64)
    n_labels = len(labels)
    names = list(dict.fromkeys([*policy.classification_metrics, "accuracy", "invalid_output_rate"]))
    metrics = [get_metric(name) for name in names]
    for m in metrics:
        if m.kind != "classification" or m.from_confusion is None:
            raise ConfigError(f"metric {m.name!r} is a {m.kind} metric; it cannot score label predictions")

    def stat(idx: np.ndarray) -> np.ndarray:
        cb = confusion_batch(yt, bp, n_labels, idx)
        ct = confusion_batch(yt, tp, n_labels, idx)
        cols = [np.asarray(m.from_confusion(ct) - m.from_confusion(cb)) for m in metrics]  # type: ignore[misc]
        f1 = per_class(ct)["f1"] - per_class(cb)["f1"]
        return np.column_stack([*cols, f1])

    cells = n_labels * (n_labels + 1)
    intervals = paired_bootstrap_columns(
        stat,
        len(yt),
        resamples=policy.bootstrap_samples,
        confidence=policy.confidence,
        seed=policy.seed,
        chunk=max(1, min(2_000_000 // max(len(yt), 1), 4_000_000 // cells)),
    )
    cm_b = confusion_matrix(yt, bp, n_labels)
    cm_t = confusion_matrix(yt, tp, n_labels)
    out: dict[str, MetricComparison] = {}
    for m, iv in zip(metrics, intervals, strict=False):
        assert m.from_confusion is not None
        out[m.name] = MetricComparison(
            name=m.name,
            higher_is_better=m.higher_is_better,
            baseline=float(m.from_confusion(cm_b)),
            tuned=float(m.from_confusion(cm_t)),
            delta=iv.delta,
            ci_low=iv.low,
            ci_high=iv.high,
            confidence=iv.confidence,
            n=iv.n,
        )
    pc_b, pc_t = per_class(cm_b), per_class(cm_t)
    deltas = {
        lab: ClassDelta(
            support=int(pc_t["support"][j]),
            baseline_f1=float(pc_b["f1"][j]),
            tuned_f1=float(pc_t["f1"][j]),
            delta=iv.delta,
            ci_low=iv.low,
            ci_high=iv.high,
        )
        for j, (lab, iv) in enumerate(zip(labels, intervals[len(metrics) :], strict=True))
    }
    mc = mcnemar(bp == yt, tp == yt)
    report = {"baseline": classification_report(cm_b, labels), "tuned": classification_report(cm_t, labels)}
    return Comparison(out, McNemarEvidence(**mc.to_dict()), report, cm_t, cm_b, deltas)


def baseline_evidence(
    name: str, description: str, comp: Comparison, source: dict[str, str] | None = None
) -> BaselineEvidence:
    """One baseline's comparison as it goes into the evidence."""
    return BaselineEvidence(
        name=name,
        description=description,
        source=source or {},
        metrics=comp.metrics,
        per_class=comp.per_class,
    )


def compare_generation(baseline: Predictions, tuned: Predictions, policy: EvaluationPolicy) -> Comparison:
    out: dict[str, MetricComparison] = {}
    for name in sorted(set(baseline.scores) & set(tuned.scores)):
        m = get_metric(name)
        b = np.asarray(baseline.scores[name])
        t = np.asarray(tuned.scores[name])
        iv = paired_mean_bootstrap(
            b, t, resamples=policy.bootstrap_samples, confidence=policy.confidence, seed=policy.seed
        )
        out[name] = MetricComparison(
            name=name,
            higher_is_better=m.higher_is_better,
            baseline=float(b.mean()),
            tuned=float(t.mean()),
            delta=iv.delta,
            ci_low=iv.low,
            ci_high=iv.high,
            confidence=iv.confidence,
            n=iv.n,
        )
    return Comparison(out)
