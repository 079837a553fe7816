"""Small model packs of shapes the Titanic models do not have — several inputs, several outputs,
float64, int64 and int32 tensors, a fixed batch, regression, multiclass and a binary tree
ensemble of the ONNX-ML domain — written with the onnx
package's helpers so that no training is needed. The test servers serve them over the Open
Inference Protocol, and tests/vectors/v2.json is written against them.

`python -m servebench.example_packs MODELS_DIR` writes them into MODELS_DIR/packs/."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from servebench.registry import PACK_MODEL, PACKS_DIR

OPSET = 13
ML_OPSET = 3
SAMPLE_ROWS = 8


def _graph(
    name: str, nodes: list, inputs: list, outputs: list, weights: dict[str, np.ndarray], ml: bool = False
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, inputs, outputs, initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()]
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("ai.onnx.ml", ML_OPSET)] if ml else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="servebench")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def two_inputs(rng: np.random.Generator) -> tuple[onnx.ModelProto, pd.DataFrame]:
    """`a` FP32 [N,3] and `b` INT64 [N,2] → `score` FP32 [N,1] and `winner` INT64 [N]."""
    weights = {
        "w_a": rng.normal(size=(3, 1)).astype(np.float32),
        "w_b": rng.normal(size=(2, 1)).astype(np.float32),
        "bias": np.array([0.25], dtype=np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["a", "w_a"], ["from_a"]),
        helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["b_float", "w_b"], ["from_b"]),
        helper.make_node("Add", ["from_a", "from_b"], ["summed"]),
        helper.make_node("Add", ["summed", "bias"], ["score"]),
        helper.make_node("ArgMax", ["a"], ["winner"], axis=1, keepdims=0),
    ]
    model = _graph(
        "two_inputs",
        nodes,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 2]),
        ],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("winner", TensorProto.INT64, ["N"]),
        ],
        weights,
    )
    sample = pd.DataFrame(rng.normal(size=(SAMPLE_ROWS, 3)).round(3), columns=["a0", "a1", "a2"])
    sample[["b0", "b1"]] = rng.integers(-5, 6, size=(SAMPLE_ROWS, 2))
    return model, sample


def regression(rng: np.random.Generator) -> tuple[onnx.ModelProto, pd.DataFrame]:
    """`x` FP64 [N,4] → `y` FP64 [N,1], a linear regression."""
    weights = {"w": rng.normal(size=(4, 1)), "c": np.array([1.5])}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "c"], ["y"])]
    model = _graph(
        "regression",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 1])],
        weights,
    )
    sample = pd.DataFrame(rng.normal(size=(SAMPLE_ROWS, 4)).round(4), columns=["x0", "x1", "x2", "x3"])
    return model, sample


def multiclass(rng: np.random.Generator) -> tuple[onnx.ModelProto, pd.DataFrame]:
    """`x` FP32 [N,8] → `probabilities` FP32 [N,3] (softmax) and `label` INT64 [N]."""
    weights = {
        "w": rng.normal(size=(8, 3)).astype(np.float32),
        "b": rng.normal(size=(3,)).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    model = _graph(
        "multiclass",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        weights,
    )
    sample = pd.DataFrame(rng.normal(size=(SAMPLE_ROWS, 8)).round(3), columns=[f"pixel{i}" for i in range(8)])
    return model, sample


def fixed(rng: np.random.Generator) -> tuple[onnx.ModelProto, pd.DataFrame]:
    """`x` INT32 [1,2], a fixed batch of one → `y` INT32 [1,1], the row's sum."""
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)]
    model = _graph(
        "fixed",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.INT32, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
        {"axes": np.array([1], dtype=np.int64)},
    )
    sample = pd.DataFrame(rng.integers(-1000, 1000, size=(SAMPLE_ROWS, 2)), columns=["left", "right"])
    return model, sample


def binary_trees(rng: np.random.Generator) -> tuple[onnx.ModelProto, pd.DataFrame]:
    """`x` FP32 [N,2] → `label` INT64 [N] and `probabilities` FP32 [N,2]: two stumps of a
    `TreeEnsembleClassifier` whose leaves weigh the positive class alone, the layout in which
    skl2onnx exports a binary random forest and onnxmltools a binary LightGBM classifier."""
    leaf_weights = [0.1, 0.4, 0.15, 0.45]
    ensemble = helper.make_node(
        "TreeEnsembleClassifier",
        ["x"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        classlabels_int64s=[0, 1],
        post_transform="NONE",
        nodes_treeids=[0, 0, 0, 1, 1, 1],
        nodes_nodeids=[0, 1, 2, 0, 1, 2],
        nodes_featureids=[0, 0, 0, 1, 0, 0],
        nodes_values=[0.0, 0.0, 0.0, 0.5, 0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"] * 2,
        nodes_truenodeids=[1, 0, 0, 1, 0, 0],
        nodes_falsenodeids=[2, 0, 0, 2, 0, 0],
        class_treeids=[0, 0, 1, 1],
        class_nodeids=[1, 2, 1, 2],
        class_ids=[0, 0, 0, 0],
        class_weights=leaf_weights,
    )
    model = _graph(
        "binary_trees",
        [ensemble],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
        ],
        {},
        ml=True,
    )
    sample = pd.DataFrame(rng.normal(size=(SAMPLE_ROWS, 2)).round(3), columns=["left", "right"])
    return model, sample


PACKS: dict[str, Callable[[np.random.Generator], tuple[onnx.ModelProto, pd.DataFrame]]] = {
    "two_inputs": two_inputs,
    "regression": regression,
    "multiclass": multiclass,
    "fixed": fixed,
    "binary_trees": binary_trees,
}


def write_pack(folder: Path, model: onnx.ModelProto, sample: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / PACK_MODEL)
    sample.to_csv(folder / "sample.csv", index=False)
    return folder


def write_example_packs(models_dir: Path) -> dict[str, Path]:
    """Every example pack into `models_dir/packs/<name>/`; name → folder."""
    return {
        name: write_pack(models_dir / PACKS_DIR / name, *make(np.random.default_rng(index)))
        for index, (name, make) in enumerate(PACKS.items())
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m servebench.example_packs MODELS_DIR")
    for folder in write_example_packs(Path(sys.argv[1])).values():
        print(folder)
