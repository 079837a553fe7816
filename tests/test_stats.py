from __future__ import annotations

import numpy as np
import pytest

from servebench.bench.stats import bootstrap_ci, summarize


def test_summary_of_known_values() -> None:
    s = summarize(np.arange(1, 101, dtype=float), resamples=500)
    assert s["n"] == 100 and s["avg"] == 50.5 and s["min"] == 1 and s["max"] == 100 and s["total"] == 5050
    assert s["variance"] == pytest.approx(841.6666666, rel=1e-9)  # sample variance of 1..100
    assert s["std"] == pytest.approx(np.sqrt(841.6666666), rel=1e-9)
    assert s["p50"] == 50.5 and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["p99_9"] == pytest.approx(99.901)
    assert s["mean_ci_low"] < 50.5 < s["mean_ci_high"]
    assert s["median_ci_low"] <= 50.5 <= s["median_ci_high"]


def test_constant_sample_has_zero_spread_and_a_point_ci() -> None:
    s = summarize(np.full(50, 2.0), resamples=200)
    assert s["variance"] == 0 and s["std"] == 0
    assert s["mean_ci_low"] == s["mean_ci_high"] == 2.0


def test_bootstrap_ci_is_reproducible_and_covers_the_mean() -> None:
    x = np.random.default_rng(1).exponential(1.0, 2000)
    a = bootstrap_ci(x, lambda s: s.mean(axis=1), 1000, seed=7)
    assert a == bootstrap_ci(x, lambda s: s.mean(axis=1), 1000, seed=7)
    assert a[0] < x.mean() < a[1]
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * x.std() / np.sqrt(x.size), rel=0.15)


def test_empty_and_single_samples() -> None:
    assert summarize(np.array([])) == {"n": 0}
    s = summarize(np.array([3.0]), resamples=10)
    assert s["avg"] == 3.0 and s["variance"] == 0.0
