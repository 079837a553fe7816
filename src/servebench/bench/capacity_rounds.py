"""Capacity searched again in rounds after the benchmark, across every endpoint of a run.

One ladder gives one capacity, decided by a few 5 s steps near the server's limit; on a shared
machine whose speed drifts by tens of percent over minutes, that one decision moves a capacity by
a whole step between two runs. After the benchmark, each round starts every server once and
searches each endpoint's capacity again, starting from the benchmark's and going as far up or
down as the server holds (`measure.search_capacity`). The capacity reported is the median of the
benchmark's and the rounds' estimates, with their range:
each estimate comes from another stretch of the run, so drift falls on every stack alike and the
range shows how far a single ladder could have been off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from servebench.bench import results as result_files
from servebench.bench.cpus import client_cpus
from servebench.bench.measure import search_capacity
from servebench.bench.oha import run_oha
from servebench.bench.rounds import ServerFor, each_server, validation_bodies
from servebench.config import Combination


@dataclass(frozen=True)
class CapacitySettings:
    """From the benchmark notebook's ladder parameters, so that a search measures as the ladder does."""

    rounds: int
    step_s: float
    slo_p99_ms: float
    connections: int
    refine: int


def searchable(summary: dict[str, Any]) -> bool:
    """An endpoint whose ladder ended at a capacity inside it: not one that failed, held no rate
    or held every rate up to the top (there is nothing to bracket)."""
    cap = summary.get("capacity") or {}
    return summary.get("status") == "ok" and (cap.get("rate") or 0) > 0 and not cap.get("reached_top")


def combined(capacity: dict[str, Any], searches: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's capacity with the rounds' estimates: the median of all of them as the rate,
    their range as `low`/`high`; the ladder's own estimate stays as `ladder_rate`, and its step
    (CPU time at capacity) stays the cost's."""
    estimates = [float(capacity["rate"]), *(float(s["rate"]) for s in searches)]
    return {
        **capacity,
        "rate": float(np.median(estimates)),
        "low": min(estimates),
        "high": max(estimates),
        "estimates": estimates,
        "ladder_rate": float(capacity["rate"]),
        "cores_per_10k": 10_000 / float(np.median(estimates)),
        "searches": searches,
    }


def capacity_rounds(
    combos: list[Combination],
    settings: CapacitySettings,
    models: Path,
    results: Path,
    server_for: ServerFor,
    say: Callable[[str], None] = print,
    runner: Callable[..., dict[str, Any]] = run_oha,
) -> list[str]:
    """The rounds against real servers; each endpoint's summary gets the combined capacity.
    Returns the keys updated."""
    summaries = {c.key: path for c in combos if (path := results / f"{c.key}.summary.json").is_file()}
    loaded = {key: result_files.read_summary(path) for key, path in summaries.items()}
    todo = [c for c in combos if c.key in loaded and searchable(loaded[c.key])]
    if settings.rounds <= 0 or not todo:
        return []
    found: dict[str, list[dict[str, Any]]] = {c.key: [] for c in todo}
    with validation_bodies(models) as (_rows, bodies):

        def visit(combo: Combination, server: dict[str, Any]) -> bool:
            base = str(server["base_url"]).rstrip("/")
            pid = int(server["pid"]) if server.get("pid") else None
            try:
                found[combo.key].append(
                    search_capacity(
                        f"{base}/predict/{combo.model}",
                        bodies,
                        float(loaded[combo.key]["capacity"]["rate"]),
                        settings.step_s,
                        settings.slo_p99_ms,
                        settings.connections,
                        client_cpus(str(server.get("cpus") or "") or None),
                        pid,
                        settings.refine,
                        runner=runner,
                    )
                )
            except (RuntimeError, OSError) as exc:
                say(f"   {combo.key}: {exc}; its capacity stays the ladder's")
                return False
            return True

        dropped: set[str] = set()
        for r in range(settings.rounds):
            say(f"== capacity round {r + 1}/{settings.rounds} across every endpoint")
            dropped |= each_server([c for c in todo if c.key not in dropped], server_for, visit, say)
    updated = []
    for combo in todo:
        # Only complete sets: an endpoint whose server stopped starting keeps its ladder's figure.
        if combo.key in dropped or len(found[combo.key]) < settings.rounds:
            continue
        summary = loaded[combo.key]
        summary["capacity"] = combined(summary["capacity"], found[combo.key])
        result_files.write(results, combo.key, summary)
        updated.append(combo.key)
    return updated
