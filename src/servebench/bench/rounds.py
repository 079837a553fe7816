"""Single-request windows in rounds across every endpoint of a run.

Measuring one endpoint's windows back to back and then the next endpoint's lets the machine's
drift (a neighbour's load on a shared host, over minutes) fall on some endpoints and not others,
and a ratio between two stacks then carries it. In rounds, each round starts every server once
and gives each of its endpoints its share of windows; the benchmark itself is the last round.
So every endpoint is sampled across the whole run, from several starts of its server, and drift
hits all of them alike. The windows of the earlier rounds are kept per endpoint
(`<key>.windows.json` in the results) for the benchmark notebook to add its own to."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from servebench.bench.client import check_parity, payloads, read_reference
from servebench.bench.cpus import client_cpus
from servebench.bench.measure import Windows, native_windows, windows_per_round
from servebench.bench.oha import Run, run_oha, write_bodies
from servebench.config import Combination
from servebench.servers import ServerError

ServerFor = Callable[[str], AbstractContextManager[dict[str, Any]]]


@dataclass(frozen=True)
class RoundSettings:
    """From the benchmark notebook's parameters, so that the rounds measure what it measures."""

    rounds: int
    windows: int
    window_s: float
    warmup: int
    parity_tolerance: float

    @property
    def earlier_rounds(self) -> int:
        """Rounds before the benchmark's own: none unless there are windows to share out."""
        return max(0, min(self.rounds, self.windows) - 1)


def windows_path(results: Path, combo: Combination) -> Path:
    return results / f"{combo.key}.windows.json"


def _frameworks(combos: list[Combination]) -> Iterator[tuple[str, list[Combination]]]:
    for framework in dict.fromkeys(c.framework for c in combos):
        yield framework, [c for c in combos if c.framework == framework]


def each_server(
    combos: list[Combination],
    server_for: ServerFor,
    visit: Callable[[Combination, dict[str, Any]], bool],
    say: Callable[[str], None] = print,
) -> set[str]:
    """One round: every server of `combos` started once (`server_for`), each of its endpoints
    visited in turn. Returns the endpoints to leave out of later rounds: those `visit` turned
    down, and all of a server that did not start (the benchmark reports it)."""
    dropped: set[str] = set()
    for framework, todo in _frameworks(combos):
        say(f"   {framework}: {', '.join(c.model for c in todo)}")
        try:
            with server_for(framework) as server:
                dropped.update(combo.key for combo in todo if not visit(combo, server))
        except ServerError as exc:
            say(f"   {framework}: {exc}; its endpoints are left out of the rounds")
            dropped.update(combo.key for combo in todo)
    return dropped


@contextmanager
def validation_bodies(models: Path) -> Iterator[tuple[list[dict[str, Any]], Path]]:
    """The validation rows and a file of request bodies drawn from them, as the benchmark sends."""
    rows = read_reference(models / "reference.jsonl")
    with tempfile.TemporaryDirectory(prefix="servebench-rounds-") as tmp:
        yield rows, write_bodies(Path(tmp) / "bodies.jsonl", payloads(rows))


def measure_rounds(
    combos: list[Combination],
    settings: RoundSettings,
    server_for: ServerFor,
    endpoint: Callable[[Combination, dict[str, Any], bool], Windows | None],
    say: Callable[[str], None] = print,
) -> dict[str, Windows]:
    """The earlier rounds: each starts every server once (`server_for`) and measures each of its
    endpoints (`endpoint(combo, server, first)` → windows, or None to leave the endpoint out of
    later rounds: it failed parity or a window). A server that does not start is left out too;
    the benchmark itself reports it."""
    kept: dict[str, Windows] = {}
    dropped: set[str] = set()
    for r in range(settings.earlier_rounds):
        say(f"== single-request round {r + 1}/{settings.earlier_rounds + 1} across every endpoint")

        def visit(combo: Combination, server: dict[str, Any], first: bool = r == 0, rnd: int = r) -> bool:
            got = endpoint(combo, server, first)
            if got is not None:
                into = kept.setdefault(combo.key, {"predict": [], "health": []})
                for part, runs in got.items():
                    into[part].extend({**w, "round": rnd} for w in runs)
            return got is not None

        dropped |= each_server([c for c in combos if c.key not in dropped], server_for, visit, say)
        for key in dropped:
            kept.pop(key, None)
    return kept


def native_rounds(
    combos: list[Combination],
    settings: RoundSettings,
    models: Path,
    results: Path,
    server_for: ServerFor,
    say: Callable[[str], None] = print,
    runner: Callable[..., dict[str, Any]] = run_oha,
) -> dict[str, Path]:
    """The earlier rounds against real servers; returns each endpoint's windows file."""
    if settings.earlier_rounds == 0 or not combos:
        return {}
    per_round = windows_per_round(settings.windows, settings.rounds)
    with validation_bodies(models) as (rows, bodies), httpx.Client(timeout=30.0) as client:

        def endpoint(combo: Combination, server: dict[str, Any], first: bool) -> Windows | None:
            base = str(server["base_url"]).rstrip("/")
            predict_url, health_url = f"{base}/predict/{combo.model}", f"{base}/health"
            cpus = client_cpus(str(server.get("cpus") or "") or None)
            try:
                # Nothing is timed before the endpoint is shown to answer correctly.
                if first and not check_parity(client, predict_url, combo.model, rows, settings.parity_tolerance)["ok"]:
                    say(f"   {combo.key}: not the native model's answers; the benchmark reports it")
                    return None
                native_windows(
                    Run(predict_url, requests=settings.warmup, bodies=bodies),
                    Run(health_url, requests=settings.warmup),
                    1,
                    cpus,
                    runner,
                )
                return native_windows(
                    Run(predict_url, duration_s=settings.window_s, bodies=bodies),
                    Run(health_url, duration_s=settings.window_s),
                    per_round,
                    cpus,
                    runner,
                )
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                say(f"   {combo.key}: {exc}; the benchmark measures it alone")
                return None

        kept = measure_rounds(combos, settings, server_for, endpoint, say)
    written = {}
    for combo in combos:
        if combo.key in kept:
            path = windows_path(results, combo)
            path.write_text(json.dumps(kept[combo.key]) + "\n")
            written[combo.key] = path
    return written
