"""The report's metrics, one entry each: the heading every table gives it, its unit, which way is
better and how it is printed. Tables, charts and sentences take these from here, so that a figure
reads the same wherever it appears and ranks the way its direction says.

Two registries, because their keys overlap: `HEADLINE`, keyed by the columns of
`headline.frame` (the native client's figures, capacity and cost of each endpoint), and
`PYTHON_CLIENT`, keyed by the statistics of the Python client's sequential summary (the original
write-up's method), whose p50 is another measurement than the headline's."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

Better = Literal["lower", "higher"]
DIRECTIONS: tuple[Better, ...] = ("lower", "higher")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # the column heading in every table, with its unit where it reads naturally
    unit: str
    better: Better | None  # None: a count, which nothing ranks
    spec: str | None  # format spec of one value; None: as many digits as its interval supports
    description: str = ""
    rank: str = ""  # what its rank is called ("latency" gives "Rank (latency)"); default its name

    def __post_init__(self) -> None:
        if self.better is not None and self.better not in DIRECTIONS:
            raise ValueError(f"{self.key}: better must be one of {DIRECTIONS} or None, got {self.better!r}")
        if not self.label or not self.unit:
            raise ValueError(f"{self.key}: a metric needs a label and a unit")

    @property
    def name(self) -> str:
        """The heading without its unit, for ratios (where the unit cancels) and differences (which
        restate it)."""
        return self.label.removesuffix(f" ({self.unit})")

    @property
    def rank_label(self) -> str:
        return f"Rank ({self.rank or self.name})"

    @property
    def ratio_label(self) -> str:
        return f"{self.name} ×"

    @property
    def delta_label(self) -> str:
        return f"{self.name} Δ ({self.unit})"

    def direction(self) -> Better:
        if self.better is None:
            raise ValueError(f"{self.key} ({self.label}) has no better direction to rank by")
        return self.better

    def best(self, values: pd.Series) -> Hashable:
        """The index of the best value (NaN skipped)."""
        return values.idxmin() if self.direction() == "lower" else values.idxmax()

    def worst(self, values: pd.Series) -> Hashable:
        return values.idxmax() if self.direction() == "lower" else values.idxmin()


def best_first(values: Sequence[float], better: Better) -> list[int]:
    """Positions of `values` from best to worst; a missing value (NaN) comes last whichever way is
    better."""
    if better not in DIRECTIONS:
        raise ValueError(f"better must be one of {DIRECTIONS}, got {better!r}")
    sign = 1.0 if better == "lower" else -1.0
    return sorted(range(len(values)), key=lambda i: (math.isnan(values[i]), sign * values[i]))


def _registry(*entries: Metric) -> dict[str, Metric]:
    registry = {m.key: m for m in entries}
    labels = [m.label for m in entries]
    if len(registry) != len(entries) or len(set(labels)) != len(labels):
        raise ValueError("a registry's keys and labels must be unique")
    return registry


HEADLINE: dict[str, Metric] = _registry(
    Metric(
        "p50",
        "p50 (ms)",
        "ms",
        "lower",
        None,
        "single-request latency from the native client (one connection, sequential): the median window",
        rank="latency",
    ),
    Metric("p99", "p99 (ms)", "ms", "lower", None, "the same windows' p99: the median window"),
    Metric("floor", "/health floor (ms)", "ms", "lower", None, "the same client's /health round trip to the server"),
    Metric("server_ms", "Server-Timing (ms)", "ms", "lower", None, "time in the handler, as the server reports it"),
    Metric(
        "p50_ratio",
        "p50 ÷ reference (×)",
        "×",
        "lower",
        None,
        "the p50 over the reference stack's on the same model, round by round: the median ratio",
    ),
    Metric(
        "capacity",
        "Capacity (req/s)",
        "req/s",
        "higher",
        ",.0f",
        "highest open-loop rate held on one server core with p99 within the target",
        rank="capacity",
    ),
    Metric(
        "capacity_ratio",
        "Capacity ÷ reference (×)",
        "×",
        "higher",
        None,
        "the capacity over the reference stack's on the same model, estimate by estimate: the median ratio",
    ),
    Metric(
        "capacity_rows",
        "Capacity (rows/s)",
        "rows/s",
        "higher",
        ",.0f",
        "the capacity times the rows a request carries (--batch)",
    ),
    Metric("cores_per_10k", "Cores / 10k req/s", "cores", "lower", ".1f", "server cores for 10,000 req/s at capacity"),
    Metric("cpu_ms", "CPU ms / req", "core-ms", "lower", ".3f", "server CPU time per answer at capacity"),
    Metric("peak_mb", "Peak MiB", "MiB", "lower", ".0f", "high-water mark of the server's processes' memory"),
    Metric("startup_s", "Start-up (s)", "s", "lower", ".2f", "launch to the first healthy answer"),
    Metric(
        "inference_ms",
        "Inference alone (ms)",
        "ms",
        "lower",
        ".3f",
        "the model's runtime called in-process on one row, no HTTP (median call)",
    ),
    Metric(
        "serving_share",
        "Serving share of p50",
        "%",
        "lower",
        ".0%",
        "the part of the p50 that is not the model's inference alone: the stack's own overhead",
    ),
    Metric("python_p50", "Python-client p50 (ms)", "ms", "lower", ".3f", "the original method's sequential p50"),
    Metric(
        "python_floor",
        "Python-client /health floor (ms)",
        "ms",
        "lower",
        ".2f",
        "the Python client's /health round trip (p50)",
    ),
)

PYTHON_CLIENT: dict[str, Metric] = _registry(
    Metric("avg", "Avg (ms)", "ms", "lower", ".3f"),
    Metric("min", "Min (ms)", "ms", "lower", ".3f"),
    Metric("max", "Max (ms)", "ms", "lower", ".3f"),
    Metric("total", "Total (ms)", "ms", "lower", ".1f"),
    Metric("variance", "Variance (ms²)", "ms²", "lower", ".4g"),
    Metric("p50", "p50 (ms)", "ms", "lower", ".3f"),
    Metric("p90", "p90 (ms)", "ms", "lower", ".3f"),
    Metric("p99", "p99 (ms)", "ms", "lower", ".3f"),
    Metric("p99_9", "p99.9 (ms)", "ms", "lower", ".3f"),
    Metric("std", "Std (ms)", "ms", "lower", ".3f"),
    Metric("mean_ci_low", "Avg 95% CI low (ms)", "ms", "lower", ".3f", "bootstrap interval of the mean"),
    Metric("mean_ci_high", "Avg 95% CI high (ms)", "ms", "lower", ".3f", "bootstrap interval of the mean"),
    Metric("n", "Requests", "requests", None, ",d", "measured requests, warm-up excluded"),
)
