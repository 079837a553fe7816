"""Every model of params/models.yaml trained briefly (the quick profile's parameters) and
exported, with reference.jsonl, and the example model packs: what the tests serve, and what the
Rust engine tests compare against (`python -m servebench.quick_models OUT`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from servebench import registry
from servebench.config import PARAMS_DIR, load_profile, notebook_parameters
from servebench.data import resolve_data_path
from servebench.example_packs import write_example_packs
from servebench.export import write_reference
from servebench.native_models import export_models, train_model
from servebench.pipeline import prepare

PROFILE = PARAMS_DIR / "quick.yaml"


def make(out: Path, data_path: str | None = None) -> dict[str, Any]:
    """Train, export and write the reference into OUT/models; returns what was made."""
    profile = load_profile(PROFILE)
    common = profile.get("common", {})
    data = prepare(
        data_path or str(resolve_data_path(download=False)), common["validation_fraction"], common["seed"], out
    )
    models = out / "models"
    for spec in registry.trained_models():
        params = notebook_parameters(profile, str(spec.notebook), set(common) | {"seed"})
        train_model(spec, data, params, models)
    native, onnx = export_models(models, data.x_valid)
    write_reference(data.valid, {**native, **onnx}, models / "reference.jsonl")
    packs = write_example_packs(models)
    return {"out": out, "models": models, "data": data, "native": native, "onnx": onnx, "packs": packs}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m servebench.quick_models OUT")
    made = make(Path(sys.argv[1]))
    print(made["models"])
