"""One ONNX model in Triton's Python backend, run by ONNX Runtime with the servers' session options.

The Triton build PyPI ships (nvidia-pytriton) has the Python backend alone, no ONNX Runtime
backend, so this is the model Triton's Python backend runs for each ONNX file (servers/triton/
serve.py writes its config.pbtxt). Triton itself parses the request, checks each input's name,
datatype and shape against the config, and encodes the response; `execute` gets the tensors as
numpy arrays.

With Triton's dynamic batcher (max_batch_size > 0 in the config), `execute` gets the requests
Triton gathered: their rows go to ONNX Runtime as one call, and each request gets its own rows
back. Without it, one request at a time.
"""

from __future__ import annotations

import json
import os
import site
from pathlib import Path
from typing import Any

# The stub embeds libpython without this environment on its path: the stack's packages (and
# servebench, through its editable install's .pth) are added here, where serve.py says.
site.addsitedir(os.environ["SERVEBENCH_TRITON_SITE"])

import numpy as np
import triton_python_backend_utils as pb_utils

from servebench.serving.inference import onnx_session


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.session = onnx_session(Path(config["parameters"]["onnx_path"]["string_value"]))
        self.inputs = [node.name for node in self.session.get_inputs()]
        self.outputs = [node.name for node in self.session.get_outputs()]
        # First runs allocate and pick kernels: before Triton marks the model ready.
        feeds = {
            node.name: np.zeros([d if isinstance(d, int) and d >= 0 else 1 for d in node.shape], _dtype(node.type))
            for node in self.session.get_inputs()
        }
        for _ in range(20):
            self.session.run(None, feeds)

    def _feeds(self, request: Any) -> dict[str, np.ndarray]:
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}

    def _response(self, results: list[np.ndarray], wanted: set[str]) -> Any:
        # Graph order: Triton hands the backend the requested outputs as a set, without the
        # request's order (and all of them when the request names none).
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(value))
            for name, value in zip(self.outputs, results, strict=True)
            if name in wanted
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _error(self, message: str) -> Any:
        # INVALID_ARG: Triton answers a 400, the client's fault (its default is a 500).
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))

    def _one(self, request: Any) -> Any:
        feeds = self._feeds(request)
        # Triton passes a dimension of 0 through; the protocol's contract refuses an empty batch.
        if empty := [name for name, value in feeds.items() if value.size == 0]:
            return self._error(f"input '{empty[0]}': an empty batch")
        try:
            results = self.session.run(None, feeds)
        except Exception:  # onnxruntime's own untyped errors: the inputs
            return self._error(f"model '{self.name}' cannot run on these inputs")
        return self._response(results, set(request.requested_output_names()))

    def execute(self, requests: list[Any]) -> list[Any]:
        if not self.batching or len(requests) == 1:
            return [self._one(request) for request in requests]
        feeds = [self._feeds(request) for request in requests]
        if any(value.size == 0 for f in feeds for value in f.values()):
            return [self._one(request) for request in requests]
        rows = [len(next(iter(f.values()))) for f in feeds]
        joined = {name: np.concatenate([f[name] for f in feeds]) for name in self.inputs}
        try:
            results = self.session.run(None, joined)
        except Exception:
            # One request's bad inputs must not fail the others gathered with it.
            return [self._one(request) for request in requests]
        responses, start = [], 0
        for request, count in zip(requests, rows, strict=True):
            part = [value[start : start + count] for value in results]
            responses.append(self._response(part, set(request.requested_output_names())))
            start += count
        return responses


def _dtype(onnx_type: str) -> np.dtype:
    return {
        "tensor(float)": np.dtype(np.float32),
        "tensor(double)": np.dtype(np.float64),
        "tensor(int64)": np.dtype(np.int64),
        "tensor(int32)": np.dtype(np.int32),
    }[onnx_type]
