"""The steps the training and export notebooks run, so the notebooks only call and show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from servebench.data import load_titanic, resolve_data_path, split
from servebench.features import Preprocessor
from servebench.paths import models_dir


@dataclass
class Prepared:
    """The split data, the fitted preprocessing and the float32 matrices both models train on."""

    data_path: Path
    train: pd.DataFrame
    valid: pd.DataFrame
    preprocessor: Preprocessor
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray


def prepare(data_path: str | None, validation_fraction: float, seed: int, out: Path) -> Prepared:
    """Load, split (stratified, seeded), fit preprocessing on the training split, save it.

    Every notebook calls this with the same parameters and gets the same split, so the
    preprocess.json it writes is the same file each time.
    """
    path = resolve_data_path(data_path)
    frame = load_titanic(path)
    train, valid = split(frame, validation_fraction, seed)
    pre = Preprocessor.fit(train)
    pre.save(models_dir(out) / "preprocess.json")
    return Prepared(
        path,
        train,
        valid,
        pre,
        pre.transform_frame(train),
        train["Survived"].to_numpy(dtype=np.int64),
        pre.transform_frame(valid),
        valid["Survived"].to_numpy(dtype=np.int64),
    )
