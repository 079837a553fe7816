"""The headline figures of each endpoint, their honest rounding, and the ranks with ties."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from servebench.report.data import ReportData
from servebench.report.metrics import HEADLINE, Better, Metric, best_first
from servebench.report.ratios import endpoint_ratios

TRANSPORT_LIMIT = 1.5  # an endpoint within 1.5× of its server's /health floor is at the transport's limit


def _num(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def _window(part: dict[str, Any] | None, stat: str) -> dict[str, float]:
    w = (part or {}).get(stat) or {}
    return {
        "median": _num(w.get("median")),
        "low": _num(w.get("low")),
        "high": _num(w.get("high")),
        "unstable": bool(w.get("unstable")),
    }


def figures(s: dict[str, Any]) -> dict[str, Any]:
    """One endpoint's headline: native single-request p50/p99 (median window, with its interval), its
    server's /health floor, Server-Timing, capacity at the target and what it costs."""
    native = s.get("native") or {}
    p50, p99 = _window(native.get("predict"), "p50"), _window(native.get("predict"), "p99")
    floor = _window(native.get("health"), "p50")
    cap = s.get("capacity") or {}
    cost = s.get("cost") or {}
    measured = bool(cost.get("measured", cost.get("peak_rss_mb") is not None))
    rate = _num(cap.get("rate"))
    return {
        "framework": s["framework"],
        "model": s["model"],
        "p50": p50["median"],
        "p50_low": p50["low"],
        "p50_high": p50["high"],
        "p99": p99["median"],
        "p99_low": p99["low"],
        "p99_high": p99["high"],
        "floor": floor["median"],
        "floor_low": floor["low"],
        "floor_high": floor["high"],
        "unstable": p50["unstable"] or floor["unstable"],
        "server_ms": _num((s.get("server_time") or {}).get("p50")),
        "capacity": rate,
        "capacity_low": _num(cap.get("low")),
        "capacity_high": _num(cap.get("high")),
        "capacity_at_least": bool(cap.get("reached_top")),
        "rows_per_request": int((s.get("settings") or {}).get("rows_per_request", 1)),
        "capacity_rows": rate * int((s.get("settings") or {}).get("rows_per_request", 1)),
        "cores_per_10k": 10_000 / rate if rate and rate > 0 else math.nan,
        "cpu_ms": _num(cost.get("cpu_ms_per_request_at_capacity")) if measured else math.nan,
        "peak_mb": _num(cost.get("peak_rss_mb")) if measured else math.nan,
        "startup_s": _num(cost.get("startup_s")) if measured else math.nan,
        "cost_measured": measured,
        "python_p50": _num((s.get("sequential") or {}).get("p50")),
        "python_floor": _num((s.get("health") or {}).get("p50")),
        "at_limit": bool(p50["median"] <= TRANSPORT_LIMIT * floor["median"]) if floor["median"] > 0 else False,
    }


def frame(data: ReportData) -> pd.DataFrame:
    rows = []
    references = {s["model"]: s for s in data.ok if s["framework"] == data.reference and s.get("native")}
    for s in data.ok:
        if not s.get("native"):
            continue
        row = figures(s)
        row.update(endpoint_ratios(s, references.get(s["model"])))
        alone = _num((data.inference.get(s["model"]) or {}).get("single_ms"))
        row["inference_ms"] = alone
        row["serving_share"] = max(0.0, 1 - alone / row["p50"]) if row["p50"] > 0 and alone == alone else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# A p50 interval wider than this factor (high ÷ low) cannot be placed on the summary chart's log
# axis to better than the distance between its gridlines.
CHART_WIDTH = 1.5


# A ratio interval wider than this share of its median is uncertain (as window_stats' `unstable`).
RATIO_WIDTH = 0.10


def compared(frame: pd.DataFrame, key: str) -> tuple[str, str, str]:
    """The columns (value, low, high) that rows of one model are ordered by: the ratios to the
    reference, measured in the same trials, where every row has one (the machine's drift between
    trials then widens no interval), else the absolute figures."""
    ratio = f"{key}_ratio"
    if ratio in frame and len(frame) and frame[ratio].map(math.isfinite).all():
        return ratio, f"{ratio}_low", f"{ratio}_high"
    return key, f"{key}_low", f"{key}_high"


def unsettled(frame: pd.DataFrame) -> dict[Any, str]:
    """The rows (of one model) whose p50 changes a conclusion for being uncertain, with why: an
    interval wider than 10% that holds a neighbour's median (in p50 order), so the two cannot be
    told apart for this row's doubt, or one too wide to place on the summary chart. A wide
    interval that leaves the order and the chart as they are is not flagged: the figure still
    answers the question. Ratios to the reference are compared where the model has them (the
    chart places them, and the reference's own row, exactly 1, is then never in doubt)."""
    key, low_key, high_key = compared(frame, "p50")
    by_ratio = key != "p50"
    out: dict[Any, str] = {}
    ordered = frame.sort_values(key)
    index = list(ordered.index)
    what = "p50 ratio" if by_ratio else "p50"
    for pos, i in enumerate(index):
        value, low, high = ordered.at[i, key], ordered.at[i, low_key], ordered.at[i, high_key]
        if not (math.isfinite(low) and math.isfinite(high)):
            continue
        if low > 0 and high / low > CHART_WIDTH:
            out[i] = f"unstable: its interval spans ×{high / low:.1f}, too wide to place on the chart"
            continue
        near = [index[p] for p in (pos - 1, pos + 1) if 0 <= p < len(index)]
        # a narrow interval holding a neighbour's p50 is a true tie (equal figures), not a doubt
        wide = value > 0 and (high - low) / value > RATIO_WIDTH if by_ratio else bool(ordered.at[i, "unstable"])
        if wide and any(low <= ordered.at[j, key] <= high for j in near):
            out[i] = f"unstable: its interval holds a neighbour's {what}, so their order is not known"
    return out


def decimals(low: float, high: float, value: float) -> int:
    """Decimal places the spread supports: the last digit printed is the first digit of the
    spread's width, and no more than three significant digits of the value (a ratio of two
    capacities on the ladder's grid can have a spread of a rounding error). Without a spread,
    three significant digits."""
    if not all(map(math.isfinite, (low, high, value))):
        return 3 if math.isfinite(value) and abs(value) < 1 else 1
    width = high - low
    if width <= 0:
        width = abs(value) * 1e-3 or 1e-3
    spread = max(0, -math.floor(math.log10(width)))
    return min(spread, max(0, 2 - math.floor(math.log10(abs(value))))) if value else spread


def fmt(value: float, low: float = math.nan, high: float = math.nan) -> str:
    """`value` with no more digits than [low, high] supports, and the range when there is one."""
    if not math.isfinite(value):
        return "—"
    d = decimals(low, high, value)
    text = f"{value:.{d}f}"
    if math.isfinite(low) and math.isfinite(high) and f"{low:.{d}f}" != f"{high:.{d}f}":
        text += f" ({low:.{d}f}–{high:.{d}f})"
    return text


def text(metric: Metric, value: float, low: float = math.nan, high: float = math.nan) -> str:
    """One figure as the registry prints it: its format spec, or, without one, the digits its
    interval supports (`fmt`); the interval in brackets when there is one."""
    if metric.spec is None:
        return fmt(value, low, high)
    if not math.isfinite(value):
        return "—"
    out = format(value, metric.spec)
    if math.isfinite(low) and math.isfinite(high) and high > low:
        out += f" ({format(low, metric.spec)}–{format(high, metric.spec)})"
    return out


def cell(key: str, row: dict[str, Any] | pd.Series) -> str:
    """The headline figure `key` of one row of `frame`, with its interval where the frame has one."""
    low, high = row.get(f"{key}_low", math.nan), row.get(f"{key}_high", math.nan)
    if key == "capacity":
        return rate_text(row[key], bool(row.get("capacity_at_least")), low, high)
    return text(HEADLINE[key], row[key], low, high)


def rate_text(rate: float, at_least: bool = False, low: float = math.nan, high: float = math.nan) -> str:
    """A capacity, with the range of its estimates when there were several that differ."""
    if not math.isfinite(rate):
        return "—"
    if rate <= 0:
        return "below the ladder"
    return ("≥ " if at_least else "") + text(HEADLINE["capacity"], rate, low, high)


def ranks(values: list[float], lows: list[float], highs: list[float], better: Better = "lower") -> list[int]:
    """Competition ranks, best first as `better` says, where an entry whose interval overlaps the
    previous one's is a tie (it shares that rank); entries without an interval tie only when equal."""
    order = best_first(values, better)
    out = [0] * len(values)
    for pos, i in enumerate(order):
        if pos == 0:
            out[i] = 1
            continue
        j = order[pos - 1]
        overlap = (
            all(map(math.isfinite, (lows[i], highs[i], lows[j], highs[j])))
            and lows[i] <= highs[j]
            and lows[j] <= highs[i]
        )
        out[i] = out[j] if overlap or values[i] == values[j] else pos + 1
    return out


def ranks_of(frame: pd.DataFrame, metric: Metric) -> list[int]:
    """`ranks` of one figure over the rows of `frame` (of one model), in the metric's direction, with
    its interval where the frame has one: of the ratios to the reference where every row has one
    (`compared`)."""
    none = [math.nan] * len(frame)
    key, low, high = compared(frame, metric.key)
    return ranks(
        frame[key].tolist(),
        frame[low].tolist() if low in frame else none,
        frame[high].tolist() if high in frame else none,
        metric.direction(),
    )
