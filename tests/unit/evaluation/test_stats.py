"""Statistics on constructed cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from tunegate.evaluation.stats import mcnemar, paired_bootstrap, paired_mean_bootstrap


def test_constant_delta_gives_a_degenerate_interval() -> None:
    b = np.linspace(0, 1, 40)
    iv = paired_mean_bootstrap(b, b + 0.1, resamples=500, seed=1)
    assert iv.delta == pytest.approx(0.1)
    assert iv.low == pytest.approx(0.1) and iv.high == pytest.approx(0.1)


def test_pairing_removes_between_item_variance() -> None:
    rng = np.random.default_rng(0)
    item_difficulty = rng.normal(0, 1, 200)
    b = item_difficulty
    t = item_difficulty + 0.05 + rng.normal(0, 0.01, 200)
    iv = paired_mean_bootstrap(b, t, resamples=1000, seed=0)
    assert iv.low > 0.04 and iv.high < 0.06  # an unpaired interval would span roughly +-0.2


def test_interval_matches_normal_theory_for_a_mean() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(0.2, 1.0, 400)
    iv = paired_mean_bootstrap(np.zeros(400), d, resamples=4000, seed=0)
    se = d.std(ddof=1) / np.sqrt(400)
    assert iv.low == pytest.approx(d.mean() - 1.96 * se, abs=0.02)
    assert iv.high == pytest.approx(d.mean() + 1.96 * se, abs=0.02)


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(1)
    b, t = rng.random(30), rng.random(30)
    assert paired_mean_bootstrap(b, t, seed=3) == paired_mean_bootstrap(b, t, seed=3)
    assert paired_mean_bootstrap(b, t, seed=3) != paired_mean_bootstrap(b, t, seed=4)


def test_generic_statistic_sees_resampled_indices() -> None:
    iv = paired_bootstrap(lambda idx: np.full(idx.shape[0], float(idx.shape[1])), 17, resamples=100)
    assert (iv.delta, iv.low, iv.high) == (17.0, 17.0, 17.0)


def test_mcnemar_exact_small_counts() -> None:
    # b=1 (baseline right, tuned wrong), c=9 -> two-sided exact binomial p = 2 * P(X<=1 | n=10, .5)
    base = np.array([1] * 1 + [0] * 9 + [1] * 5, dtype=bool)
    tuned = np.array([0] * 1 + [1] * 9 + [1] * 5, dtype=bool)
    r = mcnemar(base, tuned)
    assert (r.b, r.c, r.method) == (1, 9, "exact")
    assert r.p_value == pytest.approx(2 * (1 + 10) / 2**10)


def test_mcnemar_chi2_large_counts() -> None:
    base = np.array([1] * 30 + [0] * 50, dtype=bool)
    tuned = np.array([0] * 30 + [1] * 50, dtype=bool)
    r = mcnemar(base, tuned)
    assert r.method == "chi2_cc"
    assert r.statistic == pytest.approx((abs(30 - 50) - 1) ** 2 / 80)
    assert r.p_value == pytest.approx(sps.chi2.sf(r.statistic, 1))


def test_mcnemar_no_discordant_pairs() -> None:
    r = mcnemar(np.ones(5, bool), np.ones(5, bool))
    assert (r.b, r.c, r.p_value) == (0, 0, 1.0)


def test_columns_bootstrap_equals_one_statistic_at_a_time() -> None:
    import numpy as np

    from tunegate.evaluation.stats import paired_bootstrap, paired_bootstrap_columns

    rng = np.random.default_rng(3)
    a, b = rng.random(150), rng.random(150)

    def both(idx: np.ndarray) -> np.ndarray:
        return np.column_stack([a[idx].mean(axis=1), (a[idx] - b[idx]).mean(axis=1)])

    cols = paired_bootstrap_columns(both, 150, resamples=400, seed=5, chunk=37)
    one = paired_bootstrap(lambda idx: a[idx].mean(axis=1), 150, resamples=400, seed=5)
    two = paired_bootstrap(lambda idx: (a[idx] - b[idx]).mean(axis=1), 150, resamples=400, seed=5)
    assert cols[0] == one and cols[1] == two
