"""The Open Inference Protocol's shared layer (servebench.serving.v2) in-process, without a server:
the vectors of tests/vectors/v2.json through `V2Models.infer`, and the inputs the vectors do not
spell out (non-finite numbers, deep nesting, integral floats, an answer that is not finite). The
servers are held to the same over HTTP in test_v2.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from servebench.example_packs import write_example_packs
from servebench.serving.v2 import (
    InferenceRequest,
    V2Error,
    V2Models,
    accepts_media_type,
    request_error,
    server_metadata,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "v2.json").read_text())
TOLERANCE = VECTORS["tolerance"]
A = {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.25, 2.0]}
B = {"name": "b", "shape": [1, 2], "datatype": "INT64", "data": [3, -4]}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> V2Models:
    folder = tmp_path_factory.mktemp("models")
    packs = write_example_packs(folder)
    return V2Models(folder, {name: f"packs/{name}/model.onnx" for name in packs})


def answer(models: V2Models, model: str, body: bytes | str) -> tuple[int, dict[str, Any]]:
    try:
        return 200, models.infer(model, body)
    except V2Error as exc:
        return exc.status, exc.body()


def refused(models: V2Models, body: Any, model: str = "two_inputs") -> str:
    status, doc = answer(models, model, body if isinstance(body, str) else json.dumps(body))
    assert status == 400, doc
    return doc["error"]


INFERENCES = [
    c
    for c in VECTORS["cases"]
    if c["path"].endswith("/infer") and c["method"] == "POST" and c.get("content_type", "") != "text/plain"
]


@pytest.mark.parametrize("case", INFERENCES, ids=[c["name"] for c in INFERENCES])
def test_vector(models: V2Models, case: dict[str, Any]) -> None:
    body = case["raw"] if "raw" in case else json.dumps(case["body"])
    status, doc = answer(models, case["path"].split("/")[3], body)
    assert status == case["status"], doc
    if status != 200:
        assert isinstance(doc["error"], str) and set(doc) == {"error"}
        for name in case.get("names", []):
            assert f"'{name}'" in doc["error"]
        return
    assert doc.get("id") == case["body"].get("id")
    for got, want in zip(doc["outputs"], case["outputs"], strict=True):
        assert {k: got[k] for k in ("name", "datatype", "shape")} == {k: want[k] for k in ("name", "datatype", "shape")}
        assert np.allclose(got["data"], want["data"], rtol=TOLERANCE, atol=TOLERANCE)
        assert all(type(x) is (int if want["datatype"].startswith("INT") else float) for x in got["data"])


def test_metadata_and_readiness(models: V2Models) -> None:
    for name, want in VECTORS["metadata"].items():
        doc = models.metadata(name)
        assert {k: doc[k] for k in want} == want
        assert doc["platform"] == "onnxruntime_onnx" and doc["versions"] == []
        assert models.ready(name) == {"name": name, "ready": True}
    assert models.names == sorted(VECTORS["metadata"])
    for call in (models.metadata, models.ready):
        with pytest.raises(V2Error) as caught:
            call("nope")
        assert caught.value.status == 404 and "'nope'" in caught.value.message
    assert server_metadata("fastapi")["name"] == "fastapi"


def with_a(data: str) -> str:
    """The two_inputs request with input a's data written as JSON text."""
    a = '{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": ' + data + "}"
    return '{"inputs": [' + a + ", " + json.dumps(B) + "]}"


@pytest.mark.parametrize(
    "data",
    [
        "[NaN, 0, 0]",  # not JSON, but Python's and pydantic's parsers read it
        "[Infinity, 0, 0]",
        "[1e400, 0, 0]",  # a double's overflow: read as infinity
        "[1" + "0" * 400 + ", 0, 0]",  # an integer beyond any double
        "[3.5e38, 0, 0]",  # beyond float32
        '[{"x": 1}, 0, 0]',
        '[[1, 2], {"x": 3}]',
    ],
)
def test_values_that_are_not_numbers_of_the_datatype(models: V2Models, data: str) -> None:
    assert "'a'" in refused(models, with_a(data))


def test_nested_data_is_flattened_fully(models: V2Models) -> None:
    flat = answer(models, "two_inputs", with_a("[1, 2, 3]"))
    assert flat[0] == 200
    assert answer(models, "two_inputs", with_a("[[[1, 2, 3]]]")) == flat
    assert answer(models, "two_inputs", with_a("[[1], [2, 3]]")) == flat


def test_integers(models: V2Models) -> None:
    ok = {"inputs": [A, {**B, "data": [3.0, -4e0]}]}
    assert answer(models, "two_inputs", json.dumps(ok))[0] == 200  # integral numbers are integers
    assert "'b'" in refused(models, {"inputs": [A, {**B, "data": [1e19, 0]}]})
    assert "'b'" in refused(models, {"inputs": [A, {**B, "data": [-(2**63) - 1, 0]}]})
    low = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [-(2**31), 2**31 - 1]}]}
    assert answer(models, "fixed", json.dumps(low))[0] == 200
    assert "'x'" in refused(models, {"inputs": [{**low["inputs"][0], "data": [-(2**31) - 1, 0]}]}, "fixed")


def test_shapes(models: V2Models) -> None:
    assert "'a'" in refused(models, {"inputs": [{**A, "shape": [1, 0]}, B]})
    # A shape of JSON integers only: not 3.0, not true.
    assert refused(models, {"inputs": [{**A, "shape": [1, 3.0]}, B]}).startswith("inputs[0].shape[1]")
    assert refused(models, {"inputs": [{**A, "shape": [True, 3]}, B]}).startswith("inputs[0].shape[0]")
    # A product far past anything that fits in memory is compared, not allocated.
    assert "'a'" in refused(models, {"inputs": [{**A, "shape": [2**62, 3]}, B]})


def test_deep_nesting_is_a_400(models: V2Models) -> None:
    body = '{"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": ' + "[" * 5000 + "]" * 5000 + "}]}"
    assert answer(models, "two_inputs", body)[0] == 400


def test_an_answer_that_is_not_finite_is_refused_naming_the_output(models: V2Models) -> None:
    x = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1.7e308] * 4}
    assert "'y'" in refused(models, {"inputs": [x]}, "regression")


def test_request_errors_name_the_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        InferenceRequest.model_validate({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32"}]})
    assert request_error(caught.value.errors()).message.startswith("inputs[0].data: ")
    fastapi_style = [{"type": "missing", "loc": ("body", "inputs"), "msg": "Field required"}]
    assert request_error(fastapi_style).message == "inputs: Field required"
    assert request_error([{"type": "missing", "loc": ("body",), "msg": "Field required"}]).status == 400
    invalid = [{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error", "ctx": {"error": "bad"}}]
    assert request_error(invalid).message == "the body is not JSON: bad"


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("application/vnd.api+json", False),
        ("multipart/form-data; boundary=x", False),
    ],
)
def test_media_types(content_type: str | None, accepted: bool) -> None:
    assert accepts_media_type(content_type) == accepted
