"""The shared contract vectors: current with their generator, and the features they pin. Every
server is held to the request vectors in test_server_contract.py, the Rust crates in `cargo test`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from servebench.features import Preprocessor
from servebench.serving.schema import Passenger

VECTORS = json.loads((Path(__file__).parent / "vectors" / "contract.json").read_text())


def test_vectors_are_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "make", Path(__file__).parent / "vectors" / "make_contract_vectors.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.vectors() == VECTORS, "contract.json is stale: run tests/vectors/make_contract_vectors.py"


def test_every_vector_allows_only_client_errors_or_success() -> None:
    for case in VECTORS["requests"]:
        assert case["status"] and all(s == 200 or 400 <= s < 500 for s in case["status"]), case["name"]
        assert ("count" in case) == (200 in case["status"]), case["name"]


@pytest.mark.parametrize("case", VECTORS["features"], ids=lambda c: json.dumps(c["passenger"]))
def test_feature_vector(case: dict) -> None:
    pre = Preprocessor.from_json(VECTORS["preprocess"])
    got = pre.transform_passengers([Passenger.model_validate(case["passenger"])])[0]
    assert got.dtype == np.float32
    assert got.tolist() == np.array(case["features"], dtype=np.float32).tolist()
