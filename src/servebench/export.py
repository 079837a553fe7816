"""ONNX export of both models, the parity check against the native models, and reference.jsonl.

Both ONNX files share one interface, so that every server runs them the same way:
input `features` float32 [batch, 6], output `probability` float32 [batch].
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import onnxruntime as ort
import pandas as pd
import torch
from onnx import TensorProto, helper
from onnxmltools.convert.common.data_types import FloatTensorType

from servebench.contract import FIELDS, ONNX_INPUT, ONNX_OUTPUT
from servebench.features import FEATURES
from servebench.training import SurvivalMLP, SurvivalProbability

INPUT = ONNX_INPUT
OUTPUT = ONNX_OUTPUT
ONNX_OPSET = 17
# The highest opset onnxmltools converts LightGBM to.
LIGHTGBM_OPSET = 15
PARITY_TOLERANCE = 1e-5


def export_pytorch_onnx(model: SurvivalMLP, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, len(FEATURES), dtype=torch.float32)
    torch.onnx.export(
        SurvivalProbability(model).eval(),
        (example,),
        str(path),
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def export_lightgbm_onnx(booster: lgb.Booster, path: Path) -> Path:
    """onnxmltools without ZipMap, then a Gather that keeps P(survived) as a plain [batch] tensor."""
    converted = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT, FloatTensorType([None, len(FEATURES)]))],
        zipmap=False,
        target_opset=LIGHTGBM_OPSET,
    )
    graph = converted.graph
    probabilities = next(o.name for o in graph.output if o.name.startswith("prob"))
    graph.initializer.append(helper.make_tensor("positive_class", TensorProto.INT64, [], [1]))
    graph.node.append(helper.make_node("Gather", [probabilities, "positive_class"], [OUTPUT], axis=1))
    while graph.output:
        graph.output.pop()
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch"]))
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    converted.producer_name = "servebench"
    onnx.checker.check_model(converted, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(path))
    return path


def onnx_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_probabilities(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    (probability,) = session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})
    return np.asarray(probability, dtype=np.float64)


def parity(native: np.ndarray, exported: np.ndarray) -> dict[str, float | int]:
    diff = np.abs(np.asarray(native, dtype=np.float64) - np.asarray(exported, dtype=np.float64))
    return {
        "rows": int(diff.size),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "label_mismatches": int(((native >= 0.5) != (exported >= 0.5)).sum()),
    }


def check_parity(table: pd.DataFrame, tolerance: float = PARITY_TOLERANCE) -> None:
    """Fail loudly when an export drifts from its native model."""
    bad = table[(table["max_abs_diff"] > tolerance) | (table["label_mismatches"] > 0)]
    if not bad.empty:
        raise AssertionError(f"ONNX export differs from the native model beyond {tolerance}:\n{bad.to_string()}")


def passenger_fields(row: Mapping[str, object]) -> dict[str, object]:
    """A data row as a client sends it: the six raw fields, Age null where unknown."""
    out: dict[str, object] = {}
    for name in FIELDS:
        value = row[name]
        if name == "Sex":
            out[name] = str(value)
        elif name in ("Pclass", "SibSp", "Parch"):
            out[name] = int(value)  # type: ignore[call-overload]
        else:
            number = float(value)  # type: ignore[arg-type]
            out[name] = None if math.isnan(number) else number
    return out


def write_reference(valid: pd.DataFrame, probabilities: Mapping[str, np.ndarray], path: Path) -> Path:
    """One JSON line per validation row: ids, label, raw fields, each model's native probability."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for i, (_, row) in enumerate(valid.iterrows()):
            line = {"PassengerId": int(row["PassengerId"]), "Survived": int(row["Survived"])}
            line.update(passenger_fields(row))
            line.update({name: float(p[i]) for name, p in probabilities.items()})
            out.write(json.dumps(line) + "\n")
    return path


def read_reference(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True)
