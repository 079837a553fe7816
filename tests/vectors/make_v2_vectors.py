"""Writes v2.json: the Open Inference Protocol cases every stack (tests/test_v2.py) and the Rust
crates (`cargo test`) are held to, against the example packs (servebench.example_packs).

Run it again only when the protocol's handling or the example packs change:
`python tests/vectors/make_v2_vectors.py`.

A case is a request (`method`, `path`, and `body` as JSON or `raw` text, sent with
`content_type`, application/json unless given, or none when null) with the status it must get.
An error's body is `{"error": "..."}`, whose message contains every name in `names` in single
quotes (the input, output or model at fault). A 200 of an inference lists the expected `outputs`
(name, datatype, shape, flat data; numbers x against expected y within `tolerance` × max(1, |y|)) and, when the request
has an `id`, echoes it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from servebench.example_packs import write_example_packs

OUT = Path(__file__).with_name("v2.json")
TOLERANCE = 1e-5
ONNX_TO_V2 = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}
NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}

A = {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1.25, 2.0]}
B = {"name": "b", "shape": [1, 2], "datatype": "INT64", "data": [3, -4]}


def infer(model: str) -> str:
    return f"/v2/models/{model}/infer"


def with_input(**changes: Any) -> dict[str, Any]:
    """The two_inputs request with input `a` changed."""
    return {"inputs": [{**A, **changes}, B]}


def expected(sessions: dict[str, ort.InferenceSession], model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    session = sessions[model]
    feeds = {i["name"]: np.asarray(i["data"], dtype=NUMPY[i["datatype"]]).reshape(i["shape"]) for i in body["inputs"]}
    wanted = [o["name"] for o in body.get("outputs", [])] or [o.name for o in session.get_outputs()]
    types = {o.name: ONNX_TO_V2[o.type] for o in session.get_outputs()}
    return [
        {"name": name, "datatype": types[name], "shape": list(value.shape), "data": value.reshape(-1).tolist()}
        for name, value in zip(wanted, session.run(wanted, feeds), strict=True)
    ]


def cases(sessions: dict[str, ort.InferenceSession]) -> list[dict[str, Any]]:
    ok: list[tuple[str, str, dict[str, Any]]] = [
        ("one row, flat data", "two_inputs", {"inputs": [A, B]}),
        (
            "two rows, nested data",
            "two_inputs",
            {
                "inputs": [
                    {**A, "shape": [2, 3], "data": [[0.5, -1.25, 2.0], [3.0, 2.0, 1.0]]},
                    {**B, "shape": [2, 2], "data": [[3, -4], [0, 7]]},
                ]
            },
        ),
        ("integers for FP32 data", "two_inputs", {"inputs": [{**A, "data": [1, 2, 3]}, B]}),
        ("one output selected", "two_inputs", {"inputs": [A, B], "outputs": [{"name": "winner"}]}),
        (
            "outputs in the order asked",
            "two_inputs",
            {"inputs": [A, B], "outputs": [{"name": "winner"}, {"name": "score"}]},
        ),
        ("id echoed, inputs in another order", "two_inputs", {"id": "request-42", "inputs": [B, A]}),
        ("parameters ignored", "two_inputs", {"parameters": {"x": 1}, "inputs": [{**A, "parameters": {}}, B]}),
        (
            "FP64 regression, three rows",
            "regression",
            {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": list(np.linspace(-1, 1, 12))}]},
        ),
        (
            "multiclass, two rows",
            "multiclass",
            {"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32", "data": [0.1 * i for i in range(16)]}]},
        ),
        (
            "INT32, a fixed batch of one",
            "fixed",
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [7, -9]}]},
        ),
        (
            "a binary tree ensemble, labels of both classes",
            "binary_trees",
            {"inputs": [{"name": "x", "shape": [4, 2], "datatype": "FP32", "data": [-1, 0, 1, 0, -1, 1, 1, 1]}]},
        ),
    ]
    found: list[dict[str, Any]] = [
        {
            "name": name,
            "method": "POST",
            "path": infer(model),
            "body": body,
            "status": 200,
            "outputs": expected(sessions, model, body),
        }
        for name, model, body in ok
    ]
    bad = [
        ("an input the model does not have", {"inputs": [A, B, {**A, "name": "c"}]}, ["c"]),
        ("an input missing", {"inputs": [A]}, ["b"]),
        ("an input given twice", {"inputs": [A, B, A]}, ["a"]),
        ("another datatype", with_input(datatype="FP64"), ["a"]),
        ("INT32 for an INT64 input", {"inputs": [A, {**B, "datatype": "INT32"}]}, ["b"]),
        ("BYTES", with_input(datatype="BYTES"), ["a"]),
        ("a datatype that does not exist", with_input(datatype="FLOAT"), ["a"]),
        ("a shape of the wrong rank", with_input(shape=[3]), ["a"]),
        ("a fixed dimension that differs", with_input(shape=[1, 4], data=[1, 2, 3, 4]), ["a"]),
        ("a negative dimension", with_input(shape=[-1, 3]), ["a"]),
        ("fewer data than the shape", with_input(data=[1.0, 2.0]), ["a"]),
        ("more data than the shape", with_input(data=[1.0, 2.0, 3.0, 4.0]), ["a"]),
        ("ragged nested data", with_input(shape=[2, 3], data=[[1, 2, 3], [1, 2]]), ["a"]),
        ("a shape whose product overflows", with_input(shape=[4294967296, 4294967296, 3]), ["a"]),
        ("an empty batch", {"inputs": [{**A, "shape": [0, 3], "data": []}, {**B, "shape": [0, 2], "data": []}]}, ["a"]),
        ("a string in the data", with_input(data=[1.0, "2", 3.0]), ["a"]),
        ("a null in the data", with_input(data=[1.0, None, 3.0]), ["a"]),
        ("a bool in INT64 data", {"inputs": [A, {**B, "data": [True, 1]}]}, ["b"]),
        ("a fraction in INT64 data", {"inputs": [A, {**B, "data": [1.5, 1]}]}, ["b"]),
        ("an INT64 out of range", {"inputs": [A, {**B, "data": [9223372036854775808, 1]}]}, ["b"]),
        ("an FP32 out of range", with_input(data=[1e39, 0.0, 0.0]), ["a"]),
        ("an output the model does not have", {"inputs": [A, B], "outputs": [{"name": "nope"}]}, ["nope"]),
    ]
    found += [
        {"name": name, "method": "POST", "path": infer("two_inputs"), "body": body, "status": 400, "names": names}
        for name, body, names in bad
    ]
    fixed_two = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}]}
    int32_range = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [2147483648, 0]}]}
    found += [
        {
            "name": "a batch of two for a fixed batch of one",
            "method": "POST",
            "path": infer("fixed"),
            "body": fixed_two,
            "status": 400,
            "names": ["x"],
        },
        {
            "name": "an INT32 out of range",
            "method": "POST",
            "path": infer("fixed"),
            "body": int32_range,
            "status": 400,
            "names": ["x"],
        },
        {"name": "not JSON", "method": "POST", "path": infer("two_inputs"), "raw": "{inputs:", "status": 400},
        {"name": "an empty body", "method": "POST", "path": infer("two_inputs"), "raw": "", "status": 400},
        {"name": "a JSON array", "method": "POST", "path": infer("two_inputs"), "body": [A, B], "status": 400},
        {"name": "no inputs", "method": "POST", "path": infer("two_inputs"), "body": {"id": "x"}, "status": 400},
        {
            "name": "inputs not a list",
            "method": "POST",
            "path": infer("two_inputs"),
            "body": {"inputs": A},
            "status": 400,
        },
        {
            "name": "an input without data",
            "method": "POST",
            "path": infer("two_inputs"),
            "body": {"inputs": [{k: v for k, v in A.items() if k != "data"}, B]},
            "status": 400,
        },
        {
            "name": "no Content-Type",
            "method": "POST",
            "path": infer("two_inputs"),
            "body": {"inputs": [A, B]},
            "content_type": None,
            "status": 200,
            "outputs": expected(sessions, "two_inputs", {"inputs": [A, B]}),
        },
        {
            "name": "a Content-Type that is not JSON",
            "method": "POST",
            "path": infer("two_inputs"),
            "body": {"inputs": [A, B]},
            "content_type": "text/plain",
            "status": 415,
        },
        {
            "name": "an unknown model's inference",
            "method": "POST",
            "path": infer("nope"),
            "body": {"inputs": [A, B]},
            "status": 404,
            "names": ["nope"],
        },
        {
            "name": "an unknown model's metadata",
            "method": "GET",
            "path": "/v2/models/nope",
            "status": 404,
            "names": ["nope"],
        },
        {
            "name": "an unknown model's readiness",
            "method": "GET",
            "path": "/v2/models/nope/ready",
            "status": 404,
            "names": ["nope"],
        },
        {"name": "GET of inference", "method": "GET", "path": infer("two_inputs"), "status": 405},
        {"name": "liveness", "method": "GET", "path": "/v2/health/live", "status": 200},
        {"name": "readiness", "method": "GET", "path": "/v2/health/ready", "status": 200},
        {"name": "a model's readiness", "method": "GET", "path": "/v2/models/two_inputs/ready", "status": 200},
        {"name": "a model's metadata", "method": "GET", "path": "/v2/models/two_inputs", "status": 200},
    ]
    return found


def metadata(sessions: dict[str, ort.InferenceSession]) -> dict[str, Any]:
    """What GET /v2/models/{name} must say of each example pack."""

    def tensors(items: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "datatype": ONNX_TO_V2[t.type],
                "shape": [d if isinstance(d, int) else -1 for d in t.shape],
            }
            for t in items
        ]

    return {
        name: {"name": name, "inputs": tensors(s.get_inputs()), "outputs": tensors(s.get_outputs())}
        for name, s in sessions.items()
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        packs = write_example_packs(Path(tmp))
        sessions = {name: ort.InferenceSession(str(folder / "model.onnx")) for name, folder in packs.items()}
        doc = {"tolerance": TOLERANCE, "metadata": metadata(sessions), "cases": cases(sessions)}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{OUT}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    main()
