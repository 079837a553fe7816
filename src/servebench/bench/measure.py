"""The measurements notebook 04 runs, one function per section."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servebench.bench.oha import Run, run_oha
from servebench.bench.resources import cpu_seconds
from servebench.bench.stats import summarize


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
    server = float(np.nanmedian(measured_ok(predict)["server_ms"]))
    return {
        "end_to_end_ms": total,
        "client_floor_ms": floor,
        "server_ms": server,
        "rest_ms": max(0.0, total - floor - server),
    }


# ---- native client: single-request windows, the open-loop ladder, capacity ----------------------


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


def native_windows(
    predict: Run, health: Run, windows: int, cpus: str | None, runner: Callable[..., dict[str, Any]] = run_oha
) -> Windows:
    """One connection, sequential, from oha: `windows` windows of predict, each followed by one of
    /health, so that drift hits both alike. oha's summary of each window, by part."""
    parts: Windows = {"predict": [], "health": []}
    for _ in range(windows):
        parts["predict"].append(runner(predict, cpus))
        parts["health"].append(runner(health, cpus))
    return parts


def native_summary(parts: Windows) -> dict[str, Any]:
    """Each figure as the median over the windows with its interval (`window_stats`), with the
    requests and errors of all of them."""
    out: dict[str, Any] = {}
    for name, runs in parts.items():
        rounds = [int(r.get("round", 0)) for r in runs]
        out[name] = {
            stat: window_stats([r[stat] for r in runs], rounds) for stat in ("p50", "p90", "p99", "p99_9", "mean_ms")
        }
        out[name]["requests"] = int(sum(r["requests"] for r in runs))
        out[name]["errors"] = int(sum(r["errors"] for r in runs))
        out[name]["first_error"] = next((r["first_error"] for r in runs if r["first_error"]), "")
    return out


def native_single(
    predict: Run,
    health: Run,
    windows: int,
    cpus: str | None,
    runner: Callable[..., dict[str, Any]] = run_oha,
    earlier: Windows | None = None,
) -> dict[str, Any]:
    """`windows` windows in all: those measured `earlier` in the run (run_all.sh's rounds across
    every endpoint), then the rest here, at least one."""
    earlier = earlier or {"predict": [], "health": []}
    here = native_windows(predict, health, max(1, windows - len(earlier["predict"])), cpus, runner)
    # the benchmark's own windows are the last round
    last = 1 + max((int(w.get("round", 0)) for w in earlier["predict"]), default=-1)
    for runs in here.values():
        for w in runs:
            w["round"] = last
    return native_summary({name: [*earlier[name], *here[name]] for name in here})


def windows_per_round(windows: int, rounds: int) -> int:
    """How many of an endpoint's `windows` each of `rounds` rounds measures: an equal share,
    the last round (the benchmark itself) taking what is left."""
    return max(1, windows // max(1, rounds))


def ladder_rates(start: float, max_rate: float, steps_per_doubling: int = 2) -> list[float]:
    """The shared geometric ladder: start, start·2^(1/k), ... up to max_rate, rounded to whole
    requests per second. Every endpoint gets the same rates."""
    rates, i = [], 0
    while True:
        rate = float(round(start * 2 ** (i / max(1, steps_per_doubling))))
        if rate > max_rate:
            return rates
        rates.append(rate)
        i += 1


def held(step: dict[str, Any], slo_p99_ms: float, min_fraction: float = 0.98) -> bool:
    """A step is held when the server answered ≥98% of the offered rate, with no error and p99
    within the target."""
    return bool(
        step["errors"] == 0
        and step["achieved_rate"] >= min_fraction * step["offered_rate"]
        and np.isfinite(step["p99"])
        and step["p99"] <= slo_p99_ms
    )


def open_loop_step(
    url: str,
    bodies: Path | None,
    rate: float,
    kind: str,
    step_s: float,
    slo_p99_ms: float,
    connections: int,
    cpus: str | None,
    pid: int | None = None,
    runner: Callable[..., dict[str, Any]] = run_oha,
) -> dict[str, Any]:
    """One step of open loop at `rate`, marked `kind`, with whether it was held and the server's
    CPU time per answer when its pid is known."""
    cpu0 = cpu_seconds(pid) if pid else None
    result = runner(Run(url, connections=connections, duration_s=step_s, rate=rate, bodies=bodies), cpus)
    if pid and cpu0 is not None and result["ok"]:
        result["cpu_ms_per_request"] = 1e3 * (cpu_seconds(pid) - cpu0) / result["ok"]
    else:
        result["cpu_ms_per_request"] = float("nan")
    result["step"] = kind
    result["held"] = held(result, slo_p99_ms)
    return result


def attempt(steps: list[dict[str, Any]], step: Callable[[float, str], dict[str, Any]], rate: float, kind: str) -> bool:
    """Whether `rate` is held, appending its steps: a step that answered every request at the
    rate but missed only the p99 target is measured once more right away (marked `repeat`), and
    the rate is held if the repeat holds. A saturated server misses twice, while one stall of the
    machine in a window of a few seconds would otherwise pass for the server's limit."""
    steps.append(step(rate, kind))
    if not steps[-1]["held"] and held(steps[-1], math.inf):
        steps.append(step(rate, "repeat"))
    return bool(steps[-1]["held"])


def bisect(low: float, high: float, times: int, holds: Callable[[float], bool]) -> float:
    """`times` geometric bisections between a rate held (`low`) and one not held (`high`), each
    rate tried with `holds`; the highest rate held."""
    for _ in range(times):
        mid = float(round(math.sqrt(low * high)))
        if mid <= low or mid >= high:
            break
        low, high = (mid, high) if holds(mid) else (low, mid)
    return low


def run_ladder(
    url: str,
    bodies: Path | None,
    rates: list[float],
    step_s: float,
    slo_p99_ms: float,
    connections: int,
    cpus: str | None,
    pid: int | None = None,
    refine: int = 2,
    runner: Callable[..., dict[str, Any]] = run_oha,
) -> list[dict[str, Any]]:
    """Open loop at each rate of the ladder (`attempt`: a miss on p99 alone is measured again),
    stopping at the first rate that is not held; then `refine` bisections (geometric, marked
    `refine`) between the highest rate held and the lowest rate above it not held. Capacity is
    the highest rate held."""

    def step(rate: float, kind: str) -> dict[str, Any]:
        return open_loop_step(url, bodies, rate, kind, step_s, slo_p99_ms, connections, cpus, pid, runner)

    steps: list[dict[str, Any]] = []

    def climb(kind: str) -> None:
        for rate in rates:
            if not attempt(steps, step, rate, kind):
                return

    climb("ladder")
    # A server that does not hold even the first rate: halve it (at most three times) so that
    # its capacity is a number rather than "below the ladder".
    below = rates[0] if rates else 0.0
    stalled = bool(steps) and held(steps[0], math.inf)
    for _ in range(3 if steps and not any(s["held"] for s in steps) else 0):
        below = float(round(below / 2))
        if below < 1:
            break
        if attempt(steps, step, below, "below"):
            # The first rate was answered in full and missed on p99 alone, twice, and a lower one
            # held: a stall of the machine longer than a repeat looks just like this, so the
            # ladder is climbed once more before the server is judged slower than its first rate.
            if stalled:
                climb("again")
            break
    good = [s["offered_rate"] for s in steps if s["held"]]
    bad = [s["offered_rate"] for s in steps if not s["held"] and good and s["offered_rate"] > max(good)]
    if good and bad:
        bisect(max(good), min(bad), refine, lambda rate: attempt(steps, step, rate, "refine"))
    return steps


def search_capacity(
    url: str,
    bodies: Path | None,
    around: float,
    step_s: float,
    slo_p99_ms: float,
    connections: int,
    cpus: str | None,
    pid: int | None = None,
    refine: int = 3,
    factor: float = 2**0.5,
    max_steps: int = 6,
    runner: Callable[..., dict[str, Any]] = run_oha,
) -> dict[str, Any]:
    """Capacity searched again from an earlier estimate: `around` first; if held, rates `factor`
    apart above it until one is not held, else below it until one is (at most `max_steps` each
    way); then `refine` bisections between the two. With the ladder's factor and bisections the
    answer lands on the same grid of rates as the ladder's, and a ladder that met a slow stretch of
    the machine is not a bound: the search goes as far as the server holds now. The estimate is
    the highest rate held (0 when none was)."""
    steps: list[dict[str, Any]] = []

    def step(rate: float, kind: str) -> dict[str, Any]:
        return open_loop_step(url, bodies, rate, kind, step_s, slo_p99_ms, connections, cpus, pid, runner)

    def holds(rate: float) -> bool:
        return attempt(steps, step, rate, "search")

    if holds(around):
        low, high = around, float(round(around * factor))
        for _ in range(max_steps):
            if not holds(high):
                break
            low, high = high, float(round(high * factor))
        else:
            return {"rate": low, "steps": steps}
    else:
        low, high = float(round(around / factor)), around
        for _ in range(max_steps):
            if low < 1 or holds(low):
                break
            low, high = float(round(low / factor)), low
        else:
            return {"rate": 0.0, "steps": steps}
        if low < 1:
            return {"rate": 0.0, "steps": steps}
    return {"rate": bisect(low, high, refine, holds), "steps": steps}


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
        "reached_top": all(s.get("held") for s in steps),
        "step": best,
        "cores_per_10k": 10_000 / best["offered_rate"],
    }


def closed_loop_native(
    url: str,
    bodies: Path | None,
    levels: list[int],
    duration_s: float,
    cpus: str | None,
    runner: Callable[..., dict[str, Any]] = run_oha,
) -> list[dict[str, Any]]:
    """oha with C connections each sending as soon as answered: the throughput ceiling."""
    return [runner(Run(url, connections=int(c), duration_s=duration_s, bodies=bodies), cpus) for c in levels]
