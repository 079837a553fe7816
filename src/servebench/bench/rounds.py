"""Measurements in rounds across every endpoint of a run.

Measuring one endpoint back to back and then the next lets the machine's drift (a neighbour's load
on a shared host, over minutes) fall on some endpoints and not others, and a ratio between two
stacks then carries it. In rounds (trials), each round measures every endpoint in turn, so every
endpoint is sampled across the whole run and drift hits all of them alike. Which server answers a
round is `server_for`'s affair: under run_all.sh, one kept up through the rounds
(servebench.servers.ServerPool), or started for its turn where its idle work disturbs the others.

- Single-request rounds, before the benchmark: each gives every endpoint its share of windows
  (`<key>.windows.json` in the results, with the first round's parity check); the benchmark adds
  its own as the next round.
- Capacity rounds, after it: each searches every endpoint's capacity again, from the ladder's, as
  far up or down as the server holds, and (`later_rounds`) measures its share of windows; the
  searches and windows are added to the endpoint's observations and the capacity reported is
  derived from the ladder's and theirs (servebench.results.derive). A run visits every endpoint
  once a trial.

Both measure through servebench.bench.endpoint.benchmark_endpoint, as the benchmark does."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx

from servebench.bench.endpoint import (
    EndpointResult,
    Plan,
    Requests,
    Runner,
    benchmark_endpoint,
    kept_floors,
    validation_requests,
)
from servebench.bench.oha import run_oha
from servebench.bench.target import running_target
from servebench.config import Combination
from servebench.results import derive
from servebench.results import files as result_files
from servebench.results.derive import Windows
from servebench.servers import ServerError
from servebench.settings import RunSettings

ServerFor = Callable[[str], AbstractContextManager[dict[str, Any]]]
Say = Callable[[str], None]


def windows_path(results: Path, combo: Combination) -> Path:
    return results / f"{combo.key}.windows.json"


def _frameworks(combos: list[Combination], shuffle: random.Random | None) -> Iterator[tuple[str, list[Combination]]]:
    frameworks = list(dict.fromkeys(c.framework for c in combos))
    if shuffle is not None:
        shuffle.shuffle(frameworks)
    for framework in frameworks:
        todo = [c for c in combos if c.framework == framework]
        if shuffle is not None:
            shuffle.shuffle(todo)
        yield framework, todo


def each_server(
    combos: list[Combination],
    server_for: ServerFor,
    visit: Callable[[Combination, dict[str, Any]], bool],
    say: Say = print,
    shuffle: random.Random | None = None,
) -> set[str]:
    """One round: every server of `combos` taken once (`server_for`), each of its endpoints
    visited in turn, in the order `shuffle` draws (servers, then each server's endpoints) or as
    given. Returns the endpoints to leave out of later rounds: those `visit` turned down, and all
    of a server that did not start (the benchmark reports it)."""
    dropped: set[str] = set()
    for framework, todo in _frameworks(combos, shuffle):
        say(f"   {framework}: {', '.join(c.model for c in todo)}")
        try:
            with server_for(framework) as server:
                dropped.update(combo.key for combo in todo if not visit(combo, server))
        except ServerError as exc:
            say(f"   {framework}: {exc}; its endpoints are left out of the rounds")
            dropped.update(combo.key for combo in todo)
    return dropped


def in_rounds(
    combos: list[Combination],
    rounds: int,
    title: str,
    server_for: ServerFor,
    visit: Callable[[Combination, dict[str, Any], int], bool],
    say: Say = print,
    of: int | None = None,
    seed: int | None = None,
) -> set[str]:
    """`rounds` rounds of `visit(combo, server, round)`, announced as rounds `of` that many (by
    default `rounds`); an endpoint turned down (or whose server did not start) is left out of
    the later ones. Returns the endpoints left out. With a `seed`, each round takes the servers,
    and each server its endpoints, in a fresh random order (reproducible from the seed): a
    position early or late in a round, after a given neighbour, is then no one endpoint's lot
    (randomized multiple interleaved trials)."""
    dropped: set[str] = set()
    shuffle = random.Random(seed) if seed is not None else None
    for r in range(rounds):
        say(f"== {title} round {r + 1}/{of or rounds} across every endpoint")
        todo = [c for c in combos if c.key not in dropped]
        dropped |= each_server(todo, server_for, lambda combo, server, r=r: visit(combo, server, r), say, shuffle)
    return dropped


def single_request_rounds(
    combos: list[Combination],
    settings: RunSettings,
    models: Path,
    results: Path,
    server_for: ServerFor,
    say: Say = print,
    runner: Runner = run_oha,
) -> dict[str, Path]:
    """The rounds before the benchmark; returns each endpoint's windows file."""
    if settings.earlier_rounds == 0 or not combos:
        return {}
    kept: dict[str, Windows] = {}
    with ExitStack() as stack:
        requests = _requests_by_model(stack, combos, models, settings)

        def visit(combo: Combination, server: dict[str, Any], r: int) -> bool:
            plan = Plan(parity=r == 0, windows=settings.windows_per_round)
            got = _measure(combo, server, settings, requests[combo.model], plan, say, runner, round_=r)
            if got is None or not got.correct:
                if got is not None:
                    say(f"   {combo.key}: not the native model's answers; the benchmark reports it")
                kept.pop(combo.key, None)
                return False
            into = kept.setdefault(combo.key, {"predict": [], "health": []})
            for part, runs in got.windows.items():
                into[part].extend(runs)
            if got.parity:
                # the benchmark takes the first trial's check rather than repeat it
                into["parity"] = [got.parity]
            return True

        # the benchmark's own windows, and the capacity rounds', follow these rounds
        rounds = settings.earlier_rounds
        dropped = in_rounds(
            combos,
            rounds,
            "single-request",
            server_for,
            visit,
            say,
            of=rounds + 1 + settings.later_rounds,
            seed=settings.benchmark.seed,
        )
    written = {}
    for combo in combos:
        if combo.key in kept and combo.key not in dropped:
            path = windows_path(results, combo)
            path.write_text(json.dumps(kept[combo.key]) + "\n")
            written[combo.key] = path
    return written


def capacity_rounds(
    combos: list[Combination],
    settings: RunSettings,
    models: Path,
    results: Path,
    server_for: ServerFor,
    say: Say = print,
    runner: Runner = run_oha,
) -> list[str]:
    """The rounds after the benchmark: each endpoint whose ladder ended inside it gets a search a
    round, added to its observations once every round has one; with `later_rounds`, every
    endpoint also gets its share of single-request windows, the next round's, added as measured.
    Returns the keys updated."""
    observed = {
        c.key: result_files.read_observations(path)
        for c in combos
        if (path := result_files.observations_path(results, c.key)).is_file()
    }
    ladder = {key: derive.endpoint_capacity(obs) for key, obs in observed.items() if obs.get("status") == "ok"}
    search = {c.key for c in combos if c.key in ladder and derive.searchable(ladder[c.key])}
    windows = settings.windows_per_round if settings.later_rounds > 0 else 0
    todo = [c for c in combos if c.key in search or (windows and c.key in ladder)]
    if settings.capacity_rounds <= 0 or not todo:
        return []
    found: dict[str, list[dict[str, Any]]] = {c.key: [] for c in todo}
    with ExitStack() as stack:
        requests = _requests_by_model(stack, todo, models, settings)

        def visit(combo: Combination, server: dict[str, Any], r: int) -> bool:
            observations = observed[combo.key]
            plan = Plan(
                parity=False,
                windows=windows if r < settings.later_rounds else 0,
                search_from=float(ladder[combo.key]["rate"]) if combo.key in search else None,
                floors=tuple(kept_floors(observations.get("windows"))),
            )
            got = _measure(combo, server, settings, requests[combo.model], plan, say, runner, earlier=observations)
            if got is None:
                return False
            found[combo.key].extend(got.searches)
            if plan.windows:
                # the benchmark's windows and the rounds', this round's marked as the next
                observations["windows"] = got.windows
                result_files.write(results, combo.key, observations)
            return True

        # another seed than the single-request rounds': not the same orders again
        seed = settings.benchmark.seed + 1
        title = "single-request and capacity" if windows else "capacity"
        dropped = in_rounds(todo, settings.capacity_rounds, title, server_for, visit, say, seed=seed)
    updated = []
    for combo in todo:
        # Only complete sets: an endpoint whose server stopped starting keeps its ladder's figure.
        if combo.key not in search or combo.key in dropped or len(found[combo.key]) < settings.capacity_rounds:
            continue
        observations = observed[combo.key]
        observations["searches"] = [*observations.get("searches", []), *found[combo.key]]
        result_files.write(results, combo.key, observations)
        updated.append(combo.key)
    return updated


def _requests_by_model(
    stack: ExitStack, combos: list[Combination], models: Path, settings: RunSettings
) -> dict[str, Requests]:
    return {
        model: stack.enter_context(validation_requests(models, model, settings.benchmark.batch))
        for model in dict.fromkeys(c.model for c in combos)
    }


def _measure(
    combo: Combination,
    server: dict[str, Any],
    settings: RunSettings,
    requests: Requests,
    plan: Plan,
    say: Say,
    runner: Runner,
    round_: int | None = None,
    earlier: dict[str, Any] | None = None,
) -> EndpointResult | None:
    """One endpoint's part of a round; None (said why) when the generator or the transport failed:
    the benchmark then measures it alone. `earlier`: its observations so far, whose windows any
    measured now are added to."""
    target = running_target(combo.framework, combo.model, server)
    before = (earlier or {}).get("windows") or None
    try:
        return benchmark_endpoint(
            target, settings.benchmark, requests, plan, earlier=before, round_=round_, runner=runner
        )
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        say(f"   {combo.key}: {exc}; left out of the later rounds")
        return None
