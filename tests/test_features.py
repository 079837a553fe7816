from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from servebench.features import FEATURES, Preprocessor
from servebench.serving.schema import Passenger


def frame(**overrides: list) -> pd.DataFrame:
    base = {
        "Pclass": [1, 3, 2, 3],
        "Sex": ["female", "male", "male", "female"],
        "Age": [30.0, None, 20.0, 40.0],
        "SibSp": [0, 1, 0, 2],
        "Parch": [0, 0, 1, 0],
        "Fare": [80.0, 7.25, 13.0, 20.0],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_fit_fills_age_with_training_median_and_standardises_age_and_fare() -> None:
    pre = Preprocessor.fit(frame())
    assert pre.fill_values["Age"] == 30.0
    x = pre.transform_frame(frame())
    assert x.dtype == np.float32 and x.shape == (4, 6)
    age, fare = FEATURES.index("Age"), FEATURES.index("Fare")
    assert abs(x[:, age].mean()) < 1e-6 and abs(x[:, fare].mean()) < 1e-6
    assert x[1, age] == pytest.approx((30.0 - pre.mean[age]) / pre.scale[age], rel=1e-6)


def test_column_order_and_sex_encoding() -> None:
    pre = Preprocessor.fit(frame())
    x = pre.transform_frame(frame())
    assert FEATURES == ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare")
    assert x[:, 0].tolist() == [1, 3, 2, 3]
    assert x[:, 1].tolist() == [0, 1, 1, 0]  # female=0, male=1
    assert x[:, 3].tolist() == [0, 1, 0, 2] and x[:, 4].tolist() == [0, 0, 1, 0]


def test_unknown_sex_is_rejected() -> None:
    pre = Preprocessor.fit(frame())
    with pytest.raises(ValueError, match="Sex"):
        pre.transform_frame(frame(Sex=["female", "male", "x", "male"]))


def test_passengers_and_frames_give_identical_features() -> None:
    pre = Preprocessor.fit(frame())
    passengers = [
        Passenger(Pclass=1, Sex="female", Age=30.0, SibSp=0, Parch=0, Fare=80.0),
        Passenger(Pclass=3, Sex="male", Age=None, SibSp=1, Parch=0, Fare=7.25),
    ]
    assert np.array_equal(pre.transform_passengers(passengers), pre.transform_frame(frame().iloc[:2]))


def test_json_round_trip(tmp_path: Path) -> None:
    pre = Preprocessor.fit(frame())
    pre.save(tmp_path / "preprocess.json")
    doc = json.loads((tmp_path / "preprocess.json").read_text())
    assert doc["format_version"] == 1 and doc["features"] == list(FEATURES)
    assert doc["sex_mapping"] == {"female": 0, "male": 1}
    assert Preprocessor.load(tmp_path / "preprocess.json") == pre


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format_version": 2}, "format_version"),
        ({"features": ["Sex", "Pclass"]}, "features"),
        ({"scale": [1, 1, 0, 1, 1, 1]}, "positive"),
    ],
)
def test_bad_preprocess_file_is_named(tmp_path: Path, change: dict, message: str) -> None:
    doc = Preprocessor.fit(frame()).to_json() | change
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message) as err:
        Preprocessor.load(path)
    assert str(path) in str(err.value)


def test_missing_preprocess_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"preprocess\.json"):
        Preprocessor.load(tmp_path / "preprocess.json")
