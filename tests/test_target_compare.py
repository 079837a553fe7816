"""`--target ID=URL` benchmarks a server that is already running (its cost shown as not
measured), `--compare OTHER_OUTPUTS` adds a section comparing two runs endpoint by endpoint, and
a profile with rounds measures windows and capacity in rounds across the run. All through the
command line as run_all.sh runs it, on one quick combination."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from servebench.results.files import read_summary
from servebench.servers import start_server, stop_server

from .conftest import ROOT

pytestmark = [pytest.mark.servers, pytest.mark.e2e]

SERVER = "fastapi"
MODEL = "pytorch_onnx"


def run_all(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "servebench.cli", "--quick", "--skip-train", "--models", MODEL, *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )


def outputs_with_models(artifacts: dict[str, Any], path: Path) -> Path:
    shutil.copytree(artifacts["models"], path / "models")
    return path


def test_target_compare_and_rounds_in_two_quick_runs(
    artifacts: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two quick runs: one attached to a server started elsewhere, then one that starts its own,
    measures in rounds and compares itself with the first."""
    server_out = tmp_path / "server"
    monkeypatch.setenv("SERVEBENCH_MODELS_DIR", str(artifacts["models"]))
    info = start_server(SERVER, server_out)
    try:
        first = outputs_with_models(artifacts, tmp_path / "first")
        run = run_all("--target", f"{SERVER}={info['base_url']}", "--out", str(first))
    finally:
        stop_server(SERVER, server_out)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    (record,) = json.loads((first / "results" / "runs.json").read_text())
    assert record["status"] == "ok" and record["target"] == info["base_url"]
    summary = read_summary(first / "results" / f"{SERVER}__{MODEL}.observations.json")
    assert summary["parity"]["ok"] and summary["native"]["predict"]["p50"]["windows"] >= 1
    held = {s["offered_rate"] for s in summary["ladder"] if s.get("held")}
    assert summary["capacity"]["rate"] == max(held, default=0.0)
    assert summary["cost"]["measured"] is False and summary["cost"]["peak_rss_mb"] is None
    assert "not measured" in (first / "report.html").read_text()
    assert "Compared with" not in (first / "report.html").read_text()

    # the second run, with rounds, compares itself with the first
    second = outputs_with_models(artifacts, tmp_path / "second")
    profile = tmp_path / "rounds.yaml"
    profile.write_text(f"extends: {ROOT / 'params' / 'quick.yaml'}\nnative_rounds: 3\ncapacity_rounds: 1\n")
    rounds = ("--profile", str(profile))
    run = run_all("--frameworks", SERVER, "--out", str(second), "--compare", str(first), *rounds)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    html = (second / "report.html").read_text()
    assert f"Compared with {first}" in html and "p50 (ms): other" in html

    # three trials: one before the benchmark, the benchmark's, and the capacity round's
    assert "single-request round 1/3" in run.stdout and "single-request round 2/3" not in run.stdout
    assert "single-request and capacity round 1/1" in run.stdout
    summary = read_summary(second / "results" / f"{SERVER}__{MODEL}.observations.json")
    assert summary["settings"]["windows_earlier"] == 1
    assert summary["native"]["predict"]["p50"]["windows"] == 3 and summary["native"]["predict"]["p50"]["rounds"] == 3
    assert summary["native"]["predict"]["errors"] == 0
    earlier = json.loads((second / "results" / f"{SERVER}__{MODEL}.windows.json").read_text())
    assert len(earlier["predict"]) == len(earlier["health"]) == 1 and earlier["parity"][0]["ok"]
    assert all(w["ok"] > 0 for w in earlier["predict"])
    # the benchmark took the first trial's parity check
    assert summary["parity"]["checked_in_trial"]
    # and after the benchmark, one capacity search around the ladder's estimate
    assert "capacity round 1/1" in run.stdout
    cap = summary["capacity"]
    assert len(cap["estimates"]) == 2 and cap["estimates"][0] == cap["ladder_rate"]
    assert cap["low"] <= cap["rate"] <= cap["high"]
    assert cap["searches"][0]["steps"][0]["offered_rate"] == cap["ladder_rate"]
