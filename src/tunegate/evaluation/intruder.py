"""Intruder dimensions (Shuttleworth et al. 2024, "LoRA vs Full Fine-tuning: An Illusion of Equivalence").

What it measures: for each adapted weight matrix, take the top-``k`` left singular vectors of the
tuned (merged) weight and, for each, its largest absolute cosine similarity with the base
weight's singular vectors (all of them by default, as in the paper, or the top ``base_top_k``).
A tuned singular vector whose best match is below ``threshold`` is an *intruder dimension*: a new,
high-ranking direction that was not in the pre-trained weight. The paper finds that LoRA creates
such dimensions (full fine-tuning mostly does not) and that models with more of them forget more
of the pre-training distribution, especially as training continues.

Limits, stated in every report: it is a structural diagnostic, not a behaviour test. The counts
depend on ``k``, the threshold and the rank; there is no universal safe number, so a bound
should be calibrated on runs you trust. It does not say *which* capability is at risk (the
lm-eval regression does that), it ignores biases, norms and embeddings, and on tiny models the
singular spectrum is short, so a few dimensions move the counts a lot. A 4-bit (QLoRA) base is
analysed after dequantization, which adds quantization noise to the base side.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch

from tunegate.evaluation.evidence import IntruderEvidence

SKIP_NAME_PARTS = ("embed", "lm_head", "wte", "wpe", "classifier", "score")


def merged_state(model: Any) -> dict[str, torch.Tensor]:
    """The tuned model's weights with any peft adapter merged in (the model itself is untouched)."""
    if hasattr(model, "merge_and_unload"):
        merged = copy.deepcopy(model).merge_and_unload()
        return {k: v.detach() for k, v in merged.state_dict().items()}
    return {k: v.detach() for k, v in model.state_dict().items()}


def changed_matrices(
    base_state: dict[str, torch.Tensor], tuned_state: dict[str, torch.Tensor]
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, base, tuned) for every 2-D weight the fine-tune changed (embeddings/heads excluded)."""
    for name in sorted(tuned_state):
        t = tuned_state[name]
        b = base_state.get(name)
        if b is None or t.ndim != 2 or b.shape != t.shape or not name.endswith("weight"):
            continue
        if any(part in name for part in SKIP_NAME_PARTS):
            continue
        if not (t.is_floating_point() and b.is_floating_point()):
            continue
        if torch.equal(b, t):
            continue
        yield name, b, t


def count_intruders(
    base: torch.Tensor, tuned: torch.Tensor, *, top_k: int, base_top_k: int | None, threshold: float
) -> tuple[int, list[float]]:
    """Number of intruders among the tuned weight's top-k singular vectors, and each one's max |cos|."""
    ub = torch.linalg.svd(base.double(), full_matrices=False).U
    ut = torch.linalg.svd(tuned.double(), full_matrices=False).U
    k = min(top_k, ut.shape[1])
    kb = ub.shape[1] if base_top_k is None else min(base_top_k, ub.shape[1])
    sims = (ut[:, :k].T @ ub[:, :kb]).abs().max(dim=1).values
    best = [float(s) for s in sims]
    return int(sum(s < threshold for s in best)), best


def intruder_dimensions(
    base_model: Any,
    tuned_model: Any,
    *,
    top_k: int = 10,
    base_top_k: int | None = None,
    threshold: float = 0.5,
) -> IntruderEvidence:
    """Counts per changed layer and a summary for the gate."""
    base_state = {k: v.detach() for k, v in base_model.state_dict().items()}
    tuned_state = merged_state(tuned_model)
    per_layer: dict[str, int] = {}
    for name, b, t in changed_matrices(base_state, tuned_state):
        n, _ = count_intruders(b, t, top_k=top_k, base_top_k=base_top_k, threshold=threshold)
        per_layer[name.removesuffix(".weight")] = n
    if not per_layer:
        return IntruderEvidence(
            applicable=False,
            reason="no 2-D weight differs between base and tuned model (nothing to analyse)",
            top_k=top_k,
            base_top_k=base_top_k,
            threshold=threshold,
        )
    return IntruderEvidence(
        applicable=True,
        top_k=top_k,
        base_top_k=base_top_k,
        threshold=threshold,
        per_layer=per_layer,
        total=sum(per_layer.values()),
        max_per_layer=max(per_layer.values()),
        layers=len(per_layer),
    )
