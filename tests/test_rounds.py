"""Rounds across every endpoint, each starting every server once: single-request windows before the
benchmark (which adds the last), capacity searches after it. An endpoint that fails parity or
whose server does not start is left out of the rounds."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from servebench.bench import results
from servebench.bench.capacity_rounds import CapacitySettings, capacity_rounds, combined
from servebench.bench.measure import Windows, native_single, search_capacity, windows_per_round
from servebench.bench.oha import Run
from servebench.bench.rounds import RoundSettings, measure_rounds
from servebench.config import Combination
from servebench.servers import ServerError

from .conftest import ROOT


def one_window(tag: str) -> Windows:
    return {"predict": [{"p50": 1.0, "tag": tag}], "health": [{"p50": 0.5, "tag": tag}]}


def settings(rounds: int, windows: int) -> RoundSettings:
    return RoundSettings(rounds=rounds, windows=windows, window_s=1.0, warmup=1, parity_tolerance=1e-4)


def test_rounds_visit_every_endpoint_in_turn_and_start_each_server_once_a_round() -> None:
    combos = [Combination(f, m) for f in ("a", "b") for m in ("m1", "m2")]
    starts: list[str] = []
    visits: list[tuple[str, bool]] = []

    @contextmanager
    def server_for(framework: str) -> Iterator[dict[str, Any]]:
        starts.append(framework)
        yield {"base_url": "http://127.0.0.1:1"}

    def endpoint(combo: Combination, _server: dict[str, Any], first: bool) -> Windows:
        visits.append((combo.key, first))
        return one_window(f"{combo.key}/{len(visits)}")

    kept = measure_rounds(combos, settings(rounds=3, windows=5), server_for, endpoint, say=lambda _m: None)
    # two earlier rounds (the benchmark is the third), each across every endpoint
    assert starts == ["a", "b", "a", "b"]
    keys = [c.key for c in combos]
    assert visits == [(k, True) for k in keys] + [(k, False) for k in keys]
    assert sorted(kept) == sorted(keys)
    assert [w["tag"] for w in kept["a__m1"]["predict"]] == ["a__m1/1", "a__m1/5"]
    assert [w["round"] for w in kept["a__m1"]["predict"]] == [0, 1]
    assert len(kept["b__m2"]["health"]) == 2


def test_an_endpoint_failing_parity_or_a_server_not_starting_is_left_out() -> None:
    combos = [Combination("a", "good"), Combination("a", "wrong"), Combination("b", "m")]
    starts: list[str] = []

    @contextmanager
    def server_for(framework: str) -> Iterator[dict[str, Any]]:
        starts.append(framework)
        if framework == "b":
            raise ServerError("b did not start")
        yield {}

    said: list[str] = []
    kept = measure_rounds(
        combos,
        settings(rounds=3, windows=3),
        server_for,
        lambda combo, _s, _first: None if combo.model == "wrong" else one_window(combo.key),
        say=said.append,
    )
    assert sorted(kept) == ["a__good"] and len(kept["a__good"]["predict"]) == 2
    assert starts == ["a", "b", "a"]  # b is not tried again once it failed
    assert any("b did not start" in line for line in said)


def test_no_earlier_rounds_without_windows_to_share() -> None:
    assert settings(rounds=1, windows=5).earlier_rounds == 0
    assert settings(rounds=5, windows=5).earlier_rounds == 4
    assert settings(rounds=5, windows=2).earlier_rounds == 1
    assert windows_per_round(5, 5) == 1 and windows_per_round(6, 3) == 2 and windows_per_round(2, 5) == 1


def test_the_benchmark_adds_its_own_windows_to_the_earlier_ones() -> None:
    calls: list[str] = []

    def runner(run: Run, _cpus: str | None) -> dict[str, Any]:
        calls.append(run.url)
        value = 2.0 if "predict" in run.url else 0.2
        return {"p50": value, "p90": value, "p99": value, "p99_9": value, "mean_ms": value} | {
            "requests": 10,
            "errors": 0,
            "first_error": "",
        }

    earlier = {
        part: [
            {"p50": v, "p90": v, "p99": v, "p99_9": v, "mean_ms": v, "requests": 10, "errors": 0, "first_error": ""}
            | {"round": r}
            for r in range(3)
        ]
        for part, v in (("predict", 1.0), ("health", 0.1))
    }
    got = native_single(Run("http://x/predict/m"), Run("http://x/health"), 5, None, runner=runner, earlier=earlier)
    assert calls == ["http://x/predict/m", "http://x/health"] * 2
    assert got["predict"]["p50"]["windows"] == 5 and got["predict"]["p50"]["values"] == [1.0, 1.0, 1.0, 2.0, 2.0]
    # the earlier windows' rounds are kept, the benchmark's own are the round after the last
    assert got["predict"]["p50"]["value_rounds"] == [0, 1, 2, 3, 3] and got["predict"]["p50"]["rounds"] == 4
    assert got["health"]["requests"] == 50


@pytest.mark.servers
@pytest.mark.e2e
def test_run_all_measures_windows_and_capacity_in_rounds(artifacts: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(artifacts["models"], out / "models")
    profile = tmp_path / "rounds.yaml"
    profile.write_text(f"extends: {ROOT / 'params' / 'quick.yaml'}\nnative_rounds: 3\ncapacity_rounds: 1\n")
    args = ["--profile", str(profile), "--skip-train", "--frameworks", "rust-ort", "--models", "pytorch_onnx"]
    run = subprocess.run(
        [sys.executable, "-m", "servebench.orchestrate", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "single-request round 1/3" in run.stdout and "single-request round 2/3" in run.stdout
    summary = json.loads((out / "results" / "rust-ort__pytorch_onnx.summary.json").read_text())
    assert summary["settings"]["windows_earlier"] == 2
    assert summary["native"]["predict"]["p50"]["windows"] == 3 and summary["native"]["predict"]["p50"]["rounds"] == 3
    assert summary["native"]["predict"]["errors"] == 0
    earlier = json.loads((out / "results" / "rust-ort__pytorch_onnx.windows.json").read_text())
    assert len(earlier["predict"]) == len(earlier["health"]) == 2
    assert all(w["ok"] > 0 for w in earlier["predict"])
    # and after the benchmark, one capacity search around the ladder's estimate
    assert "capacity round 1/1" in run.stdout
    cap = summary["capacity"]
    assert len(cap["estimates"]) == 2 and cap["estimates"][0] == cap["ladder_rate"]
    assert (
        cap["low"] <= cap["rate"] <= cap["high"]
        and cap["searches"][0]["steps"][0]["offered_rate"] == cap["ladder_rate"]
    )


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
    got = combined(cap, [{"rate": 1189.0, "steps": []}, {"rate": 1090.0, "steps": []}])
    assert (got["rate"], got["low"], got["high"]) == (1090.0, 1000.0, 1189.0)
    assert got["ladder_rate"] == 1000.0 and got["step"] == cap["step"] and got["cores_per_10k"] == 10_000 / 1090


def ladder_summary(framework: str, model: str, rate: float, **capacity: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {f: {} for f in results.SUMMARY_FIELDS}
    doc.update(framework=framework, model=model, status="ok", reason="", ladder=[])
    doc["capacity"] = {"rate": rate, "reached_top": False, "slo_p99_ms": 10.0, **capacity}
    return doc


def test_capacity_rounds_start_each_server_once_a_round_and_update_the_summaries(tmp_path: Path) -> None:
    res, models = tmp_path / "results", tmp_path / "models"
    models.mkdir()
    (models / "reference.jsonl").write_text(
        json.dumps({"Pclass": 1, "Sex": "male", "Age": 30.0, "SibSp": 0, "Parch": 0, "Fare": 7.25}) + "\n"
    )
    combos = [Combination("a", "m1"), Combination("a", "m2"), Combination("b", "m1"), Combination("c", "m1")]
    docs = [
        ladder_summary("a", "m1", 1000.0),
        ladder_summary("a", "m2", 0.0),  # held no rate: nothing to bracket
        ladder_summary("b", "m1", 32000.0, reached_top=True),  # the top of the ladder: nothing either
        ladder_summary("c", "m1", 2000.0),
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

    capacity_settings = CapacitySettings(rounds=2, step_s=1, slo_p99_ms=10.0, connections=8, refine=3)
    updated = capacity_rounds(
        combos, capacity_settings, models, res, server_for, say=lambda _m: None, runner=knee_runner(1100)
    )
    assert starts == ["a", "c", "a", "c"]
    assert updated == ["a__m1"]  # c's second round never ran: it keeps its ladder's figure
    cap = json.loads((res / "a__m1.summary.json").read_text())["capacity"]
    assert cap["estimates"] == [1000.0, 1090.0, 1090.0] and cap["rate"] == 1090.0
    assert (cap["low"], cap["high"], cap["ladder_rate"]) == (1000.0, 1090.0, 1000.0)
    assert len(cap["searches"]) == 2
    assert json.loads((res / "c__m1.summary.json").read_text())["capacity"]["rate"] == 2000.0
    assert "estimates" not in json.loads((res / "a__m2.summary.json").read_text())["capacity"]
