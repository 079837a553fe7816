"""The Titanic data: where to find it, how to read it safely, how to split it."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from servebench.paths import PROJECT_ROOT

COLUMNS = (
    "PassengerId",
    "Survived",
    "Pclass",
    "Name",
    "Sex",
    "Age",
    "SibSp",
    "Parch",
    "Ticket",
    "Fare",
    "Cabin",
    "Embarked",
)
NUMERIC = ("PassengerId", "Survived", "Pclass", "Age", "SibSp", "Parch", "Fare")
ENV_VAR = "TITANIC_CSV"
LOCAL_COPY = PROJECT_ROOT / "data" / "titanic" / "train.csv"
# Where development machines and CI keep the file, beside the project.
SHARED_COPY = PROJECT_ROOT.parent / "shared" / "data" / "titanic" / "train.csv"
MIRROR_URL = "https://raw.githubusercontent.com/datasciencedojo/datasets/master/titanic.csv"


class DataError(Exception):
    """The data could not be found or is not the Titanic train.csv we expect."""


def resolve_data_path(data_path: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """The CSV to read: `data_path`, else $TITANIC_CSV, else a local or shared copy, else a
    one-time download into data/titanic/. An explicit path that does not exist is an error."""
    explicit = data_path or os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            source = "data_path" if data_path else f"${ENV_VAR}"
            raise DataError(f"{source} points at {path}, which is not a file")
        return path
    for candidate in (LOCAL_COPY, SHARED_COPY):
        if candidate.is_file():
            return candidate
    if not download:
        raise DataError(_how_to_supply("no copy found"))
    return download_titanic(LOCAL_COPY)


def _how_to_supply(reason: str) -> str:
    return (
        f"Titanic train.csv not available ({reason}). Supply it with the `data_path` parameter, "
        f"the {ENV_VAR} environment variable, or by placing Kaggle's train.csv at {LOCAL_COPY}."
    )


def download_titanic(target: Path, url: str = MIRROR_URL, timeout: float = 20.0) -> Path:
    print(f"Downloading the Titanic data once from {url} to {target}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except OSError as exc:
        raise DataError(_how_to_supply(f"download from {url} failed: {exc}")) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    tmp.write_bytes(payload)
    load_titanic(tmp)  # refuse to keep a file that is not the data set
    tmp.replace(target)
    return target


def load_titanic(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check Kaggle's train.csv schema; every problem is a DataError naming it."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV: {exc}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {missing}")
    if frame.empty:
        raise DataError(f"{path} has a header but no rows")
    for column in NUMERIC:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.idxmax())
            raise DataError(
                f"{path}: column {column} has a value that is not a number "
                f"({frame[column][row]!r} on data row {row + 1})"
            )
        frame[column] = values
    for column in ("PassengerId", "Survived", "Pclass", "Sex", "SibSp", "Parch", "Fare"):
        if frame[column].isna().any():
            raise DataError(f"{path}: column {column} has empty values")
    if not frame["Survived"].isin([0, 1]).all():
        raise DataError(f"{path}: column Survived must hold only 0 and 1")
    sexes = set(frame["Sex"]) - {"male", "female"}
    if sexes:
        raise DataError(f"{path}: column Sex has values other than male/female: {sorted(sexes)}")
    return frame


def split(frame: pd.DataFrame, validation_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation split with a fixed seed; the same everywhere it is called."""
    train, valid = train_test_split(frame, test_size=validation_fraction, random_state=seed, stratify=frame["Survived"])
    return train.sort_values("PassengerId"), valid.sort_values("PassengerId")
