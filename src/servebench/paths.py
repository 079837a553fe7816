"""Where the project and its generated outputs live."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OUT_ENV = "SERVEBENCH_OUT"


def out_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The outputs folder: an explicit value, else $SERVEBENCH_OUT, else outputs/ in the project."""
    chosen = override or os.environ.get(OUT_ENV) or PROJECT_ROOT / "outputs"
    return Path(chosen).expanduser().resolve()


def models_dir(out: Path) -> Path:
    return out / "models"


def metrics_dir(out: Path) -> Path:
    return out / "metrics"


def results_dir(out: Path) -> Path:
    return out / "results"
