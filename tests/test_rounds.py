"""Rounds across every endpoint, each starting every server once: single-request windows before the
benchmark (which adds the last), capacity searches after it, all measured by the one endpoint
benchmark. An endpoint that fails parity or whose server does not start is left out of the rounds."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from servebench.bench import client as client_module
from servebench.bench.endpoint import Plan, Requests, benchmark_endpoint
from servebench.bench.ladder import search_capacity
from servebench.bench.oha import Run
from servebench.bench.rounds import capacity_rounds, in_rounds, single_request_rounds
from servebench.bench.target import Target
from servebench.config import DEFAULT_PROFILE, Combination, load_profile
from servebench.results import derive
from servebench.results import files as results
from servebench.servers import ServerError
from servebench.settings import RunSettings, run_settings

WINDOW = {"p50": 1.0, "p90": 1.0, "p99": 1.0, "p99_9": 1.0, "mean_ms": 1.0, "requests": 10, "errors": 0}


def settings(rounds: int = 1, windows: int = 5, capacity: int = 0) -> RunSettings:
    base = run_settings(load_profile(DEFAULT_PROFILE))
    # three bisections, as the searches' figures below assume, whatever the default profile's
    bench = base.benchmark.model_copy(update={"windows": windows, "native_warmup": 1, "ladder_refine": 3})
    return base.model_copy(update={"benchmark": bench, "native_rounds": rounds, "capacity_rounds": capacity})


def window_runner(calls: list[str] | None = None) -> Any:
    """oha answering every single-request window: predict at 2 ms, /health at 0.2 ms."""

    def runner(run: Run, _cpus: str | None) -> dict[str, Any]:
        if calls is not None:
            calls.append(run.url)
        value = 2.0 if "predict" in run.url else 0.2
        return {**WINDOW, "p50": value, "first_error": "", "ok": 10, "url": run.url}

    return runner


def reference(models: Path) -> Path:
    models.mkdir(parents=True, exist_ok=True)
    row = {"Pclass": 1, "Sex": "male", "Age": 30.0, "SibSp": 0, "Parch": 0, "Fare": 7.25, "m1": 0.5}
    (models / "reference.jsonl").write_text(json.dumps(row) + "\n")
    return models


def test_rounds_visit_every_endpoint_in_turn_and_start_each_server_once_a_round() -> None:
    combos = [Combination(f, m) for f in ("a", "b") for m in ("m1", "m2")]
    starts: list[str] = []
    visits: list[tuple[str, int]] = []

    @contextmanager
    def server_for(framework: str) -> Iterator[dict[str, Any]]:
        starts.append(framework)
        yield {"base_url": "http://127.0.0.1:1"}

    def visit(combo: Combination, _server: dict[str, Any], r: int) -> bool:
        visits.append((combo.key, r))
        return True

    dropped = in_rounds(combos, 2, "test", server_for, visit, say=lambda _m: None)
    assert starts == ["a", "b", "a", "b"] and dropped == set()
    keys = [c.key for c in combos]
    assert visits == [(k, 0) for k in keys] + [(k, 1) for k in keys]


def test_with_a_seed_each_round_draws_a_fresh_order_of_servers_and_endpoints() -> None:
    combos = [Combination(f, m) for f in ("a", "b", "c", "d") for m in ("m1", "m2", "m3")]

    def orders(seed: int) -> tuple[list[list[str]], list[str]]:
        starts: list[str] = []
        visits: list[tuple[str, int]] = []

        @contextmanager
        def server_for(framework: str) -> Iterator[dict[str, Any]]:
            starts.append(framework)
            yield {}

        def visit(combo: Combination, _server: dict[str, Any], r: int) -> bool:
            visits.append((combo.key, r))
            return True

        in_rounds(combos, 4, "t", server_for, visit, lambda _m: None, seed=seed)
        return [[k for k, r in visits if r == n] for n in range(4)], starts

    rounds, starts = orders(7)
    keys = sorted(c.key for c in combos)
    assert all(sorted(r) == keys for r in rounds)  # every endpoint once a round
    assert all(sorted(starts[i * 4 : i * 4 + 4]) == ["a", "b", "c", "d"] for i in range(4))  # each server once
    assert len({tuple(r) for r in rounds}) == 4  # a fresh order each round
    assert orders(7) == (rounds, starts) and orders(8)[0] != rounds  # reproducible from its seed


def test_single_request_rounds_keep_each_rounds_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    combos = [Combination(f, "m1") for f in ("a", "b")]
    parity_checks: list[str] = []

    def parity(_client: Any, url: str, *_args: Any) -> dict[str, Any]:
        parity_checks.append(url)
        return {"ok": True}

    monkeypatch.setattr(client_module, "check_parity", parity)

    @contextmanager
    def server_for(framework: str) -> Iterator[dict[str, Any]]:
        yield {"base_url": f"http://127.0.0.1:1/{framework}", "pid": None, "cpus": ""}

    written = single_request_rounds(
        combos, settings(rounds=3, windows=6), reference(tmp_path / "models"), tmp_path, server_for,
        say=lambda _m: None, runner=window_runner(),
    )  # fmt: skip
    # two earlier rounds (the benchmark is the third) of two windows each; parity only in the first
    assert sorted(written) == ["a__m1", "b__m1"]
    assert sorted(parity_checks) == ["http://127.0.0.1:1/a/predict/m1", "http://127.0.0.1:1/b/predict/m1"]
    kept = json.loads(written["a__m1"].read_text())
    assert [w["round"] for w in kept["predict"]] == [0, 0, 1, 1] and len(kept["health"]) == 4
    assert {w["url"] for w in kept["health"]} == {"http://127.0.0.1:1/a/health"}
    # the first trial's check goes with the windows, for the benchmark to take
    assert kept["parity"] == [{"ok": True}]


def test_the_benchmark_takes_the_first_trials_parity_check_rather_than_repeat_it() -> None:
    checks: list[str] = []

    def check(_client: Any, url: str, _tolerance: float) -> dict[str, Any]:
        checks.append(url)
        return {"ok": True, "max_abs_diff": 0.0}

    target = Target("f", "m", "http://x", None, None, None, None)
    requests = Requests("/predict/m", 0, 1, [], Path("/nonexistent"), check)
    earlier: dict[str, Any] = {"predict": [], "health": [], "parity": [{"ok": True, "max_abs_diff": 1e-7}]}
    result = benchmark_endpoint(target, settings().benchmark, requests, Plan(), earlier=earlier)
    assert checks == [] and result.parity["max_abs_diff"] == 1e-7 and result.parity["checked_in_trial"]
    # without a check from the trials (or with a failed one), the benchmark checks the endpoint itself
    for before in (None, {"predict": [], "health": [], "parity": [{"ok": False}]}):
        assert benchmark_endpoint(target, settings().benchmark, requests, Plan(), earlier=before).parity["ok"]
    assert checks == ["http://x/predict/m", "http://x/predict/m"]


def test_an_endpoint_failing_parity_or_a_server_not_starting_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    combos = [Combination("a", "good"), Combination("a", "wrong"), Combination("b", "m")]
    starts: list[str] = []
    monkeypatch.setattr(
        client_module,
        "check_parity",
        lambda _c, url, *_a: {"ok": not url.endswith("wrong"), "max_abs_diff": 1.0, "label_mismatches": 0,
                              "errors": 0, "first_error": "", "tolerance": 1e-4},
    )  # fmt: skip

    @contextmanager
    def server_for(framework: str) -> Iterator[dict[str, Any]]:
        starts.append(framework)
        if framework == "b":
            raise ServerError("b did not start")
        yield {"base_url": "http://127.0.0.1:1", "pid": None}

    said: list[str] = []
    written = single_request_rounds(
        combos, settings(rounds=3, windows=3), reference(tmp_path / "models"), tmp_path, server_for,
        say=said.append, runner=window_runner(),
    )  # fmt: skip
    assert sorted(written) == ["a__good"]
    assert len(json.loads(written["a__good"].read_text())["predict"]) == 2
    assert sorted(starts[:2]) == ["a", "b"] and starts[2:] == ["a"]  # b is not tried again once it failed
    assert any("b did not start" in line for line in said)
    assert any("a__wrong" in line and "native model" in line for line in said)


def test_no_earlier_rounds_without_windows_to_share() -> None:
    assert settings(rounds=1, windows=5).earlier_rounds == 0
    assert settings(rounds=5, windows=5).earlier_rounds == 4
    assert settings(rounds=5, windows=2).earlier_rounds == 1
    assert settings(rounds=5, windows=5).windows_per_round == 1
    assert settings(rounds=3, windows=6).windows_per_round == 2
    assert settings(rounds=5, windows=2).windows_per_round == 1


def test_the_benchmark_adds_its_own_windows_to_the_earlier_ones() -> None:
    calls: list[str] = []
    earlier = {
        part: [{**WINDOW, "p50": v, "first_error": "", "round": r} for r in range(3)]
        for part, v in (("predict", 1.0), ("health", 0.1))
    }
    target = Target("f", "m", "http://x", None, None, None, None)
    requests = Requests("/predict/m", 0, 1, [], Path("/nonexistent"), lambda *_a: {"ok": True})
    result = benchmark_endpoint(
        target, settings().benchmark, requests, Plan(parity=False, windows=2), earlier=earlier,
        runner=window_runner(calls),
    )  # fmt: skip
    # the warm-up, then two windows of predict each followed by /health
    assert calls == ["http://x/predict/m", "http://x/health"] * 3
    got = derive.native_summary(result.windows)
    assert got["predict"]["p50"]["windows"] == 5 and got["predict"]["p50"]["values"] == [1.0, 1.0, 1.0, 2.0, 2.0]
    # the earlier windows' rounds are kept, the benchmark's own are the round after the last
    assert got["predict"]["p50"]["value_rounds"] == [0, 1, 2, 3, 3] and got["predict"]["p50"]["rounds"] == 4
    assert got["health"]["requests"] == 50
    assert result.settings["windows_earlier"] == 3 and result.ladder == [] and result.sequential is None


def knee_runner(knee: float, calls: list[float] | None = None) -> Any:
    """oha against a server that holds every rate up to `knee` and misses p99 above it."""

    def runner(run: Run, _cpus: str | None) -> dict[str, Any]:
        if calls is not None:
            calls.append(float(run.rate or 0))
        ok = run.rate is not None and run.rate <= knee
        return {
            "offered_rate": run.rate,
            "achieved_rate": run.rate if ok else 0.9 * (run.rate or 0),
            "errors": 0,
            "ok": 100,
            "p50": 1.0,
            "p90": 2.0,
            "p99": 3.0 if ok else 300.0,
            "p99_9": 4.0,
        }

    return runner


def test_a_capacity_search_starts_at_the_earlier_estimate_and_lands_on_the_ladders_grid() -> None:
    calls: list[float] = []
    got = search_capacity("http://x/p", None, 1000.0, 1, 10.0, 8, None, refine=3, runner=knee_runner(1100, calls))
    # the earlier estimate holds, the next ladder rate up does not, three bisections between them
    assert calls == [1000.0, 1414.0, 1189.0, 1090.0, 1138.0]
    assert got["rate"] == 1090.0 and {s["step"] for s in got["steps"]} == {"search"}
    # every estimate lands on the 2^(1/16) grid the ladder's bisections use
    assert round(16 * math.log2(got["rate"] / 1000.0)) == 2


def test_a_capacity_search_is_not_bounded_by_a_ladder_that_met_a_slow_stretch() -> None:
    # the ladder said 1000, the server now holds 3000: the search climbs to it
    assert search_capacity("http://x/p", None, 1000.0, 1, 10.0, 8, None, runner=knee_runner(3000))["rate"] == 2953.0
    # and a server now slower than the ladder said goes down as far as it must
    assert search_capacity("http://x/p", None, 1000.0, 1, 10.0, 8, None, runner=knee_runner(500))["rate"] == 500.0
    # a server that holds nothing any more gives no capacity rather than a guess
    assert search_capacity("http://x/p", None, 1000.0, 1, 10.0, 8, None, runner=knee_runner(0))["rate"] == 0.0


def test_combined_capacity_is_the_median_of_estimates_with_their_range() -> None:
    cap = {"rate": 1000.0, "reached_top": False, "step": {"cpu_ms_per_request": 0.5}}
    got = derive.combined_capacity(cap, [{"rate": 1189.0, "steps": []}, {"rate": 1090.0, "steps": []}])
    assert (got["rate"], got["low"], got["high"]) == (1090.0, 1000.0, 1189.0)
    assert got["ladder_rate"] == 1000.0 and got["step"] == cap["step"] and got["cores_per_10k"] == 10_000 / 1090


def ladder_observations(framework: str, model: str, held: list[float], missed: list[float]) -> dict[str, Any]:
    doc: dict[str, Any] = {f: [] for f in results.OBSERVATION_FIELDS}
    steps = [{"offered_rate": r, "held": True} for r in held] + [{"offered_rate": r, "held": False} for r in missed]
    doc.update(framework=framework, model=model, status="ok", reason="", ladder=steps, cost={}, parity={})
    doc.update(settings={"slo_p99_ms": 10.0}, environment={}, windows={})
    return doc


def test_capacity_rounds_start_each_server_once_a_round_and_add_their_searches(tmp_path: Path) -> None:
    res, models = tmp_path / "results", reference(tmp_path / "models")
    combos = [Combination("a", "m1"), Combination("a", "m2"), Combination("b", "m1"), Combination("c", "m1")]
    docs = [
        ladder_observations("a", "m1", [500.0, 1000.0], [1414.0]),
        ladder_observations("a", "m2", [], [250.0]),  # held no rate: nothing to bracket
        ladder_observations("b", "m1", [16000.0, 32000.0], []),  # the top of the ladder: nothing either
        ladder_observations("c", "m1", [2000.0], [2828.0]),
    ]
    for d in docs:
        results.write(res, f"{d['framework']}__{d['model']}", d)
    starts: list[str] = []

    @contextmanager
    def server_for(framework: str) -> Iterator[dict[str, Any]]:
        starts.append(framework)
        if framework == "c" and starts.count("c") > 1:
            raise ServerError("c did not start")
        yield {"base_url": "http://127.0.0.1:1", "pid": None, "cpus": ""}

    updated = capacity_rounds(
        combos, settings(capacity=2), models, res, server_for, say=lambda _m: None, runner=knee_runner(1100)
    )
    assert sorted(starts[:2]) == sorted(starts[2:]) == ["a", "c"]
    assert updated == ["a__m1"]  # c's second round never ran: it keeps its ladder's figure
    stored = results.read_observations(res / "a__m1.observations.json")
    assert len(stored["searches"]) == 2 and "capacity" not in stored  # raw searches, no figure stored
    cap = results.read_summary(res / "a__m1.observations.json")["capacity"]
    assert cap["estimates"] == [1000.0, 1090.0, 1090.0] and cap["rate"] == 1090.0
    assert (cap["low"], cap["high"], cap["ladder_rate"]) == (1000.0, 1090.0, 1000.0)
    assert results.read_summary(res / "c__m1.observations.json")["capacity"]["rate"] == 2000.0
    assert "estimates" not in results.read_summary(res / "a__m2.observations.json")["capacity"]


def test_a_capacity_probe_that_met_a_stall_is_measured_again_instead_of_counted() -> None:
    calls: list[float] = []
    stalls = [True]  # the /health floor after the first step not held shows a stall, once

    def stalled() -> bool:
        return stalls.pop(0) if stalls else False

    # the machine stalls during the first probe at 1000 (which the server holds when it is not)
    answers = iter([False])

    def runner(run: Run, cpus: str | None) -> dict[str, Any]:
        ok = next(answers, True) and run.rate <= 1100
        return knee_runner(10**9, calls)(run, cpus) | ({} if ok else {"achieved_rate": 0.5 * run.rate, "p99": 300.0})

    got = search_capacity("http://x/p", None, 1000.0, 1, 10.0, 8, None, refine=0, runner=runner, stalled=stalled)
    steps = got["steps"]
    assert [(s["offered_rate"], bool(s.get("stalled")), s["held"]) for s in steps[:2]] == [
        (1000.0, True, False),
        (1000.0, False, True),
    ]
    # the stalled probe did not count: the search went up from 1000, as if it had held at once
    assert got["rate"] == 1000.0 and calls[:3] == [1000.0, 1000.0, 1414.0]


def test_a_probe_not_held_on_a_quiet_machine_is_counted_and_a_slow_machine_ends_the_repeats() -> None:
    checks: list[int] = []

    def quiet() -> bool:
        checks.append(1)
        return False

    got = search_capacity(
        "http://x/p", None, 1000.0, 1, 10.0, 8, None, refine=0, runner=knee_runner(500), stalled=quiet
    )
    assert got["rate"] == 500.0 and not any(s.get("stalled") for s in got["steps"])
    assert len(checks) == sum(not s["held"] for s in got["steps"])  # one floor per probe not held
    # a machine that stays stalled: each rate is measured STALL_REPEATS + 1 times, then counted
    stuck = search_capacity(
        "http://x/p", None, 1000.0, 1, 10.0, 8, None, refine=0, runner=knee_runner(0), stalled=lambda: True
    )
    assert stuck["rate"] == 0.0
    first = [s for s in stuck["steps"] if s["offered_rate"] == 1000.0]
    assert [bool(s.get("stalled")) for s in first] == [True, True, False]


def test_a_stall_is_a_health_floor_above_twice_the_endpoints_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    from servebench.bench import endpoint

    monkeypatch.setattr(endpoint, "STALL_SETTLE_S", 0.0)

    floors = iter([0.25, 0.15])

    def health(_run: Run, _cpus: str | None) -> dict[str, Any]:
        return {"p50": next(floors)}

    assert endpoint.stall_check(Run("http://x/health"), [], None, health) is None  # nothing to compare with
    check = endpoint.stall_check(Run("http://x/health"), [0.1, 0.1, 0.12], None, health)
    assert check is not None
    assert check() is True  # 0.25 ms > 2 × 0.1 ms
    assert check() is False  # 0.15 ms


def test_a_capacity_round_is_a_trial_of_windows_too(tmp_path: Path) -> None:
    run = settings(rounds=3, windows=3, capacity=1)
    # one trial before the benchmark, the benchmark's, one after it (the capacity round's)
    assert (run.earlier_rounds, run.later_rounds, run.benchmark_windows) == (1, 1, 2)
    assert settings(rounds=3, windows=3).earlier_rounds == 2  # no capacity rounds: all before
    res, models = tmp_path / "results", reference(tmp_path / "models")
    docs = [
        ladder_observations("a", "m1", [500.0, 1000.0], [1414.0]),
        ladder_observations("b", "m1", [16000.0, 32000.0], []),  # the top of the ladder: no search
    ]
    for d in docs:
        d["windows"] = {
            part: [{**WINDOW, "p50": v, "first_error": "", "round": r} for r in (0, 1)]
            for part, v in (("predict", 2.0), ("health", 0.2))
        }
        results.write(res, f"{d['framework']}__{d['model']}", d)
    knee, window = knee_runner(1100), window_runner()

    def runner(run_: Run, cpus: str | None) -> dict[str, Any]:
        return knee(run_, cpus) if run_.rate else window(run_, cpus)

    @contextmanager
    def server_for(_framework: str) -> Iterator[dict[str, Any]]:
        yield {"base_url": "http://127.0.0.1:1", "pid": None, "cpus": ""}

    combos = [Combination("a", "m1"), Combination("b", "m1")]
    assert capacity_rounds(combos, run, models, res, server_for, say=lambda _m: None, runner=runner) == ["a__m1"]
    for key in ("a__m1", "b__m1"):
        stored = results.read_observations(res / f"{key}.observations.json")
        assert [w["round"] for w in stored["windows"]["predict"]] == [0, 1, 2]  # the third trial's window
    assert len(results.read_observations(res / "a__m1.observations.json")["searches"]) == 1
    assert not results.read_observations(res / "b__m1.observations.json").get("searches")
