"""The whole contract of docs/api.md, bad inputs included, against every server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from servebench import registry

from .conftest import Server, valid_passenger

VECTORS = json.loads((Path(__file__).parent / "vectors" / "contract.json").read_text())
TIMING = re.compile(r"^app;dur=\d+(\.\d+)?$")

# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]


def post(
    server: Server, body: bytes | str, content_type: str | None = "application/json", model: str = "pytorch_onnx"
) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(server.url(f"/predict/{model}"), content=data, headers=headers, timeout=30)


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "field"} and isinstance(body["error"], str)
    assert "Traceback" not in body["error"] and "/" not in body["error"].replace("application/json", "")
    if field is not None:
        assert body["field"] == field


def test_every_contract_vector(server: Server) -> None:
    """All vectors on one server: status (or the deviation its description records), the field
    where the vector pins it and, for 200s, the number of predictions."""
    failures = []
    for case in VECTORS["requests"]:
        response = post(server, case["body"], case["content_type"])
        allowed = server.spec.deviations.get(case["name"], {}).get("status", case["status"])
        ok = response.status_code in allowed and response.headers["content-type"].startswith("application/json")
        doc = response.json() if ok else {}
        if ok and response.status_code == 200:
            count = len(doc["predictions"]) if "predictions" in doc else 1
            ok = count == case["count"] and bool(TIMING.match(response.headers.get("server-timing", "")))
        elif ok and "field" in case and case["name"] not in server.spec.deviations:
            ok = doc.get("field") == case["field"]
        if not ok:
            want = f"{case['status']} {case.get('field')}"
            failures.append(f"{case['name']}: want {want}, got {response.status_code} {response.text[:150]}")
    assert not failures, "\n".join(failures)
    assert httpx.get(server.url("/health")).status_code == 200


def test_health_carries_server_timing(server: Server) -> None:
    assert TIMING.match(httpx.get(server.url("/health")).headers["server-timing"])


def test_single_prediction_shape(server: Server) -> None:
    response = post(server, json.dumps(valid_passenger()))
    assert response.status_code == 200
    doc = response.json()
    assert set(doc) == {"survived", "probability"} and doc["survived"] in (0, 1)
    assert 0.0 <= doc["probability"] <= 1.0 and doc["survived"] == int(doc["probability"] >= 0.5)
    assert TIMING.match(response.headers["server-timing"])


def test_batch_is_in_order(server: Server) -> None:
    people = [valid_passenger(), {**valid_passenger(), "Sex": "female", "Pclass": 1}, valid_passenger()]
    batch = post(server, json.dumps({"instances": people})).json()["predictions"]
    singles = [post(server, json.dumps(p)).json() for p in people]
    assert [b["probability"] for b in batch] == pytest.approx([s["probability"] for s in singles], abs=1e-6)
    assert batch[0]["probability"] == pytest.approx(batch[2]["probability"], abs=1e-7)


def test_unknown_model_and_path(server: Server) -> None:
    assert_error(post(server, json.dumps(valid_passenger()), model="xgboost"), 404)
    assert_error(httpx.get(server.url("/nothing/here")), 404)
    for model in {m.name for m in registry.models()} - set(server.models):
        assert_error(post(server, json.dumps(valid_passenger()), model=model), 404)


def test_wrong_methods(server: Server) -> None:
    assert_error(httpx.get(server.url("/predict/pytorch_onnx")), 405)
    assert_error(httpx.put(server.url("/predict/pytorch_onnx"), json=valid_passenger()), 405)
    assert_error(httpx.post(server.url("/health"), json={}), 405)


def test_body_over_one_mib(server: Server) -> None:
    big = json.dumps({"instances": [valid_passenger()] * 20000})
    assert len(big) > 1 << 20
    assert_error(post(server, big), 413)
    padded = json.dumps(valid_passenger())[:-1] + ', "pad": "' + "x" * (1 << 20) + '"}'
    assert_error(post(server, padded), 413)
    assert post(server, json.dumps(valid_passenger())).status_code == 200


def test_errors_name_the_field(server: Server) -> None:
    response = post(server, json.dumps({"instances": [valid_passenger(), {**valid_passenger(), "Age": -1}]}))
    assert_error(response, 422, "instances[1].Age")
    assert "Age" in response.json()["error"]
