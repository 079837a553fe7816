"""The Open Inference Protocol (docs/api.md) against every server: each case of the shared vectors
(tests/vectors/v2.json, which the Rust crates also check), every served model's metadata against
its ONNX graph, agreement with the record API, and the server alive after every refusal.

A case a server's description records under `deviations:` is skipped for that server with the
reason recorded."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from servebench import registry
from servebench.features import Preprocessor
from servebench.serving.schema import Passenger

from .conftest import ROOT, Server, valid_passenger

VECTORS = json.loads((ROOT / "tests" / "vectors" / "v2.json").read_text())
CONTRACT = json.loads((ROOT / "tests" / "vectors" / "contract.json").read_text())
CASES = VECTORS["cases"]
TOLERANCE = VECTORS["tolerance"]
TIMING = re.compile(r"^app;dur=\d+(\.\d+)?$")
ONNX_DATATYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}
JSON = "application/json"

pytestmark = pytest.mark.servers

# The two_inputs pack's request of the vectors: one row, flat data.
A = {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.25, 2.0]}
B = {"name": "b", "shape": [1, 2], "datatype": "INT64", "data": [3, -4]}


def protocol(server: Server) -> Server:
    if "onnx" not in server.spec.formats:
        pytest.skip(f"{server.framework} serves no ONNX model")
    return server


def deviates(server: Server, what: str) -> bool:
    """The server's description records a deviation under `what` (a case, or a property of the
    protocol such as GENERATED_ID): that check is left out for it."""
    return what in server.spec.deviations


# Deviations a description may record beside the vectors' cases: a property of every answer,
# checked by the vectors and by the tests below.
GENERATED_ID = "id is echoed only when given"
MODEL_PLATFORM = "a model's platform"
SERVER_EXTENSIONS = "the server's extensions"
SERVER_TIMING = "the Server-Timing header"
BODY_LIMIT = "a body over 1 MiB"


def skip_deviation(server: Server, case: str) -> None:
    deviation = server.spec.deviations.get(case)
    if deviation is not None:
        pytest.skip(
            f"{server.framework} records a deviation for {case!r}: {deviation.get('reason', 'no reason given')}"
        )


def send(server: Server, case: dict[str, Any]) -> httpx.Response:
    """A vector's request: `body` as JSON or `raw` text, with its Content-Type (JSON unless the
    case gives another, or none when it gives null)."""
    if "raw" in case:
        content: bytes | None = case["raw"].encode()
    elif "body" in case:
        content = json.dumps(case["body"]).encode()
    else:
        content = None
    content_type = case.get("content_type", JSON)
    headers = {"Content-Type": content_type} if content is not None and content_type is not None else {}
    return httpx.request(case["method"], server.url(case["path"]), content=content, headers=headers, timeout=30)


def infer(server: Server, model: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url(f"/v2/models/{model}/infer"), json=body, timeout=30)


def assert_v2_error(response: httpx.Response, status: int, names: Sequence[str] = ()) -> str:
    """The protocol's error: the status, a JSON body whose `error` is a string naming each of
    `names` in single quotes, with no stack trace."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith(JSON), response.headers
    message = response.json()["error"]
    assert isinstance(message, str) and "Traceback" not in message
    for name in names:
        assert f"'{name}'" in message, f"{message!r} does not name '{name}'"
    return message


def close(got: Any, want: Any) -> bool:
    """Every number within TOLERANCE × max(1, |want|)."""
    got, want = np.asarray(got, dtype=np.float64).reshape(-1), np.asarray(want, dtype=np.float64).reshape(-1)
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= TOLERANCE * np.maximum(1.0, np.abs(want))))


def assert_outputs(doc: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    got = doc["outputs"]
    assert [(o["name"], o["datatype"], o["shape"]) for o in got] == [
        (o["name"], o["datatype"], o["shape"]) for o in expected
    ], got
    for out, want in zip(got, expected, strict=True):
        assert isinstance(out["data"], list) and all(isinstance(x, int | float) for x in out["data"])
        assert close(out["data"], want["data"]), (out["name"], out["data"], want["data"])
        if want["datatype"].startswith("INT"):
            assert all(float(x).is_integer() for x in out["data"]), out


def assert_answer(server: Server, case: dict[str, Any], response: httpx.Response) -> None:
    """A 200 of a case: the inference's outputs (and id, and Server-Timing), or the body of a
    health, readiness or metadata route."""
    assert response.headers["content-type"].startswith(JSON), response.headers
    doc = response.json()
    path = case["path"]
    if path.endswith("/infer"):
        model = path.split("/")[3]
        assert doc["model_name"] == model
        if "id" in case["body"] or not deviates(server, GENERATED_ID):
            assert doc.get("id") == case["body"].get("id")
        assert_outputs(doc, case["outputs"])
        if not deviates(server, SERVER_TIMING):
            assert TIMING.match(response.headers.get("server-timing", "")), response.headers
    elif path == "/v2/health/live":
        assert doc == {"live": True}
    elif path == "/v2/health/ready":
        assert doc == {"ready": True}
    elif path.endswith("/ready"):
        assert doc == {"name": path.split("/")[3], "ready": True}
    else:
        name = path.split("/")[3]
        assert {k: doc[k] for k in ("name", "inputs", "outputs")} == VECTORS["metadata"][name]
        if not deviates(server, MODEL_PLATFORM):
            assert doc["platform"] == "onnxruntime_onnx" and isinstance(doc["versions"], list)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(server: Server, case: dict[str, Any]) -> None:
    """One case of the shared vectors: its status; an error's body naming what the case names; a
    200's outputs within the tolerance."""
    protocol(server)
    skip_deviation(server, case["name"])
    response = send(server, case)
    if case["status"] == 200:
        assert response.status_code == 200, response.text[:300]
        assert_answer(server, case, response)
    else:
        assert_v2_error(response, case["status"], case.get("names", []))


def test_alive_after_every_refusal(server: Server) -> None:
    """Every error case of the vectors in a row, then the server still answers, the same process."""
    protocol(server)
    for case in CASES:
        if case["status"] != 200 and case["name"] not in server.spec.deviations:
            assert send(server, case).status_code == case["status"], case["name"]
    os.kill(server.pid, 0)
    live = httpx.get(server.url("/v2/health/live"))
    assert live.status_code == 200 and (deviates(server, "liveness") or live.json() == {"live": True})
    assert httpx.get(server.url(server.spec.health)).status_code == 200
    assert infer(server, "two_inputs", {"inputs": [A, B]}).status_code == 200


def test_server_metadata(server: Server) -> None:
    protocol(server)
    response = httpx.get(server.url("/v2"))
    assert response.status_code == 200
    doc = response.json()
    if "record" in server.spec.apis:
        assert doc["name"] == httpx.get(server.url("/health")).json()["framework"]
    assert isinstance(doc["name"], str) and doc["name"]
    assert isinstance(doc["version"], str)
    if not deviates(server, SERVER_EXTENSIONS):
        assert doc["extensions"] == []


def served_over_v2(server: Server, models: Path) -> dict[str, Path]:
    """What the launcher has a server serve over the protocol: its ONNX models and every pack."""
    onnx = {m.name: m.file for m in server.spec.serves(registry.models()) if m.file.endswith(".onnx")}
    return {name: models / file for name, file in {**onnx, **registry.pack_files(models)}.items()}


def graph(path: Path) -> dict[str, list[dict[str, Any]]]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def tensors(nodes: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": n.name,
                "datatype": ONNX_DATATYPES[n.type],
                "shape": [d if isinstance(d, int) else -1 for d in n.shape],
            }
            for n in nodes
        ]

    return {"inputs": tensors(session.get_inputs()), "outputs": tensors(session.get_outputs())}


def test_metadata_of_every_served_model_matches_its_graph(server: Server, artifacts: dict[str, Any]) -> None:
    protocol(server)
    served = served_over_v2(server, artifacts["models"])
    assert {"pytorch_onnx", "two_inputs", "regression", "multiclass", "fixed"} <= set(served)
    for name, path in served.items():
        response = httpx.get(server.url(f"/v2/models/{name}"))
        assert response.status_code == 200, (name, response.text[:300])
        doc = response.json()
        assert doc["name"] == name
        if not deviates(server, MODEL_PLATFORM):
            assert doc["platform"] == "onnxruntime_onnx"
        assert {"inputs": doc["inputs"], "outputs": doc["outputs"]} == graph(path), name
        ready = httpx.get(server.url(f"/v2/models/{name}/ready"))
        assert ready.status_code == 200, name
        if not deviates(server, "a model's readiness"):
            assert ready.json() == {"name": name, "ready": True}


def test_only_onnx_models_and_packs_are_served_over_v2(server: Server, artifacts: dict[str, Any]) -> None:
    """The record API's other models are not the protocol's, and packs are not the record API's."""
    protocol(server)
    served = served_over_v2(server, artifacts["models"])
    for model in set(server.models) - set(served):
        assert_v2_error(httpx.get(server.url(f"/v2/models/{model}")), 404, [model])
    packs = registry.pack_files(artifacts["models"])
    assert packs and not set(packs) & set(server.models)
    for pack in packs:
        response = httpx.post(server.url(f"/predict/{pack}"), json=valid_passenger(), timeout=30)
        assert response.status_code == 404, response.text[:300]


@pytest.mark.record_api
def test_agrees_with_the_record_api(server: Server, artifacts: dict[str, Any]) -> None:
    """pytorch_onnx over the protocol, on the contract vectors' passengers preprocessed as the
    server's preprocess.json has it, gives /predict/pytorch_onnx's probabilities: singly and as
    one batch."""
    protocol(server)
    people = [person["passenger"] for person in CONTRACT["features"]]
    features = Preprocessor.load(artifacts["models"] / "preprocess.json").transform_passengers(
        [Passenger.model_validate(p) for p in people]
    )
    probabilities = []
    for person, row in zip(people, features, strict=True):
        answer = httpx.post(server.url("/predict/pytorch_onnx"), json=person, timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        probabilities.append(answer.json()["probability"])
        one = {"name": "features", "shape": [1, 6], "datatype": "FP32", "data": row.tolist()}
        response = infer(server, "pytorch_onnx", {"inputs": [one]})
        assert response.status_code == 200, response.text[:300]
        (out,) = response.json()["outputs"]
        assert out["name"] == "probability" and out["datatype"] == "FP32" and out["shape"] == [1]
        assert math.isclose(out["data"][0], probabilities[-1], abs_tol=1e-6)
    batch = {"name": "features", "shape": list(features.shape), "datatype": "FP32", "data": features.tolist()}
    (out,) = infer(server, "pytorch_onnx", {"inputs": [batch]}).json()["outputs"]
    assert out["shape"] == [len(people)]
    assert np.allclose(out["data"], probabilities, atol=1e-6)


def test_id_is_echoed_only_when_given(server: Server) -> None:
    protocol(server)
    assert infer(server, "two_inputs", {"id": "x-1", "inputs": [A, B]}).json()["id"] == "x-1"
    skip_deviation(server, GENERATED_ID)
    assert "id" not in infer(server, "two_inputs", {"inputs": [A, B]}).json()


def test_outputs_selected_and_in_the_order_asked(server: Server) -> None:
    protocol(server)
    every = infer(server, "two_inputs", {"inputs": [A, B]}).json()["outputs"]
    assert [o["name"] for o in every] == ["score", "winner"]  # the graph's order
    skip_deviation(server, "outputs in the order asked")
    for order in (["winner"], ["score"], ["winner", "score"], ["score", "winner"]):
        body = {"inputs": [A, B], "outputs": [{"name": n} for n in order]}
        got = infer(server, "two_inputs", body).json()["outputs"]
        assert [o["name"] for o in got] == order
        for out in got:
            assert out == next(o for o in every if o["name"] == out["name"])


def test_nested_and_flat_data_agree(server: Server) -> None:
    protocol(server)
    rows = [[0.5, -1.25, 2.0], [3.0, 2.0, 1.0], [-1.0, 0.0, 0.25]]
    ints = [[3, -4], [0, 7], [1, 1]]

    def body(a: list[Any], b: list[Any]) -> dict[str, Any]:
        return {
            "id": "nested-or-flat",
            "inputs": [
                {"name": "a", "shape": [3, 3], "datatype": "FP32", "data": a},
                {"name": "b", "shape": [3, 2], "datatype": "INT64", "data": b},
            ],
        }

    nested = infer(server, "two_inputs", body(rows, ints))
    flat = infer(server, "two_inputs", body([x for row in rows for x in row], [x for row in ints for x in row]))
    assert nested.status_code == flat.status_code == 200, nested.text[:300] + flat.text[:300]
    assert nested.json() == flat.json()
    assert [o["shape"] for o in flat.json()["outputs"]] == [[3, 1], [3]]


def test_content_types(server: Server) -> None:
    """No Content-Type, or application/json with parameters, is a request; another type a 415."""
    protocol(server)
    body = json.dumps({"inputs": [A, B]}).encode()
    url = server.url("/v2/models/two_inputs/infer")
    for content_type in (None, JSON, "application/json; charset=utf-8"):
        headers = {"Content-Type": content_type} if content_type else {}
        assert httpx.post(url, content=body, headers=headers).status_code == 200, content_type
    skip_deviation(server, "a Content-Type that is not JSON")
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        assert_v2_error(httpx.post(url, content=body, headers={"Content-Type": content_type}), 415)


def test_body_over_one_mib(server: Server) -> None:
    protocol(server)
    skip_deviation(server, BODY_LIMIT)
    rows = 1 << 17
    big = {"inputs": [{**A, "shape": [rows, 3], "data": [0.5] * (3 * rows)}, {**B, "shape": [rows, 2]}]}
    content = json.dumps(big).encode()
    assert len(content) > 1 << 20
    response = httpx.post(server.url("/v2/models/two_inputs/infer"), content=content, headers={"Content-Type": JSON})
    assert response.status_code == 413
    assert isinstance(response.json()["error"], str)
    assert infer(server, "two_inputs", {"inputs": [A, B]}).status_code == 200


def test_wrong_methods(server: Server) -> None:
    protocol(server)
    skip_deviation(server, "GET of inference")
    assert_v2_error(httpx.get(server.url("/v2/models/two_inputs/infer")), 405)
    assert_v2_error(httpx.post(server.url("/v2/models/two_inputs"), json={}), 405)
    assert_v2_error(httpx.post(server.url("/v2/health/live"), json={}), 405)
