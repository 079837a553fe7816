from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx

from servebench.export import INPUT, OUTPUT, PARITY_TOLERANCE


def test_onnx_matches_native_on_every_validation_row(artifacts: dict[str, Any]) -> None:
    for name, probabilities in artifacts["onnx"].items():
        native = artifacts["native"][name.removesuffix("_onnx")]
        assert np.max(np.abs(probabilities - native)) <= PARITY_TOLERANCE, name


def test_onnx_interface_is_shared(artifacts: dict[str, Any]) -> None:
    for file in ("pytorch.onnx", "lightgbm.onnx"):
        graph = onnx.load(str(artifacts["models"] / file)).graph
        assert [i.name for i in graph.input] == [INPUT] and [o.name for o in graph.output] == [OUTPUT]
        dims = graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_value == 6
        assert all(n.op_type != "ZipMap" for n in graph.node)


def test_reference_rows_are_client_payloads(artifacts: dict[str, Any]) -> None:
    lines = (artifacts["models"] / "reference.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len(artifacts["data"].valid)
    assert set(rows[0]) == {
        "PassengerId",
        "Survived",
        "Pclass",
        "Sex",
        "Age",
        "SibSp",
        "Parch",
        "Fare",
        "pytorch",
        "lightgbm",
        "pytorch_onnx",
        "lightgbm_onnx",
    }
    assert any(r["Age"] is None for r in rows) and {r["Sex"] for r in rows} == {"male", "female"}
    assert all(isinstance(r["Pclass"], int) for r in rows)
