"""Feature preprocessing: fitted once on the training split, saved as preprocess.json, loaded by
every server (Python and Rust), so there is exactly one definition of a model's input.

A feature vector is, in the order of FEATURES: Pclass, Sex (female=0, male=1), Age (the training
median where unknown), SibSp, Parch, Fare, each mapped through (x - mean) / scale in float64 and
then rounded to float32. Age and Fare are standardised with the training split's mean and
standard deviation; the other four keep mean 0 and scale 1, so they pass through unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servebench.contract import FIELDS
from servebench.serving.schema import Passenger

FORMAT_VERSION = 1
FEATURES = FIELDS
SEX_MAPPING = {"female": 0, "male": 1}
STANDARDIZED = ("Age", "Fare")


@dataclass(frozen=True)
class Preprocessor:
    features: tuple[str, ...]
    sex_mapping: dict[str, int]
    fill_values: dict[str, float]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    format_version: int = FORMAT_VERSION

    @classmethod
    def fit(cls, train: pd.DataFrame) -> Preprocessor:
        """Fit on the training split only: the Age median, then Age and Fare moments."""
        age_median = float(train["Age"].median())
        raw = _raw_matrix(train, age_median)
        mean = [0.0] * len(FEATURES)
        scale = [1.0] * len(FEATURES)
        for name in STANDARDIZED:
            j = FEATURES.index(name)
            mean[j] = float(raw[:, j].mean())
            scale[j] = float(raw[:, j].std()) or 1.0
        return cls(FEATURES, dict(SEX_MAPPING), {"Age": age_median}, tuple(mean), tuple(scale))

    def transform_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of a Titanic-schema frame → float32 [N, 6]."""
        unknown = set(frame["Sex"].dropna()) - set(self.sex_mapping)
        if unknown or frame["Sex"].isna().any():
            raise ValueError(f"Sex must be one of {sorted(self.sex_mapping)}, got {sorted(map(str, unknown))}")
        return self._finish(_raw_matrix(frame, self.fill_values["Age"], self.sex_mapping))

    def transform_passengers(self, passengers: Sequence[Passenger]) -> np.ndarray:
        """Validated request passengers → float32 [N, 6]."""
        fill, sexes = self.fill_values["Age"], self.sex_mapping
        raw = np.array(
            [(p.Pclass, sexes[p.Sex], fill if p.Age is None else p.Age, p.SibSp, p.Parch, p.Fare) for p in passengers],
            dtype=np.float64,
        )
        return self._finish(raw)

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        return ((raw - mean) / scale).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["features"] = list(self.features)
        doc["mean"] = list(self.mean)
        doc["scale"] = list(self.scale)
        return doc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Preprocessor:
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"preprocess.json format_version {version!r}, expected {FORMAT_VERSION}")
        features = tuple(doc["features"])
        if features != FEATURES:
            raise ValueError(f"preprocess.json features {list(features)}, expected {list(FEATURES)}")
        mean, scale = tuple(map(float, doc["mean"])), tuple(map(float, doc["scale"]))
        if len(mean) != len(FEATURES) or len(scale) != len(FEATURES) or not all(s > 0 for s in scale):
            raise ValueError("preprocess.json needs six means and six positive scales")
        return cls(
            features,
            {str(k): int(v) for k, v in doc["sex_mapping"].items()},
            {"Age": float(doc["fill_values"]["Age"])},
            mean,
            scale,
        )

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"missing preprocessing file {path}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"corrupt preprocessing file {path}: {exc}") from None


def _raw_matrix(frame: pd.DataFrame, age_fill: float, sexes: Mapping[str, int] = SEX_MAPPING) -> np.ndarray:
    columns: Iterable[pd.Series] = (
        frame["Pclass"],
        frame["Sex"].map(sexes),
        frame["Age"].fillna(age_fill),
        frame["SibSp"],
        frame["Parch"],
        frame["Fare"],
    )
    return np.column_stack([c.to_numpy(dtype=np.float64) for c in columns])
