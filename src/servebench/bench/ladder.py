"""The open-loop ladder and the capacity search: offered rates an endpoint does or does not hold
within the latency target, as oha measures them, and the closed loop's throughput ceiling. Each
function returns the steps it measured; what they amount to (capacity) is derived from them
(servebench.results.derive)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from servebench.bench.oha import Run, run_oha
from servebench.bench.resources import cpu_seconds


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


def rates_from(rates: list[float], estimate: float) -> list[float]:
    """`rates` from the highest one not above `estimate` (all of them when none is, or when there
    is no estimate)."""
    below = [i for i, rate in enumerate(rates) if rate <= estimate]
    return rates[below[-1] :] if below else rates


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


# Whether the machine stalled during the step just measured: the server's /health round trip,
# measured right after it, against its usual (servebench.bench.endpoint.stall_check).
StallCheck = Callable[[], bool]

# A probe that met a stall is measured again at most this many times, so that a machine that stays
# slow ends the search rather than stalls it.
STALL_REPEATS = 2


def attempt(
    steps: list[dict[str, Any]],
    step: Callable[[float, str], dict[str, Any]],
    rate: float,
    kind: str,
    stalled: StallCheck | None = None,
) -> bool:
    """Whether `rate` is held, appending its steps. A step not held whose own /health floor
    (`stalled`) shows the machine stalled is marked `stalled` and measured again instead of
    counted (at most STALL_REPEATS times). A step that answered every request at the rate but
    missed only the p99 target is measured once more right away (marked `repeat`), and the rate
    is held if the repeat holds: a saturated server misses twice, while one stall of the machine
    in a window of a few seconds would otherwise pass for the server's limit."""
    steps.append(step(rate, kind))
    for _ in range(STALL_REPEATS if stalled is not None else 0):
        if steps[-1]["held"] or not stalled():
            break
        steps[-1]["stalled"] = True
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
    stalled: StallCheck | None = None,
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
            if not attempt(steps, step, rate, kind, stalled):
                return

    climb("ladder")
    # A server that does not hold even the first rate: halve it (at most three times) so that
    # its capacity is a number rather than "below the ladder".
    below = rates[0] if rates else 0.0
    p99_only = bool(steps) and held(steps[0], math.inf)
    for _ in range(3 if steps and not any(s["held"] for s in steps) else 0):
        below = float(round(below / 2))
        if below < 1:
            break
        if attempt(steps, step, below, "below", stalled):
            # The first rate was answered in full and missed on p99 alone, twice, and a lower one
            # held: a stall of the machine longer than a repeat looks just like this, so the
            # ladder is climbed once more before the server is judged slower than its first rate.
            if p99_only:
                climb("again")
            break
    good = [s["offered_rate"] for s in steps if s["held"]]
    bad = [
        s["offered_rate"]
        for s in steps
        if not s["held"] and not s.get("stalled") and good and s["offered_rate"] > max(good)
    ]
    if good and bad:
        bisect(max(good), min(bad), refine, lambda rate: attempt(steps, step, rate, "refine", stalled))
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
    stalled: StallCheck | None = None,
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
        return attempt(steps, step, rate, "search", stalled)

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
