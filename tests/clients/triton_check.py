"""An independent client of the Open Inference Protocol against one server: NVIDIA's tritonclient
(HTTP, JSON tensors), run from its own environment (.venv-clients, scripts/clients_env.sh).

`python triton_check.py HOST:PORT REQUEST_JSON` where the request is `{"model", "id", "inputs":
[{"name", "shape", "datatype", "data"}], "outputs": [name, ...]}`; prints what the client read:
liveness, readiness, the model's metadata and readiness, and the inference's outputs."""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.http as triton

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


def main(url: str, request: dict) -> dict:
    client = triton.InferenceServerClient(url=url, connection_timeout=10.0, network_timeout=10.0)
    model = request["model"]
    inputs = []
    for given in request["inputs"]:
        tensor = triton.InferInput(given["name"], given["shape"], given["datatype"])
        tensor.set_data_from_numpy(
            np.asarray(given["data"], dtype=NUMPY[given["datatype"]]).reshape(given["shape"]), binary_data=False
        )
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in request["outputs"]]
    result = client.infer(model, inputs, outputs=outputs, request_id=request["id"])
    response = result.get_response()
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "metadata": client.get_model_metadata(model),
        "id": response.get("id"),
        "model_name": response.get("model_name"),
        "outputs": {
            name: {"shape": list(result.as_numpy(name).shape), "data": result.as_numpy(name).reshape(-1).tolist()}
            for name in request["outputs"]
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
