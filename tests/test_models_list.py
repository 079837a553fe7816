"""params/models.yaml drives training and export: a model of a kind already there is an entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from servebench import registry, run
from servebench.config import PARAMS_DIR, load_profile
from servebench.quick_models import make
from servebench.training import load_lightgbm

EXTRA = [
    {
        "name": "lightgbm_small",
        "label": "LightGBM, 4 leaves",
        "file": "lightgbm_small.txt",
        "format": "lightgbm",
        "notebook": "02_train_lightgbm",
        "params": {"num_leaves": 4, "n_estimators": 12},
    },
    {
        "name": "lightgbm_small_onnx",
        "label": "LightGBM, 4 leaves → ONNX",
        "file": "lightgbm_small.onnx",
        "format": "onnx",
        "source": "lightgbm_small",
    },
]


def listed(tmp_path: Path, entries: list[dict[str, Any]]) -> list[registry.ModelSpec]:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    return registry.models.__wrapped__(path)


@pytest.fixture
def with_extra_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[registry.ModelSpec]:
    shipped = yaml.safe_load(registry.MODELS_FILE.read_text())["models"]
    specs = listed(tmp_path, shipped + EXTRA)
    monkeypatch.setattr(registry, "models", lambda path=None: specs)
    return specs


def test_an_entry_is_trained_exported_and_referenced(
    with_extra_model: list[registry.ModelSpec], tmp_path: Path, titanic_csv: Path
) -> None:
    made = make(tmp_path / "outputs", str(titanic_csv))
    booster = load_lightgbm(made["models"] / "lightgbm_small.txt")
    assert booster.num_trees() <= 12
    assert max(t["num_leaves"] for t in booster.dump_model()["tree_info"]) <= 4
    assert (made["models"] / "lightgbm_small.onnx").is_file()
    reference = pd.read_json(made["models"] / "reference.jsonl", lines=True)
    assert {"lightgbm_small", "lightgbm_small_onnx"} <= set(reference.columns)
    gap = (reference["lightgbm_small"] - reference["lightgbm_small_onnx"]).abs().max()
    assert gap < 1e-5, gap


def test_the_run_trains_each_entry_by_its_notebook_with_its_params(
    with_extra_model: list[registry.ModelSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any], str]] = []
    monkeypatch.setattr(run, "run_notebook", lambda name, out, params, suffix="": calls.append((name, params, suffix)))
    run.train(load_profile(PARAMS_DIR / "default.yaml"), tmp_path)
    by_model = {params.get("model"): (name, params, suffix) for name, params, suffix in calls}
    name, params, suffix = by_model["lightgbm_small"]
    assert (name, suffix) == ("02_train_lightgbm", "__lightgbm_small")
    assert params["num_leaves"] == 4 and params["n_estimators"] == 12 and params["learning_rate"] == 0.05
    assert by_model["pytorch"][0] == "01_train_pytorch"
    assert calls[-1][0] == run.EXPORT_NOTEBOOK, "the exports come after every trained model"


@pytest.mark.parametrize(
    ("entries", "fault"),
    [
        ([EXTRA[1]], "'lightgbm_small_onnx' is exported from 'lightgbm_small', which is not a trained model"),
        ([EXTRA[0], {**EXTRA[0], "label": "again"}], "'lightgbm_small' is listed twice"),
        ([{**EXTRA[0], "notebook": None}], "needs a notebook that trains it or the source"),
        ([EXTRA[0], {**EXTRA[1], "notebook": "02_train_lightgbm"}], "both a notebook .* and a source"),
        ([EXTRA[0], {**EXTRA[1], "format": "lightgbm"}], "is an export, so its format is onnx"),
    ],
)
def test_a_list_that_cannot_be_trained_names_the_model(
    tmp_path: Path, entries: list[dict[str, Any]], fault: str
) -> None:
    with pytest.raises(registry.RegistryError, match=fault):
        listed(tmp_path, entries)
