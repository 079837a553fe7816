"""What the launcher (`servebench.launch`) tells a Python server through its environment: the id
/health reports, the models folder, and the models to serve.

Kept apart from the inference layer, which imports ONNX Runtime: a process that only routes
requests (LitServe's main and API server processes) reads these without loading a runtime."""

from __future__ import annotations

import os
from pathlib import Path

from servebench import registry
from servebench.paths import models_dir, out_dir

MODELS_DIR_ENV = "SERVEBENCH_MODELS_DIR"
MODELS_ENV = "SERVEBENCH_MODELS"
PACKS_ENV = "SERVEBENCH_PACKS"
SERVER_ID_ENV = "SERVEBENCH_SERVER_ID"


def served_models() -> tuple[Path, dict[str, str]]:
    """The models folder (SERVEBENCH_MODELS_DIR, else outputs/models) and name → file of the
    models to serve: those SERVEBENCH_MODELS names (name=file,...; empty: none), else every model
    of params/models.yaml."""
    directory = os.environ.get(MODELS_DIR_ENV)
    named = os.environ.get(MODELS_ENV)
    if named is None:
        files = {m.name: m.file for m in registry.models()}
    else:
        files = registry.parse_model_files(named) if named.strip() else {}
    return (Path(directory) if directory else models_dir(out_dir())), files


def served_packs() -> dict[str, str]:
    """name → file (relative to the models folder) of the model packs to serve over the Open
    Inference Protocol only: SERVEBENCH_PACKS (name=file,...; empty: none), else every
    `packs/<name>/model.onnx` of the models folder."""
    named = os.environ.get(PACKS_ENV)
    if named is not None:
        return registry.parse_model_files(named) if named.strip() else {}
    return registry.pack_files(served_models()[0])


def v2_models() -> tuple[Path, dict[str, str]]:
    """The models folder and name → file of every model served over the Open Inference
    Protocol: the ONNX models of `served_models` and the packs."""
    directory, files = served_models()
    onnx = {name: file for name, file in files.items() if file.endswith(".onnx")}
    return directory, {**onnx, **served_packs()}


def server_id(default: str) -> str:
    """The id /health reports: the launcher's SERVEBENCH_SERVER_ID, so a copied server folder
    needs no code change."""
    return os.environ.get(SERVER_ID_ENV) or default
