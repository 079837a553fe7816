from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from servebench import data
from servebench.data import COLUMNS, DataError, load_titanic, resolve_data_path, split

HEADER = ",".join(COLUMNS)
ROW = '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(text)
    return path


def test_real_file_loads(titanic_csv: Path) -> None:
    frame = load_titanic(titanic_csv)
    assert len(frame) == 891 and frame["Survived"].sum() == 342 and frame["Age"].isna().sum() == 177


def test_split_is_stratified_and_repeatable(titanic_csv: Path) -> None:
    frame = load_titanic(titanic_csv)
    train, valid = split(frame, 0.2, 42)
    again, _ = split(frame, 0.2, 42)
    assert len(valid) == 179 and train["PassengerId"].tolist() == again["PassengerId"].tolist()
    assert abs(valid["Survived"].mean() - frame["Survived"].mean()) < 0.01


def test_explicit_path_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = write(tmp_path, HEADER + "\n" + ROW), tmp_path / "other.csv"
    b.write_text(HEADER + "\n" + ROW)
    monkeypatch.setenv("TITANIC_CSV", str(b))
    assert resolve_data_path(a) == a
    assert resolve_data_path() == b


def test_explicit_missing_path_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TITANIC_CSV", str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="TITANIC_CSV"):
        resolve_data_path()


def test_offline_without_a_copy_says_how_to_supply_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TITANIC_CSV", raising=False)
    monkeypatch.setattr(data, "LOCAL_COPY", tmp_path / "data" / "train.csv")
    monkeypatch.setattr(data, "SHARED_COPY", tmp_path / "shared" / "train.csv")

    def offline(*_: object, **__: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        resolve_data_path()
    assert "TITANIC_CSV" in str(err.value) and "data_path" in str(err.value)
    assert not (tmp_path / "data" / "train.csv").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        (HEADER + "\n", "no rows"),
        ("PassengerId,Survived\n1,0\n", "lacks the columns"),
        (HEADER + "\n" + ROW.replace(",22,", ",twenty,"), "column Age has a value that is not a number"),
        (HEADER + "\n" + ROW.replace(",7.25,", ",,"), "column Fare has empty values"),
        (HEADER + "\n" + ROW.replace("male", "unknown"), "column Sex"),
        (HEADER + "\n" + ROW.replace("1,0,3", "1,2,3", 1), "Survived"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_titanic(write(tmp_path, text))
