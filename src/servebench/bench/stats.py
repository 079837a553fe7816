"""Latency statistics: the original write-up's five columns, percentiles, and bootstrap
confidence intervals. Inputs are latencies of successful requests only, in milliseconds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap: `statistic` takes a [resamples, n] array and reduces axis 1."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    estimates = np.empty(resamples)
    chunk = max(1, 2_000_000 // values.size)  # bounds the memory of one resampling block
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        estimates[start:stop] = statistic(values[idx])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(latencies_ms: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Avg, min, max, total, variance (as the original) plus std, percentiles and 95% CIs."""
    x = np.asarray(latencies_ms, dtype=np.float64)
    if x.size == 0:
        return {"n": 0}
    mean_ci = bootstrap_ci(x, lambda s: s.mean(axis=1), resamples, seed)
    median_ci = bootstrap_ci(x, lambda s: np.median(s, axis=1), resamples, seed)
    out = {
        "n": int(x.size),
        "avg": float(x.mean()),
        "min": float(x.min()),
        "max": float(x.max()),
        "total": float(x.sum()),
        "variance": float(x.var(ddof=1)) if x.size > 1 else 0.0,
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
    }
    out.update({name: float(np.percentile(x, q)) for name, q in PERCENTILES.items()})
    out.update(
        mean_ci_low=mean_ci[0],
        mean_ci_high=mean_ci[1],
        median_ci_low=median_ci[0],
        median_ci_high=median_ci[1],
    )
    return out
