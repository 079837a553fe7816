"""The measurements notebook 04 runs, one function per section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servebench.bench.load import Attack, run_attack, summarize_attack
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


def closed_loop_sweep(
    targets: Path, levels: list[int], duration_s: float, cpus: str | None
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    summaries, frames = [], []
    for level in levels:
        attack = Attack("closed", duration_s, concurrency=int(level))
        results = run_attack(attack, targets, cpus)
        summaries.append(summarize_attack(attack, results))
        frames.append(results.assign(mode="closed", concurrency=int(level), target_rate=0.0))
    return summaries, pd.concat(frames, ignore_index=True)


def open_loop(targets: Path, rate: float, duration_s: float, cpus: str | None) -> tuple[dict[str, Any], pd.DataFrame]:
    attack = Attack("open", duration_s, rate=float(max(1, round(rate))))
    results = run_attack(attack, targets, cpus)
    return summarize_attack(attack, results), results.assign(mode="open", concurrency=0, target_rate=attack.rate)
