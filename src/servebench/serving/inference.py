"""The inference layer both Python servers share: load preprocess.json and the four models once,
warm them, and answer a raw request body with a response body.

Runtime choices, for single-request latency on the one core a server is given:
- torch: one intra-op and one inter-op thread, `inference_mode`; a 6→32→1 network gains nothing
  from a thread pool and would pay its wake-up on every call.
- onnxruntime: one intra-op thread, sequential execution, and intra-op spinning off, so that no
  pool thread spin-waits after a run and steals the core from the HTTP layer.
- LightGBM: `num_threads=1` on every predict, for the same reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import torch

from servebench.contract import MODELS, ContractError, parse_request
from servebench.export import INPUT, OUTPUT
from servebench.features import Preprocessor
from servebench.paths import models_dir, out_dir
from servebench.training import SurvivalProbability, load_lightgbm, load_pytorch

MODELS_DIR_ENV = "SERVEBENCH_MODELS_DIR"
MODEL_FILES = {
    "pytorch": "pytorch.pt",
    "lightgbm": "lightgbm.txt",
    "pytorch_onnx": "pytorch.onnx",
    "lightgbm_onnx": "lightgbm.onnx",
}

Predictor = Callable[[np.ndarray], np.ndarray]


def configure_threads() -> None:
    torch.set_num_threads(1)
    # Raises once earlier torch work in this process fixed the count; one thread either way.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def onnx_session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _torch_predictor(path: Path) -> Predictor:
    model = SurvivalProbability(load_pytorch(path)).eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return predict


def _lightgbm_predictor(path: Path) -> Predictor:
    booster = load_lightgbm(path)
    return lambda x: booster.predict(x, num_threads=1)


def _onnx_predictor(path: Path) -> Predictor:
    if not path.is_file():
        raise FileNotFoundError(f"missing model file {path}")
    try:
        session = ort.InferenceSession(
            str(path), sess_options=onnx_session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ValueError(f"cannot load ONNX model {path}: {exc}") from None
    return lambda x: session.run([OUTPUT], {INPUT: x})[0]


LOADERS: dict[str, Callable[[Path], Predictor]] = {
    "pytorch": _torch_predictor,
    "lightgbm": _lightgbm_predictor,
    "pytorch_onnx": _onnx_predictor,
    "lightgbm_onnx": _onnx_predictor,
}


@dataclass
class Response:
    status: int
    body: bytes
    server_ms: float | None = None


class Inference:
    """Preprocessing plus the loaded models; `handle` turns a request body into a Response."""

    def __init__(self, directory: Path, models: Iterable[str] = MODELS) -> None:
        configure_threads()
        self.directory = directory
        self.preprocessor = Preprocessor.load(directory / "preprocess.json")
        self.predictors = {name: LOADERS[name](directory / MODEL_FILES[name]) for name in models}
        self._warm_up()

    @classmethod
    def from_env(cls) -> Inference:
        directory = os.environ.get(MODELS_DIR_ENV)
        return cls(Path(directory) if directory else models_dir(out_dir()))

    def _warm_up(self) -> None:
        """First calls allocate and pick kernels; do that before /health says ready."""
        x = np.zeros((1, len(self.preprocessor.features)), dtype=np.float32)
        for _ in range(20):
            for predict in self.predictors.values():
                predict(x)

    @property
    def models(self) -> list[str]:
        return sorted(self.predictors)

    def predict(self, model: str, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.predictors[model](x), dtype=np.float64).reshape(-1)

    def handle(self, model: str, body: bytes, content_type: str | None) -> Response:
        start = time.perf_counter()
        try:
            if model not in self.predictors:
                raise ContractError(404, f"unknown model '{model}'")
            passengers, batch = parse_request(body, content_type)
            probabilities = self.predict(model, self.preprocessor.transform_passengers(passengers))
        except ContractError as err:
            return Response(err.status, render_error(err))
        answers = [{"survived": int(p >= 0.5), "probability": float(p)} for p in probabilities]
        payload = orjson.dumps({"predictions": answers} if batch else answers[0])
        return Response(200, payload, (time.perf_counter() - start) * 1000.0)


def server_timing(ms: float) -> str:
    return f"app;dur={ms:.3f}"


def render_error(err: ContractError) -> bytes:
    """Error bodies go through the standard library with ASCII escapes: a field name may hold a
    lone surrogate (valid in a JSON string), which orjson refuses to encode."""
    return json.dumps(err.body(), ensure_ascii=True, separators=(",", ":")).encode()


def error_body(status: int, message: str) -> bytes:
    return render_error(ContractError(status, message))
