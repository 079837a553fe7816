from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import torch

from servebench.training import (
    float32_thresholds,
    lightgbm_probabilities,
    load_lightgbm,
    load_pytorch,
    save_pytorch,
    torch_probabilities,
    train_lightgbm,
    train_pytorch,
)


def test_training_respects_its_budgets(artifacts: dict[str, Any]) -> None:
    data = artifacts["data"]
    idx = np.random.default_rng(0).choice(len(data.x_train), 200, replace=False)
    result = train_pytorch(data.x_train[idx], data.y_train[idx], data.x_valid, data.y_valid, max_epochs=30)
    booster = train_lightgbm(data.x_train[idx], data.y_train[idx], data.x_valid, data.y_valid, n_estimators=30)
    assert len(result.history) <= 30 and booster.num_trees() <= 30


def test_models_learn_the_task(artifacts: dict[str, Any]) -> None:
    data = artifacts["data"]
    for p in artifacts["native"].values():
        assert ((p >= 0.5) == data.y_valid).mean() >= 0.75


def test_pytorch_weights_load_with_weights_only(artifacts: dict[str, Any], tmp_path: Path) -> None:
    data = artifacts["data"]
    result = train_pytorch(data.x_train, data.y_train, data.x_valid, data.y_valid, max_epochs=3)
    path = tmp_path / "pytorch.pt"
    save_pytorch(result, path)
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"state_dict", "hidden"}
    model = load_pytorch(path)
    x = data.x_valid
    assert np.array_equal(torch_probabilities(model, x), torch_probabilities(result.model, x))


def test_lightgbm_file_round_trip(artifacts: dict[str, Any]) -> None:
    x = artifacts["data"].x_valid
    reloaded = load_lightgbm(artifacts["models"] / "lightgbm.txt")
    assert np.array_equal(lightgbm_probabilities(reloaded, x), artifacts["native"]["lightgbm"])


def test_float32_thresholds_keep_predictions_on_float32_inputs(artifacts: dict[str, Any], tmp_path: Path) -> None:
    data = artifacts["data"]
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(data.x_train, data.y_train), num_boost_round=40)
    rounded = lgb.Booster(model_str=float32_thresholds(booster.model_to_string()))
    x = np.concatenate([data.x_train, data.x_valid])
    assert np.array_equal(booster.predict(x), rounded.predict(x))
    thresholds = [
        float(v)
        for line in rounded.model_to_string().splitlines()
        if line.startswith("threshold=")
        for v in line.removeprefix("threshold=").split()
    ]
    assert all(float(np.float32(t)) == t for t in thresholds)
