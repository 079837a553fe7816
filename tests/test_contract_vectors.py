"""The shared contract vectors, Python side (the Rust crates check the same file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from servebench.contract import ContractError, parse_request
from servebench.features import Preprocessor

VECTORS = json.loads((Path(__file__).parent / "vectors" / "contract.json").read_text())


def test_vectors_are_current() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make", Path(__file__).parent / "vectors" / "make_contract_vectors.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.vectors() == VECTORS, "contract.json is stale: run tests/vectors/make_contract_vectors.py"


@pytest.mark.parametrize("case", VECTORS["requests"], ids=lambda c: c["name"])
def test_request_vector(case: dict) -> None:
    body = case["body"].encode()
    if case["status"] == 200:
        passengers, _ = parse_request(body, case["content_type"])
        assert len(passengers) == case["count"]
    else:
        with pytest.raises(ContractError) as err:
            parse_request(body, case["content_type"])
        assert (err.value.status, err.value.field) == (case["status"], case["field"])
        if case["field"]:
            assert case["field"].split(".")[-1].split("[")[0] in err.value.message


@pytest.mark.parametrize("case", VECTORS["features"], ids=lambda c: json.dumps(c["passenger"]))
def test_feature_vector(case: dict) -> None:
    pre = Preprocessor.from_json(VECTORS["preprocess"])
    passengers, _ = parse_request(json.dumps(case["passenger"]).encode(), "application/json")
    got = pre.transform_passengers(passengers)[0]
    assert got.dtype == np.float32
    assert got.tolist() == np.array(case["features"], dtype=np.float32).tolist()
