"""Paired statistics for baseline-vs-tuned comparisons on the same hold-out items.

* :func:`paired_bootstrap` resamples *items* (the same indices for baseline and tuned, so the
  pairing is kept) and returns a percentile interval for the delta ``tuned - baseline`` of any
  statistic; the gate reads the lower bound, never the point estimate alone.
* :func:`mcnemar` tests whether two classifiers' accuracies differ on the same items, using only
  the discordant pairs: exact two-sided binomial test when there are fewer than 25 of them,
  otherwise the chi-square statistic with continuity correction.

Everything is seeded (``numpy.random.default_rng(seed)``), so the same inputs give the same
interval byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EXACT_BELOW = 25


@dataclass(frozen=True)
class Interval:
    """A point estimate of ``tuned - baseline`` with its paired-bootstrap interval."""

    delta: float
    low: float
    high: float
    confidence: float
    resamples: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` item indices drawn with replacement (one seeded stream)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n), dtype=np.int64)


def percentile_interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha], method="linear")
    return float(lo), float(hi)


def paired_bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval for a delta statistic. ``statistic(idx)`` takes ``[B, n]`` indices and returns ``[B]``
    deltas (``idx = arange(n)[None]`` gives the point estimate)."""
    if n <= 0:
        raise ValueError("paired_bootstrap needs at least one item")
    point = float(np.asarray(statistic(np.arange(n, dtype=np.int64)[None, :]))[0])
    idx = resample_indices(n, resamples, seed)
    deltas = np.empty(resamples, dtype=np.float64)
    chunk = max(1, 2_000_000 // max(n, 1))  # bound memory for large hold-outs
    for start in range(0, resamples, chunk):
        deltas[start : start + chunk] = statistic(idx[start : start + chunk])
    lo, hi = percentile_interval(deltas, confidence)
    return Interval(point, lo, hi, confidence, resamples, n)


def paired_bootstrap_columns(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int | None = None,
) -> list[Interval]:
    """Like :func:`paired_bootstrap` for ``K`` statistics at once: ``statistic(idx)`` returns ``[B, K]``.

    The same resampled indices serve every column (the stream :func:`paired_bootstrap` draws with
    the same seed), so the expensive part (e.g. resampled confusion matrices) is computed once for
    all metrics and all classes.
    """
    if n <= 0:
        raise ValueError("paired_bootstrap needs at least one item")
    point = np.asarray(statistic(np.arange(n, dtype=np.int64)[None, :]), dtype=np.float64)[0]
    idx = resample_indices(n, resamples, seed)
    deltas = np.empty((resamples, point.shape[0]), dtype=np.float64)
    chunk = chunk or max(1, 2_000_000 // max(n, 1))
    for start in range(0, resamples, chunk):
        deltas[start : start + chunk] = statistic(idx[start : start + chunk])
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(deltas, [alpha, 1.0 - alpha], axis=0, method="linear")
    return [
        Interval(float(point[k]), float(lo[k]), float(hi[k]), confidence, resamples, n)
        for k in range(point.shape[0])
    ]


def paired_mean_bootstrap(
    baseline: np.ndarray, tuned: np.ndarray, *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Interval for ``mean(tuned) - mean(baseline)`` over per-example scores."""
    b = np.asarray(baseline, dtype=np.float64)
    t = np.asarray(tuned, dtype=np.float64)
    if b.shape != t.shape:
        raise ValueError(f"paired scores differ in length: {b.shape} vs {t.shape}")
    d = t - b
    return paired_bootstrap(
        lambda idx: d[idx].mean(axis=1), len(d), resamples=resamples, confidence=confidence, seed=seed
    )


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts: ``b`` baseline right / tuned wrong, ``c`` baseline wrong / tuned right."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(baseline_correct: np.ndarray, tuned_correct: np.ndarray) -> McNemarResult:
    from scipy import stats

    bc = np.asarray(baseline_correct, dtype=bool)
    tc = np.asarray(tuned_correct, dtype=bool)
    b = int(np.sum(bc & ~tc))
    c = int(np.sum(~bc & tc))
    n = b + c
    if n == 0:
        return McNemarResult(b, c, 0.0, 1.0, "exact")
    if n < EXACT_BELOW:
        p = float(stats.binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue)
        return McNemarResult(b, c, float(min(b, c)), min(1.0, p), "exact")
    chi2 = (abs(b - c) - 1.0) ** 2 / n
    p = float(stats.chi2.sf(chi2, df=1))
    return McNemarResult(b, c, float(chi2), p, "chi2_cc")
