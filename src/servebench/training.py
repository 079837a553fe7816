"""Training both models on the same features, and the validation metrics they are judged by."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from torch import nn

from servebench.features import FEATURES


class SurvivalMLP(nn.Module):
    """6 → hidden → 1 with ReLU; returns the logit (BCEWithLogitsLoss trains it)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = hidden
        self.net = nn.Sequential(nn.Linear(len(FEATURES), hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class SurvivalProbability(nn.Module):
    """The served form: features in, survival probability out, shape [N]."""

    def __init__(self, mlp: SurvivalMLP) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(x))


@dataclass
class TorchResult:
    model: SurvivalMLP
    history: pd.DataFrame
    best_epoch: int
    config: dict[str, Any] = field(default_factory=dict)


def train_pytorch(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    hidden: int = 32,
    learning_rate: float = 0.01,
    batch_size: int = 64,
    max_epochs: int = 300,
    patience: int = 20,
    weight_decay: float = 1e-4,
    seed: int = 42,
) -> TorchResult:
    """Adam on BCE with logits, early stopping on validation loss; keeps the best epoch's weights."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = SurvivalMLP(hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32))
    xv, yv = torch.from_numpy(x_valid), torch.from_numpy(y_valid.astype(np.float32))
    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    rows = []
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
            total += float(loss) * len(idx)
        model.eval()
        with torch.no_grad():
            valid_loss = float(loss_fn(model(xv), yv))
        rows.append({"epoch": epoch, "train_loss": total / len(xt), "valid_loss": valid_loss})
        if valid_loss < best_loss - 1e-6:
            best_loss, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    config = {
        "hidden": hidden,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "patience": patience,
        "weight_decay": weight_decay,
        "seed": seed,
    }
    return TorchResult(model, pd.DataFrame(rows), best_epoch, config)


def torch_probabilities(model: SurvivalMLP, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy()


def save_pytorch(result: TorchResult, path: Path) -> None:
    """A plain state dict plus the hyper-parameters it needs: loadable with weights_only=True."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": result.model.state_dict(), "hidden": result.model.hidden}, path)


def load_pytorch(path: Path) -> SurvivalMLP:
    if not Path(path).is_file():
        raise FileNotFoundError(f"missing model file {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = SurvivalMLP(int(checkpoint["hidden"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model


def train_lightgbm(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    n_estimators: int = 200,
    learning_rate: float = 0.05,
    num_leaves: int = 15,
    min_child_samples: int = 10,
    early_stopping_rounds: int = 30,
    seed: int = 42,
) -> lgb.Booster:
    """A binary LightGBM booster with early stopping on validation log loss."""
    params = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_child_samples": min_child_samples,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    train_set = lgb.Dataset(x_train, y_train, feature_name=list(FEATURES), free_raw_data=False)
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=n_estimators,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    # Keep only the trees up to the best iteration, so the saved file, its ONNX export and every
    # server predict with exactly the same ensemble.
    text = booster.model_to_string(num_iteration=booster.best_iteration)
    return lgb.Booster(model_str=float32_thresholds(text))


def float32_thresholds(model_text: str) -> str:
    """Round every split threshold down to the nearest float32.

    LightGBM keeps thresholds as doubles, ONNX tree ensembles as float32 (rounded to nearest),
    so a float32 feature lying between the two is routed differently by the export. For float32
    inputs `x <= t` and `x <= round_down_f32(t)` are the same test, so this leaves the native
    model's predictions unchanged and makes the export exact.
    """
    lines = []
    for line in model_text.splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte offsets of the trees, stale once thresholds are rewritten
        if line.startswith("threshold="):
            values = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
            down = values.astype(np.float32)
            over = down.astype(np.float64) > values
            down[over] = np.nextafter(down[over], np.float32(-np.inf))
            line = "threshold=" + " ".join(repr(float(v)) for v in down)
        lines.append(line)
    return "\n".join(lines) + "\n"


def lightgbm_probabilities(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)


def save_lightgbm(booster: lgb.Booster, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))


def load_lightgbm(path: Path) -> lgb.Booster:
    if not Path(path).is_file():
        raise FileNotFoundError(f"missing model file {path}")
    return lgb.Booster(model_file=str(path))


def classification_metrics(y_true: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    label = (probability >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(y_true, label)),
        "f1": float(f1_score(y_true, label)),
        "roc_auc": float(roc_auc_score(y_true, probability)),
        "n_validation": len(y_true),
    }


def write_metrics(metrics: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
