"""The run's and the command line's checks that need no server: --skip-train without models says so at once,
--target and --compare are parsed and checked before anything starts, stale results go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from servebench import cli, run, servers
from servebench.config import DEFAULT_PROFILE, Combination, load_profile
from servebench.servers import ServerError
from servebench.settings import RunSettings, run_settings

# No rounds: these tests are about the run's own loop.
SETTINGS: RunSettings = run_settings(load_profile(DEFAULT_PROFILE)).model_copy(
    update={"native_rounds": 1, "capacity_rounds": 0}
)


def measured(combo: Combination, *_args: object) -> dict[str, Any]:
    return {"framework": combo.framework, "model": combo.model, "status": "ok", "reason": "", "seconds": 0}


def fake_servers(monkeypatch: pytest.MonkeyPatch, broken: tuple[str, ...] = ()) -> list[str]:
    """Servers that start instantly (or fail to, for the ids in `broken`); returns the starts."""
    starts: list[str] = []

    def start_server(framework: str, _out: Path) -> dict[str, Any]:
        starts.append(framework)
        if framework in broken:
            raise ServerError(f"{framework} failed to start")
        return {"base_url": "http://127.0.0.1:1", "pid": 1, "startup_seconds": 1.0, "cpus": "", "log": None}

    monkeypatch.setattr(run, "start_server", start_server)
    monkeypatch.setattr(run, "stop_server", lambda framework, _out: starts.append(f"stop {framework}"))
    monkeypatch.setattr(run, "alive", lambda _pid: True)
    monkeypatch.setattr(servers, "alive", lambda _pid: True)
    return starts


def test_skip_train_without_models_fails_at_once_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_server(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("no server may start")

    monkeypatch.setattr(run, "start_server", no_server)
    code = cli.main(["--quick", "--skip-train", "--out", str(tmp_path), "--frameworks", "fastapi"])
    said = capsys.readouterr().out
    assert code == 2
    assert "--skip-train" in said and "preprocess.json" in said and "without --skip-train" in said


def test_missing_models_lists_only_what_the_combinations_need(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("preprocess.json", "reference.jsonl", "pytorch.onnx"):
        (models / name).write_text("x")
    assert run.missing_models(tmp_path, [Combination("rust-ort", "pytorch_onnx")]) == []
    assert run.missing_models(tmp_path, [Combination("rust-ort", "lightgbm_onnx")]) == ["lightgbm.onnx"]


def test_targets_are_id_equals_url() -> None:
    assert cli.parse_targets(["a=http://127.0.0.1:8000/", "b=http://h:1"]) == {
        "a": "http://127.0.0.1:8000",
        "b": "http://h:1",
    }
    assert cli.parse_targets(["a=http://x:1,b=https://y"]) == {"a": "http://x:1", "b": "https://y"}
    for bad in ("a", "a=ftp://x", "=http://x"):
        with pytest.raises(ValueError, match="ID=URL"):
            cli.parse_targets([bad])


def test_compare_needs_an_outputs_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--quick", "--skip-train", "--out", str(tmp_path), "--compare", str(tmp_path / "nope")])
    assert code == 2 and "no results/ folder" in capsys.readouterr().out


def test_stale_results_of_an_earlier_run_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    results.mkdir()
    stale = (
        "x__y.observations.json",
        "x__y.summary.json",
        "x__y.sequential.parquet",
        "x__y.load.parquet",
        "x__y.windows.json",
        "generator.json",
    )
    for name in stale:
        (results / name).write_text("{}")
    monkeypatch.setattr(run, "benchmark_one", measured)
    fake_servers(monkeypatch)
    records = run.benchmark({}, SETTINGS, tmp_path, [Combination("a", "b")])
    assert [r["status"] for r in records] == ["ok"]
    assert sorted(p.name for p in results.iterdir()) == ["runs.json"]
    assert json.loads((results / "runs.json").read_text())[0]["framework"] == "a"


def test_a_server_starts_once_for_all_its_models_and_a_failed_start_fails_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "benchmark_one", measured)
    starts = fake_servers(monkeypatch, broken=("b",))
    combos = [Combination(f, m) for f in ("a", "b", "c") for m in ("m1", "m2")]
    records = run.benchmark({}, SETTINGS, tmp_path, combos)
    assert starts == ["a", "b", "b", "c", "stop a", "stop c"]  # a failed start is tried once more
    assert [(r["framework"], r["model"], r["status"]) for r in records] == [
        (c.framework, c.model, "failed" if c.framework == "b" else "ok") for c in combos
    ]
    assert all("b failed to start" in r["reason"] for r in records if r["framework"] == "b")
