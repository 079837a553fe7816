"""Figures derived from raw observations: the single-request windows' medians with their
intervals, capacity from the ladder's steps and the searches', the Python client's statistics,
cost at capacity. Nothing here measures; the report applies these rules to what an outputs folder
holds (servebench.results.files.read_summaries), so a new rule needs no machine time."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from servebench.bench.stats import summarize

# Per part (predict, /health): oha's summary of each single-request window, with its round.
Windows = dict[str, list[dict[str, Any]]]


def measured_ok(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows statistics are computed from: after the warm-up, and successful."""
    return frame[frame["measured"] & frame["ok"]]


def failures(frame: pd.DataFrame) -> dict[str, Any]:
    bad = frame[frame["measured"] & ~frame["ok"]]
    return {"count": len(bad), "first": str(bad["error"].iloc[0]) if len(bad) else ""}


def sequential_summary(frame: pd.DataFrame, resamples: int, seed: int) -> dict[str, Any]:
    good = measured_ok(frame)
    return {**summarize(good["latency_ms"].to_numpy(), resamples, seed), "failed": failures(frame)}


def decomposition(predict: pd.DataFrame, health: pd.DataFrame) -> dict[str, float]:
    """Median end-to-end time split into the client-and-transport floor (a /health round trip),
    the time inside the handler (Server-Timing), and the rest (framework, parsing, routing)."""
    total = float(np.median(measured_ok(predict)["latency_ms"]))
    floor = float(np.median(measured_ok(health)["latency_ms"]))
    timed = measured_ok(predict)["server_ms"].dropna()
    # A server that sends no Server-Timing (Triton's own HTTP endpoint) has no handler time.
    server = float(np.median(timed)) if len(timed) else math.nan
    return {
        "end_to_end_ms": total,
        "client_floor_ms": floor,
        "server_ms": server,
        "rest_ms": max(0.0, total - floor - server),
    }


def median_interval(n: int, level: float = 0.95) -> tuple[int, float]:
    """The order statistics that bound the median of `n` windows: the k-th smallest and the k-th
    largest cover the median of the window distribution with probability 1 - 2·P(Bin(n, ½) < k),
    whatever that distribution is. Returns the largest k whose coverage is at least `level`, with
    the coverage; below six windows no k reaches 95%, and the range (k = 1) is used."""
    if n <= 0:
        return 0, math.nan
    tail, best = 0.0, (1, 1.0 - 2.0 * 0.5**n)
    for k in range(1, (n + 1) // 2 + 1):
        tail += math.comb(n, k - 1) * 0.5**n  # P(Bin(n, ½) ≤ k - 1)
        coverage = 1.0 - 2.0 * tail
        if coverage < level:
            break
        best = (k, coverage)
    return best


def window_stats(values: list[float], rounds: list[int] | None = None, unstable_width: float = 0.10) -> dict[str, Any]:
    """The median of per-window figures with its distribution-free 95% interval (`low`, `high`:
    order statistics, `median_interval`), which the report prints and uses for ties, and the
    windows' range (`spread`).

    Windows measured in rounds (`rounds`: each window's round) are not independent: the windows
    of one round, from one start of the server over a few seconds, agree closely, while rounds
    differ by tens of percent on a shared machine. The interval is then taken over the rounds'
    medians, the unit that repeats; the median stays that of all windows, which lies between the
    rounds' medians. `unstable`: the interval is wider than 10% of the median, so the figure is
    not known to ±5%; with three windows this is perf_analyzer's criterion (windows more than 10%
    apart)."""
    keep = [i for i, v in enumerate(values) if v is not None and np.isfinite(v)]
    x = np.asarray([values[i] for i in keep], dtype=float)
    if x.size == 0:
        return {
            "median": float("nan"),
            "low": float("nan"),
            "high": float("nan"),
            "coverage": float("nan"),
            "spread": float("nan"),
            "windows": 0,
            "rounds": 0,
            "unstable": False,
            "values": [],
        }
    median = float(np.median(x))
    groups = [rounds[i] for i in keep] if rounds is not None else [0] * len(keep)
    units = (
        np.sort([float(np.median(x[[g == r for g in groups]])) for r in sorted(set(groups))])
        if len(set(groups)) > 1
        else np.sort(x)
    )
    k, coverage = median_interval(int(units.size))
    low, high = float(units[k - 1]), float(units[units.size - k])
    return {
        "median": median,
        "low": low,
        "high": high,
        "coverage": coverage,
        "spread": float((x.max() - x.min()) / median) if median > 0 else 0.0,
        "windows": int(x.size),
        "rounds": len(set(groups)),
        "unstable": bool(x.size > 1 and median > 0 and (high - low) / median > unstable_width),
        "values": [float(v) for v in x],
        "value_rounds": groups,
    }


Windows = dict[str, list[dict[str, Any]]]


def native_summary(parts: Windows) -> dict[str, Any]:
    """Each figure as the median over the windows with its interval (`window_stats`), with the
    requests and errors of all of them; windows that met a stall are left out and counted."""
    out: dict[str, Any] = {}
    for name, every in parts.items():
        # A window that met a stall of the machine was measured again (bench.endpoint.STALL_FACTOR).
        runs = [r for r in every if not r.get("stalled")]
        rounds = [int(r.get("round", 0)) for r in runs]
        out[name] = {
            stat: window_stats([r[stat] for r in runs], rounds) for stat in ("p50", "p90", "p99", "p99_9", "mean_ms")
        }
        # Failures are never dropped with the stalled windows' latencies.
        out[name]["requests"] = int(sum(r["requests"] for r in every))
        out[name]["errors"] = int(sum(r["errors"] for r in every))
        out[name]["first_error"] = next((r["first_error"] for r in runs if r["first_error"]), "")
        out[name]["stalled"] = len(every) - len(runs)
    return out


def capacity(steps: list[dict[str, Any]], slo_p99_ms: float) -> dict[str, Any]:
    """The highest offered rate held, with that step's figures; `reached_top` when the ladder
    ended without a step that was not held (capacity is then at least this)."""
    good = [s for s in steps if s.get("held")]
    if not good:
        return {"rate": 0.0, "slo_p99_ms": slo_p99_ms, "reached_top": False, "step": None}
    best = max(good, key=lambda s: s["offered_rate"])
    return {
        "rate": best["offered_rate"],
        "slo_p99_ms": slo_p99_ms,
        # a step that met a stall of the machine was measured again: its repeat counts
        "reached_top": all(s.get("held") for s in steps if not s.get("stalled")),
        "step": best,
        "cores_per_10k": 10_000 / best["offered_rate"],
    }


def combined_capacity(capacity: dict[str, Any], searches: list[dict[str, Any]]) -> dict[str, Any]:
    """The ladder's capacity with the capacity rounds' estimates: the median of all of them as the
    rate, their range as `low`/`high`; the ladder's own estimate stays as `ladder_rate`, and its
    step (CPU time at capacity) stays the cost's. Each estimate comes from another stretch of the
    run, so drift falls on every stack alike and the range shows how far one ladder could be off."""
    estimates = [float(capacity["rate"]), *(float(s["rate"]) for s in searches)]
    rate = float(np.median(estimates))
    return {
        **capacity,
        "rate": rate,
        "low": min(estimates),
        "high": max(estimates),
        "estimates": estimates,
        "ladder_rate": float(capacity["rate"]),
        "cores_per_10k": 10_000 / rate if rate > 0 else math.inf,
        "searches": searches,
    }


def searchable(capacity: dict[str, Any]) -> bool:
    """A capacity inside the ladder: not none, nor every rate up to the top (nothing to bracket)."""
    return (capacity.get("rate") or 0) > 0 and not capacity.get("reached_top")


def endpoint_capacity(observations: dict[str, Any]) -> dict[str, Any]:
    """Capacity from the ladder's steps, combined with the searches' when there are any."""
    slo = float(observations["settings"]["slo_p99_ms"])
    cap = capacity(observations.get("ladder") or [], slo)
    searches = observations.get("searches") or []
    return combined_capacity(cap, searches) if searches and searchable(cap) else cap


def python_client(sequential: pd.DataFrame, resamples: int, seed: int) -> dict[str, Any]:
    """The original write-up's figures from its raw requests (phase predict and health)."""
    predict = sequential[sequential["phase"] == "predict"]
    health = sequential[sequential["phase"] == "health"]
    server_ms = predict.assign(latency_ms=predict["server_ms"]).dropna(subset=["latency_ms"])
    return {
        "sequential": sequential_summary(predict, resamples, seed),
        "health": sequential_summary(health, resamples, seed),
        "server_time": sequential_summary(server_ms, resamples, seed),
        "decomposition": decomposition(predict, health),
    }


def cost(raw: dict[str, Any], cap: dict[str, Any]) -> dict[str, Any]:
    """Peak memory and start-up as sampled; CPU time per request at capacity (the ladder's step
    there) and per 1000 sequential requests."""
    measured = bool(raw.get("measured"))
    step = cap.get("step") or {}
    cpu_s, n = raw.get("cpu_s_sequential"), raw.get("sequential_requests")
    return {
        **raw,
        "cpu_ms_per_request_at_capacity": step.get("cpu_ms_per_request") if measured else None,
        "cpu_s_per_1000": 1000 * cpu_s / n if measured and cpu_s is not None and n else None,
    }


def summary(observations: dict[str, Any], sequential: pd.DataFrame | None = None) -> dict[str, Any]:
    """An endpoint's observations with every figure the report reads derived from them: `native`
    (the windows), `capacity` (the ladder and searches), the Python client's `sequential`,
    `health`, `server_time` and `decomposition` (its raw requests), `cost`. A figure whose raw
    source is absent (a summary of an older run, which stored figures) stays as stored."""
    out = dict(observations)
    if observations.get("status") != "ok":
        return out
    settings = observations.get("settings") or {}
    if observations.get("windows"):
        out["native"] = native_summary(observations["windows"])
    if observations.get("ladder") and "slo_p99_ms" in settings:
        out["capacity"] = endpoint_capacity(observations)
    if sequential is not None and not sequential.empty:
        out.update(
            python_client(sequential, int(settings.get("bootstrap_resamples", 2000)), int(settings.get("seed", 0)))
        )
    if "cpu_s_sequential" in (observations.get("cost") or {}):
        out["cost"] = cost(observations["cost"], out.get("capacity") or {})
    return out
