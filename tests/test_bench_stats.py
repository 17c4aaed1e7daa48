"""Statistics of bench: percentiles, bootstrap confidence intervals, noise flags."""

from __future__ import annotations

import numpy as np
import pytest

from edge_tl.bench.stats import LatencyStats, bootstrap_ci, noise_reasons, percentile, summarize


def test_percentiles_of_known_sample() -> None:
    x = np.arange(1, 101, dtype=float)  # 1..100
    assert percentile(x, 50) == pytest.approx(50.5)
    assert percentile(x, 90) == pytest.approx(90.1)
    assert percentile(x, 99) == pytest.approx(99.01)
    assert percentile(np.array([3.0]), 99) == 3.0
    with pytest.raises(ValueError):
        percentile(np.array([]), 50)
    with pytest.raises(ValueError):
        percentile(x, 101)


def test_summarize_converts_seconds_to_ms() -> None:
    s = summarize(np.array([0.001, 0.002, 0.003, 0.004]))
    assert s.n == 4
    assert s.mean == pytest.approx(2.5)
    assert s.p50.value == pytest.approx(2.5)
    assert s.min == pytest.approx(1.0) and s.max == pytest.approx(4.0)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.p50.low <= s.p50.value <= s.p50.high
    assert LatencyStats.from_json(s.to_json()) == s


def test_bootstrap_is_deterministic_with_seed() -> None:
    x = np.random.default_rng(1).lognormal(1.0, 0.3, 400)
    assert bootstrap_ci(x, 50, seed=7) == bootstrap_ci(x, 50, seed=7)
    assert bootstrap_ci(x, 50, seed=7) != bootstrap_ci(x, 50, seed=8)


def test_bootstrap_ci_covers_true_median() -> None:
    """A 95 % interval should contain the true median in about 95 % of samples (here >= 85 % of 60)."""
    true_median = np.exp(1.0)  # lognormal(mu=1): median e
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(60):
        x = rng.lognormal(1.0, 0.4, 200)
        lo, hi = bootstrap_ci(x, 50, n_boot=500, seed=i)
        assert lo < hi
        hits += lo <= true_median <= hi
    assert hits >= 51


def test_bootstrap_ci_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(3)
    small = bootstrap_ci(rng.normal(10, 1, 50), 50)
    large = bootstrap_ci(rng.normal(10, 1, 5000), 50)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3


def test_noise_reasons() -> None:
    steady = summarize(np.full(50, 0.005) + np.linspace(0, 1e-4, 50))
    assert noise_reasons(steady, other_load=0.0, threads=1, cores=2) == []
    assert any("other processes" in r for r in noise_reasons(steady, other_load=1.5, threads=1, cores=2))
    assert any("other processes" in r for r in noise_reasons(steady, other_load=0.5, threads=2, cores=2))
    wide = summarize(np.concatenate([np.full(50, 0.005), np.full(50, 0.02)]))
    assert any("p90/p50" in r for r in noise_reasons(wide, other_load=None, threads=1, cores=2))
