"""Single-request windows in rounds across every endpoint: each round starts every server once and
visits each endpoint, the benchmark adds the last window, and an endpoint that fails parity or
whose server does not start is left to the benchmark to report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from servebench.bench.measure import Windows, native_single, windows_per_round
from servebench.bench.native import Run
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
        part: [{"p50": v, "p90": v, "p99": v, "p99_9": v, "mean_ms": v, "requests": 10, "errors": 0, "first_error": ""}]
        * 3
        for part, v in (("predict", 1.0), ("health", 0.1))
    }
    got = native_single(Run("http://x/predict/m"), Run("http://x/health"), 5, None, runner=runner, earlier=earlier)
    assert calls == ["http://x/predict/m", "http://x/health"] * 2
    assert got["predict"]["p50"]["windows"] == 5 and got["predict"]["p50"]["values"] == [1.0, 1.0, 1.0, 2.0, 2.0]
    assert got["health"]["requests"] == 50


@pytest.mark.servers
@pytest.mark.e2e
def test_run_all_measures_windows_in_rounds(artifacts: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(artifacts["models"], out / "models")
    profile = tmp_path / "rounds.yaml"
    profile.write_text(f"extends: {ROOT / 'params' / 'quick.yaml'}\nnative_rounds: 3\n")
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
    assert summary["native"]["predict"]["p50"]["windows"] == 3
    assert summary["native"]["predict"]["errors"] == 0
    earlier = json.loads((out / "results" / "rust-ort__pytorch_onnx.windows.json").read_text())
    assert len(earlier["predict"]) == len(earlier["health"]) == 2
    assert all(w["ok"] > 0 for w in earlier["predict"])
