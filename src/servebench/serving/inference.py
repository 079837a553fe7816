"""The inference layer every Python server shares: load preprocess.json and the models it is
told to serve once, warm them, and turn validated passengers into probabilities.

Runtime choices, for single-request latency on the one core a server is given:
- torch: one intra-op and one inter-op thread, `inference_mode`; a 6→32→1 network gains nothing
  from a thread pool and would pay its wake-up on every call.
- onnxruntime: one intra-op thread, sequential execution, and intra-op spinning off, so that no
  pool thread spin-waits after a run and steals the core from the HTTP layer.
- LightGBM: `num_threads=1` on every predict, for the same reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from servebench.contract import ONNX_INPUT, ONNX_OUTPUT
from servebench.features import Preprocessor
from servebench.serving.launch_env import served_models
from servebench.serving.schema import Passenger

Predictor = Callable[[np.ndarray], np.ndarray]


def configure_threads() -> None:
    import torch

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


# torch and LightGBM are imported by the loaders that need them: a server of ONNX models alone
# (a LitServe worker, say) starts without either.
def _torch_predictor(path: Path) -> Predictor:
    import torch

    from servebench.training import SurvivalProbability, load_pytorch

    configure_threads()
    model = SurvivalProbability(load_pytorch(path)).eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return predict


def _lightgbm_predictor(path: Path) -> Predictor:
    import lightgbm as lgb

    if not path.is_file():
        raise FileNotFoundError(f"missing model file {path}")
    booster = lgb.Booster(model_file=str(path))
    return lambda x: booster.predict(x, num_threads=1)


def onnx_session(path: Path) -> ort.InferenceSession:
    """An ONNX Runtime session of the model file with the servers' options."""
    if not path.is_file():
        raise FileNotFoundError(f"missing model file {path}")
    try:
        return ort.InferenceSession(str(path), sess_options=onnx_session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ValueError(f"cannot load ONNX model {path}: {exc}") from None


def _onnx_predictor(path: Path) -> Predictor:
    session = onnx_session(path)
    return lambda x: session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]


# By the model file's format, which its extension names.
LOADERS: dict[str, Callable[[Path], Predictor]] = {
    ".pt": _torch_predictor,
    ".txt": _lightgbm_predictor,
    ".onnx": _onnx_predictor,
}


class Inference:
    """Preprocessing plus the loaded models, keyed by model name."""

    def __init__(self, directory: Path, files: Mapping[str, str]) -> None:
        self.directory = directory
        # A run of model packs alone serves no record model, and has no preprocessing to load.
        self.preprocessor = Preprocessor.load(directory / "preprocess.json") if files else None
        self.predictors: dict[str, Predictor] = {}
        for name, file in files.items():
            path = directory / file
            if path.suffix not in LOADERS:
                raise ValueError(f"model {name}: no loader for {path.name} (one of {', '.join(LOADERS)})")
            self.predictors[name] = LOADERS[path.suffix](path)
        self._warm_up()

    @classmethod
    def from_env(cls) -> Inference:
        """The models the launcher names (`launch_env.served_models`)."""
        return cls(*served_models())

    def _warm_up(self) -> None:
        """First calls allocate and pick kernels; do that before /health says ready."""
        if self.preprocessor is None:
            return
        x = np.zeros((1, len(self.preprocessor.features)), dtype=np.float32)
        for _ in range(20):
            for predict in self.predictors.values():
                predict(x)

    @property
    def models(self) -> list[str]:
        return sorted(self.predictors)

    def predict_features(self, model: str, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.predictors[model](x), dtype=np.float64).reshape(-1)

    def predict(self, model: str, passengers: Sequence[Passenger]) -> np.ndarray:
        """Probabilities for validated passengers, one per passenger, in order."""
        if self.preprocessor is None:
            raise KeyError(model)  # no record model is served, so no model name reaches here
        return self.predict_features(model, self.preprocessor.transform_passengers(passengers))
