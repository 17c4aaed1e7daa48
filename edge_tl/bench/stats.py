"""Latency statistics: percentiles with bootstrap confidence intervals, noise flags.

Everything here is pure numpy and deterministic for a given seed: the same timings always give the same
percentiles and intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

QUANTILES: tuple[float, ...] = (50.0, 90.0, 99.0)
NOISY_P90_OVER_P50 = 1.5  # a spread this wide means the timings are not one steady distribution


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval ``[low, high]`` (same unit as the estimate)."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``n`` timed runs, in milliseconds; percentiles carry 95 % bootstrap intervals."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: Interval
    p90: Interval
    p99: Interval
    confidence: float = 0.95

    @property
    def spread(self) -> float:
        """p90 / p50: 1.0 for perfectly steady timings."""
        return self.p90.value / self.p50.value if self.p50.value > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LatencyStats:
        return cls(**{**d, **{k: Interval(**d[k]) for k in ("p50", "p90", "p99")}})


def percentile(samples: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default, R type 7)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    return float(np.percentile(x, q))


def bootstrap_ci(samples: np.ndarray, q: float, confidence: float = 0.95, n_boot: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval for the ``q``-th percentile of ``samples``.

    Resamples with replacement ``n_boot`` times (seeded, so the result is reproducible) and returns the
    ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of the resampled percentiles. Large samples are
    resampled in chunks so memory stays bounded.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} must lie in (0, 1)")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 4_000_000 // x.size))
    stats = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, x.size, size=(k, x.size))
        stats[start:start + k] = np.percentile(x[idx], q, axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(seconds: np.ndarray, confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> LatencyStats:
    """Summarise per-run wall times given in seconds as :class:`LatencyStats` in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timed runs to summarise")
    intervals = {}
    for q in QUANTILES:
        low, high = bootstrap_ci(ms, q, confidence, n_boot, seed)
        intervals[f"p{int(q)}"] = Interval(percentile(ms, q), low, high)
    return LatencyStats(n=int(ms.size), mean=float(ms.mean()), std=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
                        min=float(ms.min()), max=float(ms.max()), confidence=confidence, **intervals)


def noise_reasons(stats: LatencyStats, other_load: float | None, threads: int, cores: int) -> list[str]:
    """Why a measurement should not be trusted: wide spread, or other processes busy on our cores.

    ``other_load`` is the average number of cores other processes kept busy during the timed loop.
    """
    reasons = []
    if stats.spread > NOISY_P90_OVER_P50:
        reasons.append(f"p90/p50 = {stats.spread:.2f} > {NOISY_P90_OVER_P50}")
    if other_load is not None and other_load > max(0.25, cores - threads - 0.25):
        reasons.append(f"other processes used {other_load:.2f} of {cores} cores")
    return reasons
