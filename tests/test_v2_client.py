"""An independent client of the Open Inference Protocol, NVIDIA's tritonclient (HTTP, JSON
tensors), queries every stack that serves ONNX: liveness, readiness, a model's metadata and
readiness, and inference with several inputs and outputs, the id echoed. It runs from an
environment of its own (scripts/clients_env.sh), whose pins the servers' does not share."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import numpy as np
import pytest

from .conftest import ROOT, Server

pytestmark = pytest.mark.servers

CLIENT = ROOT / ".venv-clients" / "bin" / "python"
CHECK = ROOT / "tests" / "clients" / "triton_check.py"
VECTORS = json.loads((ROOT / "tests" / "vectors" / "v2.json").read_text())


def client_reads(server: Server, request: dict[str, Any]) -> dict[str, Any]:
    if not CLIENT.is_file():
        pytest.fail(f"{CLIENT} is missing: run scripts/clients_env.sh (./run_tests.sh does)")
    address = server.base_url.removeprefix("http://")
    done = subprocess.run(
        [str(CLIENT), str(CHECK), address, json.dumps(request)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_an_independent_client_queries_every_stack(server: Server) -> None:
    if "onnx" not in server.spec.formats:
        pytest.skip(f"{server.framework} serves no ONNX model")
    case = next(c for c in VECTORS["cases"] if c["name"] == "two rows, nested data")
    inputs = [{**i, "data": np.asarray(i["data"]).reshape(-1).tolist()} for i in case["body"]["inputs"]]
    request = {"model": "two_inputs", "id": "tritonclient-1", "inputs": inputs, "outputs": ["winner", "score"]}
    got = client_reads(server, request)
    assert got["live"] and got["ready"] and got["model_ready"]
    assert got["model_name"] == "two_inputs" and got["id"] == "tritonclient-1"
    want = VECTORS["metadata"]["two_inputs"]
    for part in ("inputs", "outputs"):
        assert [{k: t[k] for k in ("name", "datatype", "shape")} for t in got["metadata"][part]] == want[part]
    expected = {o["name"]: o for o in case["outputs"]}
    for name, out in got["outputs"].items():
        assert out["shape"] == expected[name]["shape"]
        assert np.allclose(out["data"], expected[name]["data"], rtol=VECTORS["tolerance"], atol=VECTORS["tolerance"])
