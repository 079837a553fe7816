"""The built-in model packs of params/models.yaml (`packs:`): a PyTorch MLP trained on one of
scikit-learn's bundled data sets (no download), exported to ONNX with a sample of its validation
rows, and then served and measured exactly as a reader's own pack (`--model-pack`) is.

A classification target gives `probabilities` [N, classes] (softmax); a regression target gives
`prediction` [N, 1]. Adding one is an entry in params/models.yaml."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from servebench.registry import MODELS_FILE, RegistryError

SAMPLE_ROWS = 200
ONNX_OPSET = 17


class BuiltinPack(BaseModel):
    """An entry of params/models.yaml's `packs:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str
    dataset: str  # sklearn.datasets.load_<dataset>
    hidden: tuple[int, ...] = Field(min_length=1)
    epochs: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    tolerance: float = Field(default=1e-4, gt=0)
    seed: int = 42


def builtin_packs(path: Path = MODELS_FILE) -> list[BuiltinPack]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        return [BuiltinPack.model_validate(entry) for entry in doc.get("packs") or []]
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise RegistryError(f"cannot read the built-in packs of {path}: {exc}") from None


def _dataset(name: str) -> tuple[np.ndarray, np.ndarray, bool, list[str]]:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}", None)
    if loader is None:
        raise RegistryError(
            f"params/models.yaml: no bundled scikit-learn data set '{name}' (sklearn.datasets.load_{name})"
        )
    bunch = loader()
    x, y = np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)
    classification = np.issubdtype(y.dtype, np.integer)
    names = [str(n) for n in getattr(bunch, "feature_names", [])] or [f"x{i}" for i in range(x.shape[1])]
    return x, y, classification, names


def _network(mean: np.ndarray, scale: np.ndarray, hidden: tuple[int, ...], outputs: int, softmax: bool) -> Any:
    """Standardisation folded into the graph, the hidden ReLU layers, and softmax for classes.
    (torch is imported here: reading the list of packs must not load it.)"""
    import torch
    from torch import nn

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("scale", torch.from_numpy(scale))
            layers: list[nn.Module] = []
            width = len(mean)
            for size in hidden:
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            layers.append(nn.Linear(width, outputs))
            self.body = nn.Sequential(*layers)

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            return self.body((x - self.mean) / self.scale)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.logits(x)
            return torch.softmax(out, dim=1) if softmax else out

    return Network()


def build(spec: BuiltinPack, models_dir: Path) -> Path:
    """Train, export and write the pack into `models_dir/builtin/<name>/`; returns the folder."""
    import pandas as pd
    import torch
    from torch import nn

    x, y, classification, names = _dataset(spec.dataset)
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(len(x))
    cut = int(len(x) * 0.8)
    train, valid = order[:cut], order[cut:]
    mean = x[train].mean(axis=0)
    scale = np.where(x[train].std(axis=0) > 0, x[train].std(axis=0), 1.0).astype(np.float32)
    outputs = int(y.max()) + 1 if classification else 1
    torch.manual_seed(spec.seed)
    net = _network(mean, scale, spec.hidden, outputs, softmax=classification)
    optimiser = torch.optim.Adam(net.parameters(), lr=spec.learning_rate)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if classification else nn.MSELoss()
    xt = torch.from_numpy(x[train])
    target = torch.from_numpy(y[train].astype(np.int64 if classification else np.float32))
    if not classification:
        target = target.reshape(-1, 1)
    started = time.perf_counter()
    for _ in range(spec.epochs):
        for batch in torch.randperm(len(xt)).split(64):
            optimiser.zero_grad()
            loss = loss_fn(net.logits(xt[batch]), target[batch])
            loss.backward()
            optimiser.step()
    net.eval()
    with torch.inference_mode():
        predicted = net(torch.from_numpy(x[valid])).numpy()
    if classification:
        score: dict[str, Any] = {"accuracy": float((predicted.argmax(axis=1) == y[valid]).mean())}
    else:
        score = {"rmse": float(np.sqrt(np.mean((predicted[:, 0] - y[valid]) ** 2)))}
    folder = models_dir / "builtin" / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    output = "probabilities" if classification else "prediction"
    torch.onnx.export(
        net,
        (torch.zeros(2, x.shape[1]),),
        str(folder / "model.onnx"),
        input_names=["features"],
        output_names=[output],
        dynamic_axes={"features": {0: "batch"}, output: {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,
    )
    pd.DataFrame(x[valid][:SAMPLE_ROWS], columns=names).to_csv(folder / "sample.csv", index=False)
    (folder / "model.yaml").write_text(
        yaml.safe_dump({"name": spec.name, "label": spec.label, "tolerance": spec.tolerance})
    )
    layers = " → ".join(str(n) for n in (x.shape[1], *spec.hidden, outputs))
    meta = {
        "name": spec.name,
        "dataset": spec.dataset,
        "layers": layers,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "train_rows": len(train),
        "valid_rows": len(valid),
        "train_seconds": round(time.perf_counter() - started, 2),
        **score,
    }
    (folder / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder
