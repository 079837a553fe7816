"""Each endpoint's headline figures as ratios to the reference stack's (a parameter of the report,
FastAPI behind nginx by default) on the same model, pair by pair within the same round: the
machine's drift between rounds falls on both figures of a pair alike, so the ratio holds where
absolute times move by a quarter from one run to the next."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from servebench.results.derive import median_interval

NAN = (math.nan, math.nan, math.nan)


def _round_medians(window: dict[str, Any]) -> dict[int, float]:
    values, rounds = window.get("values") or [], window.get("value_rounds") or []
    grouped: dict[int, list[float]] = defaultdict(list)
    for value, r in zip(values, rounds or [0] * len(values), strict=False):
        grouped[int(r)].append(float(value))
    return {r: float(np.median(v)) for r, v in grouped.items()}


def _summarise(ratios: list[float]) -> tuple[float, float, float]:
    """The median ratio with its order-statistic interval over the pairs (none for one pair)."""
    if not ratios:
        return NAN
    x = np.sort(np.asarray(ratios, dtype=float))
    median = float(np.median(x))
    if x.size < 2:
        return median, math.nan, math.nan
    k, _ = median_interval(int(x.size))
    return median, float(x[k - 1]), float(x[x.size - k])


def window_ratio(window: dict[str, Any], reference: dict[str, Any]) -> tuple[float, float, float]:
    """(median, low, high) of the per-round ratios of two single-request figures (`window_stats`
    of each), over the rounds both were measured in."""
    mine, ref = _round_medians(window), _round_medians(reference)
    return _summarise([mine[r] / ref[r] for r in sorted(mine.keys() & ref.keys()) if ref[r] > 0])


def capacity_ratio(capacity: dict[str, Any], reference: dict[str, Any]) -> tuple[float, float, float]:
    """The ratio of two capacities estimate by estimate (the ladder's, then each capacity round's,
    measured in the same stretches of the run), median and range; a single estimate each gives
    their ratio alone."""
    mine = capacity.get("estimates") or [capacity.get("rate") or 0.0]
    ref = reference.get("estimates") or [reference.get("rate") or 0.0]
    pairs = [float(a) / float(b) for a, b in zip(mine, ref, strict=False) if float(b) > 0 and float(a) > 0]
    if not pairs:
        return NAN
    if len(pairs) == 1:
        return pairs[0], math.nan, math.nan
    return float(np.median(pairs)), min(pairs), max(pairs)


def endpoint_ratios(s: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, float]:
    """p50_ratio and capacity_ratio (with _low and _high) of summary `s` against the reference's
    summary of the same model; NaN where there is no reference."""
    out: dict[str, float] = {}
    if reference is None:
        window, cap = NAN, NAN
    else:
        mine = ((s.get("native") or {}).get("predict") or {}).get("p50") or {}
        ref = ((reference.get("native") or {}).get("predict") or {}).get("p50") or {}
        window = window_ratio(mine, ref)
        cap = capacity_ratio(s.get("capacity") or {}, reference.get("capacity") or {})
    for key, (value, low, high) in (("p50_ratio", window), ("capacity_ratio", cap)):
        out.update({key: value, f"{key}_low": low, f"{key}_high": high})
    return out
