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
SERVER_ID_ENV = "SERVEBENCH_SERVER_ID"


def served_models() -> tuple[Path, dict[str, str]]:
    """The models folder (SERVEBENCH_MODELS_DIR, else outputs/models) and name → file of the
    models to serve: those SERVEBENCH_MODELS names (name=file,...), else every model of
    params/models.yaml."""
    directory = os.environ.get(MODELS_DIR_ENV)
    named = os.environ.get(MODELS_ENV)
    files = registry.parse_model_files(named) if named else {m.name: m.file for m in registry.models()}
    return (Path(directory) if directory else models_dir(out_dir())), files


def server_id(default: str) -> str:
    """The id /health reports: the launcher's SERVEBENCH_SERVER_ID, so a copied server folder
    needs no code change."""
    return os.environ.get(SERVER_ID_ENV) or default
