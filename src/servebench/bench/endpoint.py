"""Benchmarking one endpoint: the one function that measures, used by notebook 04, the
single-request rounds and the capacity rounds alike. It returns raw observations; the figures
(medians, intervals, capacity) are derived from them by servebench.results.derive.

An endpoint is measured in this order, each part as the plan asks: parity first (nothing is timed
that does not answer as the native model does), then single-request windows from oha (predict,
each followed by /health, the transport's floor), the closed loop (whose peak says where the ladder
enters its grid), the open-loop ladder or a capacity search (a probe not held has its own /health
floor measured, and one that met a stall is measured again), the original write-up's Python
client, and the server's cost."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from servebench.bench.client import read_reference, record_requests, sequential
from servebench.bench.ladder import StallCheck, closed_loop_native, run_ladder, search_capacity
from servebench.bench.oha import Run, run_oha, write_bodies
from servebench.bench.pack_requests import pack_requests
from servebench.bench.resources import cpu_seconds, peak_rss_bytes, rss_bytes
from servebench.bench.target import Target, on_client_cores, pinning
from servebench.packs import installed
from servebench.results import derive
from servebench.results.derive import Windows
from servebench.settings import BenchmarkSettings

Runner = Callable[..., dict[str, Any]]


Parity = Callable[[httpx.Client, str, float], dict[str, Any]]


@dataclass(frozen=True)
class Requests:
    """What an endpoint is sent: its path, the request bodies drawn from the validation rows
    (`rows_per_request` rows each) and a file of them for oha, and the parity check that holds
    its answers to the reference's, `check(client, url, tolerance)`."""

    path: str
    rows: int
    rows_per_request: int
    bodies: list[bytes]
    body_file: Path
    check: Parity


@contextmanager
def validation_requests(models: Path, model: str, batch: int = 1) -> Iterator[Requests]:
    """A model pack's (servebench.packs) Open Inference Protocol requests, or the Titanic record
    API's from reference.jsonl; `batch` rows per request."""
    pack = installed(models, model)
    if pack is not None:
        made = pack_requests(pack, batch)
    else:
        rows = read_reference(models / "reference.jsonl")
        made = record_requests(model, rows, batch)
    with tempfile.TemporaryDirectory(prefix="servebench-") as tmp:
        path, rows_count, per_request, bodies, check = made
        yield Requests(path, rows_count, per_request, bodies, write_bodies(Path(tmp) / "bodies.jsonl", bodies), check)


@dataclass(frozen=True)
class Plan:
    """What of an endpoint to measure."""

    parity: bool = True
    windows: int = 0
    # the endpoint's usual /health p50s (its windows'), for telling a stalled capacity probe
    floors: tuple[float, ...] = ()
    ladder: bool = False
    search_from: float | None = None
    closed_loop: bool = False
    python_client: bool = False
    cost: bool = False

    @classmethod
    def benchmark(cls, windows: int) -> Plan:
        """Everything, with `windows` single-request windows."""
        return cls(windows=windows, ladder=True, closed_loop=True, python_client=True, cost=True)


@dataclass
class EndpointResult:
    """Raw observations of one endpoint (servebench.results.files says what each holds)."""

    framework: str
    model: str
    status: str = "ok"
    reason: str = ""
    parity: dict[str, Any] = field(default_factory=dict)
    windows: Windows = field(default_factory=lambda: {"predict": [], "health": []})
    ladder: list[dict[str, Any]] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    sequential: pd.DataFrame | None = None

    @property
    def correct(self) -> bool:
        return self.status != "incorrect"

    def observations(self) -> dict[str, Any]:
        """What is stored as KEY.observations.json (the sequential requests go to a parquet)."""
        return {k: v for k, v in self.__dict__.items() if k != "sequential"}

    def summary(self) -> dict[str, Any]:
        """The observations with their derived figures, as the report reads them."""
        return derive.summary(self.observations(), self.sequential)


# A window whose /health floor, measured right after it, is more than this many times the
# endpoint's usual floor met a stall of the machine (a neighbour's burst on a shared host), not the
# server: its figures are kept as raw observations, marked, and the window is measured again. One
# start of a server differs from the next by a quarter at most, so twice the floor is a stall.
STALL_FACTOR = 2.0


def native_windows(
    predict: Run,
    health: Run,
    windows: int,
    cpus: str | None,
    runner: Runner = run_oha,
    floors: list[float] | None = None,
) -> Windows:
    """One connection, sequential: `windows` windows of predict, each followed by one of /health,
    so that drift hits both alike. oha's summary of each window, by part. A pair whose /health
    p50 is more than STALL_FACTOR times the median of the floors seen so far (`floors`: the
    endpoint's earlier ones, then this call's) is marked `stalled` and measured again, at most
    `windows` times in all, so a machine that stays slow ends the call rather than stalls it."""
    parts: Windows = {"predict": [], "health": []}
    seen = [f for f in (floors or []) if f == f]
    kept = repeats = 0
    while kept < windows:
        measured = runner(predict, cpus), runner(health, cpus)
        floor = measured[1].get("p50", float("nan"))
        stalled = bool(seen) and repeats < windows and floor > STALL_FACTOR * float(np.median(seen))
        for part, window in zip(("predict", "health"), measured, strict=True):
            parts[part].append({**window, "stalled": stalled})
        if stalled:
            repeats += 1
            continue
        kept += 1
        if floor == floor:
            seen.append(floor)
    return parts


# The /health floor measured after an open-loop step not held: this many requests, after this
# pause (the step's last requests leave the server's queue first). Counted rather than timed so
# that the check costs a fast server next to nothing.
STALL_SETTLE_S = 0.1
STALL_FLOOR_REQUESTS = 50


def stall_check(health: Run, floors: list[float], cpus: str | None, runner: Runner = run_oha) -> StallCheck | None:
    """For a capacity probe not held: the server's /health round trip measured right after it
    (`health`), and whether its p50 is above STALL_FACTOR times the median of `floors` (the
    endpoint's usual), as for a window. None without floors to compare with."""
    usual = [f for f in floors if f == f]
    if not usual:
        return None
    limit = STALL_FACTOR * float(np.median(usual))

    def check() -> bool:
        time.sleep(STALL_SETTLE_S)
        return bool(runner(health, cpus).get("p50", float("nan")) > limit)

    return check


def kept_floors(windows: Windows | None) -> list[float]:
    """The /health p50 of every window not marked stalled."""
    return [float(w["p50"]) for w in (windows or {}).get("health", []) if not w.get("stalled") and "p50" in w]


def benchmark_endpoint(
    target: Target,
    settings: BenchmarkSettings,
    requests: Requests,
    plan: Plan,
    *,
    earlier: Windows | None = None,
    round_: int | None = None,
    runner: Runner = run_oha,
) -> EndpointResult:
    """Measure `plan` of the endpoint at `target`. Windows are marked with `round_` (by default the
    round after the `earlier` windows', which they are kept after); a parity failure ends the
    measurement with status "incorrect". Errors of the generator or the transport propagate."""
    result = EndpointResult(
        target.framework,
        target.model,
        settings={
            **settings.model_dump(),
            "ladder_rates": settings.ladder_rates,
            "pinning": pinning(target),
            "local": target.local,
            "windows_earlier": len((earlier or {}).get("predict", [])),
            "path": requests.path,
            "rows_per_request": requests.rows_per_request,
        },
    )
    cpus = target.client_cpus
    url = f"{target.base_url}{requests.path}"
    # The check of the run's first trial, before anything of this endpoint was timed: the same
    # stack, model and rows, so it is not made again.
    checked = [p for p in (earlier or {}).get("parity") or [] if p.get("ok")]
    if plan.parity and checked:
        result.parity = {**checked[-1], "checked_in_trial": True}
    elif plan.parity:
        with on_client_cores(target), httpx.Client(timeout=30.0) as client:
            result.parity = parity = requests.check(client, url, settings.parity_tolerance)
        if not parity["ok"]:
            result.status = "incorrect"
            result.reason = (
                f"largest difference {parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:g}), "
                f"{parity['label_mismatches']} label mismatches, {parity['errors']} errors {parity['first_error']}"
            )
            return result
    if plan.windows > 0:
        body = requests.body_file
        warm = settings.native_warmup
        warmed = native_windows(
            Run(url, requests=warm, bodies=body), Run(target.health_url, requests=warm), 1, cpus, runner
        )
        here = native_windows(
            Run(url, duration_s=settings.native_window_s, bodies=body),
            Run(target.health_url, duration_s=settings.native_window_s),
            plan.windows,
            cpus,
            runner,
            kept_floors(earlier) or kept_floors(warmed),
        )
        before = earlier or {"predict": [], "health": []}
        mark = (
            round_ if round_ is not None else 1 + max((int(w.get("round", 0)) for w in before["predict"]), default=-1)
        )
        result.windows = {part: [*before[part], *({**w, "round": mark} for w in here[part])] for part in here}
    step = (settings.ladder_step_s, settings.slo_p99_ms, settings.open_loop_connections, cpus, target.pid)
    floors = list(plan.floors) or kept_floors(result.windows) or kept_floors(earlier)
    stalled = stall_check(Run(target.health_url, requests=STALL_FLOOR_REQUESTS), floors, cpus, runner)
    # With ladder_from_peak, the closed loop goes first: its peak says where the ladder starts.
    from_peak = plan.ladder and plan.closed_loop and settings.ladder_from_peak > 0
    if plan.closed_loop:
        result.load = closed_loop_native(
            url, requests.body_file, list(settings.concurrency), settings.load_duration_s, cpus, runner
        )
    if plan.ladder:
        peak = max((float(x.get("achieved_rate") or 0.0) for x in result.load), default=0.0)
        rates = settings.ladder_rates_from(peak) if from_peak else settings.ladder_rates
        result.settings["ladder_rates"] = rates
        result.ladder = run_ladder(url, requests.body_file, rates, *step, settings.ladder_refine, runner, stalled)
    if plan.search_from is not None:
        result.searches.append(
            search_capacity(
                url, requests.body_file, plan.search_from, *step, settings.ladder_refine, runner=runner, stalled=stalled
            )
        )
    cpu_used = None
    if plan.python_client:
        with on_client_cores(target), httpx.Client(timeout=30.0) as client:
            before_cpu = cpu_seconds(target.pid) if target.pid else None
            predict = sequential(client, url, requests.bodies, settings.n_requests, settings.warmup)
            cpu_used = cpu_seconds(target.pid) - before_cpu if target.pid and before_cpu is not None else None
            health = sequential(client, target.health_url, None, settings.n_requests, settings.warmup)
        result.sequential = pd.concat(
            [predict.assign(phase="predict"), health.assign(phase="health")], ignore_index=True
        )
    if plan.cost:
        pid = target.pid
        result.cost = {
            "measured": target.local,
            "peak_rss_mb": peak_rss_bytes(pid) / 2**20 if pid else None,
            "rss_after_mb": rss_bytes(pid) / 2**20 if pid else None,
            "cpu_s_sequential": cpu_used,
            "sequential_requests": settings.n_requests + settings.warmup if plan.python_client else None,
            "startup_s": target.startup_seconds,
        }
    return result
