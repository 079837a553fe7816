"""The kinds of trained model that params/models.yaml names by `format`: how each is trained,
saved, loaded, run and exported to ONNX. Notebook 03 and quick_models reach every model of the
list through these, so a model of a kind already here is an entry of the list and nothing else."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from servebench import registry
from servebench.export import export_lightgbm_onnx, export_pytorch_onnx, onnx_probabilities, onnx_session
from servebench.pipeline import Prepared
from servebench.registry import ModelSpec, RegistryError
from servebench.training import (
    lightgbm_probabilities,
    load_lightgbm,
    load_pytorch,
    save_lightgbm,
    save_pytorch,
    torch_probabilities,
    train_lightgbm,
    train_pytorch,
)


@dataclass(frozen=True)
class NativeFormat:
    # (x_train, y_train, x_valid, y_valid, **hyperparameters) → what `save` writes
    train: Callable[..., Any]
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    probabilities: Callable[[Any, np.ndarray], np.ndarray]
    export_onnx: Callable[[Any, Path], Path]

    def hyperparameters(self, params: dict[str, Any]) -> dict[str, Any]:
        """Those of `params` the trainer takes (a notebook's parameters include the data's too)."""
        taken = {p.name for p in inspect.signature(self.train).parameters.values() if p.kind is p.KEYWORD_ONLY}
        return {k: v for k, v in params.items() if k in taken}

    def fit(self, data: Prepared, params: dict[str, Any]) -> Any:
        return self.train(data.x_train, data.y_train, data.x_valid, data.y_valid, **self.hyperparameters(params))


FORMATS: dict[str, NativeFormat] = {
    "torch": NativeFormat(train_pytorch, save_pytorch, load_pytorch, torch_probabilities, export_pytorch_onnx),
    "lightgbm": NativeFormat(
        train_lightgbm, save_lightgbm, load_lightgbm, lightgbm_probabilities, export_lightgbm_onnx
    ),
}


def native_format(spec: ModelSpec) -> NativeFormat:
    if spec.format not in FORMATS:
        known = ", ".join(FORMATS)
        raise RegistryError(f"model {spec.name!r}: no trainer for format {spec.format!r} (one of: {known})")
    return FORMATS[spec.format]


def train_model(spec: ModelSpec, data: Prepared, params: dict[str, Any], models: Path) -> Path:
    """Train `spec` with `params` (its own over them) and save it as `models/<file>`."""
    kind = native_format(spec)
    path = models / spec.file
    kind.save(kind.fit(data, {**params, **spec.params}), path)
    return path


def export_models(models: Path, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every trained model of the list loaded from `models` and run on `x`, and every export of
    them written there and run by ONNX Runtime on `x`: (native, onnx) probabilities by name."""
    loaded = {s.name: native_format(s).load(models / s.file) for s in registry.trained_models()}
    native = {s.name: native_format(s).probabilities(loaded[s.name], x) for s in registry.trained_models()}
    onnx = {}
    for export in registry.exported_models():
        source = registry.model(str(export.source))
        path = native_format(source).export_onnx(loaded[source.name], models / export.file)
        onnx[export.name] = onnx_probabilities(onnx_session(path), x)
    return native, onnx
