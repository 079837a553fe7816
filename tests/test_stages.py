from __future__ import annotations

import json
from pathlib import Path

import pytest

from servebench.stages import BOOTSTRAP_ENV, StageClock, read_stages


def test_each_stage_is_kept_as_it_ends_even_when_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, "42")
    clock = StageClock(tmp_path / "results")
    with clock.stage("training"):
        pass
    assert set(read_stages(tmp_path / "results")) == {"bootstrap", "training"}
    with pytest.raises(RuntimeError), clock.stage("benchmarks"):
        raise RuntimeError("a server died")
    stages = json.loads((tmp_path / "results" / "stages.json").read_text())
    assert list(stages) == ["bootstrap", "training", "benchmarks"] and stages["bootstrap"] == 42


def test_no_bootstrap_is_claimed_without_run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)
    with StageClock(tmp_path).stage("report"):
        pass
    assert list(read_stages(tmp_path)) == ["report"]
