"""Both models trained briefly and exported, with reference.jsonl, and the example model packs:
what the tests serve, and what the Rust engine tests compare against
(`python -m servebench.quick_models OUT`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from servebench.data import resolve_data_path
from servebench.example_packs import write_example_packs
from servebench.export import (
    export_lightgbm_onnx,
    export_pytorch_onnx,
    onnx_probabilities,
    onnx_session,
    write_reference,
)
from servebench.pipeline import prepare
from servebench.training import (
    lightgbm_probabilities,
    save_lightgbm,
    save_pytorch,
    torch_probabilities,
    train_lightgbm,
    train_pytorch,
)


def make(out: Path, data_path: str | None = None) -> dict[str, Any]:
    """Train, export and write the reference into OUT/models; returns what was made."""
    data = prepare(data_path or str(resolve_data_path(download=False)), 0.2, 42, out)
    models = out / "models"
    torch_result = train_pytorch(data.x_train, data.y_train, data.x_valid, data.y_valid, max_epochs=60, patience=10)
    save_pytorch(torch_result, models / "pytorch.pt")
    booster = train_lightgbm(data.x_train, data.y_train, data.x_valid, data.y_valid, n_estimators=60)
    save_lightgbm(booster, models / "lightgbm.txt")
    native = {
        "pytorch": torch_probabilities(torch_result.model, data.x_valid),
        "lightgbm": lightgbm_probabilities(booster, data.x_valid),
    }
    exported = {
        "pytorch_onnx": export_pytorch_onnx(torch_result.model, models / "pytorch.onnx"),
        "lightgbm_onnx": export_lightgbm_onnx(booster, models / "lightgbm.onnx"),
    }
    onnx = {name: onnx_probabilities(onnx_session(path), data.x_valid) for name, path in exported.items()}
    write_reference(data.valid, {**native, **onnx}, models / "reference.jsonl")
    packs = write_example_packs(models)
    return {
        "out": out,
        "models": models,
        "data": data,
        "native": native,
        "onnx": onnx,
        "torch": torch_result,
        "booster": booster,
        "packs": packs,
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m servebench.quick_models OUT")
    made = make(Path(sys.argv[1]))
    print(made["models"])
